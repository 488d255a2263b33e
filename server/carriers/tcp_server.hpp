// The bzr:// carrier: listen, then the acceptor + epoll waiter + bounded
// worker pool of server/carriers/waiter.hpp (idle connections, and requests
// still arriving, hold no thread), capped by --max-connections. Runs until
// SIGTERM/SIGINT (see main).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "server/verbs/dispatch.hpp"

namespace souk::server {

struct TcpOptions {
    std::string address = "127.0.0.1";
    uint16_t port = 4155;
    std::string port_file;  // if set, the bound port is written here once listening
    int passed_fd = -1;     // a listening socket from systemd (activation.hpp): served instead of binding; serve_tcp owns it
    std::function<void()> on_listening;  // called once listening (systemd readiness)
};

// Serve until *stop becomes true; whoever sets it then calls
// wake_waiters() (server/carriers/waiter.hpp). Returns a process exit
// code; prints why on failure.
int serve_tcp(const ServerContext& ctx, const TcpOptions& opts, const std::atomic<bool>* stop);

}  // namespace souk::server
