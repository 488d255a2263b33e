// Mempools (server/mempool.hpp) and pooled request handlers
// (server/handler.hpp): watermarks, max age, run-time resizing, magic
// numbers, counters.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "server/base/counters.hpp"
#include "server/request/handler.hpp"
#include "server/request/mempool.hpp"

using namespace souk::server;
using Clock = Mempool::Clock;

namespace {

PoolConfig cfg(size_t size, size_t min, size_t max, double age = 10) { return PoolConfig{size, min, max, age}; }

int g_constructed = 0, g_destroyed = 0;
void construct_int(void* p, size_t) {
    ::new (p) int(42);
    ++g_constructed;
}
void destroy_int(void*) { ++g_destroyed; }

// Run `fn` in a child process; true if it died of SIGABRT.
template <typename F>
bool aborts(F fn) {
    pid_t pid = ::fork();
    if (pid == 0) {
        ::signal(SIGABRT, SIG_DFL);  // not doctest's crash reporter
        ::close(2);                  // the pool's message is expected
        fn();
        ::_exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

}  // namespace

TEST_CASE("mempool: a returned item is recycled; an empty pool runs dry and allocates") {
    Mempool pool("test", cfg(256, 0, 4), nullptr);
    void* a = pool.get();
    CHECK(pool.stats().ran_dry == 1);
    CHECK(pool.stats().allocs == 1);
    CHECK(pool.stats().live == 1);
    CHECK(reinterpret_cast<uintptr_t>(a) % 64 == 0);
    CHECK(Mempool::size_of(a) == 256);
    std::memset(a, 1, 256);  // the whole payload is ours
    pool.put(a);
    CHECK(pool.stats().live == 0);
    CHECK(pool.stats().pooled == 1);
    void* b = pool.get();
    CHECK(b == a);  // most recently returned first (cache-warm)
    CHECK(pool.stats().recycled == 1);
    CHECK(pool.stats().ran_dry == 1);
    CHECK(pool.stats().allocs == 1);
    pool.put(b);
}

TEST_CASE("mempool: beyond max_pool a returned item is freed as surplus") {
    Mempool pool("test", cfg(64, 0, 2), nullptr);
    std::vector<void*> items;
    for (int i = 0; i < 5; ++i) items.push_back(pool.get());
    for (void* p : items) pool.put(p);
    auto s = pool.stats();
    CHECK(s.pooled == 2);
    CHECK(s.surplus == 3);
    CHECK(s.frees == 3);
    CHECK(s.live == 0);
}

TEST_CASE("mempool: maintenance preallocates to min, trims to max, frees by age") {
    Mempool pool("test", cfg(128, 3, 5, 1.0), nullptr);
    auto now = Clock::now();
    pool.maintain(now);
    CHECK(pool.stats().pooled == 3);
    CHECK(pool.stats().allocs == 3);
    void* a = pool.get();
    CHECK(pool.stats().ran_dry == 0);  // preallocated: no allocation on the request path
    pool.put(a);
    // Lower the high watermark: the next pass trims.
    pool.set_config(cfg(128, 0, 1, 1.0));
    pool.maintain(now);
    CHECK(pool.stats().pooled == 1);
    CHECK(pool.stats().surplus == 2);
    // Idle longer than max_age: freed, counted as timed out.
    pool.maintain(now + std::chrono::seconds(5));
    CHECK(pool.stats().pooled == 0);
    CHECK(pool.stats().timed_out == 1);
    CHECK(pool.stats().frees == 3);
    // The reserve (min) does not age out: an idle server keeps it, not
    // freeing and preallocating it again every max_age.
    pool.set_config(cfg(128, 2, 5, 1.0));
    pool.maintain(now + std::chrono::seconds(6));
    CHECK(pool.stats().pooled == 2);
    CHECK(pool.stats().allocs == 5);
    pool.maintain(now + std::chrono::seconds(60));
    CHECK(pool.stats().pooled == 2);
    CHECK(pool.stats().timed_out == 1);
    CHECK(pool.stats().allocs == 5);
}

TEST_CASE("mempool: a bigger item size takes effect for new items without a restart") {
    Mempool pool("test", cfg(100, 0, 8), nullptr);
    void* small_in_use = pool.get();
    void* small_idle = pool.get();
    pool.put(small_idle);
    pool.set_item_size(1000);
    // The idle small item is met and freed; the new one has the new size.
    void* big = pool.get();
    CHECK(Mempool::size_of(big) >= 1000);
    CHECK(pool.stats().too_small == 1);
    // The old item in use is freed when it comes back, not recycled.
    CHECK(Mempool::size_of(small_in_use) == 100);
    pool.put(small_in_use);
    CHECK(pool.stats().too_small == 2);
    pool.put(big);
    CHECK(pool.stats().pooled == 1);
    // Maintenance also drops idle items that are too small.
    pool.set_item_size(5000);
    pool.maintain(Clock::now());
    CHECK(pool.stats().pooled == 0);
    CHECK(pool.stats().too_small == 3);
}

TEST_CASE("mempool: hooks build an object once per item; it survives recycling") {
    g_constructed = g_destroyed = 0;
    {
        Mempool pool("test", cfg(64, 0, 4), nullptr, PoolHooks{construct_int, destroy_int, nullptr});
        int* p = static_cast<int*>(pool.get());
        CHECK(*p == 42);
        *p = 7;
        pool.put(p);
        int* q = static_cast<int*>(pool.get());
        CHECK(q == p);
        CHECK(*q == 7);  // not rebuilt, not poisoned
        CHECK(g_constructed == 1);
        pool.put(q);
    }
    CHECK(g_destroyed == 1);  // the pool's destruction freed the idle item
}

TEST_CASE("mempool: magic numbers catch a double put and a foreign pointer") {
    Mempool pool("test", cfg(64, 0, 4), nullptr);
    CHECK(aborts([&] {
        void* p = pool.get();
        pool.put(p);
        pool.put(p);
    }));
    Mempool other("other", cfg(64, 0, 4), nullptr);
    CHECK(aborts([&] {
        void* p = other.get();
        pool.put(p);
    }));
}

TEST_CASE("mempool: global counters follow the pool (live, pooled, recycled)") {
    static const PoolCounterRefs refs = {&Counters::pool_sess_live,      &Counters::pool_sess_pooled,
                                         &Counters::pool_sess_allocs,    &Counters::pool_sess_frees,
                                         &Counters::pool_sess_recycled,  &Counters::pool_sess_timed_out,
                                         &Counters::pool_sess_too_small, &Counters::pool_sess_surplus,
                                         &Counters::pool_sess_ran_dry};
    Counters& c = counters();
    uint64_t live0 = c.pool_sess_live.load(), recycled0 = c.pool_sess_recycled.load();
    {
        Mempool pool("counted", cfg(64, 0, 4), &refs);
        void* p = pool.get();
        CHECK(c.pool_sess_live.load() == live0 + 1);
        pool.put(p);
        CHECK(c.pool_sess_live.load() == live0);
        pool.put(pool.get());
        CHECK(c.pool_sess_recycled.load() == recycled0 + 1);
    }
    CHECK(c.pool_sess_live.load() == live0);
}

TEST_CASE("mempool: the manager's thread maintains every pool") {
    Mempool pool("managed", cfg(64, 2, 4), nullptr);
    PoolManager::instance().maintain_all();
    CHECK(pool.stats().pooled == 2);
    // Alone, so that this start() makes the thread (with its interval).
    REQUIRE_FALSE(PoolManager::instance().running());
    PoolManager::instance().start(0.01);
    pool.put(pool.get());
    void* a = pool.get();
    void* b = pool.get();  // pooled drops to 0; the thread tops it up
    for (int i = 0; i < 200 && pool.stats().pooled < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK(pool.stats().pooled == 2);
    pool.put(a);
    pool.put(b);
    PoolManager::instance().stop();
    CHECK_FALSE(PoolManager::instance().running());
}

TEST_CASE("handlers: one per request from the req pool, back at once, buffers kept") {
    Params p;
    configure_pools(p);
    uint64_t live0 = counters().pool_req_live.load();
    Handler* first;
    {
        HandlerLease h;
        h.acquire(p);
        CHECK(counters().pool_req_live.load() == live0 + 1);
        h->check();
        first = &*h;
        CHECK(h->body_append("0,10\n20,30", p.max_body_total));
        CHECK(h->body() == "0,10\n20,30");
        h->out.assign(100000, 'x');
    }
    CHECK(counters().pool_req_live.load() == live0);
    HandlerLease h;
    h.acquire(p);
    CHECK(&*h == first);         // recycled
    CHECK(h->body().empty());    // a fresh request
    CHECK(h->out.empty());
    CHECK(h->out.capacity() >= 100000);  // capacity kept: no allocation next time
}

TEST_CASE("handlers: a body beyond the workspace spills to the heap and is counted") {
    Params p;
    configure_pools(p);
    HandlerLease h;
    h.acquire(p);
    uint64_t over0 = counters().workspace_overflows.load();
    std::string big(h->workspace_size() + 10, 'b');
    CHECK(h->body_append(std::string_view(big).substr(0, 100), p.max_body_total));
    CHECK(h->body_append(std::string_view(big).substr(100), p.max_body_total));
    CHECK(h->body() == big);
    CHECK(counters().workspace_overflows.load() == over0 + 1);
}
