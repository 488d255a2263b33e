// The bzr:// carrier: listen, then the acceptor + epoll waiter + bounded
// worker pool of server/carriers/waiter.hpp (idle connections, and requests
// still arriving, hold no thread), capped by --max-connections. Runs until
// SIGTERM/SIGINT (see main).
#pragma once

#include <csignal>
#include <cstdint>
#include <string>

#include "server/verbs/dispatch.hpp"

namespace souk::server {

struct TcpOptions {
    std::string address = "127.0.0.1";
    uint16_t port = 4155;
    std::string port_file;  // if set, the bound port is written here once listening
};

// Serve until *stop becomes true; whoever sets it then calls
// wake_waiters() (server/carriers/waiter.hpp). Returns a process exit
// code; prints why on failure.
int serve_tcp(const ServerContext& ctx, const TcpOptions& opts, const volatile sig_atomic_t* stop);

}  // namespace souk::server
