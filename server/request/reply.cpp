#include "server/request/reply.hpp"

#include <errno.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocol/errors.hpp"
#include "protocol/message.hpp"
#include "server/base/counters.hpp"
#include "server/store/send.hpp"

namespace souk::server {
namespace {


// Flush the output buffer beyond this size.
constexpr size_t kFlushBytes = 1024 * 1024;
// A generated body is made while it is sent: flush after its first piece
// and then every this many bytes, so that the client works on the first
// texts while the server makes the rest (brz serve streams the same way).
constexpr size_t kGeneratedFlushBytes = 64 * 1024;
// A v3 body part's header ('b', 4-byte length), and the most a reply adds
// after its body (v1/v2 "done\n", v3 'e').
constexpr size_t kPartHeaderBytes = 5;
constexpr size_t kTrailerBytes = 8;
// Size of one v3 body part for a large streamed range.
constexpr uint64_t kPartBytes = 4 * 1024 * 1024;
// File bodies of several ranges above this go out in parts that span
// ranges when the store chain allows sendfile (Store::direct_ok): ranges
// up to kCopyRange copied behind the part heads (the range cache serves
// them without a system call), larger ones with sendfile. One sendfile per
// small range cost more than twice the copy: a 128 x 4 KiB readv over HTTP
// took 0.70 ms that way, 0.27 ms copied.
constexpr uint64_t kDirectBody = 64 * 1024;

// Pad the rest of a v3 part whose length already went out (after a short
// send): the client discards a body that ends with an error part.
bool pad_part(io::Sink& out, uint64_t pad) {
    static const char kZeros[64 * 1024] = {};
    while (pad > 0) {  // bounded: each pass writes a piece or fails
        size_t k = static_cast<size_t>(std::min<uint64_t>(pad, sizeof kZeros));
        if (!out.write(std::string_view(kZeros, k))) return false;
        pad -= k;
    }
    return true;
}

// A generated body whose first pieces were already pulled (settle_reply):
// those pieces, each as it came (clients see the piece boundaries: Breezy's
// iter_revisions reader needs one zlib stream per chunk at most), then a
// file range pulled but not read (its OpenFile stays valid until the
// source is next asked), then the rest of the source.
class Held final : public BodySource {
public:
    Held(std::vector<std::string> pieces, BodyPiece range, std::unique_ptr<BodySource> rest, Next ended)
        : pieces_(std::move(pieces)), range_(range), rest_(std::move(rest)), ended_(ended) {}
    Next next(BodyPiece& piece) override {
        if (at_ < pieces_.size()) {
            piece = BodyPiece{};
            piece.bytes = pieces_[at_++];
            return Next::Piece;
        }
        if (range_.file) {
            piece = range_;
            range_ = BodyPiece{};
            return Next::Piece;
        }
        return ended_ == Next::Piece ? rest_->next(piece) : ended_;
    }
    proto::Args error() const override { return rest_->error(); }

private:
    std::vector<std::string> pieces_;
    size_t at_ = 0;
    BodyPiece range_;
    std::unique_ptr<BodySource> rest_;  // null once it has ended
    Next ended_;                        // Piece: the source has more; Done or Failed: it ended so
};

// A File body goes out in parts that span ranges (else: one part per
// range). Small ranges are copied, large ones sent with sendfile (in parts
// that span ranges, all of them for a one-shot process: Sink::one_shot).
bool spans_ranges(const ServerContext& ctx, const Reply& reply, bool direct) {
    return reply.body_size() > kDirectBody && reply.ranges.size() > 1 && ctx.store->direct_ok() && direct;
}

}  // namespace

// A generated body (Reply::Body::Stream). v3: each piece as it comes,
// bytes gathered into writes of about kGeneratedFlushBytes (the first
// piece at once), file ranges sent with sendfile where the sink allows; a
// failure ends the body with an error part. v1/v2 need the length first: the body is gathered whole, up to
// --max-body (beyond: a failure reply, nothing sent yet).
bool write_generated(const ServerContext& ctx, io::Sink& out, int version, Reply& reply, std::string& buf) {
    auto flush = [&] { return buf.empty() || out.take(buf); };
    BodySource& src = *reply.source;
    BodyPiece piece;
    if (version != 3) {
        std::string whole;
        const uint64_t cap = static_cast<uint64_t>(ctx.params.max_body);
        for (;;) {  // bounded: the source ends, fails, or the cap is reached
            BodySource::Next n = src.next(piece);
            if (n == BodySource::Next::Done) break;
            if (n == BodySource::Next::Failed) {
                reply.fail(src.error());
                break;
            }
            if (whole.size() + piece.bytes.size() + piece.length > cap) {
                reply.fail({proto::Value("error"), proto::Value("TooLarge"),
                            proto::Value("reply body over --max-body for a v1/v2 client")});
                break;
            }
            whole.append(piece.bytes);
            if (piece.file && piece.length) {
                size_t at = whole.size();
                whole.resize(at + piece.length);
                ssize_t r = ctx.store->read_full(*piece.file, whole.data() + at, piece.length, piece.offset);
                if (r != static_cast<ssize_t>(piece.length)) {
                    reply.fail(proto::error_args(proto::Err::ReadError, ""));
                    break;
                }
            }
        }
        reply.source.reset();
        proto::response::encode(version, reply.success, reply.args, reply.success ? &whole : nullptr, buf);
        return flush();
    }
    proto::response::begin(version, reply.success, reply.args, buf);
    proto::response::body_begin(version, 0, buf);
    bool first = true;
    for (;;) {  // bounded: the source ends or fails; each piece is sent or the write fails
        BodySource::Next n = src.next(piece);
        if (n == BodySource::Next::Done) break;
        if (n == BodySource::Next::Failed) {
            count(counters().stream_errors);
            proto::response::stream_error(version, src.error(), buf);
            proto::response::end(version, buf);
            return flush();
        }
        for (std::string_view b = piece.bytes; !b.empty();) {  // bounded: consumes b
            size_t k = std::min<size_t>(b.size(), kPartBytes);
            proto::response::body_chunk(version, b.substr(0, k), buf);
            b.remove_prefix(k);
            if (buf.size() >= kGeneratedFlushBytes && !flush()) return false;
        }
        if (first && !flush()) return false;
        first = false;
        for (uint64_t done = 0; piece.file && done < piece.length;) {  // bounded: each pass sends a part
            uint64_t k = std::min(kPartBytes, piece.length - done);
            proto::response::body_chunk_header(version, static_cast<uint32_t>(k), buf);
            if (!flush()) return false;
            int64_t sent = send_range(*ctx.store, out, *piece.file, piece.offset + done, k);
            if (sent != static_cast<int64_t>(k)) {
                // A part's length already went out: the stream cannot be
                // repaired (the file shrank or the peer went away).
                count(counters().stream_errors);
                return false;
            }
            done += k;
        }
    }
    proto::response::body_end(version, buf);
    proto::response::end(version, buf);
    return flush();
}

bool write_reply(const ServerContext& ctx, io::Sink& out, int version, Reply& reply, std::string& buf,
                 const std::string& client_path) {
    auto flush = [&] { return buf.empty() || out.take(buf); };
    buf.clear();
    if (reply.body_kind == Reply::Body::Stream) return write_generated(ctx, out, version, reply, buf);
    if (reply.body_kind != Reply::Body::File) {
        proto::response::encode(version, reply.success, reply.args,
                                reply.body_kind == Reply::Body::Bytes ? &reply.body : nullptr, buf);
        return flush();
    }
    // From here on a failure abandons a streamed body: the client went away
    // (cancelled) or the file failed in a way the stream cannot carry.
    auto cancelled = [] {
        count(counters().streams_cancelled);
        return false;
    };
    // A read failure mid-body: v3 ends the body with an error part (the
    // client reports an error, never a short file); a v1/v2 length prefix
    // cannot be taken back, so the connection closes.
    auto fail_stream = [&](proto::Args error) {
        count(counters().stream_errors);
        if (version != 3) return false;
        proto::response::stream_error(version, error, buf);
        proto::response::end(version, buf);
        return flush() || cancelled();
    };
    auto read_failure = [&](int err, uint64_t offset, uint64_t length, uint64_t got) {
        if (err) return proto::error_args(proto::Err::ReadError, client_path);
        // The file shrank since it was checked.
        return proto::Args{proto::Value(proto::error_info(proto::Err::ShortReadvError).name), proto::Value(client_path), proto::Value(std::to_string(offset)),
                           proto::Value(std::to_string(length)), proto::Value(std::to_string(got))};
    };
    // Send n bytes of range (offset, length) from `done` on, inside a part
    // whose length already went out with part_left bytes still owed.
    // nullopt when all went out; else what write_reply must return.
    auto send_piece = [&](uint64_t offset, uint64_t length, uint64_t done, uint64_t n,
                          uint64_t part_left) -> std::optional<bool> {
        int64_t sent = send_range(*ctx.store, out, reply.file, offset + done, n);
        if (sent < 0) {
            // Unknown how much of the part went out: cannot be repaired.
            int e = errno;
            if (e == EPIPE || e == ECONNRESET || e == ETIMEDOUT || e == ENOTCONN || e == ECONNABORTED)
                return cancelled();
            count(counters().stream_errors);
            return false;
        }
        if (static_cast<uint64_t>(sent) == n) return std::nullopt;
        // The file ended early or failed after `sent` bytes: complete the
        // part with zeros (the client discards a failed body), then say why
        // in an error part (v3; a v1/v2 length prefix cannot be taken back).
        if (version != 3) {
            count(counters().stream_errors);
            return false;
        }
        if (!pad_part(out, part_left - static_cast<uint64_t>(sent))) return cancelled();
        char probe;
        ssize_t r = ctx.store->pread(reply.file, &probe, 1, offset + done + static_cast<uint64_t>(sent));
        return fail_stream(read_failure(r < 0 ? static_cast<int>(-r) : (r > 0 ? EIO : 0), offset, length,
                                        done + static_cast<uint64_t>(sent)));
    };
    proto::response::begin(version, reply.success, reply.args, buf);
    uint64_t total = reply.body_size();
    proto::response::body_begin(version, total, buf);
    if (total == 0) proto::response::body_chunk(version, {}, buf);
    if (spans_ranges(ctx, reply, out.direct())) {
        // The ranges back to back in parts of up to kPartBytes that span
        // ranges: small ones copied behind the part head, large ones (and
        // every one for a one-shot process, whose buffers are all fresh
        // pages) with sendfile.
        io::CorkScope corked(out);
        const uint64_t copy_max = out.one_shot() ? 0 : kCopyRange;
        uint64_t part_left = 0, sent_total = 0;
        for (const auto& [offset, length] : reply.ranges) {
            for (uint64_t done = 0; done < length;) {  // bounded: each pass sends a piece or returns
                if (part_left == 0) {
                    part_left = std::min(kPartBytes, total - sent_total);
                    proto::response::body_chunk_header(version, static_cast<uint32_t>(part_left), buf);
                }
                uint64_t n = std::min(length - done, part_left);
                if (length <= copy_max) {
                    const size_t at = buf.size();
                    buf.resize(at + n);  // zeros stand for what a short read leaves out
                    const ssize_t r = ctx.store->read_full(reply.file, buf.data() + at, n, offset + done);
                    const uint64_t got = r < 0 ? 0 : static_cast<uint64_t>(r);
                    if (got < n) {
                        // As after a short send: the part is completed with
                        // zeros, then an error part says why (v3 only).
                        if (version != 3) {
                            count(counters().stream_errors);
                            return false;
                        }
                        if (!flush() || !pad_part(out, part_left - n)) return cancelled();
                        return fail_stream(read_failure(r < 0 ? static_cast<int>(-r) : 0, offset, length, done + got));
                    }
                    if (buf.size() >= kFlushBytes && !flush()) return cancelled();
                } else {
                    if (!flush()) return cancelled();
                    if (auto stop = send_piece(offset, length, done, n, part_left)) return *stop;
                }
                done += n;
                part_left -= n;
                sent_total += n;
            }
        }
        proto::response::body_end(version, buf);
        proto::response::end(version, buf);
        return flush() || cancelled();
    }
    if (total <= kFlushBytes) {
        // Copied whole into one buffer (each range up to kCopyRange, or
        // sent before it): room for it all at once, not grown by doubling
        // through ever larger copies, each page of which is a fresh fault.
        buf.reserve(buf.size() + total + reply.ranges.size() * kPartHeaderBytes + kTrailerBytes);
    }
    for (const auto& [offset, length] : reply.ranges) {
        if (length <= kCopyRange) {
            size_t at = buf.size();
            proto::response::body_chunk_header(version, static_cast<uint32_t>(length), buf);
            size_t data_at = buf.size();
            buf.resize(data_at + length);
            const ssize_t r = ctx.store->read_full(reply.file, buf.data() + data_at, length, offset);
            const int err = r < 0 ? static_cast<int>(-r) : 0;
            const uint64_t got = r < 0 ? 0 : static_cast<uint64_t>(r);
            if (got < length) {
                buf.resize(at);  // this range's part never goes out
                return fail_stream(read_failure(err, offset, length, got));
            }
        } else {
            for (uint64_t done = 0; done < length;) {
                uint64_t n = std::min(kPartBytes, length - done);
                proto::response::body_chunk_header(version, static_cast<uint32_t>(n), buf);
                if (!flush()) return cancelled();
                if (auto stop = send_piece(offset, length, done, n, n)) return *stop;
                done += n;
            }
        }
        if (buf.size() >= kFlushBytes && !flush()) return cancelled();
    }
    proto::response::body_end(version, buf);
    proto::response::end(version, buf);
    return flush() || cancelled();
}

uint64_t file_reply_length(const ServerContext& ctx, int version, const Reply& reply, bool direct) {
    if (reply.body_kind != Reply::Body::File) return UINT64_MAX;
    // The framing write_reply writes around the file bytes: the same
    // encoders, the same parts.
    std::string frame;
    proto::response::begin(version, reply.success, reply.args, frame);
    const uint64_t total = reply.body_size();
    proto::response::body_begin(version, total, frame);
    if (total == 0) proto::response::body_chunk(version, {}, frame);
    proto::response::body_end(version, frame);
    proto::response::end(version, frame);
    std::string one;
    proto::response::body_chunk_header(version, 1, one);  // every part header has this size
    uint64_t parts = 0;
    if (spans_ranges(ctx, reply, direct)) {
        parts = (total + kPartBytes - 1) / kPartBytes;
    } else {
        for (const auto& r : reply.ranges) parts += r.second <= kCopyRange ? 1 : (r.second + kPartBytes - 1) / kPartBytes;
    }
    return frame.size() + parts * one.size() + total;
}

uint64_t settle_generated(const ServerContext& ctx, Reply& r, uint64_t limit) {
    if (r.body_kind != Reply::Body::Stream) return r.body_size();
    std::vector<std::string> pieces;
    uint64_t held = 0;
    BodyPiece piece, range;
    BodySource::Next n;
    for (;;) {  // bounded: stops at the source's end or once `limit` is passed
        n = r.source->next(piece);
        if (n != BodySource::Next::Piece) break;
        if (piece.file && piece.length && held + piece.bytes.size() + piece.length > limit) {
            if (!piece.bytes.empty()) pieces.emplace_back(piece.bytes);
            range = piece;  // too long to hold: sent later, with sendfile
            range.bytes = {};
            break;
        }
        std::string& p = pieces.emplace_back(piece.bytes);
        if (piece.file && piece.length) {
            size_t at = p.size();
            p.resize(at + piece.length);
            ssize_t got = ctx.store->read_full(*piece.file, p.data() + at, piece.length, piece.offset);
            if (got != static_cast<ssize_t>(piece.length)) {
                r.fail(proto::error_args(proto::Err::ReadError, ""));
                return r.body_size();
            }
        }
        held += p.size();
        if (held > limit) break;
    }
    const bool whole = n == BodySource::Next::Done;
    r.source = std::make_unique<Held>(std::move(pieces), range, whole ? nullptr : std::move(r.source), n);
    return whole ? held : UINT64_MAX;
}

}  // namespace souk::server
