#include "server/store/shm.hpp"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <new>
#include <thread>

#include "protocol/verbs.hpp"
#include "server/base/log.hpp"
#include "server/base/sanitizer.hpp"

namespace souk::server::shm {
namespace {

constexpr uint64_t fnv1a(const char* s, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
    for (size_t i = 0; i < n; ++i) {
        h ^= static_cast<unsigned char>(s[i]);
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t fnv_u64(uint64_t v, uint64_t h) {
    char b[8];
    std::memcpy(b, &v, 8);
    return fnv1a(b, 8, h);
}

// Every counter's name, in order: appending one changes the layout.
#define SOUK_X(name, help) #name ","
constexpr char kCounterNames[] = SOUK_COUNTERS(SOUK_X);
#undef SOUK_X

uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

uint64_t header_check(const Header& h) {
    return fnv1a(reinterpret_cast<const char*>(&h), offsetof(Header, check));
}

int64_t now_unix_ns() {
    struct timespec ts;
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// What is wrong with the header of an open segment of `file_size` bytes
// mapped at `h` (at least one page), or "" when it is ours and sound.
std::string header_problem(const Header& h, uint64_t file_size) {
    if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) return "bad magic";
    if (h.layout_version != kLayoutVersion) return "layout version " + std::to_string(h.layout_version);
    if (h.header_bytes != sizeof(Header) || h.layout_hash != layout_hash()) return "another soukd build's layout";
    if (h.check != header_check(h)) return "header checksum mismatch";
    if (h.segment_bytes != file_size) return "size mismatch";
    auto inside = [&](uint64_t off, uint64_t n) { return off >= kPage && off <= file_size && n <= file_size - off; };
    if (!inside(h.counters_off, h.counters_bytes) || h.counters_bytes < sizeof(Counters) ||
        h.table_slots == 0 || (h.table_slots & (h.table_slots - 1)) || h.table_slots > (1ull << 32) ||
        !inside(h.table_off, h.table_slots * 8) || !inside(h.heap_off, h.heap_bytes) || h.heap_off % kPage ||
        h.block_bytes < 512 || (h.block_bytes & (h.block_bytes - 1)) || h.root_len >= sizeof h.root)
        return "inconsistent offsets";
    return {};
}

bool init_mutex(pthread_mutex_t* m) {
    pthread_mutexattr_t a;
    if (::pthread_mutexattr_init(&a) != 0) return false;
    bool ok = ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) == 0 &&
              ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) == 0 && ::pthread_mutex_init(m, &a) == 0;
    ::pthread_mutexattr_destroy(&a);
    return ok;
}

}  // namespace

uint64_t layout_hash() {
    uint64_t h = fnv1a(kCounterNames, sizeof kCounterNames - 1);
    h = fnv_u64(sizeof(Counters), h);
    h = fnv_u64(proto::kVerbCount, h);
    h = fnv_u64(sizeof(Header), h);
    h = fnv_u64(sizeof(pthread_mutex_t), h);
    return fnv_u64(kLayoutVersion, h);
}

std::string segment_name(const std::string& root_realpath, unsigned uid) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "/souk.%u.%016llx", uid,
                  static_cast<unsigned long long>(fnv1a(root_realpath.data(), root_realpath.size())));
    return buf;
}

std::string segment_name(const std::string& root_realpath) {
    return segment_name(root_realpath, static_cast<unsigned>(::geteuid()));
}

Segment::~Segment() {
    if (base_) ::munmap(base_, size_);
}

bool Segment::intact() const {
    const Header& h = header();
    return std::memcmp(h.magic, kMagic, sizeof kMagic) == 0 && h.layout_version == kLayoutVersion &&
           h.segment_bytes == size_;
}

Segment::Lock Segment::lock(double timeout_s) {
    // Uncontended: no clock reading (clock_gettime is not free everywhere).
    int t = ::pthread_mutex_trylock(&header().lock);
    if (t == 0) return Lock::Ok;
    if (t == EOWNERDEAD) {
        ::pthread_mutex_consistent(&header().lock);
        return Lock::Recovered;
    }
#if defined(SOUK_TSAN)
    // TSan does not intercept pthread_mutex_clocklock (it would not see the
    // lock held); timedlock on the real-time clock is the same to it.
    const clockid_t clock = CLOCK_REALTIME;
#else
    const clockid_t clock = CLOCK_MONOTONIC;  // immune to clock steps
#endif
    struct timespec deadline;
    ::clock_gettime(clock, &deadline);
    int64_t ns = deadline.tv_nsec + static_cast<int64_t>(timeout_s * 1e9);
    deadline.tv_sec += static_cast<time_t>(ns / 1000000000);
    deadline.tv_nsec = static_cast<long>(ns % 1000000000);
    int r;
    do {
#if defined(SOUK_TSAN)
        r = ::pthread_mutex_timedlock(&header().lock, &deadline);
#else
        r = ::pthread_mutex_clocklock(&header().lock, clock, &deadline);
#endif
    } while (r == EINTR);
    switch (r) {
    case 0: return Lock::Ok;
    case EOWNERDEAD:
        // The holder died; what it guarded may be half-changed. The caller
        // resets it; marking the mutex consistent first is safe because
        // nobody else can enter until we unlock.
        ::pthread_mutex_consistent(&header().lock);
        return Lock::Recovered;
    case ETIMEDOUT: return Lock::TimedOut;
    default: return Lock::Failed;  // ENOTRECOVERABLE: never expected (we always mark consistent)
    }
}

void Segment::unlock() { ::pthread_mutex_unlock(&header().lock); }

bool Segment::reserve(uint64_t offset, uint64_t n) {
    if (offset > size_ || n > size_ - offset) return false;
    int r;
    do {
        r = ::posix_fallocate(fd_.get(), static_cast<off_t>(offset), static_cast<off_t>(n));
    } while (r == EINTR);
    return r == 0;
}

std::unique_ptr<Segment> Segment::open(const std::string& root_realpath, const Options& opts, std::string* why) {
    const std::string name = segment_name(root_realpath);
    bool replaced = false;
    for (int attempt = 0; attempt < 6; ++attempt) {  // bounded: each pass attaches, creates, or replaces once
        int fd = ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0) {
            io::Fd f(fd);
            // A creator may still be initializing: wait (bounded) for ready.
            std::string problem;
            for (int wait = 0; wait < 100; ++wait) {  // up to ~1 s
                struct stat st;
                if (::fstat(fd, &st) != 0) {
                    *why = name + ": fstat: " + std::strerror(errno);
                    return nullptr;
                }
                uint64_t size = static_cast<uint64_t>(st.st_size);
                if (size < kPage) {
                    problem = "too small";
                } else {
                    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                    if (p == MAP_FAILED) {
                        *why = name + ": mmap: " + std::strerror(errno);
                        return nullptr;
                    }
                    auto* h = static_cast<Header*>(p);
                    static const char kZero[sizeof kMagic] = {};
                    bool ready = h->ready.load(std::memory_order_acquire) == 1;
                    bool zero_magic = std::memcmp(h->magic, kZero, sizeof kZero) == 0;
                    problem = ready ? header_problem(*h, size)
                              : (zero_magic || std::memcmp(h->magic, kMagic, sizeof kMagic) == 0)
                                  ? "being initialized"
                                  : "bad magic";
                    if (ready && problem.empty()) {
                        std::unique_ptr<Segment> s(new Segment());
                        s->fd_ = std::move(f);
                        s->base_ = static_cast<char*>(p);
                        s->size_ = size;
                        s->name_ = name;
                        return s;
                    }
                    ::munmap(p, size);
                }
                // A creator between shm_open and publishing `ready` is worth
                // waiting for (bounded: a creator that died is replaced);
                // anything else is replaced at once.
                if (problem != "being initialized" && problem != "too small") break;
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
            SOUK_LOG(Warn, "shared segment %s (root %s): %s; replacing it", name.c_str(), root_realpath.c_str(),
                     problem.c_str());
            ::shm_unlink(name.c_str());
            replaced = true;
            continue;
        }
        if (errno != ENOENT) {
            *why = name + ": shm_open: " + std::strerror(errno);
            return nullptr;
        }
        // Create it. O_EXCL: of several processes starting at once, one
        // creates and the others attach (next pass).
        fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            if (errno == EEXIST) continue;
            *why = name + ": shm_open: " + std::strerror(errno);
            return nullptr;
        }
        io::Fd f(fd);
        // Readable by soukd's group whatever the umask, so an admin in it
        // can run `soukd stats` (docs/metrics.md#who-can-read-the-counters).
        ::fchmod(fd, 0640);
        const uint64_t block = opts.block_bytes;
        const uint64_t heap_bytes = round_up(std::max<uint64_t>(opts.cache_bytes, 1 << 20), 64);
        uint64_t slots = 1024;
        while (slots < 2 * (heap_bytes / block) && slots < (1ull << 30)) slots *= 2;
        const uint64_t counters_off = kPage;
        const uint64_t counters_bytes = round_up(sizeof(Counters), kPage);
        const uint64_t table_off = counters_off + counters_bytes;
        const uint64_t heap_off = round_up(table_off + slots * 8, kPage);
        const uint64_t total = heap_off + heap_bytes;
        auto fail = [&](const char* what) {
            *why = name + ": " + what + ": " + std::strerror(errno);
            ::shm_unlink(name.c_str());
            return nullptr;
        };
        if (::ftruncate(fd, static_cast<off_t>(total)) != 0) return fail("ftruncate");
        // Reserve the fixed part now; the heap is reserved as it grows
        // (range_cache.cpp), so an idle root costs a few pages.
        int r = ::posix_fallocate(fd, 0, static_cast<off_t>(heap_off));
        if (r != 0) {
            errno = r;
            return fail("posix_fallocate");
        }
        void* p = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) return fail("mmap");
        std::unique_ptr<Segment> s(new Segment());
        s->fd_ = std::move(f);
        s->base_ = static_cast<char*>(p);
        s->size_ = total;
        s->name_ = name;
        s->created_ = true;
        // Fresh shared memory is zero: fill in the header, then the
        // counters (atomics constructed in place), then publish `ready`.
        auto* h = new (p) Header{};
        h->layout_version = kLayoutVersion;
        h->header_bytes = sizeof(Header);
        h->layout_hash = layout_hash();
        h->segment_bytes = total;
        h->block_bytes = block;
        h->counters_off = counters_off;
        h->counters_bytes = counters_bytes;
        h->table_off = table_off;
        h->table_slots = slots;
        h->heap_off = heap_off;
        h->heap_bytes = heap_bytes;
        h->created_unix_ns = static_cast<uint64_t>(now_unix_ns());
        h->creator_pid = static_cast<int32_t>(::getpid());
        h->root_len = static_cast<uint32_t>(std::min(root_realpath.size(), sizeof h->root - 1));
        std::memcpy(h->root, root_realpath.data(), h->root_len);
        std::memcpy(h->magic, kMagic, sizeof kMagic);
        h->check = header_check(*h);
        if (!init_mutex(&h->lock)) {
            errno = EINVAL;
            return fail("pthread_mutex_init");
        }
        new (s->base_ + counters_off) Counters{};
        // Attachers wait for this (acquire): everything above is visible to them.
        h->ready.store(1, std::memory_order_release);
        count(s->counters().shm_segments_created);
        if (replaced) count(s->counters().shm_segments_replaced);
        int swept = sweep_orphans(name);
        SOUK_LOG(Info, "shared segment %s created for %s (%llu bytes of cache%s)", name.c_str(),
                 root_realpath.c_str(), static_cast<unsigned long long>(heap_bytes),
                 swept ? "; removed segments of vanished roots" : "");
        return s;
    }
    *why = name + ": could neither attach nor create it (contention with other processes)";
    return nullptr;
}

std::unique_ptr<Segment> Segment::attach_existing(const std::string& root_realpath, std::string* why) {
    return attach_existing(root_realpath, static_cast<unsigned>(::geteuid()), why);
}

std::unique_ptr<Segment> Segment::attach_existing(const std::string& root_realpath, unsigned uid, std::string* why) {
    const std::string name = segment_name(root_realpath, uid);
    int fd = ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
    bool read_only = false;
    if (fd < 0 && errno == EACCES) {  // a user of soukd's group, not soukd's user
        fd = ::shm_open(name.c_str(), O_RDONLY | O_CLOEXEC, 0);
        read_only = true;
    }
    if (fd < 0) {
        *why = errno == ENOENT ? "no soukd process has served " + root_realpath + " (no segment " + name + ")"
                               : name + ": " + std::strerror(errno);
        return nullptr;
    }
    io::Fd f(fd);
    struct stat st;
    if (::fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) < kPage) {
        *why = name + ": not a soukd segment";
        return nullptr;
    }
    uint64_t size = static_cast<uint64_t>(st.st_size);
    void* p = ::mmap(nullptr, size, read_only ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        *why = name + ": mmap: " + std::strerror(errno);
        return nullptr;
    }
    auto* h = static_cast<Header*>(p);
    std::string problem = header_problem(*h, size);
    if (problem.empty() && h->ready.load(std::memory_order_acquire) != 1) problem = "not initialized";
    if (!problem.empty()) {
        ::munmap(p, size);
        *why = name + ": " + problem + " (the next soukd serving the root replaces it)";
        return nullptr;
    }
    std::unique_ptr<Segment> s(new Segment());
    s->fd_ = std::move(f);
    s->base_ = static_cast<char*>(p);
    s->size_ = size;
    s->name_ = name;
    s->read_only_ = read_only;
    return s;
}

int Segment::sweep_orphans(const std::string& keep_name) {
    DIR* d = ::opendir("/dev/shm");
    if (!d) return 0;
    const std::string prefix = "souk." + std::to_string(::geteuid()) + ".";
    int removed = 0, seen = 0;
    while (struct dirent* e = ::readdir(d)) {
        if (++seen > 4096) break;
        std::string n = e->d_name;
        if (n.rfind(prefix, 0) != 0 || "/" + n == keep_name) continue;
        int fd = ::shm_open(("/" + n).c_str(), O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0) continue;
        io::Fd f(fd);
        struct stat st;
        if (::fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) < kPage || st.st_uid != ::geteuid()) continue;
        void* p = ::mmap(nullptr, kPage, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) continue;
        const auto* h = static_cast<const Header*>(p);
        bool ours = std::memcmp(h->magic, kMagic, sizeof kMagic) == 0 && h->root_len < sizeof h->root;
        std::string root = ours ? std::string(h->root, h->root_len) : std::string();
        ::munmap(p, kPage);
        struct stat rs;
        if (ours && !root.empty() && ::stat(root.c_str(), &rs) != 0 && errno == ENOENT) {
            ::shm_unlink(("/" + n).c_str());
            ++removed;
        }
    }
    ::closedir(d);
    return removed;
}

}  // namespace souk::server::shm
