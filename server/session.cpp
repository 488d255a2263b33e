#include "server/session.hpp"

#include <errno.h>

#include <algorithm>
#include <cstring>

#include "protocol/errors.hpp"
#include "protocol/message.hpp"
#include "server/counters.hpp"
#include "server/log.hpp"

namespace souk::server {
namespace {

using proto::Ev;

// Ranges up to this size are copied into the output buffer (one write for
// many small readv ranges); larger ones go out with sendfile.
constexpr uint64_t kCopyThreshold = 128 * 1024;
// Flush the output buffer beyond this size.
constexpr size_t kFlushBytes = 1024 * 1024;
// Size of one v3 body part for a large streamed range.
constexpr uint64_t kPartBytes = 4 * 1024 * 1024;
constexpr size_t kReadBuffer = 64 * 1024;

io::Deadline after_seconds(double s) {
    return io::Clock::now() + std::chrono::microseconds(static_cast<int64_t>(s * 1e6));
}

proto::DecoderLimits limits_of(const Params& p) {
    proto::DecoderLimits l;
    l.max_line = static_cast<size_t>(p.max_line);
    l.max_structure = static_cast<size_t>(p.max_structure);
    l.max_body = static_cast<uint64_t>(p.max_body);
    l.bencode.max_depth = static_cast<size_t>(p.max_bencode_depth);
    return l;
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
    }
    return "?";
}

bool write_reply(const ServerContext& ctx, io::Stream& out, int version, Reply& reply, std::string& buf,
                 const std::string& client_path) {
    auto deadline = after_seconds(ctx.params.write_timeout);
    auto flush = [&] {
        if (buf.empty()) return true;
        bool ok = out.write_all(buf, deadline) == 0;
        if (ok) count(counters().bytes_out, buf.size());
        buf.clear();
        return ok;
    };
    buf.clear();
    if (reply.body_kind != Reply::Body::File) {
        proto::response::encode(version, reply.success, reply.args,
                                reply.body_kind == Reply::Body::Bytes ? &reply.body : nullptr, buf);
        return flush();
    }
    proto::response::begin(version, reply.success, reply.args, buf);
    uint64_t total = reply.body_size();
    proto::response::body_begin(version, total, buf);
    if (total == 0) proto::response::body_chunk(version, {}, buf);
    for (const auto& [offset, length] : reply.ranges) {
        if (length <= kCopyThreshold) {
            size_t at = buf.size();
            proto::response::body_chunk_header(version, static_cast<uint32_t>(length), buf);
            size_t data_at = buf.size();
            buf.resize(data_at + length);
            uint64_t got = 0;
            while (got < length) {
                ssize_t r = ctx.store->pread(reply.file, buf.data() + data_at + got, length - got, offset + got);
                if (r <= 0) break;
                got += static_cast<uint64_t>(r);
            }
            if (got < length) {
                // The file shrank since it was checked: fail the stream.
                if (version != 3) return false;  // a v1/v2 length prefix cannot be taken back
                buf.resize(at);
                proto::response::stream_error(
                    version,
                    {proto::Value("ShortReadvError"), proto::Value(client_path), proto::Value(std::to_string(offset)),
                     proto::Value(std::to_string(length)), proto::Value(std::to_string(got))},
                    buf);
                proto::response::end(version, buf);
                return flush();
            }
        } else {
            for (uint64_t done = 0; done < length;) {
                uint64_t n = std::min(kPartBytes, length - done);
                proto::response::body_chunk_header(version, static_cast<uint32_t>(n), buf);
                if (!flush()) return false;
                int64_t sent = out.send_file(reply.file.fd.get(), offset + done, n, deadline);
                // Short: the file shrank after the part's length went out;
                // the stream cannot be repaired, so the connection closes.
                if (sent > 0) count(counters().bytes_out, static_cast<uint64_t>(sent));
                if (sent < 0 || static_cast<uint64_t>(sent) != n) return false;
                done += n;
            }
        }
        if (buf.size() >= kFlushBytes && !flush()) return false;
    }
    proto::response::body_end(version, buf);
    proto::response::end(version, buf);
    return flush();
}

bool encode_reply(const ServerContext& ctx, int version, Reply& reply, std::string& out,
                  const std::string& client_path) {
    out.clear();
    if (reply.body_kind != Reply::Body::File) {
        proto::response::encode(version, reply.success, reply.args,
                                reply.body_kind == Reply::Body::Bytes ? &reply.body : nullptr, out);
        return true;
    }
    proto::response::begin(version, reply.success, reply.args, out);
    proto::response::body_begin(version, reply.body_size(), out);
    if (reply.body_size() == 0) proto::response::body_chunk(version, {}, out);
    for (const auto& [offset, length] : reply.ranges) {
        for (uint64_t done = 0; done < length;) {  // bounded: each pass consumes a part or returns
            uint64_t n = std::min(kPartBytes, length - done);
            size_t at = out.size();
            proto::response::body_chunk_header(version, static_cast<uint32_t>(n), out);
            size_t data_at = out.size();
            out.resize(data_at + n);
            uint64_t got = 0;
            while (got < n) {
                ssize_t r = ctx.store->pread(reply.file, out.data() + data_at + got, n - got, offset + done + got);
                if (r <= 0) break;
                got += static_cast<uint64_t>(r);
            }
            if (got < n) {
                if (version != 3) return false;
                out.resize(at);
                proto::response::stream_error(
                    version,
                    {proto::Value("ShortReadvError"), proto::Value(client_path), proto::Value(std::to_string(offset)),
                     proto::Value(std::to_string(length)), proto::Value(std::to_string(done + got))},
                    out);
                proto::response::end(version, out);
                return true;
            }
            done += n;
        }
    }
    proto::response::body_end(version, out);
    proto::response::end(version, out);
    return true;
}

SessionEnd serve_stream(const ServerContext& ctx, io::Stream& stream, const std::string& peer) {
    proto::RequestDecoder decoder(limits_of(ctx.params));
    std::string inbuf(kReadBuffer, '\0');
    std::string outbuf;
    // The request being received.
    int version = 0;
    const proto::VerbInfo* verb = nullptr;
    proto::Args args;
    std::string body;
    bool answered = false, aborted = false;
    io::Deadline request_deadline = io::Deadline::max();
    Reply reply;

    auto send_now = [&](int v, bool success, const proto::Args& a) {
        outbuf.clear();
        proto::response::encode(v, success, a, nullptr, outbuf);
        return stream.write_all(outbuf, after_seconds(ctx.params.write_timeout)) == 0;
    };

    for (;;) {
        bool idle = decoder.idle();
        io::Deadline deadline = idle ? after_seconds(ctx.params.idle_timeout) : request_deadline;
        ssize_t n = stream.read_some(inbuf.data(), inbuf.size(), deadline);
        if (n == 0) {
            if (idle) return SessionEnd::Eof;
            count(counters().truncated_requests);
            return SessionEnd::Truncated;
        }
        if (n < 0) {
            if (errno != ETIMEDOUT) return SessionEnd::ReadFailed;
            SOUK_LOG(Info, "%s: %s", peer.c_str(), idle ? "idle timeout" : "request timed out while arriving");
            count(idle ? counters().idle_timeouts : counters().request_timeouts);
            return idle ? SessionEnd::IdleTimeout : SessionEnd::RequestTimeout;
        }
        count(counters().bytes_in, static_cast<uint64_t>(n));
        if (idle) request_deadline = after_seconds(ctx.params.request_timeout);
        std::string_view in(inbuf.data(), static_cast<size_t>(n));
        for (;;) {
            proto::Event ev = decoder.next(in);
            if (ev.kind == Ev::NeedMore) break;
            switch (ev.kind) {
            case Ev::ArgsReady:
                version = ev.version;
                args = std::move(ev.args);
                verb = proto::find_verb(args[0].bytes);
                body.clear();
                aborted = false;
                answered = false;
                if (!verb) {
                    // Answer at once and skip the rest of the message, body
                    // included: clients probe verbs this way (spec 3.4).
                    SOUK_LOG(Debug, "%s: unknown verb %s", peer.c_str(), proto::to_display(args[0]).c_str());
                    answered = true;
                    count(counters().requests);
                    count(counters().unknown_verbs);
                    if (!send_now(version, false,
                                  version == 3 ? proto::error_args(proto::Err::UnknownMethod, args[0].bytes)
                                               : proto::v12_unknown_verb_args(args[0].bytes)))
                        return SessionEnd::WriteFailed;
                }
                break;
            case Ev::BodyChunk:
                // Bodies sent to verbs that take none are discarded (spec 3.2).
                if (verb && verb->request_body && !answered) body.append(ev.chunk);
                break;
            case Ev::Abort:
                aborted = true;
                break;
            case Ev::End: {
                if (!answered) {
                    if (aborted) {
                        // Apply nothing; still answer once to keep in step.
                        SOUK_LOG(Info, "%s: %s aborted by the client", peer.c_str(), verb->name.data());
                        count(counters().requests);
                        count(counters().aborted_requests);
                        if (!send_now(version, false, {proto::Value("error"), proto::Value("request aborted by client")}))
                            return SessionEnd::WriteFailed;
                    } else {
                        dispatch(ctx, *verb, args, body, {}, reply);
                        count(counters().requests);
                        count(counters().verb_requests[static_cast<size_t>(verb->id)]);
                        if (!reply.success) count(counters().request_failures);
                        SOUK_LOG(Debug, "%s: %s -> %s", peer.c_str(), proto::to_display(args).c_str(),
                                 proto::to_display(reply.args).c_str());
                        std::string path = args.size() > 1 && args[1].is_bytes() ? args[1].bytes : std::string();
                        if (!write_reply(ctx, stream, version, reply, outbuf, path)) {
                            count(counters().write_failures);
                            return SessionEnd::WriteFailed;
                        }
                        reply = Reply{};
                    }
                }
                body.clear();
                body.shrink_to_fit();
                args.clear();
                verb = nullptr;
                request_deadline = after_seconds(ctx.params.request_timeout);
                break;
            }
            case Ev::Error: {
                SOUK_LOG(Info, "%s: protocol error: %s", peer.c_str(), ev.error.c_str());
                count(counters().protocol_errors);
                // Breezy's reply to malformed framing; the stream cannot be
                // resynchronised, so the connection closes after it.
                int v = ev.version ? ev.version : 1;
                send_now(v, false, proto::protocol_error_args(ev.error));
                return SessionEnd::ProtocolError;
            }
            default:
                break;
            }
        }
    }
}

}  // namespace souk::server
