#include "server/request/pipeline.hpp"

#include <errno.h>

#include "protocol/errors.hpp"
#include "server/base/counters.hpp"
#include "server/base/log.hpp"
#include "server/request/handler.hpp"
#include "server/request/reply.hpp"

namespace souk::server {
namespace {

using proto::Ev;

const std::string kNoPath;

}  // namespace

const char* to_string(SessionEnd e) {
    switch (e) {
    case SessionEnd::Eof: return "end of input";
    case SessionEnd::IdleTimeout: return "idle timeout";
    case SessionEnd::RequestTimeout: return "request timed out while arriving";
    case SessionEnd::Truncated: return "connection closed in the middle of a request";
    case SessionEnd::ProtocolError: return "protocol error";
    case SessionEnd::WriteFailed: return "write failed";
    case SessionEnd::ReadFailed: return "read failed";
    case SessionEnd::Parked: return "parked between requests";
    }
    return "?";
}

// ------------------------------------------------------- request loop --

SessionEnd serve_requests(const ServerContext& ctx, io::Stream& stream, const char* peer, ServeMode mode) {
    const bool park = mode == ServeMode::Park;
    IoBuffer buf;
    HandlerLease h;
    std::string_view pending;  // bytes read but not yet decoded (in buf)

    // A response without a body, now (unknown verb, abort, protocol error).
    auto send_now = [&](int v, bool success, const proto::Args& a) {
        h->out.clear();
        proto::response::encode(v, success, a, nullptr, h->out);
        return stream.write_all(h->out, io::after_seconds(ctx.params.write_timeout)) == 0;
    };

    for (;;) {  // one pass per read; bounded by the peer's bytes and the deadlines
        if (pending.empty()) {
            const bool idle = !h;  // between requests
            ssize_t n;
            if (idle && park) {
                buf.acquire();
                // Only what is already there: otherwise the waiter takes over.
                n = stream.read_some(buf.data(), buf.size(), io::Clock::now());
                if (n < 0 && errno == ETIMEDOUT) return SessionEnd::Parked;
            } else if (idle) {
                buf.release();  // hold no buffer while the client thinks
                io::Deadline idle_deadline = io::after_seconds(ctx.params.idle_timeout);
                int w = stream.wait_readable(idle_deadline);
                if (w == 0) {
                    SOUK_LOG(Info, "%s: idle timeout", peer);
                    count(counters().idle_timeouts);
                    return SessionEnd::IdleTimeout;
                }
                if (w < 0) return SessionEnd::ReadFailed;
                buf.acquire();
                n = stream.read_some(buf.data(), buf.size(), idle_deadline);
            } else {
                n = stream.read_some(buf.data(), buf.size(), h->deadline);
            }
            if (n == 0) {
                if (idle) return SessionEnd::Eof;
                count(counters().truncated_requests);
                return SessionEnd::Truncated;
            }
            if (n < 0) {
                if (errno != ETIMEDOUT) return SessionEnd::ReadFailed;
                SOUK_LOG(Info, "%s: %s", peer, idle ? "idle timeout" : "request timed out while arriving");
                count(idle ? counters().idle_timeouts : counters().request_timeouts);
                return idle ? SessionEnd::IdleTimeout : SessionEnd::RequestTimeout;
            }
            count(counters().bytes_in, static_cast<uint64_t>(n));
            pending = std::string_view(buf.data(), static_cast<size_t>(n));
        }
        // A fresh handler for each request, from its first byte.
        if (!h) h.acquire(ctx.params);
        bool done = false;
        while (!done) {  // bounded: each event consumes input or ends the request
            proto::Event ev = h->decoder.next(pending);
            if (ev.kind == Ev::NeedMore) break;
            switch (ev.kind) {
            case Ev::ArgsReady:
                h->version = ev.version;
                h->argc = ev.argc;
                h->verb = proto::find_verb(h->arg_storage[0].bytes);
                h->aborted = false;
                h->answered = false;
                if (!h->verb) {
                    // Answer at once and skip the rest of the message, body
                    // included: clients probe verbs this way (spec 3.4).
                    const std::string& name = h->arg_storage[0].bytes;
                    SOUK_LOG(Debug, "%s: unknown verb %s", peer, proto::to_display(h->arg_storage[0]).c_str());
                    h->answered = true;
                    count(counters().requests);
                    count(counters().unknown_verbs);
                    if (!send_now(h->version, false,
                                  h->version == 3 ? proto::error_args(proto::Err::UnknownMethod, name)
                                                  : proto::v12_unknown_verb_args(name)))
                        return SessionEnd::WriteFailed;
                }
                break;
            case Ev::BodyChunk:
                // Bodies sent to verbs that take none are discarded (spec 3.2).
                if (h->verb && h->verb->request_body && !h->answered) h->body_append(ev.chunk);
                break;
            case Ev::Abort:
                h->aborted = true;
                break;
            case Ev::End: {
                if (!h->answered) {
                    if (h->aborted) {
                        // Apply nothing; still answer once to keep in step.
                        SOUK_LOG(Info, "%s: %s aborted by the client", peer, h->verb->name.data());
                        count(counters().requests);
                        count(counters().aborted_requests);
                        if (!send_now(h->version, false,
                                      {proto::Value("error"), proto::Value("request aborted by client")}))
                            return SessionEnd::WriteFailed;
                    } else {
                        auto args = h->args();
                        dispatch(ctx, *h->verb, args, h->body(), {}, h->reply, &h->path);
                        count(counters().requests);
                        count(counters().verb_requests[static_cast<size_t>(h->verb->id)]);
                        if (!h->reply.success) count(counters().request_failures);
                        SOUK_LOG(Debug, "%s: %s -> %s", peer,
                                 proto::to_display(proto::Args(args.begin(), args.end())).c_str(),
                                 proto::to_display(h->reply.args).c_str());
                        const std::string& path = args.size() > 1 && args[1].is_bytes() ? args[1].bytes : kNoPath;
                        if (!write_reply(ctx, stream, h->version, h->reply, h->out, path)) {
                            // The handler, its buffers and its file go back at once (h's lease).
                            count(counters().write_failures);
                            return SessionEnd::WriteFailed;
                        }
                    }
                }
                h.release();  // the next request gets a fresh one
                done = true;
                // Park mode: nothing read ahead, so nothing to decode; the
                // caller watches the socket (linger, then the waiter)
                // rather than paying a read that would find nothing.
                if (park && pending.empty()) return SessionEnd::Parked;
                break;
            }
            case Ev::Error: {
                SOUK_LOG(Info, "%s: protocol error: %s", peer, ev.error.c_str());
                count(counters().protocol_errors);
                // Breezy's reply to malformed framing; the stream cannot be
                // resynchronised, so the connection closes after it.
                send_now(ev.version ? ev.version : 1, false, proto::protocol_error_args(ev.error));
                return SessionEnd::ProtocolError;
            }
            default:
                break;
            }
        }
    }
}

}  // namespace souk::server
