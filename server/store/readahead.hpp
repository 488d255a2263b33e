// Readahead (the nbdkit readahead filter's idea; docs/store-chain.md#readahead): after each
// client read of (offset, length) it queues a prefetch of the window that
// follows, which a background thread reads from the layer below and inserts
// into the range cache, so the next sequential read is a hit.
//
//  * The window (per file) starts at 64 KiB, doubles when a read lands in
//    what was read or prefetched before (a sequential hit) up to
//    --readahead-max, and resets on a seek; after two seeks in a row (a
//    random pattern) nothing is prefetched until a sequential read comes
//    (readahead_random counts those reads). A readv is one access: its
//    intermediate ranges change nothing and the window follows its last
//    range (expect_reads announces the ranges). Blocks already cached are
//    not fetched again; contiguous missing blocks are one lower read.
//  * Commands ("cache" an extent, or quit) go through a bounded queue; when
//    it is full the oldest is dropped. Queueing happens after the read it
//    follows and never waits, so prefetch never delays that read. Errors
//    are counted (readahead_errors) and ignored.
//  * A queued command holds a duplicate of the file's descriptor; delete,
//    rename, put and put_non_atomic first drop the queued commands for that
//    file in every chain of the process and wait (bounded, in practice one
//    read) until no running prefetch holds it, so readahead never holds a
//    file the client asked to remove or replace.
//  * Modes: Connection (one thread per chain, started on first use, gone
//    after a few idle seconds so a parked connection costs no thread,
//    joined on close), Advise (CGI, or no range cache to fill: the hint
//    becomes posix_fadvise(POSIX_FADV_WILLNEED) at once, no thread).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "server/store/layers.hpp"
#include "server/store/range_cache.hpp"

namespace souk::server {

class Prefetcher {
public:
    enum class Mode { Connection, Advise };
    struct Config {
        Mode mode = Mode::Connection;
        uint64_t min_window = 64 * 1024;
        uint64_t max_window = 4ull << 20;
        size_t queue = 8;           // commands waiting, at most
        size_t files = 8;           // files whose window is remembered (LRU)
        double settle_seconds = 0.05;
        double idle_exit_seconds = 2;  // a worker idle this long exits (restarted on demand)
    };
    // `below` is the store prefetches read from (the delay layer, so they
    // pay the slow-storage delay like any read); `cache` receives the
    // blocks (nullptr: Advise behaviour). Both must outlive this.
    Prefetcher(const Config& cfg, Store& below, RangeCache* cache);
    // Quit: drops the queue, wakes and joins the workers.
    ~Prefetcher();
    Prefetcher(const Prefetcher&) = delete;
    Prefetcher& operator=(const Prefetcher&) = delete;

    // A request will read these ranges of f, in order (see the header note).
    void expect(const OpenFile& f, std::span<const std::pair<uint64_t, uint64_t>> ranges);
    // The client read [offset, offset + length) of f: update the window and
    // queue the prefetch that follows. Never blocks on I/O.
    void on_read(const OpenFile& f, uint64_t offset, uint64_t length);
    // Drop the queued commands for one file and wait (at most 2 s) until no
    // running prefetch holds it.
    void forget_file(uint64_t dev, uint64_t ino);
    // forget_file on every Prefetcher of the process (every chain: TCP
    // connections move between workers, each with its own chain).
    static void forget_everywhere(uint64_t dev, uint64_t ino);
    // Wait until the queue is empty and no prefetch runs (tests and
    // benchmarks). false on timeout.
    bool drain(double timeout_seconds);
    // The current window of a file (0 if not remembered). For tests.
    uint64_t window_of(uint64_t dev, uint64_t ino);
    // Worker threads alive now. For tests.
    size_t threads_alive();

private:
    struct Window {
        uint64_t dev = 0, ino = 0, stamp = 0;
        bool known = false;
        uint64_t size = 0;                  // the window
        uint64_t last_start = 0, last_end = 0;
        uint64_t queued_end = 0;            // prefetch queued up to here
        uint32_t seeks = 0;                 // non-sequential accesses in a row
        uint64_t plan_start = 0, plan_last = 0, plan_end = 0;  // the readv in progress (plan_end 0: none)
        bool plan_seq = false;
    };
    struct Command {
        OpenFile file;  // a dup of the client's descriptor
        uint64_t offset = 0, length = 0;
    };
    struct Worker {
        std::thread thread;
        bool exited = false;
    };

    Window& window_locked(const FileInfo& info);
    bool sequential_locked(const Window& w, uint64_t offset) const;
    void queue_locked(const OpenFile& f, uint64_t offset, uint64_t length);
    void advise(const OpenFile& f, uint64_t offset, uint64_t length);
    void worker_main(Worker* self);
    void run(Command& c, uint64_t gen);

    Config cfg_;
    Store& below_;
    RangeCache* cache_;
    std::mutex mu_;
    std::condition_variable work_cv_, idle_cv_;
    std::deque<Command> queue_;
    std::vector<Window> windows_;
    std::unique_ptr<Worker> worker_;  // the one thread (null until the first prefetch)
    uint64_t stamp_ = 0;
    size_t busy_ = 0, waiting_ = 0;
    std::vector<std::pair<uint64_t, uint64_t>> running_;  // (dev, ino) of the prefetches running now
    bool quit_ = false;
    std::atomic<uint64_t> cancel_gen_{0};
};

// The readahead layer: tells the Prefetcher of every client read and of
// every readv's ranges, and cancels prefetches before the namespace
// changes. `observe_preads`: whether reads arriving here through pread are
// client reads (no range cache above) or cache fills (which must not move
// the window: the cache reports client reads with note_read).
class ReadaheadStore final : public StoreLayer {
public:
    ReadaheadStore(Store& next, Prefetcher& p, bool observe_preads)
        : StoreLayer(next), p_(p), observe_(observe_preads) {}

    ssize_t pread(OpenFile& f, char* buf, size_t n, uint64_t offset) override;
    void expect_reads(const OpenFile& f, std::span<const std::pair<uint64_t, uint64_t>> ranges) override;
    void note_read(const OpenFile& f, uint64_t offset, uint64_t length) override;
    int begin_upload(const std::string& path, const WriteSpec& spec, std::unique_ptr<Upload>& out) override;
    int unlink(const std::string& path) override;
    int rename(const std::string& from, const std::string& to) override;

private:
    // Before the namespace changes: no prefetch anywhere in the process may
    // keep holding the file at `path`.
    void forget(const std::string& path);

    Prefetcher& p_;
    bool observe_;
};

}  // namespace souk::server
