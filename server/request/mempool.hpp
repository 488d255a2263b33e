// Varnish-style memory pools (docs/request-lifecycle.md#mempools-varnishs-idea;
// Varnish's cache_mempool.c): one pool manager for every pool in soukd. A
// pool hands out items of a fixed (but run-time adjustable) size and keeps
// returned ones for reuse, between a low and a high watermark; items idle
// longer than the maximum age are freed. Preallocation and trimming happen
// on the manager's maintenance thread, outside the request path. Every
// degraded path has a counter
// (docs/conventions.md#declare-counters-and-parameters-once): "ran dry" (a
// get found the pool empty and had to allocate), "too small" (an item older
// than a size change was freed instead of reused), "surplus" (a returned
// item was freed: the pool was full), "timed out" (an idle item was freed
// by age).
//
// Items are checkable (docs/conventions.md#pooled-objects-are-checkable):
// each carries a magic number that flips between "in use" and "idle",
// checked on every get and put (a foreign pointer or a double put aborts
// with the pool's name). Debug builds
// (no NDEBUG) poison a returned item's memory; ASan builds also mark it
// unaddressable while idle.
//
// An item may hold a constructed object that survives recycling (Hooks):
// the request handler keeps its decoder and buffers, so a recycled handler
// serves a request without touching the heap. Hooks::poison then poisons
// only what the object says is scratch (its workspace).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/base/counters.hpp"

namespace souk::server {

struct PoolConfig {
    size_t item_size = 4096;  // payload bytes of a new item
    size_t min_pool = 0;      // idle items the maintenance thread keeps ready
    size_t max_pool = 16;     // idle items kept at most (beyond: freed, "surplus")
    double max_age = 10;      // seconds an idle item may wait before it is freed
};

// The pool's counters inside Counters (so they reach `soukd stats` and the
// shared segment). live and pooled are gauges; the rest only grow.
struct PoolCounterRefs {
    std::atomic<uint64_t> Counters::*live;
    std::atomic<uint64_t> Counters::*pooled;
    std::atomic<uint64_t> Counters::*allocs;
    std::atomic<uint64_t> Counters::*frees;
    std::atomic<uint64_t> Counters::*recycled;
    std::atomic<uint64_t> Counters::*timed_out;
    std::atomic<uint64_t> Counters::*too_small;
    std::atomic<uint64_t> Counters::*surplus;
    std::atomic<uint64_t> Counters::*ran_dry;
};

// Optional object lifecycle inside items. construct: placement-build the
// object in fresh memory (payload, payload bytes). destroy: before the
// memory is freed. poison: a debug build's poisoning of a returned
// item (nullptr: the whole payload is filled; with construct set and no
// poison hook, nothing is, since the object must survive).
struct PoolHooks {
    void (*construct)(void* payload, size_t size) = nullptr;
    void (*destroy)(void* payload) = nullptr;
    void (*poison)(void* payload) = nullptr;
};

class Mempool {
public:
    using Clock = std::chrono::steady_clock;

    using Hooks = PoolHooks;

    // Exact figures of this pool in this process (Counters may sum processes).
    struct Stats {
        uint64_t live = 0, pooled = 0, allocs = 0, frees = 0, recycled = 0, timed_out = 0, too_small = 0,
                 surplus = 0, ran_dry = 0;
    };

    // `refs` may be nullptr (no global counters; tests). Registers with the
    // manager, which maintains it until destruction.
    Mempool(std::string name, PoolConfig cfg, const PoolCounterRefs* refs, Hooks hooks = {});
    // Frees every idle item. Items still in use are a bug: reported on
    // stderr (they leak rather than be freed under their user).
    ~Mempool();
    Mempool(const Mempool&) = delete;
    Mempool& operator=(const Mempool&) = delete;

    // An item of at least item_size() payload bytes, 64-byte aligned. Takes
    // the most recently returned idle item (cache-warm) or, when none is
    // left ("ran dry"), allocates. Throws std::bad_alloc only if the heap
    // does. Thread-safe; O(1) apart from freeing too-small items.
    void* get();
    // Return an item from get(). Freed instead of kept when it is smaller
    // than the current item size (too small) or the pool is at max_pool
    // (surplus). Aborts on a pointer that is not a live item of this pool.
    void put(void* payload);
    // Payload bytes of an item (its size when it was allocated).
    static size_t size_of(const void* payload);

    // Run-time resizing: items allocated from now on have `n` payload
    // bytes; idle and returned items smaller than that are freed as they
    // are met ("too small"). Existing users keep theirs until they return it.
    void set_item_size(size_t n);
    void set_config(const PoolConfig& cfg);
    PoolConfig config() const;
    size_t item_size() const { return item_size_.load(std::memory_order_relaxed); }
    const std::string& name() const { return name_; }
    Stats stats() const;

    // One maintenance pass (the manager's thread calls it; tests may):
    // free idle items older than max_age, trim to max_pool, free too-small
    // idle items, then preallocate up to min_pool. Allocation and freeing
    // run without the pool's lock held.
    void maintain(Clock::time_point now);

private:
    struct Item;
    Item* allocate(size_t size);
    void release_memory(Item* it);
    void bump(std::atomic<uint64_t> Counters::*c, int64_t delta) const;

    const std::string name_;
    const PoolCounterRefs* refs_;
    const Hooks hooks_;
    std::atomic<size_t> item_size_;
    mutable std::mutex mu_;
    PoolConfig cfg_;           // guarded by mu_ (item_size mirrors item_size_)
    Item* head_ = nullptr;     // idle items, most recently returned first
    Item* tail_ = nullptr;     // ... oldest last
    Stats stats_;              // guarded by mu_
};

// The pool manager: knows every pool and runs the maintenance thread.
class PoolManager {
public:
    static PoolManager& instance();
    // Called by Mempool's constructor and destructor.
    void add(Mempool* p);
    void remove(Mempool* p);
    // Start the maintenance thread: a pass every `interval` seconds over
    // every pool, and one as soon as a pool runs dry (kick). The period is
    // long because an idle server should sleep: a wake-up costs tens of
    // microseconds on a virtual machine. Counted: each user (a carrier's
    // waiter; several run in one soukd) calls start() and then stop(); the
    // first start() makes the thread (with its interval), the last stop()
    // joins it (so does exit).
    void start(double interval = 1.0);
    void stop();
    // Ask for a pass now (a pool ran dry and wants refilling).
    void kick();
    bool running() const { return thread_.joinable(); }
    // One pass over every pool now.
    void maintain_all();
    // A hook run at the start of each pass (e.g. workspace growth).
    void set_pass_hook(void (*hook)());
    ~PoolManager();

private:
    PoolManager() = default;
    std::mutex mu_;
    std::vector<Mempool*> pools_;
    void (*hook_)() = nullptr;
    std::thread thread_;
    std::mutex stop_mu_;
    std::condition_variable cv_;
    size_t users_ = 0;  // start()s not yet matched by a stop()
    bool stopping_ = false;
    bool kicked_ = false;
};

}  // namespace souk::server
