// Request handlers: one per request, on every carrier; the request loop
// that uses them is the pipeline (server/request/pipeline.hpp). The Varnish
// idea (docs/request-lifecycle.md): every request gets a fresh handler —
// the request object and its workspace — from the "req" mempool and gives
// it back when its response is written, when it fails, or when the client
// goes away; reads go through a buffer from the "iobuf" pool that is held
// only while bytes are being read. A connection between requests holds
// neither.
//
// A handler survives recycling with its containers' capacity (decoder
// buffers, argument storage, reply, response builder), so in steady state
// serving get, readv and stat touches the heap not at all
// (tests/alloc/test_alloc.cpp proves it). Its workspace (the rest of its
// pool item) holds the request body; a body that outgrows it goes to the
// heap and is counted (workspace_overflows), and the pool manager doubles
// the workspace of new handlers, up to --workspace-max.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "protocol/message.hpp"
#include "protocol/verbs.hpp"
#include "server/verbs/dispatch.hpp"
#include "server/base/work_budget.hpp"
#include "server/request/mempool.hpp"
#include "transport/stream.hpp"

namespace souk::server {

class Handler {
public:
    static constexpr uint32_t kMagic = 0x52657148;  // "ReqH"

    // Built by the req pool in fresh item memory; `ws` is the rest of the item.
    Handler(char* ws, size_t ws_size);
    Handler(const Handler&) = delete;
    Handler& operator=(const Handler&) = delete;

    void check() const;  // aborts unless this is a live handler (magic number)

    // The request's arguments (args()[0] is the verb).
    std::span<const proto::Value> args() const { return {arg_storage.data(), argc}; }
    // The request body: in the workspace, or on the heap beyond it.
    std::string_view body() const;
    // Append to the body: false (nothing appended) when the bytes beyond the
    // workspace would take the heap bodies of all requests past `total_cap`
    // (--max-body-total).
    bool body_append(std::string_view chunk, uint64_t total_cap);
    size_t workspace_size() const { return ws_size_; }

    // Ready for a new request under these parameters.
    void begin(const Params& p);
    // The request is over (answered, failed or cancelled): close its file,
    // drop its data, keep capacity (oversized buffers are released).
    void finish();
    // Debug builds: fill the workspace with a pattern on release.
    void poison();

    uint32_t magic = kMagic;
    proto::RequestDecoder decoder;
    proto::Args arg_storage;  // grows, never shrinks (its strings keep capacity)
    size_t argc = 0;
    int version = 0;
    const proto::VerbInfo* verb = nullptr;
    bool aborted = false;
    // The reply was decided before the body ended (unknown verb, refused by
    // policy, bad arguments, a streamed verb that could not begin, a body
    // over its cap): the rest of the body is discarded unread.
    bool prepared = false;
    bool close_after = false;  // a protocol error: the stream cannot go on
    io::Clock::time_point started{};
    uint64_t bytes_in = 0;  // of this request, for the access log
    io::Deadline deadline{};
    WorkBudget budget;               // charged by the format library (--request-inflate-budget)
    std::unique_ptr<BodySink> sink;  // a streamed verb's body, as it arrives
    Reply reply;
    std::string path;  // scratch for the dispatcher's path resolution
    std::string out;   // the response builder

private:
    char* ws_;
    size_t ws_size_;
    size_t body_len_ = 0;     // bytes of body in the workspace
    bool spilled_ = false;    // the body lives in heap_body_
    std::string heap_body_;
    uint64_t heap_charged_ = 0;  // of the process-wide total of heap bodies
    void uncharge_heap();
};

// A handler from the req pool for one request; given back (finish()ed) on
// destruction or release(). Empty when default-built.
class HandlerLease {
public:
    HandlerLease() = default;
    ~HandlerLease() { release(); }
    HandlerLease(const HandlerLease&) = delete;
    HandlerLease& operator=(const HandlerLease&) = delete;
    void acquire(const Params& p);
    void release();
    Handler* operator->() const { return h_; }
    Handler& operator*() const { return *h_; }
    explicit operator bool() const { return h_ != nullptr; }

private:
    Handler* h_ = nullptr;
};

// A read buffer from the iobuf pool, held while bytes are being read.
class IoBuffer {
public:
    IoBuffer() = default;
    ~IoBuffer() { release(); }
    IoBuffer(const IoBuffer&) = delete;
    IoBuffer& operator=(const IoBuffer&) = delete;
    void acquire();
    void release();
    char* data() const { return data_; }
    size_t size() const { return size_; }
    explicit operator bool() const { return data_ != nullptr; }

private:
    char* data_ = nullptr;
    size_t size_ = 0;
};

// The request decoder's limits under these parameters (--max-line,
// --max-structure, --max-body/--max-upload, --max-bencode-depth): the one
// place they are derived, for handlers and for the TCP waiter's look at a
// request still arriving (server/carriers/waiter.cpp).
proto::DecoderLimits decoder_limits(const Params& p);

// The pools (created on first use; maintained by PoolManager).
Mempool& req_pool();    // handlers + workspaces
Mempool& iobuf_pool();  // 64 KiB read buffers
Mempool& sess_pool();   // TCP session records (server/carriers/waiter.cpp)

// Apply --workspace, --pool-min, --pool-max, --pool-max-age to the pools
// (idempotent; carriers call it before serving). Installs the manager's
// workspace-growth hook (--workspace-max).
void configure_pools(const Params& p);

}  // namespace souk::server
