// The store chain (server/store/chain.hpp): stats -> range cache ->
// readahead -> delay -> filesystem. Correct bytes whatever the layers do,
// never stale, readahead turning sequential reads into hits, and the
// counters that prove it (docs/conventions.md#assert-counters-not-logs).
#include <doctest/doctest.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "server/base/counters.hpp"
#include "server/store/shm.hpp"
#include "server/store/chain.hpp"

namespace fs = std::filesystem;
using namespace souk::server;

namespace {

constexpr uint64_t KiB = 1024;

std::string pattern(size_t n, uint32_t seed) {
    std::string s(n, '\0');
    std::mt19937 rng(seed);
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
}

struct ChainRoot {
    fs::path root;
    Params params;
    std::unique_ptr<StoreChain> chain;

    ChainRoot() {
        char tmpl[] = "/tmp/souk-chain-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        root = fs::canonical(tmpl);
        ::shm_unlink(shm::segment_name(root.string()).c_str());
        params.cache_settle = 0.02;
        params.cache_size = 8 << 20;
    }
    ~ChainRoot() {
        chain.reset();
        ::shm_unlink(shm::segment_name(root.string()).c_str());
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    StoreChain& open() {
        chain = std::make_unique<StoreChain>(params, root.string());
        REQUIRE(chain->valid());
        return *chain;
    }
    void write(const std::string& rel, const std::string& data) {
        std::ofstream(root / rel, std::ios::binary | std::ios::trunc) << data;
    }
    // Let timestamps age past --cache-settle so blocks may be cached.
    void settle() const { std::this_thread::sleep_for(std::chrono::milliseconds(40)); }
};

// Read [off, off+n) as a request would: open, announce, read, close.
std::string read_range(Store& s, const std::string& rel, uint64_t off, uint64_t n, int* err = nullptr) {
    OpenFile f;
    int e = s.open_read(rel, f);
    if (err) *err = e;
    if (e) return {};
    std::pair<uint64_t, uint64_t> r{off, n};
    s.expect_reads(f, std::span(&r, 1));
    std::string out(n, '\0');
    uint64_t got = 0;
    while (got < n) {
        ssize_t k = s.pread(f, out.data() + got, n - got, off + got);
        if (k <= 0) break;
        got += static_cast<uint64_t>(k);
    }
    out.resize(got);
    return out;
}

std::string read_all(Store& s, const std::string& rel, int* err = nullptr) {
    FileInfo fi;
    int e = s.stat(rel, fi);
    if (e) {
        if (err) *err = e;
        return {};
    }
    return read_range(s, rel, 0, fi.size, err);
}

// Descriptors of this process that point at `path` (or at it deleted).
int open_descriptors_of(const std::string& path) {
    int n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    REQUIRE(d != nullptr);
    while (struct dirent* e = ::readdir(d)) {
        char link[4096];
        std::string p = std::string("/proc/self/fd/") + e->d_name;
        ssize_t k = ::readlink(p.c_str(), link, sizeof link - 1);
        if (k <= 0) continue;
        std::string target(link, static_cast<size_t>(k));
        if (target == path || target == path + " (deleted)") ++n;
    }
    ::closedir(d);
    return n;
}

}  // namespace

TEST_CASE("chain 01: every layer on: reads across blocks, partial last blocks and EOF equal the file") {
    ChainRoot t;
    t.params.cache_block = 16 * KiB;
    const std::string data = pattern(300 * KiB + 123, 1);
    t.write("f", data);
    t.settle();
    StoreChain& s = t.open();
    REQUIRE(s.cache() != nullptr);
    std::mt19937_64 rng(7);
    for (int pass = 0; pass < 2; ++pass) {  // the first pass fills, the second hits
        std::mt19937_64 r2(99);
        for (int i = 0; i < 200; ++i) {
            uint64_t off = r2() % (data.size() + 10), n = 1 + r2() % (70 * KiB);
            std::string got = read_range(s, "f", off, n);
            std::string want = off < data.size() ? data.substr(off, n) : std::string();
            REQUIRE(got == want);
        }
    }
    CHECK(counters().cache_hits.load() > 100);
    CHECK(counters().cache_inserts.load() > 0);
    CHECK(s.cache()->check().empty());
}

TEST_CASE("chain 02: never stale: append, put, rename, delete through the chain and writes by another program") {
    ChainRoot t;
    t.params.readahead = 0;
    t.write("f", pattern(100 * KiB, 1));
    t.write("g", pattern(50 * KiB, 2));
    t.settle();
    StoreChain& s = t.open();
    CHECK(read_all(s, "f") == pattern(100 * KiB, 1));
    uint64_t hits = counters().cache_hits.load();
    CHECK(read_all(s, "f") == pattern(100 * KiB, 1));
    REQUIRE(counters().cache_hits.load() > hits);  // it is cached now

    SUBCASE("another program overwrites in place, same size, and puts the old mtime back") {
        struct stat before;
        REQUIRE(::stat((t.root / "f").c_str(), &before) == 0);
        const std::string b = pattern(100 * KiB, 3);
        int fd = ::open((t.root / "f").c_str(), O_WRONLY);
        REQUIRE(fd >= 0);
        REQUIRE(::pwrite(fd, b.data(), b.size(), 0) == static_cast<ssize_t>(b.size()));
        struct timespec times[2] = {before.st_atim, before.st_mtim};
        REQUIRE(::futimens(fd, times) == 0);  // only ctime tells now
        ::close(fd);
        CHECK(read_all(s, "f") == b);  // at once (unsettled: read past the cache)
        t.settle();
        CHECK(read_all(s, "f") == b);  // and once settled (a new identity)
        CHECK(read_all(s, "f") == b);
    }
    SUBCASE("append through the chain") {
        uint64_t old = 0;
        REQUIRE(s.append("f", "tail", -1, &old) == 0);
        CHECK(old == 100 * KiB);
        CHECK(read_all(s, "f") == pattern(100 * KiB, 1) + "tail");
        t.settle();
        CHECK(read_all(s, "f") == pattern(100 * KiB, 1) + "tail");
    }
    SUBCASE("put through the chain, same size") {
        REQUIRE(s.put("f", pattern(100 * KiB, 4), -1) == 0);
        CHECK(read_all(s, "f") == pattern(100 * KiB, 4));
        t.settle();
        CHECK(read_all(s, "f") == pattern(100 * KiB, 4));
    }
    SUBCASE("rename another file over it, then delete it") {
        CHECK(read_all(s, "g") == pattern(50 * KiB, 2));
        REQUIRE(s.rename("g", "f") == 0);
        CHECK(read_all(s, "f") == pattern(50 * KiB, 2));
        int err = 0;
        read_all(s, "g", &err);
        CHECK(err == ENOENT);
        REQUIRE(s.unlink("f") == 0);
        read_all(s, "f", &err);
        CHECK(err == ENOENT);
    }
    SUBCASE("another program truncates it and writes a shorter file") {
        t.write("f", "short");
        CHECK(read_all(s, "f") == "short");
        t.settle();
        CHECK(read_all(s, "f") == "short");
    }
}

TEST_CASE("chain 03: a cache smaller than the working set keeps serving correct bytes and evicts") {
    ChainRoot t;
    t.params.cache_size = 1 << 20;
    t.params.readahead = 0;
    const std::string data = pattern(8 << 20, 5);
    t.write("big", data);
    t.settle();
    StoreChain& s = t.open();
    std::mt19937_64 rng(11);
    for (int i = 0; i < 400; ++i) {
        uint64_t off = rng() % data.size(), n = 1 + rng() % (40 * KiB);
        REQUIRE(read_range(s, "big", off, n) == data.substr(off, n));
    }
    CHECK(counters().cache_evictions.load() > 0);
    CHECK(counters().cache_insert_failures.load() == 0);
    RangeCache::Figures f;
    REQUIRE(s.cache()->figures(f));
    CHECK(f.used <= f.capacity);
    CHECK(s.cache()->check().empty());
}

TEST_CASE("chain 04: slow storage sleeps before each filesystem read and keeps carriers off sendfile") {
    ChainRoot t;
    t.params.slow_read_delay = 0.02;
    t.params.cache = 0;
    t.params.readahead = 0;
    t.write("f", "hello");
    StoreChain& s = t.open();
    CHECK_FALSE(s.direct_ok());
    auto t0 = std::chrono::steady_clock::now();
    CHECK(read_all(s, "f") == "hello");
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(20));
    CHECK(counters().fs_reads.load() == 1);
    ChainRoot fast;
    CHECK(fast.open().direct_ok());
}

TEST_CASE("chain 05: the stats layer counts opens, reads, writes and metadata calls") {
    ChainRoot t;
    t.write("f", "0123456789");
    StoreChain& s = t.open();
    CHECK(read_range(s, "f", 2, 5) == "23456");
    int err = 0;
    read_all(s, "missing", &err);
    CHECK(err == ENOENT);
    REQUIRE(s.put("g", "abc", -1) == 0);
    REQUIRE(s.mkdir("d", -1) == 0);
    Counters& c = counters();
    CHECK(c.store_opens.load() == 1);
    CHECK(c.store_reads.load() == 1);
    CHECK(c.store_read_bytes.load() == 5);
    CHECK(c.store_writes.load() == 1);
    CHECK(c.store_write_bytes.load() == 3);
    CHECK(c.store_meta_ops.load() == 2);  // stat of "missing", mkdir
    CHECK(c.store_meta_errors.load() == 1);
}

TEST_CASE("chain 06: --cache=0 --readahead=0 --store-stats=0 leave the filesystem (and delay) alone") {
    ChainRoot t;
    t.params.cache = 0;
    t.params.readahead = 0;
    t.params.store_stats = 0;
    t.write("f", "plain");
    StoreChain& s = t.open();
    CHECK(s.cache() == nullptr);
    CHECK(s.prefetcher() == nullptr);
    CHECK(s.for_connection() == nullptr);
    CHECK(read_all(s, "f") == "plain");
    CHECK(counters().store_reads.load() == 0);
    CHECK(counters().fs_reads.load() == 1);
}

TEST_CASE("readahead 01: sequential reads become cache hits as the window grows") {
    ChainRoot t;
    t.params.slow_read_delay = 0.001;
    const std::string data = pattern(4 << 20, 6);
    t.write("seq", data);
    t.settle();
    StoreChain& root = t.open();
    auto conn = root.for_connection();
    REQUIRE(conn != nullptr);
    auto* chain = static_cast<StoreChain*>(conn.get());
    REQUIRE(chain->prefetcher() != nullptr);
    const uint64_t step = 64 * KiB;
    for (uint64_t off = 0; off < data.size(); off += step) {
        REQUIRE(read_range(*conn, "seq", off, step) == data.substr(off, step));
        REQUIRE(chain->prefetcher()->drain(5.0));  // deterministic: let each prefetch land
    }
    Counters& c = counters();
    const uint64_t reads = data.size() / step;
    CHECK(c.cache_misses.load() == 1);  // only the very first block came from below in the foreground
    CHECK(c.cache_hits.load() == reads - 1);
    CHECK(c.readahead_useful.load() == reads - 1);
    CHECK(c.readahead_grows.load() >= 6);  // 64 KiB -> 4 MiB
    CHECK(c.readahead_resets.load() == 0);
    CHECK(c.readahead_errors.load() == 0);
    struct stat st;
    REQUIRE(::stat((t.root / "seq").c_str(), &st) == 0);
    CHECK(chain->prefetcher()->window_of(st.st_dev, st.st_ino) == 4 << 20);
    // Far fewer filesystem reads than client reads: whole windows at a time.
    CHECK(c.fs_reads.load() < reads / 4);
}

TEST_CASE("readahead 02: a random pattern does not grow the window") {
    ChainRoot t;
    const std::string data = pattern(16 << 20, 7);
    t.write("rnd", data);
    t.settle();
    StoreChain& root = t.open();
    auto conn = root.for_connection();
    auto* chain = static_cast<StoreChain*>(conn.get());
    std::mt19937_64 rng(3);
    const int n = 60;
    for (int i = 0; i < n; ++i) {
        // Offsets at least 1 MiB from the previous read and its window.
        uint64_t off = (static_cast<uint64_t>(i * 37 % n) * (16 << 20) / n) + rng() % 1024;
        REQUIRE(read_range(*conn, "rnd", off, 4096) == data.substr(off, 4096));
        REQUIRE(chain->prefetcher()->drain(5.0));
    }
    Counters& c = counters();
    CHECK(c.readahead_grows.load() == 0);
    CHECK(c.readahead_resets.load() == n - 1);
    CHECK(c.readahead_issued.load() == 1);  // after the first access only: then a seek after a seek
    CHECK(c.readahead_random.load() == n - 1);
    struct stat st;
    REQUIRE(::stat((t.root / "rnd").c_str(), &st) == 0);
    CHECK(chain->prefetcher()->window_of(st.st_dev, st.st_ino) == 64 * KiB);
}

TEST_CASE("readahead 03: a readv is one access: one prefetch, after its last range") {
    ChainRoot t;
    const std::string data = pattern(2 << 20, 8);
    t.write("v", data);
    t.settle();
    StoreChain& root = t.open();
    auto conn = root.for_connection();
    auto* chain = static_cast<StoreChain*>(conn.get());
    OpenFile f;
    REQUIRE(conn->open_read("v", f) == 0);
    std::vector<std::pair<uint64_t, uint64_t>> ranges = {{0, 100}, {300 * KiB, 100}, {600 * KiB, 100}, {900 * KiB, 100}};
    conn->expect_reads(f, ranges);
    for (auto [off, len] : ranges) {
        std::string buf(len, '\0');
        REQUIRE(conn->pread(f, buf.data(), len, off) == static_cast<ssize_t>(len));
        CHECK(buf == data.substr(off, len));
    }
    REQUIRE(chain->prefetcher()->drain(5.0));
    Counters& c = counters();
    CHECK(c.readahead_issued.load() == 1);
    CHECK(c.readahead_resets.load() == 0);  // the gaps inside the readv are not seeks
    // The prefetch covered what follows the last range: a hit now.
    std::string next(4096, '\0');
    uint64_t hits = c.cache_hits.load();
    REQUIRE(conn->pread(f, next.data(), next.size(), 900 * KiB + 100) == 4096);
    CHECK(c.cache_hits.load() == hits + 1);
    CHECK(next == data.substr(900 * KiB + 100, 4096));
}

TEST_CASE("readahead 04: delete and rename drop prefetches: no descriptor of the file survives the call") {
    ChainRoot t;
    t.params.slow_read_delay = 0.05;  // a prefetch is in flight for a while
    t.params.readahead_queue = 4;
    const std::string data = pattern(1 << 20, 9);
    t.write("gone", data);
    t.write("moved", data);
    t.settle();
    StoreChain& root = t.open();
    auto conn = root.for_connection();
    for (const char* name : {"gone", "moved"}) {
        REQUIRE(read_range(*conn, name, 0, 4096) == data.substr(0, 4096));
        REQUIRE(read_range(*conn, name, 4096, 4096) == data.substr(4096, 4096));
        std::string path = (t.root / name).string();
        if (std::string(name) == "gone") {
            REQUIRE(conn->unlink(name) == 0);
        } else {
            REQUIRE(conn->rename(name, "elsewhere") == 0);
            path = (t.root / "elsewhere").string();
        }
        CHECK(open_descriptors_of(path) == 0);
    }
    CHECK(counters().readahead_issued.load() >= 2);
}

TEST_CASE("readahead 05: the thread starts on demand, leaves when idle, and quits when the connection closes") {
    ChainRoot t;
    const std::string data = pattern(1 << 20, 10);
    t.write("f", data);
    t.settle();
    StoreChain& root = t.open();
    Prefetcher::Config cfg;
    cfg.idle_exit_seconds = 0.1;
    FsStore below(t.root.string());  // prefetches read beneath the cache, as in the chain
    Prefetcher p(cfg, below, root.cache());
    CHECK(p.threads_alive() == 0);
    OpenFile f;
    REQUIRE(root.open_read("f", f) == 0);
    p.on_read(f, 0, 4096);
    CHECK(p.threads_alive() == 1);
    REQUIRE(p.drain(5.0));
    for (int i = 0; i < 100 && p.threads_alive(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(p.threads_alive() == 0);  // idle: no thread for a parked connection
    p.on_read(f, 4096, 4096);        // sequential: restarted on demand
    CHECK(p.threads_alive() == 1);
    CHECK(counters().readahead_issued.load() == 2);
    // ~Prefetcher (the connection closing) joins it; ASan/TSan would see a leak or a race.
}

TEST_CASE("readahead 06: CGI mode hints the kernel instead of starting threads") {
    ChainRoot t;
    t.write("f", pattern(1 << 20, 11));
    t.settle();
    auto chain = std::make_unique<StoreChain>(t.params, t.root.string(), ChainMode::Cgi);
    REQUIRE(chain->valid());
    CHECK(chain->for_connection() == nullptr);
    CHECK(read_range(*chain, "f", 0, 8192) == pattern(1 << 20, 11).substr(0, 8192));
    CHECK(counters().readahead_fadvise.load() == 1);
    CHECK(counters().readahead_issued.load() == 0);
    CHECK(chain->prefetcher()->threads_alive() == 0);
}

TEST_CASE("readahead 07: a delete through another chain (another TCP worker) drops this chain's prefetch too") {
    ChainRoot t;
    t.params.slow_read_delay = 0.05;
    const std::string data = pattern(1 << 20, 12);
    t.write("shared", data);
    t.settle();
    StoreChain& root = t.open();
    auto reader = root.for_connection();
    auto writer = root.for_connection();
    REQUIRE(read_range(*reader, "shared", 0, 4096) == data.substr(0, 4096));  // queues a prefetch (50 ms a read)
    REQUIRE(writer->unlink("shared") == 0);
    CHECK(open_descriptors_of((t.root / "shared").string()) == 0);
    CHECK(counters().readahead_issued.load() == 1);
}
