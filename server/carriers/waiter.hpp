// The bzr:// carrier's connection machinery (docs/request-lifecycle.md; Varnish's
// waiter): an acceptor, an epoll waiter that parks idle connections with
// no thread and no workspace — only a session record from the "sess" pool
// (under 256 bytes) plus the kernel's socket — and a bounded pool of
// worker threads (--workers) that takes a connection when bytes arrive and
// serves its requests with pooled handlers (server/request/handler.hpp).
//
// Timeouts: --idle-timeout applies only while a connection waits between
// requests (parked, or lingering on a worker); once a request has started
// arriving, --request-timeout bounds it (no slowloris), and
// --write-timeout each response. --max-connections caps open connections
// (beyond it new ones are closed at once and counted). After a response a
// worker keeps watching the connection for --linger seconds (a client
// that sends its next request at once is served without a hand-off)
// unless other connections are waiting for a worker.
#pragma once

#include <csignal>
#include <cstdint>
#include <string>

#include "server/verbs/dispatch.hpp"
#include "transport/fd.hpp"

namespace souk::server {

// Serve the listening socket `listener` until *stop becomes true (checked
// at least every 200 ms), then close every connection and wait (bounded)
// for the workers. Returns a process exit code.
int run_waiter(const ServerContext& ctx, io::Fd listener, const volatile sig_atomic_t* stop);

}  // namespace souk::server
