// soukd's run-time parameters, declared once
// (docs/conventions.md#declare-counters-and-parameters-once): one list gives
// the struct, the command-line options, their range checks and --help.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace souk::server {

// X(field, option, kind, default, min, max, help)
// kind: Bytes and Count are whole numbers; Seconds is a duration (fractions
// allowed). How values are written (suffixes): parse_quantity below.
#define SOUK_PARAMS(X)                                                                                      \
    X(max_line, "max-line", Bytes, 64 * 1024, 64, 16 * 1024 * 1024,                                         \
      "longest v1/v2 request line")                                                                         \
    X(max_structure, "max-structure", Bytes, 1024 * 1024, 64, 256 * 1024 * 1024,                            \
      "largest v3 header or argument structure")                                                           \
    X(max_body, "max-body", Bytes, 256ull * 1024 * 1024, 0, 1ull << 40,                                      \
      "largest request body held in memory (readv ranges, get_parent_map keys)")                            \
    X(max_body_total, "max-body-total", Bytes, 1ull << 30, 0, 1ull << 44,                                     \
      "request bodies held in memory beyond the handlers' workspaces, all requests together (TooLarge beyond)") \
    X(max_upload, "max-upload", Bytes, 64ull << 30, 0, 1ull << 50,                                           \
      "largest streamed request body (put, append data; HTTP/CGI: largest POST), never held in memory")    \
    X(max_bencode_depth, "max-bencode-depth", Count, 32, 1, 1024, "deepest nesting of bencoded values")    \
    X(max_readv_ranges, "max-readv-ranges", Count, 4096, 1, 1 << 24, "most ranges in one readv")           \
    X(max_readv_bytes, "max-readv-bytes", Bytes, 1ull << 30, 1, 1ull << 40, "most bytes one readv returns") \
    X(max_connections, "max-connections", Count, 0, 0, 1 << 24,                                             \
      "open connections at most (0: the descriptor limit minus --fd-reserve; at the cap a new one may take an idle one's slot: --idle-reclaim-age)") \
    X(fd_reserve, "fd-reserve", Count, 256, 0, 1 << 20,                                                     \
      "descriptors kept back from the limit (RLIMIT_NOFILE, raised to its hard limit at start) for files, pipes and logs; a larger --max-connections is lowered to fit") \
    X(accept_backoff, "accept-backoff", Seconds, 0.1, 0.001, 60,                                            \
      "out of file descriptors (EMFILE): stop accepting this long, then try again")                         \
    X(idle_timeout, "idle-timeout", Seconds, 300, 0.01, 86400 * 30,                                         \
      "close a connection idle this long between requests")                                                \
    X(request_timeout, "request-timeout", Seconds, 60, 0.01, 86400,                                         \
      "deadline from a request's first byte to its last, never restarted by a byte (no slowloris)")        \
    X(idle_reclaim_age, "idle-reclaim-age", Seconds, 1, 0, 86400 * 30,                                      \
      "at --max-connections: a new client takes the slot of the connection idle longest if it has been idle this long (else it is refused)") \
    X(write_timeout, "write-timeout", Seconds, 300, 0.01, 86400, "deadline for sending one response")    \
    X(shutdown_grace, "shutdown-grace", Seconds, 5, 0, 3600,                                                \
      "SIGTERM/SIGINT: requests being served may finish this long, then they are cut (new connections are refused at once)") \
    X(http_workers, "http-workers", Count, 8, 1, 1024,                                                      \
      "HTTP carrier: worker threads (requests served at once; idle connections and requests still arriving hold none)") \
    X(http_keepalive_requests, "http-keepalive-requests", Count, 1000, 1, 1 << 24,                         \
      "HTTP carrier: requests per keep-alive connection")                                                  \
    X(http_keepalive_timeout, "http-keepalive-timeout", Seconds, 15, 1, 3600,                               \
      "HTTP carrier: close a keep-alive connection idle this long")                                         \
    X(http_read_timeout, "http-read-timeout", Seconds, 30, 0.01, 3600,                                      \
      "HTTP carrier: deadline from a request's first byte until it has arrived (its head, and a body within --arrival-bytes; a larger body has --request-timeout), never restarted by a byte")                                         \
    X(http_max_header_bytes, "http-max-header-bytes", Bytes, 64 * 1024, 1024, 16 * 1024 * 1024,             \
      "HTTP/CGI: largest request header block (431 beyond)")                                                \
    X(http_max_ranges, "http-max-ranges", Count, 256, 1, 1 << 20,                                           \
      "HTTP/CGI GET: most byte ranges in one Range header (more: the whole file, like nginx)")             \
    X(zstd_level, "zstd-level", Count, 3, 1, 19, "HTTP/CGI: zstd level for Accept-Encoding: zstd")          \
    X(zstd_max_bytes, "zstd-max-bytes", Bytes, 64ull * 1024 * 1024, 0, 1ull << 32,                           \
      "HTTP/CGI: compress bodies up to this size only (0: never)")                                          \
    X(cgi_read_timeout, "cgi-read-timeout", Seconds, 30, 0.01, 3600,                                        \
      "CGI: deadline for reading the whole request body from stdin")                                        \
    X(fastcgi_workers, "fastcgi-workers", Count, 16, 1, 4096,                                               \
      "FastCGI carrier: worker threads (requests served at once; idle connections and requests still arriving hold none)") \
    X(fastcgi_max_params_bytes, "fastcgi-max-params-bytes", Bytes, 64 * 1024, 1024, 16 * 1024 * 1024,       \
      "FastCGI: largest PARAMS block of one request (the CGI variables; 431 beyond)")                       \
    X(fastcgi_max_params, "fastcgi-max-params", Count, 512, 8, 1 << 20,                                     \
      "FastCGI: most name-value pairs in one PARAMS block or GET_VALUES query")                             \
    X(store_stats, "store-stats", Count, 1, 0, 1,                                                           \
      "store chain: count store operations, bytes and latencies (0: off)")                                 \
    X(cache, "cache", Count, 1, 0, 1,                                                                       \
      "store chain: range cache in shared memory, shared by every soukd serving the root (0: off)")        \
    X(cache_size, "cache-size", Bytes, 64ull << 20, 1 << 20, 1ull << 36,                                    \
      "range cache: bytes of data per served root (set by the process that creates the segment)")          \
    X(cache_block, "cache-block", Bytes, 64 * 1024, 4096, 4 << 20,                                          \
      "range cache: block size, a power of two (set by the process that creates the segment)")             \
    X(cache_lock_timeout, "cache-lock-timeout", Seconds, 0.25, 0.001, 60,                                   \
      "range cache: wait this long at most for the segment lock, then read past the cache")                \
    X(cache_settle, "cache-settle", Seconds, 0.05, 0, 3600,                                                 \
      "range cache: do not cache files changed less than this long ago (timestamp granularity)")          \
    X(readahead, "readahead", Count, 1, 0, 1,                                                               \
      "store chain: prefetch the data after each read into the range cache (0: off)")                      \
    X(readahead_max, "readahead-max", Bytes, 4 << 20, 64 << 10, 256 << 20,                                  \
      "readahead: largest window (it starts at 64 KiB and doubles on sequential reads)")                  \
    X(readahead_queue, "readahead-queue", Count, 8, 1, 1024,                                                \
      "readahead: prefetch commands queued per connection (the oldest is dropped beyond)")                 \
    X(slow_read_delay, "slow-read-delay", Seconds, 0, 0, 10,                                                \
      "benchmarks: sleep this long before every filesystem read, like nbdkit's delay filter (0: off)")     \
    X(workers, "workers", Count, 32, 1, 4096,                                                               \
      "TCP: worker threads at most (requests served at once; idle connections need none)")                 \
    X(arrival_bytes, "arrival-bytes", Bytes, 16 * 1024, 1024, 1 << 20,                                     \
      "waiter (bzr://, HTTP, FastCGI): a request waits in the waiter (no thread) until it has arrived whole or this much of it has; then it streams to a worker") \
    X(stream_workers, "stream-workers", Count, 16, 1, 4096,                                                 \
      "waiter (bzr://, HTTP, FastCGI): workers at most reading requests that had not arrived whole (large bodies); the rest serve whole requests only") \
    X(min_stream_rate, "min-stream-rate", Bytes, 64 * 1024, 0, 1ull << 40,                                  \
      "waiter (bzr://, HTTP, FastCGI): bytes/s a streaming request must average to keep its worker while another large request waits for one (0: no floor)") \
    X(linger, "linger", Seconds, 0.05, 0, 10,                                                               \
      "waiter (bzr://, HTTP, FastCGI): a worker keeps watching a connection this long after a response before parking it")           \
    X(workspace, "workspace", Bytes, 32 * 1024, 4096, 64 << 20,                                             \
      "request workspace (request body, scratch) of a new handler")                                        \
    X(workspace_max, "workspace-max", Bytes, 1 << 20, 0, 1 << 30,                                           \
      "double the workspace of new handlers after overflows, up to this (below --workspace: never)")       \
    X(pool_min, "pool-min", Count, 4, 0, 1 << 20, "mempools: idle handlers and buffers kept ready")        \
    X(pool_max, "pool-max", Count, 64, 1, 1 << 20, "mempools: idle handlers and buffers kept at most")     \
    X(pool_max_age, "pool-max-age", Seconds, 10, 0.01, 86400, "mempools: free idle items older than this") \
    X(request_inflate_budget, "request-inflate-budget", Bytes, 1ull << 30, 0, 1ull << 50,                    \
      "bytes one request may inflate from index pages and groupcompress blocks (hostile data; 0: no budget)") \
    X(stream_max_block, "stream-max-block", Bytes, 256ull << 20, 1 << 20, 1ull << 36,                        \
      "insert_stream: inflated content of one groupcompress block (checked as it streams, never held)")    \
    X(stream_max_fulltext, "stream-max-fulltext", Bytes, 64ull << 20, 1 << 16, 1ull << 34,                    \
      "insert_stream: one fulltext record, held whole while it is compressed")                            \
    X(stream_max_keys, "stream-max-keys", Count, 4000000, 1000, 1ull << 32,                                 \
      "insert_stream: index entries of one write group, held in memory until it commits")                \
    X(annotate_max_texts, "annotate-max-texts", Count, 100000, 1, 1ull << 32,                                \
      "annotate: texts of one file's ancestry an annotate may walk")                                     \
    X(annotate_max_lines, "annotate-max-lines", Count, 1000000, 1, 1ull << 32,                              \
      "annotate: lines of any one text of the file")                                                     \
    X(annotate_max_bytes, "annotate-max-bytes", Bytes, 1ull << 30, 1, 1ull << 40,                            \
      "annotate: bytes of all the file's texts an annotate may read")                                    \
    X(annotate_max_steps, "annotate-max-steps", Count, 64ull << 20, 1, 1ull << 40,                           \
      "annotate: graph steps settling lines that several revisions could claim")                        \
    X(repo_lock_wait, "repo-lock-wait", Seconds, 15, 0, 3600,                                               \
      "wait this long at most for a repository's lock around its pack-names (then LockContention)")     \
    X(upload_stale, "upload-stale", Seconds, 3600, 1, 86400 * 365,                                          \
      "a write group removes files in a repository's upload/, and unlisted pack files, older than this (crashed or abandoned pushes)") \
    X(temp_stale, "temp-stale", Seconds, 60, 0, 86400 * 365,                                                 \
      "sweeps remove a temporary file of a killed put no writer holds once unchanged this long")          \
    X(temp_sweep_interval, "temp-sweep-interval", Seconds, 3600, 1, 86400 * 365,                             \
      "sweep the tree for dead writers' temporary files this often (daemon: at start-up too; --inet/CGI: at start if due)")

// Read a parameter that SIGHUP may change (one of SOUK_RELOADABLE_PARAMS
// below) in another thread: a relaxed atomic load.
inline double live(const double& field) {
    return std::atomic_ref<double>(const_cast<double&>(field)).load(std::memory_order_relaxed);
}

struct Params {
#define SOUK_X(field, opt, kind, def, lo, hi, help) double field = static_cast<double>(def);
    SOUK_PARAMS(SOUK_X)
#undef SOUK_X

    Params() = default;
    // A copy (a worker's context, taken while a SIGHUP may store into the
    // original) reads every field with live(): a relaxed load, the same
    // instruction as a plain one here, and no data race.
    Params(const Params& o) { *this = o; }
    Params& operator=(const Params& o) {
#define SOUK_X(field, opt, kind, def, lo, hi, help) field = live(o.field);
        SOUK_PARAMS(SOUK_X)
#undef SOUK_X
        return *this;
    }
};

// The parameters SIGHUP may change while soukd runs
// (docs/configuration.md#signals); the rest take a restart. Each is read
// where it is used with live() on the server's own context, never cached
// and never from a copy.
#define SOUK_RELOADABLE_PARAMS(X) X(max_connections) X(fd_reserve) X(accept_backoff) X(min_stream_rate)

// --max-connections as a carrier applies it: 0 means this process's
// descriptor limit (RLIMIT_NOFILE's soft limit) less --fd-reserve, at
// least 1. A daemon resolves 0 once at start (raising the soft limit
// first); this serves every other user of Params (tests, tools).
size_t connection_cap(const Params& p);

// Whether SIGHUP may change parameter `name` (a long option name).
bool is_reloadable(std::string_view name);
// Store the reloadable parameters of `from` into `to`, which other
// threads read with live(). Returns the names of those that changed.
std::vector<std::string> apply_reloadable(Params& to, const Params& from);

enum class ParamKind { Bytes, Count, Seconds };

// Parse a parameter value, the same way on the command line and in a
// config file (docs/configuration.md#sizes-and-durations):
//   Bytes:   a whole number with an optional suffix K, M, G or T (either
//            case; binary multiples, 1K = 1024, as nginx's k/m/g);
//   Count:   a whole number;
//   Seconds: a number (fractions allowed) with an optional suffix ms, s,
//            m, h or d (lower case only; none = seconds).
// No sign, no spaces, no exponent. Returns "" and sets `out`, or says what
// is wrong (without the option's name); the range is the caller's.
std::string parse_quantity(ParamKind kind, std::string_view text, double& out);
// A value in the form parse_quantity reads back exactly, with the largest
// suffix that divides it ("64M", "5m", "250ms"; "0" for zero).
std::string format_quantity(ParamKind kind, double value);

// Whether `name` (a long option name without "--") is a parameter.
bool is_param(std::string_view name);
// Set parameter `name` from `text` (parse_quantity, then its range).
// Returns "" or an error naming the option: "--cache-size=64X: ...".
std::string set_param(Params& p, std::string_view name, std::string_view text);

// One "  --option=N  help (default D)" line per parameter.
std::string params_help();
// One "option = value" line per parameter (config-file syntax), in the
// list's order: the effective settings of `soukd check-config`.
std::string params_settings(const Params& p);

}  // namespace souk::server
