#include "server/request/pipeline.hpp"

#include <errno.h>

#include <chrono>

#include "protocol/errors.hpp"
#include "server/base/counters.hpp"
#include "server/base/log.hpp"
#include "server/base/strings.hpp"
#include "server/request/access.hpp"
#include "server/request/reply.hpp"
#include "server/store/paths.hpp"

namespace souk::server {
namespace {

using proto::Ev;
using proto::Value;

const std::string kNoPath;

// ('error', <what>, <message>): what a verb answers for bad input.
proto::Args generic(std::string_view kind, std::string msg) {
    return {Value("error"), Value(kind), Value(std::move(msg))};
}

// The access log's result (docs/access-log.md#fields): "ok", or the
// error's name: its first word, or the kind of a generic ('error', kind,
// message) reply when that is a single word.
std::string_view result_name(const Reply& r, bool written) {
    if (!written) return "WriteFailed";
    if (r.success) return "ok";
    if (r.args.empty() || !r.args[0].is_bytes()) return "error";
    std::string_view first = r.args[0].bytes;
    if (first == "error" && r.args.size() > 1 && r.args[1].is_bytes()) {
        std::string_view kind = r.args[1].bytes;
        bool word = !kind.empty() && kind.size() <= 64;
        for (char ch : kind)
            if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
                word = false;
        if (word) return kind;
    }
    return first;
}

// The path a request names, for the logs: its first path argument
// (proto::path_args: BzrDirFormat.initialize_ex_1.16's comes after the
// format), nullptr for a verb without one.
const std::string* path_arg(const proto::VerbInfo& verb, std::span<const Value> args) {
    const proto::PathArgs pa = proto::path_args(verb.id);
    const size_t at = 1 + pa.first;
    return pa.count && at < args.size() && args[at].is_bytes() ? &args[at].bytes : nullptr;
}

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

Pipeline::Pipeline(const ServerContext& ctx, const log::Origin& origin, std::string_view base)
    : ctx_(ctx), serving_(&ctx), origin_(origin), peer_(origin.peer), base_(base) {}

void Pipeline::prepare(proto::Args error) {
    h_->reply.fail(std::move(error));
    h_->sink.reset();
    h_->prepared = true;
}

Pipeline::Step Pipeline::feed(std::string_view& in) {
    if (ready_ || in.empty()) return Step::NeedMore;
    // A fresh handler for each request, from its first byte.
    if (!h_) h_.acquire(ctx_.params);
    Handler& h = *h_;
    BudgetScope budget(&h.budget);  // the verbs this feed dispatches charge the request
    const size_t before = in.size();
    for (;;) {  // bounded: each event consumes input or ends the request
        proto::Event ev = h.decoder.next(in);
        switch (ev.kind) {
        case Ev::NeedMore:
            count(counters().bytes_in, before - in.size());
            h.bytes_in += before - in.size();
            return Step::NeedMore;
        case Ev::ArgsReady: on_args(ev); break;
        case Ev::BodyChunk:
            // Bodies sent to verbs that take none are discarded, and so is
            // the rest of a body whose reply is already decided.
            if (h.prepared || !h.verb) break;
            if (h.sink) {
                h.sink->write(ev.chunk);
            } else if (h.verb->body == proto::BodyKind::Whole) {
                if (h.body().size() + ev.chunk.size() > static_cast<uint64_t>(ctx_.params.max_body)) {
                    count(counters().body_over_cap);
                    prepare(generic("TooLarge", "request body over --max-body (" +
                                                     std::to_string(static_cast<uint64_t>(ctx_.params.max_body)) +
                                                     " bytes)"));
                    break;
                }
                if (!h.body_append(ev.chunk, static_cast<uint64_t>(ctx_.params.max_body_total))) {
                    count(counters().body_over_cap);
                    prepare(generic("TooLarge", "request bodies held by this server are over --max-body-total (" +
                                                     std::to_string(static_cast<uint64_t>(ctx_.params.max_body_total)) +
                                                     " bytes); try again later"));
                }
            }
            break;
        case Ev::Abort:
            // Apply nothing; still answer once to keep in step.
            h.aborted = true;
            h.sink.reset();
            break;
        case Ev::End: on_end(); break;
        case Ev::Error:
            SOUK_LOG(Info, "%s: protocol error: %s", peer_, ev.error.c_str());
            // Breezy's reply to malformed framing; the stream cannot be
            // resynchronised, so the connection closes after it.
            h.version = ev.version ? ev.version : 1;
            h.verb = nullptr;
            h.sink.reset();  // an unfinished upload is gone before the reply says so
            h.reply.fail(proto::protocol_error_args(ev.error));
            h.close_after = true;
            ready_ = true;
            break;
        default: break;
        }
        if (ready_) {
            count(counters().bytes_in, before - in.size());
            h.bytes_in += before - in.size();
            return Step::Ready;
        }
    }
}

void Pipeline::on_args(const proto::Event& ev) {
    Handler& h = *h_;
    h.version = ev.version;
    h.argc = ev.argc;
    h.verb = proto::find_verb(h.arg_storage[0].bytes);
    const auto args = h.args();
    if (!h.verb) {
        // Answered when the message ends; its body is skipped unread.
        // Clients probe verbs this way (docs/protocol/framing.md).
        const std::string& name = h.arg_storage[0].bytes;
        SOUK_LOG(Debug, "%s: unknown verb %s", peer_, proto::to_display(h.arg_storage[0]).c_str());
        prepare(h.version == 3 ? proto::error_args(proto::Err::UnknownMethod, name)
                               : proto::v12_unknown_verb_args(name));
        return;
    }
    // The root it is for (docs/configuration.md#roots), then access
    // control (docs/access-control.md), before any body byte is read.
    const ServerContext& root = select_root(ctx_, *h.verb, args, base_);
    serving_ = &root;
    const std::string_view user = origin_.user ? origin_.user : "";
    AccessCheck access = check_access(root, *h.verb, args, base_, user, origin_.carrier ? origin_.carrier : "");
    if (access.verdict != AccessCheck::Verdict::Allow) {
        const bool hide = access.verdict == AccessCheck::Verdict::Hide;
        // Who, what and why: "PEER: [user USER ]VERB [PATH] refused: WHY".
        std::string what = user.empty() ? std::string() : "user " + printable(user) + " ";
        what += h.verb->name;
        // The path as the root sees it (relative client paths start at the
        // URL's directory over HTTP; a root's mount is part of it), else as
        // the client sent it.
        if (const std::string* p = path_arg(*h.verb, args))
            what += " " + (access.decided ? "/" + printable(join(root.mount, access.path)) : printable(*p));
        if (hide) SOUK_LOG(Info, "%s: %s hidden: %s", peer_, what.c_str(), access.why.c_str());
        else SOUK_LOG(Warn, "%s: %s refused: %s", peer_, what.c_str(), access.why.c_str());
        if (!hide) return prepare(std::move(access.error));
        // Served as if nothing existed there: the reply a missing path gets.
        access_note_ = "Unexported";
        serving_ = root.unexported.get();
        if (!serving_) {
            serving_ = &root;
            const std::string* p = path_arg(*h.verb, args);
            return prepare(proto::error_args(proto::Err::NoSuchFile, p ? *p : std::string()));
        }
    }
    if (h.verb->body == proto::BodyKind::Streamed) {
        // The verb takes its body as it arrives (or fails now).
        dispatch(*serving_, *h.verb, args, {}, base_, h.reply, &h.path, &h.sink);
        if (!h.sink) h.prepared = true;
    }
}

void Pipeline::on_end() {
    Handler& h = *h_;
    ready_ = true;
    if (h.aborted && !h.prepared) {
        SOUK_LOG(Info, "%s: %s aborted by the client", peer_, h.verb ? h.verb->name.data() : "request");
        h.reply.fail({Value("error"), Value("request aborted by client")});
        return;
    }
    if (h.prepared) return;
    if (h.sink) {
        h.sink->finish(h.reply);
        h.sink.reset();
        return;
    }
    dispatch(*serving_, *h.verb, h.args(), h.body(), base_, h.reply, &h.path);
}

void Pipeline::incomplete() {
    if (!h_) h_.acquire(ctx_.params);
    // What Breezy's WSGI server answers (docs/protocol/http.md), still 200.
    h_->version = 1;
    h_->verb = nullptr;
    h_->reply.fail({Value("error"), Value("incomplete request")});
    h_->close_after = true;
    ready_ = true;
}

void Pipeline::truncated() {
    if (!h_) return;
    count(counters().truncated_requests);
    h_.release();  // an unfinished upload is discarded with the handler
}

uint64_t Pipeline::settle_reply(uint64_t limit) { return settle_generated(*serving_, h_->reply, limit); }

uint64_t Pipeline::reply_length(bool direct) const {
    return file_reply_length(*serving_, h_->version, h_->reply, direct);
}

bool Pipeline::write_reply(io::Sink& out) {
    Handler& h = *h_;
    BudgetScope budget(&h.budget);  // a generated body (a stream) charges the request too
    Counters& c = counters();
    if (h.close_after) {
        count(c.protocol_errors);
        closing_ = true;
    } else {
        count(c.requests);
        if (!h.verb) count(c.unknown_verbs);
        else count(c.verb_requests[static_cast<size_t>(h.verb->id)]);
        if (h.aborted) count(c.aborted_requests);
        if (!h.reply.success) count(c.request_failures);
    }
    if (h.version != 3 && h.verb && h.reply.success) {
        // v1/v2 bodies are implicit: the client reads one exactly when the
        // verb table says the verb answers with one
        // (docs/protocol/framing.md#v1-and-v2-bodies), so the reply must
        // agree or the stream falls out of step.
        Reply& r = h.reply;
        if (h.verb->response_body && r.body_kind == Reply::Body::None) {
            r.body_kind = Reply::Body::Bytes;
            r.body.clear();
        } else if (!h.verb->response_body && r.body_kind != Reply::Body::None) {
            SOUK_LOG(Error, "%s: %s answered with a body the verb table does not declare; dropped", peer_,
                     h.verb->name.data());
            r.body_kind = Reply::Body::None;
        }
    }
    auto args = h.args();
    SOUK_LOG(Trace, "%s: %s -> %s", peer_, h.argc ? proto::to_display(proto::Args(args.begin(), args.end())).c_str() : "?",
             proto::to_display(h.reply.args).c_str());
    const std::string& path = h.argc > 1 && args[1].is_bytes() ? args[1].bytes : kNoPath;
    const uint64_t before = out.written();
    bool ok = server::write_reply(*serving_, out, h.version, h.reply, h.out, path) && out.finish();
    count(c.bytes_out, out.written() - before);
    if (!ok) count(c.write_failures);
    const uint64_t us = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(io::Clock::now() - h.started).count());
    count_latency(c, verb_family(h.verb), us);
    if (log::access_enabled()) {
        log::Access a;
        a.origin = &origin_;
        a.version = h.version;
        a.verb = h.verb ? h.verb->name : h.argc ? std::string_view(args[0].bytes) : std::string_view();
        if (const std::string* p = h.verb ? path_arg(*h.verb, args) : h.argc > 1 && args[1].is_bytes() ? &args[1].bytes : nullptr)
            a.path = *p;
        a.result = ok && access_note_ ? std::string_view(access_note_) : result_name(h.reply, ok);
        a.bytes_in = h.bytes_in;
        a.bytes_out = out.written() - before;
        a.duration_us = us;
        log::access(a);
    }
    h_.release();  // the next request gets a fresh handler; its file and buffers go now
    ready_ = false;
    access_note_ = nullptr;
    serving_ = &ctx_;
    return ok;
}

// ------------------------------------------------------- request loop --

SessionEnd serve_requests(const ServerContext& ctx, io::Stream& stream, const log::Origin& origin) {
    const char* peer = origin.peer;
    IoBuffer buf;
    Pipeline p(ctx, origin);
    std::string_view pending;  // bytes read but not yet decoded (in buf)

    for (;;) {  // one pass per read; bounded by the peer's bytes and the deadlines
        if (pending.empty()) {
            const bool idle = !p.mid_request();  // between requests
            ssize_t n;
            if (idle) {
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
                n = stream.read_some(buf.data(), buf.size(), p.deadline());
            }
            if (n == 0) {
                if (idle) return SessionEnd::Eof;
                p.truncated();
                return SessionEnd::Truncated;
            }
            if (n < 0) {
                if (errno != ETIMEDOUT) return SessionEnd::ReadFailed;
                SOUK_LOG(Info, "%s: %s", peer, idle ? "idle timeout" : "request timed out while arriving");
                count(idle ? counters().idle_timeouts : counters().request_timeouts);
                return idle ? SessionEnd::IdleTimeout : SessionEnd::RequestTimeout;
            }
            pending = std::string_view(buf.data(), static_cast<size_t>(n));
        }
        while (p.feed(pending) == Pipeline::Step::Ready) {  // bounded: each reply consumes a request's bytes
            io::StreamSink out(stream, io::after_seconds(ctx.params.write_timeout));
            if (!p.write_reply(out)) return SessionEnd::WriteFailed;
            if (p.closing()) return SessionEnd::ProtocolError;
        }
    }
}

}  // namespace souk::server
