// The connection machinery of the bzr://, HTTP and FastCGI carriers
// (docs/request-lifecycle.md; Varnish's waiter): an acceptor, an epoll waiter that parks idle connections with
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

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "server/request/pipeline.hpp"
#include "server/verbs/dispatch.hpp"
#include "transport/fd.hpp"
#include "transport/stream.hpp"

namespace souk::server {

// A connection a worker serves, as the protocol sees it: reads that never
// wait for a request that has not arrived (or that hold a stream slot
// while one streams in), the socket for replies, and the hand-back.
class ConnIo {
public:
    virtual ~ConnIo() = default;
    // Between requests (no bytes of one read, no stream slot held): whether
    // the next one is served here now. Go: it has arrived whole, or is
    // large and took a stream slot. Park: it has not (partial() says
    // whether some of it is there). Eof: the peer closed.
    enum class Next : uint8_t { Go, Park, Eof };
    virtual Next next() = 0;
    virtual bool partial() const = 0;
    // Whether next() comes before the next read: every byte of the request
    // that arrived whole has been read and no stream slot is held.
    virtual bool between() const = 0;
    // Read the current request's next bytes, at most n: > 0 bytes, 0 at
    // end of input, -1 with *why (RequestTimeout, ReadFailed). `deadline`
    // bounds a streaming read besides the request's own deadline.
    virtual ssize_t read(char* buf, size_t n, io::Deadline deadline, SessionEnd* why) = 0;
    // A reply was written. nothing_pending: no bytes of a further request
    // were read with it (then a stream slot is given back).
    virtual void request_done(bool nothing_pending) = 0;
    // The protocol wants more of a request than the look saw whole: stream
    // the rest rather than wait (cannot happen when both agree).
    virtual void must_stream() = 0;
    // Count a request on this connection; returns how many so far.
    virtual uint32_t count_request() = 0;
    // Shutting down: the reply just written is the last.
    virtual bool draining() const = 0;
    virtual io::Stream& stream() = 0;
    virtual const char* peer() const = 0;
};

// A worker's bytes read from its connection and not used yet (HTTP: the
// head being read, body bytes that came with it, the start of the next
// pipelined request; FastCGI: records). Kept per thread by the protocols
// (its capacity is reused).
class InBuffer {
public:
    std::string_view pending() const { return std::string_view(buf_.data() + begin_, end_ - begin_); }
    void consume(size_t n) {
        begin_ += n;
        if (begin_ == end_) begin_ = end_ = 0;
    }
    void clear() { begin_ = end_ = 0; }
    // Read up to `n` more bytes after the pending ones. As ConnIo::read.
    ssize_t fill(ConnIo& io, size_t n, io::Deadline deadline, SessionEnd* why);

private:
    std::string buf_;
    size_t begin_ = 0, end_ = 0;
};

// What a protocol on the waiter provides (bzr:// in tcp_server.cpp, HTTP
// in http_server.cpp, FastCGI in fastcgi.cpp).
class WaiterProtocol {
public:
    virtual ~WaiterProtocol() = default;
    // How much of the bytes that have arrived (looked at, not read) is the
    // next request. Whole: `bytes` long (malformed bytes too: the worker
    // reads them and answers the error). Partial: not whole yet. Stream:
    // hand it to a stream worker now, whole or not (HTTP's Expect:
    // 100-continue: the client waits for an answer before the body).
    struct Look {
        enum Kind : uint8_t { Partial, Whole, Stream } kind = Partial;
        size_t bytes = 0;
    };
    // One per thread; after its first use it should allocate nothing.
    class Measure {
    public:
        virtual ~Measure() = default;
        virtual Look look(std::string_view arrived) = 0;
    };
    virtual std::unique_ptr<Measure> measure(const Params& p) const = 0;
    // Serve requests on a connection a worker was handed until it ends
    // (the reason) or returns Parked: the next request has not arrived
    // whole (io.next() said Park), or draining().
    virtual SessionEnd serve(const ServerContext& wctx, ConnIo& io) const = 0;
};

// The waiter's settings for one carrier.
struct WaiterConfig {
    size_t workers = 32;         // worker threads at most
    double idle_timeout = 300;   // between requests
    double arrival_timeout = 60; // from a request's first byte until it has arrived whole (or large)
    double request_timeout = 60; // from a request's first byte to its last
    double linger = 0.05;        // a worker watches its connection this long after a reply
};
WaiterConfig waiter_config(const Params& p);  // bzr://: --workers, --idle-timeout, --request-timeout, --linger

// Serve the listening socket `listener` until *stop becomes true, then
// drain (docs/configuration.md#signals): close the listener and idle
// connections, let requests in flight finish within --shutdown-grace,
// cut the rest, and wait (bounded) for the workers. Returns a
// process exit code. Whoever sets *stop calls wake_waiters(): the waiter
// sleeps until its next deadline, not on a timer.
int run_waiter(const ServerContext& ctx, io::Fd listener, const WaiterProtocol& proto, const WaiterConfig& cfg,
               const std::atomic<bool>* stop);

// Wake every running waiter to look at its stop flag. Async-signal-safe
// (one write to an eventfd): for a SIGTERM handler on any thread.
void wake_waiters();
// Sleep until wake_waiters() or `timeout_ms`, for a loop that watches a
// stop flag without waking on a short timer.
void sleep_until_woken(int timeout_ms);

}  // namespace souk::server
