#include "server/store/range_cache.hpp"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#include "server/base/log.hpp"
#include "server/base/sanitizer.hpp"

namespace souk::server {
namespace {

constexpr uint64_t kAlign = 64;
constexpr uint32_t kChunkUsed = 0x55534544;  // "USED"
constexpr uint32_t kChunkFree = 0x46524545;  // "FREE"
constexpr uint32_t kChunkEnd = 0x454e4421;   // "END!": the sentinel after the last chunk
constexpr uint32_t kEntryMagic = 0x424c4b21; // "BLK!"
// Grow the reserved heap this much at a time (fallocate under the lock:
// tmpfs pages, no disk I/O), so an idle root costs little memory.
constexpr uint64_t kGrowStep = 4ull << 20;
constexpr uint64_t kFirstStep = 1ull << 20;
// Do not split off a remainder smaller than this.
constexpr uint64_t kMinSplit = 256;

constexpr uint32_t kPrefetched = 1;  // inserted by readahead and not hit yet
constexpr uint32_t kReferenced = 2;  // hit since it last passed the LRU tail (second chance)

// Every chunk of the heap starts with this; free chunks are doubly linked.
struct Chunk {
    uint64_t size;       // the whole chunk, this header included; a multiple of kAlign
    uint64_t prev_size;  // size of the chunk just before it (boundary tag); 0 for the first
    uint32_t magic;      // kChunkUsed, kChunkFree or kChunkEnd
    uint32_t pad0;
    uint64_t next_free, prev_free;
    uint64_t pad1[3];
};
static_assert(sizeof(Chunk) == kAlign);

// A cached block: lives right after its used chunk's header, data after it.
struct Entry {
    uint64_t dev, ino, size;
    int64_t mtime_ns, ctime_ns;
    uint64_t block;
    uint64_t hash;
    uint64_t seq;  // unique per insertion; 0 once evicted (read with atomic_ref)
    uint64_t hash_prev, hash_next;
    uint64_t lru_prev, lru_next;
    int64_t pinned_at_ns;  // CLOCK_MONOTONIC_COARSE (system-wide) of the latest pin
    uint32_t length, pins;
    uint32_t flags, magic;  // kEntryMagic while in the table; 0 once evicted
    uint64_t pad1;
};
static_assert(sizeof(Entry) == 2 * kAlign);
constexpr uint64_t kEntryOverhead = sizeof(Chunk) + sizeof(Entry);

uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

// Pin leases are seconds long: the coarse clock (one tick of error, a cheap
// vDSO read) is plenty, and it is system-wide like CLOCK_MONOTONIC.
int64_t mono_ns() {
    struct timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 29);
}

uint64_t hash_of(const FileKey& k, uint64_t block) {
    uint64_t h = mix(0x736f756b, k.dev);
    h = mix(h, k.ino);
    h = mix(h, k.size);
    h = mix(h, static_cast<uint64_t>(k.mtime_ns));
    h = mix(h, static_cast<uint64_t>(k.ctime_ns));
    return mix(h, block) | 1;  // never 0
}

bool same(const Entry& e, const FileKey& k, uint64_t block) {
    return e.block == block && e.ino == k.ino && e.dev == k.dev && e.size == k.size && e.mtime_ns == k.mtime_ns &&
           e.ctime_ns == k.ctime_ns;
}

// Thrown inside a locked operation when an offset or magic is wrong; caught
// by the same function, which wipes the cache. Never crosses a thread or
// the module.
struct Corrupt {
    const char* what;
};

// Typed access to the heap with every offset checked (Corrupt if wrong).
class Heap {
public:
    explicit Heap(shm::Segment& s) : base_(s.base()), h_(s.header()) {}

    bool in_heap(uint64_t off, uint64_t n) const {
        return off >= h_.heap_off && off % kAlign == 0 && off - h_.heap_off <= h_.heap_top &&
               n <= h_.heap_top - (off - h_.heap_off);
    }
    Chunk& chunk(uint64_t off) const {
        if (!in_heap(off, sizeof(Chunk))) throw Corrupt{"chunk offset outside the heap"};
        auto& c = *reinterpret_cast<Chunk*>(base_ + off);
        if (c.magic != kChunkUsed && c.magic != kChunkFree && c.magic != kChunkEnd) throw Corrupt{"bad chunk magic"};
        if (c.magic != kChunkEnd && (c.size < kAlign || c.size % kAlign || !in_heap(off, c.size)))
            throw Corrupt{"bad chunk size"};
        return c;
    }
    Chunk& free_chunk(uint64_t off) const {
        Chunk& c = chunk(off);
        if (c.magic != kChunkFree) throw Corrupt{"free list names a chunk that is not free"};
        return c;
    }
    // An entry of the table. Checked by its own magic and bounds only: the
    // lookup path must not touch the chunk header's cache line as well.
    Entry& entry(uint64_t off) const {
        if (off < sizeof(Chunk) || !in_heap(off - sizeof(Chunk), kEntryOverhead))
            throw Corrupt{"entry offset outside the heap"};
        Entry& e = *reinterpret_cast<Entry*>(base_ + off);
        // Touch it first with a write (that changes nothing; we hold the
        // lock): a write fault maps this one page, where a read fault maps
        // the 16 around it (the kernel's fault-around), which for entries
        // a block apart are other blocks' data. A process that lives for
        // one request (CGI) pays for every page it maps, and unmaps them
        // all at exit: 0.1 ms of a 64-range readv (docs/protocol/http.md#what-a-cgi-request-costs).
        std::atomic_ref<uint32_t>(e.magic).fetch_or(0, std::memory_order_relaxed);
        if (e.magic != kEntryMagic) throw Corrupt{"bad entry magic"};
        if (e.length > h_.block_bytes || !in_heap(off - sizeof(Chunk), kEntryOverhead + e.length))
            throw Corrupt{"entry longer than the heap allows"};
        return e;
    }
    char* data(uint64_t entry_off) const { return base_ + entry_off + sizeof(Entry); }
    uint64_t* table() const { return reinterpret_cast<uint64_t*>(base_ + h_.table_off); }
    uint64_t off_of(const void* p) const { return static_cast<uint64_t>(static_cast<const char*>(p) - base_); }

private:
    char* base_;
    shm::Header& h_;
};

// ---- free list (all _locked) ----

void freelist_push_locked(shm::Header& h, const Heap& heap, uint64_t off) {
    Chunk& c = heap.chunk(off);
    c.magic = kChunkFree;
    c.prev_free = 0;
    c.next_free = h.free_head;
    if (h.free_head) heap.free_chunk(h.free_head).prev_free = off;
    h.free_head = off;
    h.free_bytes += c.size;
    h.free_chunks += 1;
}

void freelist_remove_locked(shm::Header& h, const Heap& heap, uint64_t off) {
    Chunk& c = heap.free_chunk(off);
    if (c.prev_free) heap.free_chunk(c.prev_free).next_free = c.next_free;
    else if (h.free_head == off) h.free_head = c.next_free;
    else throw Corrupt{"free chunk not on the free list"};
    if (c.next_free) heap.free_chunk(c.next_free).prev_free = c.prev_free;
    if (h.free_bytes < c.size || h.free_chunks == 0) throw Corrupt{"free accounting"};
    h.free_bytes -= c.size;
    h.free_chunks -= 1;
    c.next_free = c.prev_free = 0;
}

// Return chunk `off` to the free list, merged with free neighbours.
// Returns the offset of the (possibly merged) free chunk.
uint64_t release_chunk_locked(shm::Header& h, const Heap& heap, uint64_t off) {
    Chunk* c = &heap.chunk(off);
    uint64_t next_off = off + c->size;
    Chunk& next = heap.chunk(next_off);
    if (next.magic == kChunkFree) {
        freelist_remove_locked(h, heap, next_off);
        c->size += next.size;
        next.magic = 0;
    }
    if (c->prev_size) {
        uint64_t prev_off = off - c->prev_size;
        Chunk& prev = heap.chunk(prev_off);
        if (prev.size != c->prev_size) throw Corrupt{"boundary tag mismatch"};
        if (prev.magic == kChunkFree) {
            freelist_remove_locked(h, heap, prev_off);
            prev.size += c->size;
            c->magic = 0;
            c = &prev;
            off = prev_off;
        }
    }
    heap.chunk(off + c->size).prev_size = c->size;
    freelist_push_locked(h, heap, off);
    return off;
}

// Take `need` bytes from free chunk `off` (removed from the list by the
// caller), splitting off the rest when it is worth keeping.
void carve_locked(shm::Header& h, const Heap& heap, uint64_t off, uint64_t need) {
    Chunk& c = heap.chunk(off);
    if (c.size >= need + kMinSplit) {
        uint64_t rest_off = off + need;
        auto& rest = *reinterpret_cast<Chunk*>(reinterpret_cast<char*>(&c) + need);
        rest = Chunk{};
        rest.size = c.size - need;
        rest.prev_size = need;
        rest.magic = kChunkFree;
        c.size = need;
        heap.chunk(rest_off + rest.size).prev_size = rest.size;
        freelist_push_locked(h, heap, rest_off);
    }
    c.magic = kChunkUsed;
    h.used_bytes += c.size;
}

// Lay out the reserved heap [0, heap_top) as one free chunk and the end
// sentinel (a fresh heap, or after a wipe).
void format_locked(shm::Header& h, const Heap& heap, char* base) {
    h.free_head = 0;
    h.free_bytes = h.free_chunks = h.used_bytes = 0;
    if (h.heap_top < 2 * kAlign + kMinSplit) return;
    auto& first = *reinterpret_cast<Chunk*>(base + h.heap_off);
    first = Chunk{};
    first.size = h.heap_top - kAlign;
    first.magic = kChunkFree;
    auto& end = *reinterpret_cast<Chunk*>(base + h.heap_off + first.size);
    end = Chunk{};
    end.size = kAlign;
    end.prev_size = first.size;
    end.magic = kChunkEnd;
    freelist_push_locked(h, heap, h.heap_off);
}

// The hit this thread pinned last and has not unpinned yet (see read()).
struct PendingUnpin {
    const RangeCache* cache = nullptr;
    uint64_t created = 0;  // the segment's birth: a new cache at a reused address is not it
    uint64_t off = 0, gen = 0;
    int64_t pinned_at = 0;
};
thread_local PendingUnpin t_pending;

}  // namespace

RangeCache::RangeCache(shm::Segment& seg, double lock_timeout_s)
    : seg_(seg), h_(seg.header()), base_(seg.base()), block_(seg.header().block_bytes), lock_timeout_s_(lock_timeout_s) {}

bool RangeCache::lock() {
    if (!seg_.intact()) return false;  // scribbled on: serve past it (a new process replaces it)
    switch (seg_.lock(lock_timeout_s_)) {
    case shm::Segment::Lock::Ok: return true;
    case shm::Segment::Lock::Recovered:
        SOUK_LOG(Warn, "range cache %s: a process died holding the lock; cache emptied", seg_.name().c_str());
        count(seg_.counters().cache_lock_recoveries);
        wipe_locked();
        return true;
    case shm::Segment::Lock::TimedOut: count(seg_.counters().cache_lock_timeouts); return false;
    case shm::Segment::Lock::Failed: count(seg_.counters().cache_lock_timeouts); return false;
    }
    return false;
}

void RangeCache::unlock() { seg_.unlock(); }

void RangeCache::wipe_locked() {
    // Readers that pinned before this see the generation change and
    // discard what they copied.
    h_.generation.fetch_add(1, std::memory_order_acq_rel);
    std::memset(base_ + h_.table_off, 0, h_.table_slots * 8);
    h_.lru_head = h_.lru_tail = 0;
    h_.entries = 0;
    h_.wipes += 1;
    // The reservation itself survives; only a nonsensical top is dropped
    // (reserving again is harmless).
    if (h_.heap_top > h_.heap_bytes || h_.heap_top % kAlign) h_.heap_top = 0;
    Heap heap(seg_);
    try {
        format_locked(h_, heap, base_);
    } catch (const Corrupt&) {
        h_.heap_top = 0;  // cannot happen on a fresh layout; start over from nothing
        h_.free_head = h_.free_bytes = h_.free_chunks = h_.used_bytes = 0;
    }
}

void RangeCache::corrupt_locked(const char* what) {
    SOUK_LOG(Warn, "range cache %s: %s; cache emptied", seg_.name().c_str(), what);
    count(seg_.counters().cache_corruptions);
    wipe_locked();
}

uint64_t RangeCache::find_locked(const FileKey& key, uint64_t block, uint64_t hash) {
    Heap heap(seg_);
    uint64_t off = heap.table()[hash & (h_.table_slots - 1)];
    for (uint64_t steps = 0; off; ++steps) {
        if (steps > h_.entries) throw Corrupt{"hash chain longer than the entry count"};
        Entry& e = heap.entry(off);
        if (e.hash == hash && same(e, key, block)) return off;
        off = e.hash_next;
    }
    return 0;
}

bool RangeCache::read(const FileKey& key, uint64_t block, uint64_t from, size_t n, char* dst) {
    const uint64_t hash = hash_of(key, block);
    if (!lock()) return false;
    uint64_t off = 0, seq = 0, gen = 0;
    int64_t pinned_at = 0;
    Heap heap(seg_);
    try {
        unpin_pending_locked();
        off = find_locked(key, block, hash);
        if (off) {
            Entry& e = heap.entry(off);
            if (e.length < from + n) {
                off = 0;
            } else {
                // Pin, and mark it used: eviction gives it a second chance
                // (CLOCK), so a hit touches only its own entry, never its
                // LRU neighbours' cache lines.
                pinned_at = mono_ns();
                e.pins += 1;
                e.pinned_at_ns = pinned_at;
                e.flags |= kReferenced;
                if (e.flags & kPrefetched) {
                    e.flags &= ~kPrefetched;
                    count(seg_.counters().readahead_useful);
                }
                seq = std::atomic_ref<uint64_t>(e.seq).load(std::memory_order_relaxed);
                gen = h_.generation.load(std::memory_order_relaxed);
            }
        }
    } catch (const Corrupt& c) {
        corrupt_locked(c.what);
        off = 0;
    }
    unlock();
    if (!off) return false;

    // Copy after unlocking, then check nothing reused it
    // (docs/conventions.md#shared-memory-holds-offsets-never-pointers).
    Entry& e = *reinterpret_cast<Entry*>(base_ + off);
    std::memcpy(dst, heap.data(off) + from, n);
    // The checks below must not be ordered before the copy's loads (the
    // seqlock reader's fence). TSan has no fences: an RMW orders the same.
#if defined(SOUK_TSAN)
    const uint64_t seq_now = std::atomic_ref<uint64_t>(e.seq).fetch_add(0, std::memory_order_acq_rel);
#else
    std::atomic_thread_fence(std::memory_order_acquire);
    const uint64_t seq_now = std::atomic_ref<uint64_t>(e.seq).load(std::memory_order_relaxed);
#endif
    const bool in_lease = mono_ns() - pinned_at < kPinLeaseNs / 2;
    bool ok = in_lease && h_.generation.load(std::memory_order_acquire) == gen && seq_now == seq;
    // The unpin waits for this thread's next time under the lock (usually
    // the next range of the same readv): one lock round trip per hit.
    if (t_pending.cache && t_pending.cache != this) count(seg_.counters().cache_pins_leased);
    t_pending = PendingUnpin{this, h_.created_unix_ns, off, gen, pinned_at};
    if (!ok) count(seg_.counters().cache_copy_retries);
    return ok;
}

void RangeCache::unpin_pending_locked() {
    if (t_pending.cache != this) return;  // another cache's (or none): never touched here
    const PendingUnpin p = t_pending;
    if (p.created != h_.created_unix_ns) {
        t_pending = PendingUnpin{};
        return;
    }
    t_pending = PendingUnpin{};
    // Not if a wipe (generation) or an expired lease may have reused it.
    if (mono_ns() - p.pinned_at >= kPinLeaseNs / 2 || h_.generation.load(std::memory_order_relaxed) != p.gen) {
        count(seg_.counters().cache_pins_leased);
        return;
    }
    Entry& e = Heap(seg_).entry(p.off);  // pinned: still this entry
    if (e.pins > 0) e.pins -= 1;
}

RangeCache::~RangeCache() {
    if (t_pending.cache != this) return;
    if (lock()) {
        try {
            unpin_pending_locked();
        } catch (const Corrupt& c) {
            corrupt_locked(c.what);
        }
        unlock();
    }
    t_pending = PendingUnpin{};
}

bool RangeCache::contains(const FileKey& key, uint64_t block) {
    const uint64_t hash = hash_of(key, block);
    if (!lock()) return false;
    bool found = false;
    try {
        unpin_pending_locked();
        found = find_locked(key, block, hash) != 0;
    } catch (const Corrupt& c) {
        corrupt_locked(c.what);
    }
    unlock();
    return found;
}

bool RangeCache::insert(const FileKey& key, uint64_t block, const char* data, size_t len, bool prefetched) {
    if (len == 0 || len > block_) return false;
    const uint64_t hash = hash_of(key, block);
    const uint64_t need = round_up(kEntryOverhead + len, kAlign);
    if (!lock()) return false;
    Counters& ctr = seg_.counters();
    Heap heap(seg_);
    bool cached = false;
    try {
        unpin_pending_locked();
        if (find_locked(key, block, hash)) {
            unlock();
            return true;
        }
        if (h_.heap_top == 0) {
            // First use: reserve and lay out the first piece of the heap.
            uint64_t step = std::min(h_.heap_bytes, kFirstStep);
            if (seg_.reserve(h_.heap_off, step)) {
                h_.heap_top = step;
                format_locked(h_, heap, base_);
            }
        }
        uint64_t got = 0;
        // 1. First fit from the free list (bounded by its length).
        uint64_t off = h_.free_head;
        for (uint64_t steps = 0; off; ++steps) {
            if (steps > h_.free_chunks) throw Corrupt{"free list longer than its count"};
            Chunk& c = heap.free_chunk(off);
            if (c.size >= need) {
                got = off;
                break;
            }
            off = c.next_free;
        }
        // 2. Grow the reserved heap while it is smaller than --cache-size.
        if (!got && h_.heap_top < h_.heap_bytes && h_.heap_top >= 2 * kAlign) {
            uint64_t step = std::min(h_.heap_bytes - h_.heap_top, std::max(kGrowStep, round_up(need + kAlign, kAlign)));
            step -= step % kAlign;
            if (step >= need && seg_.reserve(h_.heap_off + h_.heap_top, step)) {
                // The old sentinel becomes the start of a free chunk that
                // covers the new space; a new sentinel ends it.
                uint64_t at = h_.heap_off + h_.heap_top - kAlign;
                Chunk& old_end = heap.chunk(at);
                if (old_end.magic != kChunkEnd) throw Corrupt{"heap does not end with its sentinel"};
                uint64_t prev_size = old_end.prev_size;
                h_.heap_top += step;
                auto& end = *reinterpret_cast<Chunk*>(base_ + h_.heap_off + h_.heap_top - kAlign);
                end = Chunk{};
                end.size = kAlign;
                end.magic = kChunkEnd;
                old_end = Chunk{};
                old_end.size = step;
                old_end.prev_size = prev_size;
                old_end.magic = kChunkUsed;
                uint64_t merged = release_chunk_locked(h_, heap, at);
                if (heap.chunk(merged).size >= need) got = merged;
            }
        }
        // 3. Evict least recently used entries until a chunk is big enough.
        const int64_t now = mono_ns();
        uint64_t victim = h_.lru_tail;
        const uint64_t limit = 2 * h_.entries + 2;  // two laps of the list at most
        int laps = 0;
        for (uint64_t steps = 0; !got; ++steps) {
            if (!victim) {
                // Past the head: the entries moved there lost their mark;
                // one more lap finds them (or only pinned ones remain).
                if (++laps > 1 || !h_.lru_tail) break;
                victim = h_.lru_tail;
            }
            if (steps > limit) throw Corrupt{"LRU list longer than the entry count"};
            Entry& e = heap.entry(victim);
            uint64_t prev = e.lru_prev;
            if (e.pins > 0 && now - e.pinned_at_ns < kPinLeaseNs) {
                victim = prev;  // in use by a reader: skip it
                continue;
            }
            if (e.flags & kReferenced) {
                // Used since it last came here: clear the mark, move it to the head.
                e.flags &= ~kReferenced;
                if (h_.lru_head != victim) {
                    if (e.lru_prev) heap.entry(e.lru_prev).lru_next = e.lru_next;
                    if (e.lru_next) heap.entry(e.lru_next).lru_prev = e.lru_prev;
                    else h_.lru_tail = e.lru_prev;
                    e.lru_prev = 0;
                    e.lru_next = h_.lru_head;
                    heap.entry(h_.lru_head).lru_prev = victim;
                    h_.lru_head = victim;
                }
                victim = prev;
                continue;
            }
            // Unlink from its bucket and from the LRU list.
            if (e.hash_prev) heap.entry(e.hash_prev).hash_next = e.hash_next;
            else heap.table()[e.hash & (h_.table_slots - 1)] = e.hash_next;
            if (e.hash_next) heap.entry(e.hash_next).hash_prev = e.hash_prev;
            if (e.lru_prev) heap.entry(e.lru_prev).lru_next = e.lru_next;
            else h_.lru_head = e.lru_next;
            if (e.lru_next) heap.entry(e.lru_next).lru_prev = e.lru_prev;
            else h_.lru_tail = e.lru_prev;
            if (e.flags & kPrefetched) count(ctr.readahead_wasted);
            std::atomic_ref<uint64_t>(e.seq).store(0, std::memory_order_release);
            e.magic = 0;
            uint64_t chunk_off = victim - sizeof(Chunk);
            Chunk& c = heap.chunk(chunk_off);
            if (h_.used_bytes < c.size || h_.entries == 0) throw Corrupt{"used accounting"};
            h_.used_bytes -= c.size;
            h_.entries -= 1;
            count(ctr.cache_evictions);
            uint64_t merged = release_chunk_locked(h_, heap, chunk_off);
            if (heap.chunk(merged).size >= need) got = merged;
            victim = prev;
            // `prev` may have been merged away only if it was free, and
            // entries are never free: it is still a valid entry.
        }
        if (!got) {
            count(ctr.cache_insert_failures);
        } else {
            freelist_remove_locked(h_, heap, got);
            carve_locked(h_, heap, got, need);
            uint64_t eoff = got + sizeof(Chunk);
            auto& e = *reinterpret_cast<Entry*>(base_ + eoff);
            e = Entry{};
            e.dev = key.dev;
            e.ino = key.ino;
            e.size = key.size;
            e.mtime_ns = key.mtime_ns;
            e.ctime_ns = key.ctime_ns;
            e.block = block;
            e.hash = hash;
            e.length = static_cast<uint32_t>(len);
            e.flags = prefetched ? kPrefetched : 0;
            e.magic = kEntryMagic;
            std::memcpy(heap.data(eoff), data, len);
            std::atomic_ref<uint64_t>(e.seq).store(++h_.next_seq, std::memory_order_release);
            uint64_t& bucket = heap.table()[hash & (h_.table_slots - 1)];
            e.hash_next = bucket;
            if (bucket) heap.entry(bucket).hash_prev = eoff;
            bucket = eoff;
            e.lru_next = h_.lru_head;
            if (h_.lru_head) heap.entry(h_.lru_head).lru_prev = eoff;
            h_.lru_head = eoff;
            if (!h_.lru_tail) h_.lru_tail = eoff;
            h_.entries += 1;
            count(ctr.cache_inserts);
            count(ctr.cache_insert_bytes, len);
            cached = true;
        }
    } catch (const Corrupt& c) {
        corrupt_locked(c.what);
        cached = false;
    }
    unlock();
    return cached;
}

bool RangeCache::figures(Figures& out) {
    if (!lock()) return false;
    out = Figures{};
    out.entries = h_.entries;
    out.capacity = h_.heap_bytes;
    out.reserved = h_.heap_top;
    out.used = h_.used_bytes;
    out.free = h_.free_bytes + (h_.heap_bytes - h_.heap_top);
    out.free_chunks = h_.free_chunks;
    out.block = h_.block_bytes;
    out.generation = h_.generation.load(std::memory_order_relaxed);
    out.wipes = h_.wipes;
    Heap heap(seg_);
    try {
        unpin_pending_locked();
        uint64_t off = h_.free_head;
        for (uint64_t steps = 0; off; ++steps) {
            if (steps > h_.free_chunks) throw Corrupt{"free list longer than its count"};
            Chunk& c = heap.free_chunk(off);
            out.largest_free = std::max(out.largest_free, c.size);
            off = c.next_free;
        }
        // Unreserved space at the top continues the last chunk when that
        // one is free (the heap grows into it): together they are one piece.
        uint64_t top_piece = h_.heap_bytes - h_.heap_top;
        if (h_.heap_top) {
            Chunk& end = heap.chunk(h_.heap_off + h_.heap_top - kAlign);
            if (end.prev_size && heap.chunk(h_.heap_off + h_.heap_top - kAlign - end.prev_size).magic == kChunkFree)
                top_piece += end.prev_size;
        }
        out.largest_free = std::max(out.largest_free, top_piece);
    } catch (const Corrupt& c) {
        corrupt_locked(c.what);
    }
    unlock();
    out.fragmentation = out.free ? 1.0 - static_cast<double>(out.largest_free) / static_cast<double>(out.free) : 0.0;
    if (out.fragmentation < 0) out.fragmentation = 0;
    return true;
}

bool RangeCache::clear() {
    if (!lock()) return false;
    wipe_locked();
    unlock();
    return true;
}

std::string RangeCache::check() {
    if (!lock()) return "lock timed out";
    std::string why;
    Heap heap(seg_);
    try {
        // Physical walk: tags agree, no two free chunks touch, totals match.
        uint64_t used = 0, free_bytes = 0, free_chunks = 0, used_chunks = 0, prev_size = 0;
        bool prev_free = false;
        if (h_.heap_top) {
            uint64_t off = h_.heap_off;
            for (uint64_t steps = 0;; ++steps) {
                if (steps > h_.heap_top / kAlign) throw Corrupt{"heap walk does not end"};
                Chunk& c = heap.chunk(off);
                if (c.prev_size != prev_size) throw Corrupt{"boundary tag mismatch"};
                if (c.magic == kChunkEnd) {
                    if (off + kAlign != h_.heap_off + h_.heap_top) throw Corrupt{"sentinel not at the top"};
                    break;
                }
                if (c.magic == kChunkFree) {
                    if (prev_free) throw Corrupt{"two free chunks touch (not coalesced)"};
                    free_bytes += c.size;
                    ++free_chunks;
                } else {
                    used += c.size;
                    ++used_chunks;
                }
                prev_free = c.magic == kChunkFree;
                prev_size = c.size;
                off += c.size;
            }
        }
        if (free_bytes != h_.free_bytes || free_chunks != h_.free_chunks) throw Corrupt{"free totals disagree"};
        if (used != h_.used_bytes || used_chunks != h_.entries) throw Corrupt{"used totals disagree"};
        uint64_t listed = 0;
        for (uint64_t off = h_.free_head; off; off = heap.free_chunk(off).next_free)
            if (++listed > free_chunks) throw Corrupt{"free list too long"};
        if (listed != free_chunks) throw Corrupt{"free list too short"};
        uint64_t lru = 0, back = 0;
        for (uint64_t off = h_.lru_head; off; off = heap.entry(off).lru_next)
            if (++lru > h_.entries) throw Corrupt{"LRU list too long"};
        for (uint64_t off = h_.lru_tail; off; off = heap.entry(off).lru_prev)
            if (++back > h_.entries) throw Corrupt{"LRU list too long backwards"};
        if (lru != h_.entries || back != h_.entries) throw Corrupt{"LRU list length disagrees"};
        uint64_t chained = 0;
        for (uint64_t s = 0; s < h_.table_slots; ++s)
            for (uint64_t off = heap.table()[s]; off; off = heap.entry(off).hash_next) {
                if (++chained > h_.entries) throw Corrupt{"hash chains too long"};
                if ((heap.entry(off).hash & (h_.table_slots - 1)) != s) throw Corrupt{"entry in the wrong bucket"};
            }
        if (chained != h_.entries) throw Corrupt{"hash chains disagree with the entry count"};
    } catch (const Corrupt& c) {
        why = c.what;
    }
    unlock();
    return why;
}

}  // namespace souk::server
