// The bzr:// carrier's connection machinery (docs/request-lifecycle.md; Varnish's
// waiter): an acceptor, an epoll waiter that parks idle connections with
// no thread and no workspace — only a session record from the "sess" pool
// (under 256 bytes) plus the kernel's socket — and a bounded pool of
// worker threads (--workers) that serves requests with pooled handlers
// (server/request/handler.hpp).
//
// A worker never waits for a request to arrive: the waiter keeps a
// connection whose request is still arriving, looking at the bytes
// without reading them (MSG_PEEK + the request decoder), and hands it to a
// worker once the request is whole. A request not whole within
// --arrival-bytes streams to one of at most --stream-workers workers; one
// slower than --min-stream-rate gives its worker up when another waits.
//
// Timeouts: --idle-timeout applies only while a connection waits between
// requests (parked, or lingering on a worker); --request-timeout from a
// request's first byte to its last (no slowloris), and --write-timeout
// each response. --max-connections caps open connections: beyond it a new
// one takes the slot of the connection idle longest if idle
// --idle-reclaim-age, else it is closed at once and counted. After a
// response a worker keeps watching the connection for --linger seconds (a
// client that sends its next request at once is served without a
// hand-off) unless other connections are waiting for a worker.
#pragma once

#include <csignal>
#include <cstdint>
#include <string>

#include "server/verbs/dispatch.hpp"
#include "transport/fd.hpp"

namespace souk::server {

// Serve the listening socket `listener` until *stop becomes true, then
// drain (docs/configuration.md#signals): close the listener and idle
// connections, let requests in flight finish within --shutdown-grace,
// cut the rest, and wait (bounded) for the workers. Returns a
// process exit code. Whoever sets *stop calls wake_waiters(): the waiter
// sleeps until its next deadline, not on a timer.
int run_waiter(const ServerContext& ctx, io::Fd listener, const volatile sig_atomic_t* stop);

// Wake every running waiter (and serve_http's watcher) to look at its stop
// flag. Async-signal-safe (one write to an eventfd): for a SIGTERM handler
// on any thread.
void wake_waiters();
// Sleep until wake_waiters() or `timeout_ms`, for a loop that watches a
// stop flag without waking on a short timer.
void sleep_until_woken(int timeout_ms);

}  // namespace souk::server
