// The request pipeline: the one place a request is served, whatever
// carried it (docs/request-tour.md). Bytes in -> decode (protocol/) ->
// verb lookup -> policy from the verb table (read-only, body kind, caps)
// -> dispatch (server/verbs/) -> reply writer -> bytes out, with a pooled
// handler per request (server/request/handler.hpp) and every request
// counted here, once, for every carrier.
//
// Stream carriers (stdio, TCP) feed it until EOF; the web carriers (HTTP,
// CGI) feed it one request's bytes per exchange. Carriers differ only in
// how bytes arrive and where the reply goes (an io::Sink).
#pragma once

#include <string_view>

#include "server/base/log.hpp"
#include "server/request/handler.hpp"
#include "server/verbs/dispatch.hpp"
#include "transport/sink.hpp"
#include "transport/stream.hpp"

namespace souk::server {

// Why a stream session ended (for logs and tests). Parked: the TCP
// carrier's only (server/carriers/waiter.cpp): between requests, the next
// one not arrived whole, handed back to the waiter.
enum class SessionEnd { Eof, IdleTimeout, RequestTimeout, Truncated, ProtocolError, WriteFailed, ReadFailed, Parked };
const char* to_string(SessionEnd e);

class Pipeline {
public:
    // `origin`: who sends the requests (for the logs; the carrier keeps it
    // alive). `base`: the root-relative directory relative client paths
    // start from ("" except over HTTP and CGI, where it is the URL's directory).
    Pipeline(const ServerContext& ctx, const log::Origin& origin, std::string_view base = {});
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    enum class Step : uint8_t {
        NeedMore,  // `in` is used up; feed more bytes
        Ready,     // a request is complete and its reply prepared: write_reply() before feeding more
    };
    // Decode bytes from `in` (advancing it) until a request is complete or
    // `in` runs out. A request's first byte takes a handler from the pool.
    Step feed(std::string_view& in);
    // Write the prepared reply to `out` (counted: requests, verbs,
    // failures, bytes out, latency; one access-log line) and give the
    // handler back. false when
    // the reply could not be written whole; then the connection must close
    // (and also when closing() after it).
    bool write_reply(io::Sink& out);
    // After write_reply: a protocol error was answered; the stream cannot
    // be resynchronised and must close.
    bool closing() const { return closing_; }
    // After Ready: pull a generated body into memory while it stays within
    // `limit` bytes, so that a short one has a known size before anything
    // is sent (the web carriers then answer with a Content-Length,
    // docs/protocol/http.md#a-reply-must-end-where-the-client-stops-reading).
    // Returns the body's size: UINT64_MAX while it is still unknown (a long
    // body goes on streaming, starting with what was pulled).
    uint64_t settle_reply(uint64_t limit);
    // After Ready: the prepared reply, and the context it is served in
    // (its root's store).
    Reply& reply() { return h_->reply; }
    const ServerContext& serving() const { return *serving_; }
    // After Ready: the bytes write_reply() will write for a File reply to a
    // sink whose direct() is `direct` (file_reply_length); else UINT64_MAX.
    uint64_t reply_length(bool direct) const;
    // A request has begun arriving and is not answered yet.
    bool mid_request() const { return static_cast<bool>(h_); }
    // When the request now arriving must be complete (--request-timeout).
    io::Deadline deadline() const { return h_ ? h_->deadline : io::no_deadline(); }
    // The input ended in the middle of a request: apply nothing, count it,
    // give the handler back.
    void truncated();
    // Web carriers: the request body ended before the message did. Prepares
    // the reply Breezy's own HTTP server gives (Ready to write).
    void incomplete();

private:
    void on_args(const proto::Event& ev);
    void on_end();
    // Decide the reply now; the rest of the request is discarded unread.
    void prepare(proto::Args error);

    const ServerContext& ctx_;
    // The context the current request is dispatched in: its root's
    // (select_root: ctx_ itself when it is the one root), or the root's
    // unexported view for a path that is not exported (server/request/access.hpp).
    const ServerContext* serving_;
    // The access log's RESULT for a request access control answered as
    // for a missing path ("Unexported"); nullptr otherwise.
    const char* access_note_ = nullptr;
    const log::Origin& origin_;
    const char* peer_;  // origin_.peer
    std::string_view base_;
    HandlerLease h_;
    bool ready_ = false;
    bool closing_ = false;
};

// Serve requests from `stream` through a Pipeline until EOF, a timeout or
// a protocol error, waiting for each (the stdio carrier: one client, so a
// slow one holds nothing another needs). The TCP carrier has its own loop
// over a Pipeline that reads only requests that have arrived whole
// (server/carriers/waiter.cpp). Never throws.
SessionEnd serve_requests(const ServerContext& ctx, io::Stream& stream, const log::Origin& origin);

}  // namespace souk::server
