#include "server/request/mempool.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "server/base/sanitizer.hpp"

#if defined(SOUK_ASAN)
#include <sanitizer/asan_interface.h>
#define SOUK_ASAN_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define SOUK_ASAN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define SOUK_ASAN_POISON(p, n) ((void)(p), (void)(n))
#define SOUK_ASAN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace souk::server {

namespace {
constexpr uint32_t kMagicLive = 0x6d706c4c;  // "mplL"
constexpr uint32_t kMagicIdle = 0x6d706c49;  // "mplI"
constexpr uint32_t kMagicDead = 0x6d706c44;  // "mplD"
constexpr unsigned char kPoison = 0x5a;
constexpr std::align_val_t kAlign{64};

[[noreturn]] void corrupt(const std::string& pool, const char* what, const void* p) {
    std::fprintf(stderr, "soukd: mempool %s: %s (item %p)\n", pool.c_str(), what, p);
    std::abort();
}
}  // namespace

// The header in front of every payload; 64 bytes so the payload is
// cache-line aligned.
struct alignas(64) Mempool::Item {
    uint32_t magic;
    uint32_t reserved;
    size_t size;          // payload bytes
    Mempool* owner;
    Item* prev;           // idle list links
    Item* next;
    Clock::time_point since;  // when it became idle
    void* payload() { return reinterpret_cast<char*>(this) + sizeof(Item); }
    static Item* of(void* payload) { return reinterpret_cast<Item*>(static_cast<char*>(payload) - sizeof(Item)); }
};

Mempool::Mempool(std::string name, PoolConfig cfg, const PoolCounterRefs* refs, Hooks hooks)
    : name_(std::move(name)), refs_(refs), hooks_(hooks), item_size_(cfg.item_size), cfg_(cfg) {
    PoolManager::instance().add(this);
}

Mempool::~Mempool() {
    PoolManager::instance().remove(this);
    std::unique_lock<std::mutex> lock(mu_);
    Item* list = head_;
    head_ = tail_ = nullptr;
    if (stats_.live)
        std::fprintf(stderr, "soukd: mempool %s destroyed with %llu items in use\n", name_.c_str(),
                     static_cast<unsigned long long>(stats_.live));
    bump(refs_ ? refs_->pooled : nullptr, -static_cast<int64_t>(stats_.pooled));
    stats_.pooled = 0;
    lock.unlock();
    while (list) {
        Item* next = list->next;
        release_memory(list);
        list = next;
    }
}

void Mempool::bump(std::atomic<uint64_t> Counters::*c, int64_t delta) const {
    if (!refs_ || !c || delta == 0) return;
    // Gauges go down as well as up: unsigned wrap-around adds a negative.
    (counters().*c).fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed);
}

Mempool::Item* Mempool::allocate(size_t size) {
    static_assert(sizeof(Item) == 64, "the payload follows a cache-line header");
    void* mem = ::operator new(sizeof(Item) + size, kAlign);
    Item* it = ::new (mem) Item{};
    it->magic = kMagicIdle;
    it->size = size;
    it->owner = this;
    if (hooks_.construct) hooks_.construct(it->payload(), size);
    return it;
}

void Mempool::release_memory(Item* it) {
    SOUK_ASAN_UNPOISON(it->payload(), it->size);
    if (it->magic != kMagicIdle && it->magic != kMagicLive) corrupt(name_, "freeing a corrupt item", it);
    if (hooks_.destroy) hooks_.destroy(it->payload());
    it->magic = kMagicDead;
    ::operator delete(static_cast<void*>(it), kAlign);
    {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.frees;
    }
    bump(refs_ ? refs_->frees : nullptr, 1);
}

void* Mempool::get() {
    const size_t want = item_size_.load(std::memory_order_relaxed);
    Item* stale = nullptr;  // too-small items met on the way, freed after unlocking
    Item* it = nullptr;
    bool refill = false;  // ran dry with a reserve to keep: ask for a pass now
    {
        std::lock_guard<std::mutex> lock(mu_);
        while (head_) {  // bounded: each pass removes one idle item
            Item* h = head_;
            head_ = h->next;
            if (head_) head_->prev = nullptr;
            else tail_ = nullptr;
            --stats_.pooled;
            bump(refs_ ? refs_->pooled : nullptr, -1);
            if (h->magic != kMagicIdle || h->owner != this) corrupt(name_, "idle item with a bad magic number", h);
            if (h->size < want) {
                ++stats_.too_small;
                bump(refs_ ? refs_->too_small : nullptr, 1);
                h->next = stale;
                stale = h;
                continue;
            }
            it = h;
            ++stats_.recycled;
            bump(refs_ ? refs_->recycled : nullptr, 1);
            break;
        }
        if (!it) {
            ++stats_.ran_dry;
            bump(refs_ ? refs_->ran_dry : nullptr, 1);
            refill = cfg_.min_pool > 0;
        }
        ++stats_.live;
        bump(refs_ ? refs_->live : nullptr, 1);
    }
    while (stale) {
        Item* next = stale->next;
        release_memory(stale);
        stale = next;
    }
    if (refill) PoolManager::instance().kick();
    if (!it) {
        try {
            it = allocate(want);
        } catch (...) {
            std::lock_guard<std::mutex> lock(mu_);
            --stats_.live;
            bump(refs_ ? refs_->live : nullptr, -1);
            throw;
        }
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.allocs;
        bump(refs_ ? refs_->allocs : nullptr, 1);
    } else {
        SOUK_ASAN_UNPOISON(it->payload(), it->size);
    }
    it->magic = kMagicLive;
    it->next = it->prev = nullptr;
    return it->payload();
}

void Mempool::put(void* payload) {
    if (!payload) return;
    Item* it = Item::of(payload);
    if (it->owner != this) corrupt(name_, "put of an item from another pool or not from a pool", payload);
    if (it->magic == kMagicIdle) corrupt(name_, "item put twice", payload);
    if (it->magic != kMagicLive) corrupt(name_, "put of an item with a bad magic number", payload);
#ifndef NDEBUG
    if (hooks_.poison) hooks_.poison(payload);
    else if (!hooks_.construct) std::memset(payload, kPoison, it->size);
#endif
    it->magic = kMagicIdle;
    const size_t want = item_size_.load(std::memory_order_relaxed);
    bool keep = false;
    {
        std::lock_guard<std::mutex> lock(mu_);
        --stats_.live;
        bump(refs_ ? refs_->live : nullptr, -1);
        if (it->size < want) {
            ++stats_.too_small;
            bump(refs_ ? refs_->too_small : nullptr, 1);
        } else if (stats_.pooled >= cfg_.max_pool) {
            ++stats_.surplus;
            bump(refs_ ? refs_->surplus : nullptr, 1);
        } else {
            keep = true;
            it->since = Clock::now();
            it->prev = nullptr;
            it->next = head_;
            if (head_) head_->prev = it;
            else tail_ = it;
            head_ = it;
            ++stats_.pooled;
            bump(refs_ ? refs_->pooled : nullptr, 1);
            // While idle nobody may touch it (ASan reports any access).
            // The object a construct hook built stays intact underneath.
            SOUK_ASAN_POISON(it->payload(), it->size);
        }
    }
    if (!keep) release_memory(it);
}

size_t Mempool::size_of(const void* payload) {
    return Item::of(const_cast<void*>(payload))->size;
}

void Mempool::set_item_size(size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    cfg_.item_size = n;
    item_size_.store(n, std::memory_order_relaxed);
}

void Mempool::set_config(const PoolConfig& cfg) {
    std::lock_guard<std::mutex> lock(mu_);
    cfg_ = cfg;
    item_size_.store(cfg.item_size, std::memory_order_relaxed);
}

PoolConfig Mempool::config() const {
    std::lock_guard<std::mutex> lock(mu_);
    return cfg_;
}

Mempool::Stats Mempool::stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
}

void Mempool::maintain(Clock::time_point now) {
    Item* doomed = nullptr;
    size_t need = 0, want_size = 0;
    {
        std::lock_guard<std::mutex> lock(mu_);
        want_size = cfg_.item_size;
        const auto max_age = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg_.max_age));
        // Oldest first, from the tail: too old (beyond the reserve), too
        // many, or too small.
        for (Item* it = tail_; it;) {  // bounded by the idle list's length
            Item* prev = it->prev;
            // The reserve (min_pool) never ages out, as in Varnish: freeing
            // it only to preallocate it again would churn an idle server.
            bool old = now - it->since > max_age && stats_.pooled > cfg_.min_pool;
            bool extra = stats_.pooled > cfg_.max_pool;
            bool small = it->size < want_size;
            if (!old && !extra && !small) {
                it = prev;
                continue;
            }
            // Unlink.
            if (it->prev) it->prev->next = it->next;
            else head_ = it->next;
            if (it->next) it->next->prev = it->prev;
            else tail_ = it->prev;
            --stats_.pooled;
            bump(refs_ ? refs_->pooled : nullptr, -1);
            if (small) {
                ++stats_.too_small;
                bump(refs_ ? refs_->too_small : nullptr, 1);
            } else if (extra) {
                ++stats_.surplus;
                bump(refs_ ? refs_->surplus : nullptr, 1);
            } else {
                ++stats_.timed_out;
                bump(refs_ ? refs_->timed_out : nullptr, 1);
            }
            it->next = doomed;
            doomed = it;
            it = prev;
        }
        if (stats_.pooled < cfg_.min_pool) need = cfg_.min_pool - stats_.pooled;
    }
    while (doomed) {
        Item* next = doomed->next;
        release_memory(doomed);
        doomed = next;
    }
    // Preallocate outside the lock, then insert at the tail (not yet used,
    // so not cache-warm: gets prefer recently returned items).
    for (size_t i = 0; i < need; ++i) {
        Item* it = nullptr;
        try {
            it = allocate(want_size);
        } catch (...) {
            return;  // try again next pass
        }
        it->since = Clock::now();
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.allocs;
        bump(refs_ ? refs_->allocs : nullptr, 1);
        if (stats_.pooled >= cfg_.min_pool || it->size < cfg_.item_size) {
            // Users returned items meanwhile, or the size changed: not needed.
            it->next = doomed;
            doomed = it;
            continue;
        }
        it->next = nullptr;
        it->prev = tail_;
        if (tail_) tail_->next = it;
        else head_ = it;
        tail_ = it;
        ++stats_.pooled;
        bump(refs_ ? refs_->pooled : nullptr, 1);
        SOUK_ASAN_POISON(it->payload(), it->size);
    }
    while (doomed) {
        Item* next = doomed->next;
        release_memory(doomed);
        doomed = next;
    }
}

// ------------------------------------------------------------ manager --

PoolManager& PoolManager::instance() {
    static PoolManager m;
    return m;
}

PoolManager::~PoolManager() {
    {
        std::lock_guard<std::mutex> lock(stop_mu_);
        if (users_ > 1) users_ = 1;  // at exit: the thread ends whoever still uses it
    }
    stop();
}

void PoolManager::add(Mempool* p) {
    std::lock_guard<std::mutex> lock(mu_);
    pools_.push_back(p);
}

void PoolManager::remove(Mempool* p) {
    std::lock_guard<std::mutex> lock(mu_);
    pools_.erase(std::remove(pools_.begin(), pools_.end(), p), pools_.end());
}

void PoolManager::set_pass_hook(void (*hook)()) {
    std::lock_guard<std::mutex> lock(mu_);
    hook_ = hook;
}

void PoolManager::maintain_all() {
    // Under mu_ so a pool cannot be destroyed in the middle of its pass.
    std::lock_guard<std::mutex> lock(mu_);
    if (hook_) hook_();
    auto now = Mempool::Clock::now();
    for (Mempool* p : pools_) p->maintain(now);
}

void PoolManager::start(double interval) {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (users_++ > 0) return;
    stopping_ = false;
    auto period = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double>(interval));
    if (period.count() < 1) period = std::chrono::milliseconds(1);
    thread_ = std::thread([this, period] {
        std::unique_lock<std::mutex> l(stop_mu_);
        while (!stopping_) {  // bounded: ends at stop()
            l.unlock();
            maintain_all();
            l.lock();
            cv_.wait_for(l, period, [this] { return stopping_ || kicked_; });
            kicked_ = false;
        }
    });
}

void PoolManager::kick() {
    {
        std::lock_guard<std::mutex> lock(stop_mu_);
        if (kicked_) return;
        kicked_ = true;
    }
    cv_.notify_one();
}

void PoolManager::stop() {
    std::thread t;
    {
        std::lock_guard<std::mutex> lock(stop_mu_);
        if (users_ == 0 || --users_ > 0) return;  // others still use it
        stopping_ = true;
        t = std::move(thread_);
    }
    cv_.notify_all();
    if (t.joinable()) {
        if (t.get_id() != std::this_thread::get_id()) t.join();
        else t.detach();
    }
}

}  // namespace souk::server
