#include "server/request/handler.hpp"

#include <errno.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "protocol/errors.hpp"
#include "server/base/counters.hpp"
#include "server/base/log.hpp"

namespace souk::server {
namespace {


constexpr size_t kIoBufferSize = 64 * 1024;
// Response builders and heap bodies beyond this are released when a
// handler is recycled (a one-off huge reply must not pin memory).
constexpr size_t kKeepOut = 2u << 20;


size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
constexpr size_t kHandlerBytes = (sizeof(Handler) + 63) / 64 * 64;

// Workspace growth (--workspace-max): overflows since the last pass.
std::atomic<uint64_t> g_overflows{0};
// Bytes of request bodies on the heap (beyond their workspaces), all
// handlers together: --max-body-total caps it.
std::atomic<uint64_t> g_heap_body_bytes{0};
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


}  // namespace

proto::DecoderLimits decoder_limits(const Params& p) {
    proto::DecoderLimits l;
    l.max_line = static_cast<size_t>(p.max_line);
    l.max_structure = static_cast<size_t>(p.max_structure);
    // The framing's cap is the larger one: streamed bodies go up to
    // --max-upload; the pipeline holds whole bodies to --max-body.
    l.max_body = static_cast<uint64_t>(std::max(p.max_body, p.max_upload));
    l.bencode.max_depth = static_cast<size_t>(p.max_bencode_depth);
    return l;
}

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

bool Handler::body_append(std::string_view chunk, uint64_t total_cap) {
    if (!spilled_ && chunk.size() <= ws_size_ - body_len_) {
        std::memcpy(ws_ + body_len_, chunk.data(), chunk.size());
        body_len_ += chunk.size();
        return true;
    }
    // Beyond the workspace the body lives on the heap, and the heap bodies
    // of all requests together are capped.
    const uint64_t grow = spilled_ ? chunk.size() : body_len_ + chunk.size();
    if (g_heap_body_bytes.fetch_add(grow, std::memory_order_relaxed) + grow > total_cap) {
        g_heap_body_bytes.fetch_sub(grow, std::memory_order_relaxed);
        return false;
    }
    heap_charged_ += grow;
    if (!spilled_) {
        spilled_ = true;
        heap_body_.assign(ws_, body_len_);
        count(counters().workspace_overflows);
        g_overflows.fetch_add(1, std::memory_order_relaxed);
    }
    heap_body_.append(chunk);
    return true;
}

void Handler::uncharge_heap() {
    g_heap_body_bytes.fetch_sub(heap_charged_, std::memory_order_relaxed);
    heap_charged_ = 0;
}

void Handler::begin(const Params& p) {
    check();
    decoder.set_limits(decoder_limits(p));
    decoder.reset();
    argc = 0;
    version = 0;
    verb = nullptr;
    aborted = prepared = close_after = false;
    body_len_ = 0;
    spilled_ = false;
    uncharge_heap();
    started = io::Clock::now();
    bytes_in = 0;
    deadline = io::after_seconds(p.request_timeout);
    budget = WorkBudget{static_cast<uint64_t>(p.request_inflate_budget), 0};
}

void Handler::finish() {
    check();
    sink.reset();   // an unfinished upload is discarded now
    reply.reset();  // closes the file now
    argc = 0;
    verb = nullptr;
    body_len_ = 0;
    spilled_ = false;
    uncharge_heap();
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

}  // namespace souk::server
