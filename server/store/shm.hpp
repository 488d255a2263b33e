// The shared-memory segment of a served root (docs/store-chain.md#the-shared-segment):
// one named POSIX segment per (user, served root), created by the first soukd
// process that serves the root and attached by every later one (the daemon,
// each SSH session's process, each CGI process). It holds soukd's counters
// (so `soukd stats` sums every process) and the range cache
// (server/store/range_cache.hpp). docs/store-chain.md draws the layout.
//
// Rules: the segment holds offsets from its start, never pointers; it
// begins with magic, layout version, sizes and a checksum of them, and a
// process that finds an incompatible or corrupt segment replaces it (the
// name is unlinked and a fresh one created; processes still attached to the
// old one keep using it until they exit). The lock is a process-shared
// robust mutex: a process killed while holding it costs the others at most
// the cache's contents (Segment::lock reports Recovered and the caller
// wipes), and a holder that is alive but stuck costs a bounded wait (the
// lock has a timeout; callers then read past the cache).
#pragma once

#include <pthread.h>
#include <stdint.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include "server/base/counters.hpp"
#include "transport/fd.hpp"

namespace souk::server::shm {

inline constexpr char kMagic[8] = {'S', 'O', 'U', 'K', 'S', 'H', 'M', '\n'};
// Bump when Header, Chunk or Entry change. The counters' layout is checked
// separately (layout_hash), so appending a counter replaces old segments
// without a bump here.
inline constexpr uint32_t kLayoutVersion = 1;
inline constexpr uint64_t kPage = 4096;

// The first page of the segment. Fields up to `check` are written once by
// the creator; the rest is the cache's mutable state, guarded by `lock`
// (names ending in _locked in range_cache.cpp expect it held).
struct alignas(64) Header {
    char magic[8];
    uint32_t layout_version;
    uint32_t header_bytes;    // sizeof(Header)
    uint64_t layout_hash;     // counters' names and sizes of the shared structs
    uint64_t segment_bytes;   // the whole mapping
    uint64_t block_bytes;     // range cache block size (a power of two)
    uint64_t counters_off, counters_bytes;
    uint64_t table_off, table_slots;  // hash buckets: uint64 entry offsets, 0 = empty
    uint64_t heap_off, heap_bytes;    // the allocator's arena
    uint64_t created_unix_ns;
    int32_t creator_pid;
    uint32_t root_len;
    char root[1024];          // the served root's real path (for stats and the sweep)
    uint64_t check;           // hash of every field above
    std::atomic<uint32_t> ready;  // 0 while the creator initializes, then 1
    uint32_t pad0;
    pthread_mutex_t lock;     // process-shared, robust
    // ---- guarded by lock ----
    uint64_t heap_top;        // bytes of the heap reserved (fallocate) and formatted so far
    uint64_t lru_head, lru_tail;  // entries, most recent first
    uint64_t free_head;       // free chunks, doubly linked
    uint64_t entries, used_bytes, free_bytes, free_chunks;
    uint64_t next_seq;
    uint64_t wipes;
    // Bumped (under the lock) by every wipe; readers that copy after
    // unlocking compare it to the value they pinned under.
    std::atomic<uint64_t> generation;
    // ---- lock-free ----
    // When a process last began sweeping the root for dead writers'
    // temporary files (CLOCK_REALTIME ns; 0 = never). Claimed with a
    // compare-and-swap, so one process sweeps per --temp-sweep-interval.
    std::atomic<int64_t> last_sweep_ns;
};
static_assert(sizeof(Header) <= kPage, "the header must fit its page");
static_assert(offsetof(Header, last_sweep_ns) == 1272, "docs/store-chain.md draws the header");

// A hash of the shared layout this binary expects (counter names, struct
// sizes, layout version). Segments with another value are replaced.
uint64_t layout_hash();

// "/souk.<uid>.<16 hex digits of a hash of the root>": the segment of the
// soukd processes running as `uid` (default: this process's user).
std::string segment_name(const std::string& root_realpath, unsigned uid);
std::string segment_name(const std::string& root_realpath);

class Segment {
public:
    struct Options {
        uint64_t cache_bytes = 64ull << 20;  // the heap (rounded to 64 bytes)
        uint64_t block_bytes = 64 * 1024;
    };
    // Attach the segment of `root_realpath`, creating it when missing and
    // replacing it when incompatible or corrupt. nullptr and *why when the
    // system refuses (no /dev/shm, no space): the caller serves without it.
    static std::unique_ptr<Segment> open(const std::string& root_realpath, const Options& opts, std::string* why);
    // Attach an existing, valid segment only (for `soukd stats`). nullptr
    // and *why when there is none or it is unusable.
    // `uid`: whose segment (the soukd user's; default this process's user).
    static std::unique_ptr<Segment> attach_existing(const std::string& root_realpath, std::string* why);
    static std::unique_ptr<Segment> attach_existing(const std::string& root_realpath, unsigned uid, std::string* why);
    // Unlink the segments of this user whose served root no longer exists
    // (done when creating a segment; bounded). Returns how many.
    static int sweep_orphans(const std::string& keep_name);

    ~Segment();
    Segment(const Segment&) = delete;
    Segment& operator=(const Segment&) = delete;

    Header& header() const { return *reinterpret_cast<Header*>(base_); }
    Counters& counters() const { return *reinterpret_cast<Counters*>(base_ + header().counters_off); }
    char* base() const { return base_; }
    uint64_t size() const { return size_; }
    int fd() const { return fd_.get(); }
    const std::string& name() const { return name_; }
    // Whether this process created (or replaced) the segment.
    bool created() const { return created_; }
    // attach_existing() by a user who may only read it (soukd's group):
    // mapped read-only; counters() may be read, nothing may take the lock.
    bool read_only() const { return read_only_; }
    // The header still carries our magic and layout (a process that
    // scribbled on it, or a replacement, is noticed cheaply).
    bool intact() const;

    enum class Lock { Ok, Recovered, TimedOut, Failed };
    // Take the segment lock within timeout_s seconds. Recovered: the
    // previous holder died holding it; the lock is ours and consistent
    // again, and the caller must reset what it guards (the cache).
    Lock lock(double timeout_s);
    void unlock();
    // Reserve (fallocate) bytes [offset, offset + n) so touching them can
    // never raise SIGBUS on a full /dev/shm. false when there is no room.
    bool reserve(uint64_t offset, uint64_t n);

private:
    Segment() = default;
    bool read_only_ = false;
    io::Fd fd_;
    char* base_ = nullptr;
    uint64_t size_ = 0;
    std::string name_;
    bool created_ = false;
};

}  // namespace souk::server::shm
