// The range cache's data structure in the shared segment (the APC idea;
// docs/conventions.md#shared-memory-holds-offsets-never-pointers;
// docs/store-chain.md draws it): fixed-size blocks of files keyed by file
// identity (device, inode, size, mtime and ctime in nanoseconds) and block
// number, in a hash table of chained entries, allocated from a heap with
// boundary tags and a free list that coalesces neighbours, evicted
// least-recently-used first when the heap is full (never a wipe, except
// after a crash or corruption).
//
// Locking: every public function takes the segment lock for a bounded time
// (a lock timeout is a miss) and functions named *_locked expect it held.
// A hit pins the entry under the lock, copies after unlocking, then checks
// that nothing reused the memory meanwhile (the segment's generation, the
// entry's sequence number, the pin's lease). The unpin is deferred to the
// same thread's next time under the lock (usually the next range of the
// readv), so a hit costs one lock round trip; a pin never released (the
// thread stopped using this cache, or its process died) expires with its
// lease. Eviction is least-recently-used with a second chance (CLOCK): a hit
// only marks its own entry, and the tail gives marked entries another round
// at the head, so hits never touch their neighbours' cache lines. Copy-in on insert
// happens under the lock: one memcpy of at most one block, no I/O, and no
// half-inserted chunk can leak if the inserter dies. Every offset read from
// the segment is bounds-checked; anything inconsistent wipes the cache and
// counts cache_corruptions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "server/store/shm.hpp"

namespace souk::server {

// The identity of a file's contents: if any field changes, cached blocks
// of the old identity are never served again.
struct FileKey {
    uint64_t dev = 0, ino = 0, size = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
    friend bool operator==(const FileKey&, const FileKey&) = default;
};

class RangeCache {
public:
    // `seg` must outlive the cache. lock_timeout_s bounds every wait for
    // the segment lock.
    RangeCache(shm::Segment& seg, double lock_timeout_s);
    // Releases this thread's pending pin (see read()).
    ~RangeCache();
    RangeCache(const RangeCache&) = delete;
    RangeCache& operator=(const RangeCache&) = delete;

    uint64_t block_bytes() const { return block_; }
    shm::Segment& segment() const { return seg_; }

    // If block `block` of `key` is cached with at least from + n bytes, copy
    // bytes [from, from + n) of it to dst and return true. Counts nothing
    // (the caller counts hits and misses).
    bool read(const FileKey& key, uint64_t block, uint64_t from, size_t n, char* dst);
    // Whether the block is cached (readahead skips those).
    bool contains(const FileKey& key, uint64_t block);
    // Cache one block (len bytes: block_bytes, or less for the file's last
    // block). `prefetched`: inserted by readahead (for readahead_useful /
    // readahead_wasted). No-op when already cached. Returns true if cached.
    bool insert(const FileKey& key, uint64_t block, const char* data, size_t len, bool prefetched);

    struct Figures {
        uint64_t entries = 0, capacity = 0, reserved = 0, used = 0, free = 0, free_chunks = 0, largest_free = 0;
        uint64_t block = 0, generation = 0, wipes = 0;
        // 1 - largest free chunk / free bytes: 0 when the free space is one
        // chunk, near 1 when it is scattered in small pieces.
        double fragmentation = 0;
    };
    // A consistent snapshot (taken under the lock). false on lock timeout.
    bool figures(Figures& out);
    // Drop every entry (tests, and `soukd stats --clear`). false on lock timeout.
    bool clear();
    // Walk every structure and check it (tests). "" when sound.
    std::string check();

    // How long a pin protects an entry from eviction; a pin older than this
    // belongs to a process that died or stopped between pin and unpin.
    static constexpr int64_t kPinLeaseNs = 10'000'000'000;

private:
    struct Pin;
    bool lock();  // false: timed out or failed (counted); wipes after a crash
    void unlock();
    // Release the pin of this thread's previous hit (deferred from read()).
    void unpin_pending_locked();
    uint64_t find_locked(const FileKey& key, uint64_t block, uint64_t hash);
    void wipe_locked();
    void corrupt_locked(const char* what);

    shm::Segment& seg_;
    shm::Header& h_;
    char* base_;
    uint64_t block_;
    double lock_timeout_s_;
};

}  // namespace souk::server
