#include "server/handler.hpp"

#include <errno.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "protocol/errors.hpp"
#include "server/counters.hpp"
#include "server/log.hpp"

namespace souk::server {
namespace {

using proto::Ev;

constexpr size_t kIoBufferSize = 64 * 1024;
// Response builders and heap bodies beyond this are released when a
// handler is recycled (a one-off huge reply must not pin memory).
constexpr size_t kKeepOut = 2u << 20;

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

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
constexpr size_t kHandlerBytes = (sizeof(Handler) + 63) / 64 * 64;

// Workspace growth (--workspace-max): overflows since the last pass.
std::atomic<uint64_t> g_overflows{0};
std::atomic<size_t> g_workspace_max{0};

void grow_workspace_hook() {
    if (g_overflows.exchange(0, std::memory_order_relaxed) == 0) return;
    Mempool& pool = req_pool();
    size_t ws = pool.item_size() - kHandlerBytes;
    size_t max = g_workspace_max.load(std::memory_order_relaxed);
    if (ws >= max) return;
    size_t next = std::min(ws * 2, max);
    pool.set_item_size(kHandlerBytes + round_up(next, 64));
    count(counters().workspace_grows);
    SOUK_LOG(Info, "request bodies outgrew the workspace: new handlers get %zu bytes (--workspace-max %zu)", next, max);
}

void construct_handler(void* payload, size_t size) {
    char* base = static_cast<char*>(payload);
    ::new (payload) Handler(base + kHandlerBytes, size - kHandlerBytes);
}
void destroy_handler(void* payload) { static_cast<Handler*>(payload)->~Handler(); }
void poison_handler(void* payload) { static_cast<Handler*>(payload)->poison(); }

const PoolCounterRefs kReqRefs = {&Counters::pool_req_live,      &Counters::pool_req_pooled,
                                  &Counters::pool_req_allocs,    &Counters::pool_req_frees,
                                  &Counters::pool_req_recycled,  &Counters::pool_req_timed_out,
                                  &Counters::pool_req_too_small, &Counters::pool_req_surplus,
                                  &Counters::pool_req_ran_dry};
const PoolCounterRefs kIoRefs = {&Counters::pool_iobuf_live,      &Counters::pool_iobuf_pooled,
                                 &Counters::pool_iobuf_allocs,    &Counters::pool_iobuf_frees,
                                 &Counters::pool_iobuf_recycled,  &Counters::pool_iobuf_timed_out,
                                 &Counters::pool_iobuf_too_small, &Counters::pool_iobuf_surplus,
                                 &Counters::pool_iobuf_ran_dry};
const PoolCounterRefs kSessRefs = {&Counters::pool_sess_live,      &Counters::pool_sess_pooled,
                                   &Counters::pool_sess_allocs,    &Counters::pool_sess_frees,
                                   &Counters::pool_sess_recycled,  &Counters::pool_sess_timed_out,
                                   &Counters::pool_sess_too_small, &Counters::pool_sess_surplus,
                                   &Counters::pool_sess_ran_dry};

const std::string kNoPath;

}  // namespace

// ------------------------------------------------------------ Handler --

Handler::Handler(char* ws, size_t ws_size) : ws_(ws), ws_size_(ws_size) {
    decoder.set_args_storage(&arg_storage);
}

void Handler::check() const {
    if (magic != kMagic) {
        std::fprintf(stderr, "soukd: request handler %p has a bad magic number %08x\n", static_cast<const void*>(this),
                     magic);
        std::abort();
    }
}

std::string_view Handler::body() const {
    return spilled_ ? std::string_view(heap_body_) : std::string_view(ws_, body_len_);
}

void Handler::body_append(std::string_view chunk) {
    if (!spilled_) {
        if (chunk.size() <= ws_size_ - body_len_) {
            std::memcpy(ws_ + body_len_, chunk.data(), chunk.size());
            body_len_ += chunk.size();
            return;
        }
        // Outgrew the workspace: the body continues on the heap.
        spilled_ = true;
        heap_body_.assign(ws_, body_len_);
        count(counters().workspace_overflows);
        g_overflows.fetch_add(1, std::memory_order_relaxed);
    }
    heap_body_.append(chunk);
}

void Handler::begin(const Params& p) {
    check();
    decoder.set_limits(limits_of(p));
    decoder.reset();
    argc = 0;
    version = 0;
    verb = nullptr;
    answered = aborted = false;
    body_len_ = 0;
    spilled_ = false;
    deadline = after_seconds(p.request_timeout);
}

void Handler::finish() {
    check();
    reply.reset();  // closes the file now
    argc = 0;
    verb = nullptr;
    body_len_ = 0;
    spilled_ = false;
    heap_body_.clear();
    if (heap_body_.capacity() > kKeepOut) std::string().swap(heap_body_);
    out.clear();
    if (out.capacity() > kKeepOut) std::string().swap(out);
    decoder.reset();
}

void Handler::poison() {
    check();
    std::memset(ws_, 0x5a, ws_size_);
}

// ------------------------------------------------------------- leases --

void HandlerLease::acquire(const Params& p) {
    release();
    h_ = static_cast<Handler*>(req_pool().get());
    h_->begin(p);
}

void HandlerLease::release() {
    if (!h_) return;
    h_->finish();
    req_pool().put(h_);
    h_ = nullptr;
}

void IoBuffer::acquire() {
    if (data_) return;
    data_ = static_cast<char*>(iobuf_pool().get());
    size_ = Mempool::size_of(data_);
}

void IoBuffer::release() {
    if (!data_) return;
    iobuf_pool().put(data_);
    data_ = nullptr;
    size_ = 0;
}

// -------------------------------------------------------------- pools --

Mempool& req_pool() {
    static Mempool pool("req", PoolConfig{kHandlerBytes + 32 * 1024, 0, 64, 10}, &kReqRefs,
                        Mempool::Hooks{construct_handler, destroy_handler, poison_handler});
    return pool;
}

Mempool& iobuf_pool() {
    static Mempool pool("iobuf", PoolConfig{kIoBufferSize, 0, 64, 10}, &kIoRefs);
    return pool;
}

Mempool& sess_pool() {
    static Mempool pool("sess", PoolConfig{256, 0, 1024, 10}, &kSessRefs);
    return pool;
}

void configure_pools(const Params& p) {
    const size_t min = static_cast<size_t>(p.pool_min), max = static_cast<size_t>(p.pool_max);
    const size_t ws = round_up(static_cast<size_t>(p.workspace), 64);
    PoolConfig req = req_pool().config();
    // Keep a larger size the growth hook already chose for this workspace.
    size_t item = kHandlerBytes + ws;
    if (req.item_size > item && req.item_size <= kHandlerBytes + static_cast<size_t>(p.workspace_max)) item = req.item_size;
    req_pool().set_config(PoolConfig{item, min, max, p.pool_max_age});
    iobuf_pool().set_config(PoolConfig{kIoBufferSize, min, max, p.pool_max_age});
    PoolConfig sess = sess_pool().config();
    sess_pool().set_config(PoolConfig{sess.item_size, sess.min_pool, std::max<size_t>(max * 16, 256), p.pool_max_age});
    g_workspace_max.store(static_cast<size_t>(p.workspace_max), std::memory_order_relaxed);
    PoolManager::instance().set_pass_hook(grow_workspace_hook);
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
        return stream.write_all(h->out, after_seconds(ctx.params.write_timeout)) == 0;
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
                io::Deadline idle_deadline = after_seconds(ctx.params.idle_timeout);
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
