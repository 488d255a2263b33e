// soukd's counters, declared once
// (docs/conventions.md#declare-counters-and-parameters-once): one list gives
// the struct, the JSON and Prometheus output and the docs. Every degraded path gets a
// counter. The struct is plain atomics, address-free, so it can live in a
// shared-memory segment that several soukd processes add to.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/verbs.hpp"

namespace souk::server {

// X(name, help)
#define SOUK_COUNTERS(X)                                                                  \
    X(connections_accepted, "stream connections (TCP, SSH) accepted")                    \
    X(connections_refused, "TCP connections refused at --max-connections")               \
    X(accept_failures, "TCP accepts that failed (EMFILE, ...), each pausing accepts for --accept-backoff") \
    X(requests, "requests answered")                                                     \
    X(request_failures, "requests answered with a failure reply")                        \
    X(unknown_verbs, "requests for verbs souk does not implement (UnknownMethod)")        \
    X(aborted_requests, "uploads the client aborted (oE); nothing applied")              \
    X(protocol_errors, "malformed requests (answered, then the connection closed)")      \
    X(idle_timeouts, "connections closed after --idle-timeout between requests")         \
    X(request_timeouts, "connections dropped: a request did not arrive within --request-timeout") \
    X(truncated_requests, "connections closed by the peer in the middle of a request")   \
    X(write_failures, "responses that could not be written (peer gone or --write-timeout)") \
    X(bytes_in, "request bytes received")                                                \
    X(bytes_out, "response bytes sent")                                                  \
    X(request_us, "microseconds from a request's first byte to its reply written (sum)") \
    X(body_over_cap, "requests refused: a whole body beyond --max-body (nothing buffered beyond it)") \
    X(store_opens, "store: files opened for reading")                                    \
    X(store_open_errors, "store: opens that failed")                                     \
    X(store_reads, "store: client reads served by the store chain")                     \
    X(store_read_bytes, "store: bytes of client reads")                                  \
    X(store_read_errors, "store: client reads that failed")                              \
    X(store_read_us, "store: microseconds spent in client reads (sum)")                  \
    X(store_reads_slow, "store: client reads that took 10 ms or more")                   \
    X(store_direct_bytes, "store: bytes sent straight from files (sendfile) past the chain") \
    X(store_writes, "store: put, put_non_atomic and append calls")                       \
    X(store_write_bytes, "store: bytes written")                                         \
    X(store_write_errors, "store: writes that failed")                                   \
    X(store_write_us, "store: microseconds spent in writes (sum)")                       \
    X(store_meta_ops, "store: stat, list, mkdir, rmdir, delete and rename calls")        \
    X(store_meta_errors, "store: metadata calls that failed")                            \
    X(store_appends_rolled_back, "store: appends cut short by a killed process, rolled back to the old length") \
    X(store_temps_swept, "store: temporary files of dead writers removed (sweeps, rmdir)") \
    X(store_sweeps, "store: sweeps of the served tree for dead writers' temporary files") \
    X(fs_reads, "filesystem: reads that reached it (client misses and prefetches)")      \
    X(fs_read_bytes, "filesystem: bytes read from it")                                   \
    X(cache_hits, "range cache: block lookups served from shared memory")                \
    X(cache_misses, "range cache: blocks read from below")                               \
    X(cache_hit_bytes, "range cache: bytes served from shared memory")                   \
    X(cache_miss_bytes, "range cache: bytes of client reads served from below")          \
    X(cache_inserts, "range cache: blocks inserted")                                     \
    X(cache_insert_bytes, "range cache: bytes inserted")                                 \
    X(cache_evictions, "range cache: blocks evicted, least recently used first")         \
    X(cache_insert_failures, "range cache: blocks not cached for want of room (all pinned)") \
    X(cache_unsettled, "range cache: reads past it: the file changed within --cache-settle") \
    X(cache_changed, "range cache: blocks not cached: the file changed while being read") \
    X(cache_copy_retries, "range cache: hits discarded: the entry was reused while being copied") \
    X(cache_pins_leased, "range cache: pins left to expire with their lease (not released in time)") \
    X(cache_lock_timeouts, "range cache: operations that read past it after --cache-lock-timeout") \
    X(cache_lock_recoveries, "range cache: lock recovered from a process that died holding it (emptied)") \
    X(cache_corruptions, "range cache: inconsistent contents found (emptied)")           \
    X(shm_segments_created, "shared segments created for this root (1 unless replaced)") \
    X(shm_segments_replaced, "shared segments replaced: incompatible or corrupt (bad magic, layout, size)") \
    X(readahead_issued, "readahead: prefetch commands queued")                           \
    X(readahead_bytes, "readahead: bytes prefetched into the range cache")               \
    X(readahead_useful, "readahead: prefetched blocks later hit")                        \
    X(readahead_wasted, "readahead: prefetched blocks evicted without a hit")            \
    X(readahead_skipped, "readahead: blocks of a window already cached (not fetched again)") \
    X(readahead_dropped, "readahead: commands dropped (queue full, cancelled, or quit)") \
    X(readahead_errors, "readahead: prefetches that failed (ignored)")                   \
    X(readahead_grows, "readahead: window doublings (sequential reads)")                 \
    X(readahead_resets, "readahead: window resets (seeks)")                              \
    X(readahead_fadvise, "readahead: posix_fadvise(WILLNEED) hints (CGI, or no range cache)") \
    X(readahead_random, "readahead: reads after two seeks in a row (random pattern): nothing prefetched") \
    SOUK_MEMPOOL_COUNTERS(X, req, "req (request handlers and their workspaces)")          \
    SOUK_MEMPOOL_COUNTERS(X, iobuf, "iobuf (connection read buffers)")                   \
    SOUK_MEMPOOL_COUNTERS(X, sess, "sess (TCP session records)")                         \
    X(workspace_overflows, "requests whose body outgrew the workspace (kept on the heap)") \
    X(workspace_grows, "workspace size doublings after overflows (new handlers only, up to --workspace-max)") \
    X(tcp_conns_live, "TCP connections (bzr:// and HTTP, both on the waiter) open now (gauge)")                                \
    X(tcp_conns_parked, "TCP connections parked in the waiter now: idle, no thread, no workspace (gauge)") \
    X(tcp_conns_arriving, "TCP connections in the waiter with a request partly arrived (no thread, no workspace) now (gauge)") \
    X(tcp_wakeups, "TCP connections the waiter handed to a worker, their request arrived whole")  \
    X(tcp_stream_handovers, "TCP requests handed to a worker before arriving whole (--arrival-bytes of them had come)") \
    X(tcp_stream_waits, "TCP requests that waited in the waiter for a free --stream-workers slot") \
    X(tcp_slow_streams_cut, "TCP requests cut: streaming in below --min-stream-rate while another large request waited") \
    X(idle_reclaimed, "idle TCP connections closed, oldest first, to make room for a new one at --max-connections") \
    X(tcp_workers, "TCP worker threads started (at most --workers)")                    \
    X(streams_cancelled, "responses abandoned mid-body: the client went away (handler, buffers, file freed at once)") \
    X(stream_errors, "responses ended with an error part mid-body (read error, or the file shrank)")

// The nine counters of one mempool (server/request/mempool.hpp). live and pooled
// are gauges (items now); the others only grow.
#define SOUK_MEMPOOL_COUNTERS(X, p, what)                                                    \
    X(pool_##p##_live, "mempool " what ": items in use now (gauge)")                         \
    X(pool_##p##_pooled, "mempool " what ": idle items kept for reuse now (gauge)")          \
    X(pool_##p##_allocs, "mempool " what ": items allocated")                                \
    X(pool_##p##_frees, "mempool " what ": items freed")                                     \
    X(pool_##p##_recycled, "mempool " what ": gets served by an idle item")                  \
    X(pool_##p##_timed_out, "mempool " what ": idle items freed after --pool-max-age")       \
    X(pool_##p##_too_small, "mempool " what ": items freed because the item size grew")      \
    X(pool_##p##_surplus, "mempool " what ": returned items freed: the pool was full (--pool-max)") \
    X(pool_##p##_ran_dry, "mempool " what ": gets that found the pool empty and allocated")

// Request latency histograms, one per verb family (docs/metrics.md#histograms):
// fixed buckets in the shared segment, counted by the request pipeline for
// every carrier alike with one relaxed increment each.
#define SOUK_VERB_FAMILIES(X)                                                            \
    X(vfs_read, "VFS reads: get, readv, has, stat, list_dir, iter_files_recursive")     \
    X(vfs_write, "VFS writes: put, put_non_atomic, append, mkdir, rmdir, delete, rename, move") \
    X(stream, "repository streams: get_stream*, insert_stream*, get_inventories, iter_files_bytes, iter_revisions") \
    X(branch, "Branch.* verbs")                                                          \
    X(other, "everything else: hello, BzrDir.*, other Repository.* verbs, unknown verbs, protocol errors")

enum class Family : uint8_t {
#define SOUK_X(name, help) name,
    SOUK_VERB_FAMILIES(SOUK_X)
#undef SOUK_X
};
inline constexpr const char* kFamilyNames[] = {
#define SOUK_X(name, help) #name,
    SOUK_VERB_FAMILIES(SOUK_X)
#undef SOUK_X
};
inline constexpr size_t kFamilies = sizeof(kFamilyNames) / sizeof(kFamilyNames[0]);
// A verb's family; nullptr (an unknown verb, a protocol error) is "other".
Family verb_family(const proto::VerbInfo* v);

// Upper bounds of the buckets in microseconds (the last bucket, +Inf, has
// none): 50 us (a cached small get) to 60 s (a large stream).
inline constexpr uint64_t kLatencyBoundsUs[] = {50,     100,    250,    500,     1000,    2500,    5000,
                                                10000,  25000,  50000,  100000,  250000,  500000,  1000000,
                                                2500000, 5000000, 10000000, 30000000, 60000000};
inline constexpr size_t kLatencyBuckets = sizeof(kLatencyBoundsUs) / sizeof(kLatencyBoundsUs[0]) + 1;

struct Counters {
#define SOUK_X(name, help) std::atomic<uint64_t> name{0};
    SOUK_COUNTERS(SOUK_X)
#undef SOUK_X
    std::atomic<uint64_t> verb_requests[proto::kVerbCount] = {};
    std::atomic<uint64_t> latency[kFamilies][kLatencyBuckets] = {};  // per bucket, not cumulative
    std::atomic<uint64_t> latency_us[kFamilies] = {};                // sum per family
};

// Count one answered request's latency (its family's bucket and sums).
void count_latency(Counters& c, Family f, uint64_t us);
static_assert(std::atomic<uint64_t>::is_always_lock_free, "counters must be usable in shared memory");

// The counters this process adds to. Defaults to a process-local instance;
// set_counters() points it elsewhere (e.g. into a shared segment) at start-up.
Counters& counters();
void set_counters(Counters* c);

inline void count(std::atomic<uint64_t>& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }

// Render every counter (and per-verb request counts) as a JSON object, or
// in Prometheus text format (docs/metrics.md): "soukd_" prefix, counters
// ending in _total, times in seconds, a root="<root>" label on every sample,
// soukd_build_info first.
std::string counters_json(const Counters& c);
std::string counters_prometheus(const Counters& c, std::string_view root);
// One Prometheus sample line: name{root="<root>"[,extra]} value.
std::string prometheus_sample(std::string_view name, std::string_view root, std::string_view extra_labels,
                              std::string_view value);
// A Prometheus label value: backslash, double quote and newline escaped.
std::string prometheus_label(std::string_view v);

}  // namespace souk::server
