// The shared segment and the range cache's structure (server/shm.hpp,
// server/store/range_cache.hpp): sharing, replacement of a corrupt or
// incompatible segment, the allocator's coalescing and eviction, and
// recovery from a process killed while holding the lock.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "server/base/counters.hpp"
#include "server/store/shm.hpp"
#include "server/store/range_cache.hpp"

namespace fs = std::filesystem;
using namespace souk::server;

namespace {

// A root directory that exists only for the test, and its segment, which
// is unlinked at the end.
struct ShmRoot {
    std::string path;
    ShmRoot() {
        char tmpl[] = "/tmp/souk-shm-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = fs::canonical(tmpl).string();
        ::shm_unlink(shm::segment_name(path).c_str());
    }
    ~ShmRoot() {
        set_counters(nullptr);
        ::shm_unlink(shm::segment_name(path).c_str());
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::unique_ptr<shm::Segment> open(uint64_t cache_bytes = 1 << 20, uint64_t block = 4096) {
        std::string why;
        shm::Segment::Options o;
        o.cache_bytes = cache_bytes;
        o.block_bytes = block;
        auto s = shm::Segment::open(path, o, &why);
        INFO(why);
        REQUIRE(s != nullptr);
        return s;
    }
};

FileKey key_of(uint64_t ino, uint64_t size = 1 << 30) {
    FileKey k;
    k.dev = 42;
    k.ino = ino;
    k.size = size;
    k.mtime_ns = 1000;
    k.ctime_ns = 2000;
    return k;
}

std::string block_data(uint64_t ino, uint64_t block, size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((ino * 131 + block * 31 + i * 7) & 0xff);
    return s;
}

}  // namespace

TEST_CASE("shm 01: a second process attaches the same segment and shares its counters") {
    ShmRoot root;
    auto a = root.open();
    CHECK(a->created());
    auto b = root.open();
    CHECK_FALSE(b->created());
    CHECK(a->name() == b->name());
    count(a->counters().requests, 3);
    CHECK(b->counters().requests.load() == 3);
    CHECK(a->counters().shm_segments_created.load() == 1);
    CHECK(a->counters().shm_segments_replaced.load() == 0);
    CHECK(std::string(a->header().root, a->header().root_len) == root.path);
}

TEST_CASE("shm 02: a segment with bad magic is replaced, not trusted") {
    ShmRoot root;
    {
        auto a = root.open();
        count(a->counters().requests, 5);
        std::memcpy(a->header().magic, "GARBAGE!", 8);
    }
    auto b = root.open();
    CHECK(b->created());
    CHECK(b->counters().shm_segments_replaced.load() == 1);
    CHECK(b->counters().requests.load() == 0);  // nothing carried over from the corrupt one
    CHECK(std::memcmp(b->header().magic, shm::kMagic, 8) == 0);
}

TEST_CASE("shm 03: an incompatible layout or a torn header is replaced; attach_existing refuses it") {
    ShmRoot root;
    {
        auto a = root.open();
        a->header().layout_version = 999;  // what another soukd build would have written
    }
    std::string why;
    CHECK(shm::Segment::attach_existing(root.path, &why) == nullptr);
    CHECK(why.find("layout") != std::string::npos);
    {
        auto b = root.open();
        CHECK(b->counters().shm_segments_replaced.load() == 1);
        b->header().heap_bytes += 4096;  // a scribble the checksum catches
    }
    auto c = root.open();
    CHECK(c->counters().shm_segments_replaced.load() == 1);
    CHECK(c->created());
}

TEST_CASE("shm 04: segments of roots that no longer exist are swept when a new one is created") {
    ShmRoot gone_root;
    std::string gone_name;
    {
        auto s = gone_root.open();
        gone_name = s->name();
    }
    std::error_code ec;
    fs::remove_all(gone_root.path, ec);
    ShmRoot live;
    auto s = live.open();
    CHECK(s->created());
    CHECK_FALSE(fs::exists("/dev/shm" + gone_name));
}

TEST_CASE("range_cache 01: blocks round-trip; another identity or block misses") {
    ShmRoot root;
    auto seg = root.open();
    RangeCache cache(*seg, 1.0);
    std::string d = block_data(1, 7, 4096);
    REQUIRE(cache.insert(key_of(1), 7, d.data(), d.size(), false));
    std::string out(100, '\0');
    REQUIRE(cache.read(key_of(1), 7, 1000, 100, out.data()));
    CHECK(out == d.substr(1000, 100));
    CHECK_FALSE(cache.read(key_of(1), 8, 0, 100, out.data()));
    FileKey other = key_of(1);
    other.ctime_ns += 1;  // the file changed: a different identity
    CHECK_FALSE(cache.read(other, 7, 0, 100, out.data()));
    other = key_of(1);
    other.size += 1;
    CHECK_FALSE(cache.read(other, 7, 0, 100, out.data()));
    CHECK_FALSE(cache.read(key_of(1), 7, 4000, 200, out.data()));  // beyond the block's bytes
    CHECK(cache.contains(key_of(1), 7));
    CHECK(cache.check().empty());
}

TEST_CASE("range_cache 02: a cache smaller than the working set evicts least recently used, stays sound") {
    ShmRoot root;
    auto seg = root.open(1 << 20, 64 * 1024);  // room for ~15 blocks of 64 KiB
    Counters& ctr = seg->counters();
    RangeCache cache(*seg, 1.0);
    for (uint64_t b = 0; b < 40; ++b) {
        std::string d = block_data(9, b, 64 * 1024);
        REQUIRE(cache.insert(key_of(9), b, d.data(), d.size(), false));
        if (b >= 2) {  // keep block 0 recent: it must survive
            std::string o(10, '\0');
            REQUIRE(cache.read(key_of(9), 0, 0, 10, o.data()));
        }
    }
    CHECK(ctr.cache_evictions.load() >= 25);
    CHECK(ctr.cache_insert_failures.load() == 0);
    std::string out(64 * 1024, '\0');
    CHECK(cache.read(key_of(9), 0, 0, out.size(), out.data()));
    CHECK(out == block_data(9, 0, out.size()));
    CHECK(cache.read(key_of(9), 39, 0, out.size(), out.data()));
    CHECK(out == block_data(9, 39, out.size()));
    CHECK_FALSE(cache.contains(key_of(9), 1));  // the oldest went first
    RangeCache::Figures f;
    REQUIRE(cache.figures(f));
    CHECK(f.entries >= 10);
    CHECK(f.entries <= 16);
    CHECK(f.reserved == f.capacity);
    CHECK(cache.check().empty());
}

TEST_CASE("range_cache 02b: when every entry was used recently, eviction still makes room (second chance)") {
    ShmRoot root;
    auto seg = root.open(1 << 20, 64 * 1024);
    Counters& ctr = seg->counters();
    RangeCache cache(*seg, 1.0);
    uint64_t b = 0;
    for (; ctr.cache_evictions.load() == 0 && b < 100; ++b) {
        std::string d = block_data(4, b, 64 * 1024);
        REQUIRE(cache.insert(key_of(4), b, d.data(), d.size(), false));
    }
    // Touch every cached block: each carries the "referenced" mark.
    std::string o(10, '\0');
    for (uint64_t i = 0; i < b; ++i) cache.read(key_of(4), i, 0, 10, o.data());
    for (uint64_t i = 100; i < 110; ++i) {
        std::string d = block_data(4, i, 64 * 1024);
        CHECK(cache.insert(key_of(4), i, d.data(), d.size(), false));
    }
    CHECK(ctr.cache_insert_failures.load() == 0);
    CHECK(cache.contains(key_of(4), 109));
    CHECK(cache.check().empty());
}

TEST_CASE("range_cache 03: mixed sizes: freed neighbours coalesce, fragmentation is reported") {
    ShmRoot root;
    auto seg = root.open(1 << 20, 16 * 1024);
    RangeCache cache(*seg, 1.0);
    std::mt19937_64 rng(12345);
    for (int i = 0; i < 3000; ++i) {
        uint64_t ino = rng() % 50, b = rng() % 40;
        size_t len = 1 + rng() % (16 * 1024);  // last blocks of files come in any size
        FileKey k = key_of(ino, b * 16 * 1024 + len);
        std::string d = block_data(ino, b, len);
        cache.insert(k, b, d.data(), d.size(), false);
        if (i % 500 == 0) REQUIRE(cache.check().empty());
        std::string o(len, '\0');
        if (cache.read(k, b, 0, len, o.data())) REQUIRE(o == d);
    }
    CHECK(cache.check().empty());
    RangeCache::Figures f;
    REQUIRE(cache.figures(f));
    CHECK(f.fragmentation >= 0.0);
    CHECK(f.fragmentation < 1.0);
    CHECK(f.free_chunks >= 1);
    // Emptying the cache leaves one free chunk: everything coalesced.
    REQUIRE(cache.clear());
    REQUIRE(cache.figures(f));
    CHECK(f.entries == 0);
    CHECK(f.free_chunks == 1);
    CHECK(f.fragmentation == doctest::Approx(0.0));
    CHECK(cache.check().empty());
}

TEST_CASE("range_cache 04: an inconsistent offset inside the segment empties the cache instead of crashing") {
    ShmRoot root;
    auto seg = root.open();
    RangeCache cache(*seg, 1.0);
    std::string d = block_data(3, 0, 4096);
    REQUIRE(cache.insert(key_of(3), 0, d.data(), d.size(), false));
    // Point the entry's bucket at garbage, as a wild write would.
    auto* table = reinterpret_cast<uint64_t*>(seg->base() + seg->header().table_off);
    for (uint64_t s = 0; s < seg->header().table_slots; ++s)
        if (table[s]) table[s] = seg->size() + 12345;
    std::string out(10, '\0');
    CHECK_FALSE(cache.read(key_of(3), 0, 0, 10, out.data()));
    CHECK(seg->counters().cache_corruptions.load() == 1);
    CHECK(cache.check().empty());
    REQUIRE(cache.insert(key_of(3), 0, d.data(), d.size(), false));
    CHECK(cache.read(key_of(3), 0, 0, 10, out.data()));
    CHECK(out == d.substr(0, 10));
}

TEST_CASE("range_cache 05: a process SIGKILLed holding the lock costs the cache, not a hang") {
    ShmRoot root;
    auto seg = root.open();
    RangeCache cache(*seg, 2.0);
    std::string d = block_data(5, 1, 4096);
    REQUIRE(cache.insert(key_of(5), 1, d.data(), d.size(), false));
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // Another process: attach by name, take the lock, report, wait to die.
        std::string why;
        auto mine = shm::Segment::attach_existing(root.path, &why);
        if (!mine || mine->lock(1.0) != shm::Segment::Lock::Ok) ::_exit(2);
        char c = 'L';
        if (::write(ready[1], &c, 1) != 1) ::_exit(3);
        for (int i = 0; i < 600; ++i) ::usleep(100000);  // bounded: killed long before
        ::_exit(4);
    }
    ::close(ready[1]);
    char c = 0;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    ::close(ready[0]);
    REQUIRE(c == 'L');
    REQUIRE(::kill(child, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));
    auto t0 = std::chrono::steady_clock::now();
    std::string out(4096, '\0');
    // The dead holder's cache is gone (emptied), but the next operations work at once.
    CHECK_FALSE(cache.read(key_of(5), 1, 0, 4096, out.data()));
    CHECK(seg->counters().cache_lock_recoveries.load() == 1);
    REQUIRE(cache.insert(key_of(5), 1, d.data(), d.size(), false));
    CHECK(cache.read(key_of(5), 1, 0, 4096, out.data()));
    CHECK(out == d);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
    CHECK(cache.check().empty());
}

TEST_CASE("range_cache 06: a live but stuck lock holder costs a bounded wait (lock timeout: a miss)") {
    ShmRoot root;
    auto seg = root.open();
    RangeCache cache(*seg, 0.05);
    std::string d = block_data(6, 0, 4096);
    REQUIRE(cache.insert(key_of(6), 0, d.data(), d.size(), false));
    REQUIRE(seg->lock(1.0) == shm::Segment::Lock::Ok);  // "stuck" holder: another thread
    std::string out(10, '\0');
    bool hit = true;
    auto t0 = std::chrono::steady_clock::now();
    std::thread t([&] { hit = cache.read(key_of(6), 0, 0, 10, out.data()); });
    t.join();
    auto waited = std::chrono::steady_clock::now() - t0;
    seg->unlock();
    CHECK_FALSE(hit);
    CHECK(waited < std::chrono::milliseconds(1000));
    CHECK(seg->counters().cache_lock_timeouts.load() >= 1);
    CHECK(cache.read(key_of(6), 0, 0, 10, out.data()));
}
