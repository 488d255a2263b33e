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
    int passed_fd = -1;     // a listening socket from systemd: served instead of binding (serve_tcp owns it)
    std::function<void()> on_listening;  // called once listening (systemd readiness)
};

// systemd socket activation (docs/install.md#systemd): the listening socket
// systemd passed becomes opts.passed_fd. Returns "" when it did, or when
// nothing was passed; else why soukd cannot serve what it was given (a
// socket named "http": the HTTP server binds its own; more than one socket;
// not a listening stream socket). Call once, before any thread starts.
std::string adopt_passed_socket(TcpOptions& opts);

// Serve until *stop becomes true; whoever sets it then calls
// wake_waiters() (server/carriers/waiter.hpp). Returns a process exit
// code; prints why on failure.
int serve_tcp(const ServerContext& ctx, const TcpOptions& opts, const std::atomic<bool>* stop);

}  // namespace souk::server
