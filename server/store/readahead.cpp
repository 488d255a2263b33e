#include "server/store/readahead.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <system_error>

#include "server/base/log.hpp"
#include "server/store/cache_store.hpp"

namespace souk::server {
namespace {

// Every Prefetcher of the process, so that a delete or rename through any
// chain (TCP connections move between workers, each with its own chain)
// reaches the prefetches of every chain.
std::mutex g_registry_mu;
std::vector<Prefetcher*> g_registry;

}  // namespace

Prefetcher::Prefetcher(const Config& cfg, Store& below, RangeCache* cache)
    : cfg_(cfg), below_(below), cache_(cfg.mode == Mode::Advise ? nullptr : cache) {
    std::lock_guard<std::mutex> reg(g_registry_mu);
    g_registry.push_back(this);
    cfg_.queue = std::max<size_t>(1, cfg_.queue);
    cfg_.files = std::max<size_t>(1, cfg_.files);
    cfg_.min_window = std::max<uint64_t>(4096, cfg_.min_window);
    cfg_.max_window = std::max(cfg_.min_window, cfg_.max_window);
    windows_.resize(cfg_.files);
}

Prefetcher::~Prefetcher() {
    {
        std::lock_guard<std::mutex> reg(g_registry_mu);
        g_registry.erase(std::remove(g_registry.begin(), g_registry.end(), this), g_registry.end());
    }
    std::unique_ptr<Worker> worker;
    {
        std::lock_guard<std::mutex> lock(mu_);
        quit_ = true;
        if (!queue_.empty()) count(counters().readahead_dropped, queue_.size());
        queue_.clear();
        cancel_gen_.fetch_add(1);
        worker.swap(worker_);
    }
    work_cv_.notify_all();
    if (worker && worker->thread.joinable()) worker->thread.join();
}

Prefetcher::Window& Prefetcher::window_locked(const FileInfo& info) {
    Window* oldest = &windows_[0];
    for (auto& w : windows_) {
        if (w.known && w.dev == info.dev && w.ino == info.ino) {
            w.stamp = ++stamp_;
            return w;
        }
        if (!w.known || w.stamp < oldest->stamp) oldest = &w;
    }
    *oldest = Window{};
    oldest->known = true;
    oldest->dev = info.dev;
    oldest->ino = info.ino;
    oldest->size = cfg_.min_window;
    oldest->stamp = ++stamp_;
    return *oldest;
}

bool Prefetcher::sequential_locked(const Window& w, uint64_t offset) const {
    // A sequential hit: the read starts inside what was read or prefetched last.
    return w.last_end > 0 && offset >= w.last_start && offset <= std::max(w.last_end, w.queued_end);
}

void Prefetcher::expect(const OpenFile& f, std::span<const std::pair<uint64_t, uint64_t>> ranges) {
    // The span from the first to the last non-empty range.
    const std::pair<uint64_t, uint64_t>* first = nullptr;
    const std::pair<uint64_t, uint64_t>* last = nullptr;
    for (const auto& r : ranges)
        if (r.second) {
            if (!first) first = &r;
            last = &r;
        }
    if (!first) return;
    std::lock_guard<std::mutex> lock(mu_);
    Window& w = window_locked(f.info);
    w.plan_seq = sequential_locked(w, first->first);
    w.plan_start = std::min(first->first, last->first);
    w.plan_last = last->first;
    w.plan_end = last->first + last->second;
}

void Prefetcher::on_read(const OpenFile& f, uint64_t offset, uint64_t length) {
    if (length == 0) return;
    const uint64_t end = offset + length;
    std::lock_guard<std::mutex> lock(mu_);
    if (quit_) return;
    Window& w = window_locked(f.info);
    bool seq;
    uint64_t start = offset;
    if (w.plan_end && offset >= w.plan_start && end <= w.plan_end) {
        if (end != w.plan_end) return;  // inside a readv: the window follows its last range
        seq = w.plan_seq;
        start = w.plan_last;
        w.plan_end = 0;
    } else {
        w.plan_end = 0;  // not part of the announced readv (or none): one access on its own
        seq = sequential_locked(w, offset);
    }
    Counters& ctr = counters();
    if (seq) {
        w.seeks = 0;
        if (w.size < cfg_.max_window) {
            w.size = std::min(w.size * 2, cfg_.max_window);
            count(ctr.readahead_grows);
        }
    } else {
        if (w.last_end > 0) count(ctr.readahead_resets);
        w.size = cfg_.min_window;
        w.queued_end = 0;
        w.seeks += 1;
    }
    w.last_start = start;
    w.last_end = end;
    // A seek after a seek: the pattern is random, and a prefetch after it
    // would be wasted work competing with the reads. Wait for a sequential
    // read. (The first access of a file, and the first seek after a
    // sequential run, still prefetch, as nbdkit's filter does after every
    // read.)
    if (w.seeks >= 2) {
        count(ctr.readahead_random);
        return;
    }
    // While at least half a window is already prefetched ahead of this
    // read, queue nothing: each prefetch then covers half a window or more
    // (one lower read, one delay, for many client reads), instead of the
    // sliver a read moves the window by (Linux's async readahead marker).
    if (seq && w.queued_end >= end + w.size / 2) return;
    const uint64_t from = std::max(end, seq ? w.queued_end : 0);
    const uint64_t to = std::min(end + w.size, f.info.size);
    if (from >= to) return;
    w.queued_end = to;
    if (!cache_) {
        advise(f, from, to - from);
        return;
    }
    queue_locked(f, from, to - from);
}

void Prefetcher::advise(const OpenFile& f, uint64_t offset, uint64_t length) {
    int r = ::posix_fadvise(f.fd.get(), static_cast<off_t>(offset), static_cast<off_t>(length), POSIX_FADV_WILLNEED);
    count(r == 0 ? counters().readahead_fadvise : counters().readahead_errors);
}

void Prefetcher::queue_locked(const OpenFile& f, uint64_t offset, uint64_t length) {
    Counters& ctr = counters();
    int fd = ::fcntl(f.fd.get(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        count(ctr.readahead_errors);
        return;
    }
    if (queue_.size() >= cfg_.queue) {
        queue_.pop_front();  // the oldest is the least useful now
        count(ctr.readahead_dropped);
    }
    Command c;
    c.file.fd.reset(fd);
    c.file.info = f.info;
    c.offset = offset;
    c.length = length;
    queue_.push_back(std::move(c));
    count(ctr.readahead_issued);
    // The chain's one thread: wake it if it waits, else start it (joining
    // it first if it left when idle).
    if (waiting_ == 0) {
        if (worker_ && worker_->exited) {
            worker_->thread.join();  // it has left its loop; joining is immediate
            worker_.reset();
        }
        if (!worker_) {
            auto w = std::make_unique<Worker>();
            try {
                w->thread = std::thread(&Prefetcher::worker_main, this, w.get());
                worker_ = std::move(w);
            } catch (const std::system_error& e) {
                // No thread (resource limits): this prefetch is dropped; reads still work.
                SOUK_LOG(Warn, "readahead: cannot start a thread: %s", e.what());
                count(ctr.readahead_errors);
                queue_.pop_back();
            }
        }
    }
    work_cv_.notify_one();
}

void Prefetcher::worker_main(Worker* self) {
    std::unique_lock<std::mutex> lock(mu_);
    const auto idle = std::chrono::milliseconds(static_cast<int64_t>(cfg_.idle_exit_seconds * 1000));
    for (;;) {
        if (quit_) break;
        if (queue_.empty()) {
            ++waiting_;
            bool woke = work_cv_.wait_for(lock, idle, [&] { return quit_ || !queue_.empty(); });
            --waiting_;
            if (!woke) break;  // idle: exit; queue_locked starts a new one on demand
            continue;
        }
        Command c = std::move(queue_.front());
        queue_.pop_front();
        ++busy_;
        const std::pair<uint64_t, uint64_t> id{c.file.info.dev, c.file.info.ino};
        running_.push_back(id);
        const uint64_t gen = cancel_gen_.load();
        lock.unlock();
        run(c, gen);
        c.file = OpenFile{};  // close our duplicate before reporting idle
        lock.lock();
        --busy_;
        running_.erase(std::find(running_.begin(), running_.end(), id));
        idle_cv_.notify_all();
    }
    self->exited = true;
    idle_cv_.notify_all();
}

void Prefetcher::run(Command& c, uint64_t gen) {
    Counters& ctr = counters();
    FileKey key;
    if (!file_key(c.file.fd.get(), key)) {
        count(ctr.readahead_errors);
        return;
    }
    if (unsettled(key, static_cast<int64_t>(cfg_.settle_seconds * 1e9)) || key.size <= c.offset) {
        advise(c.file, c.offset, c.length);  // cannot be cached yet: at least warm the page cache
        return;
    }
    const uint64_t B = cache_->block_bytes();
    const uint64_t end = std::min(c.offset + c.length, key.size);
    const uint64_t last = (end - 1) / B;
    thread_local std::vector<char> buf;  // each worker thread its own, up to --readahead-max
    for (uint64_t b = c.offset / B; b <= last;) {  // bounded: b advances every pass
        if (cancel_gen_.load(std::memory_order_relaxed) != gen) return;
        if (cache_->contains(key, b)) {
            count(ctr.readahead_skipped);
            ++b;
            continue;
        }
        uint64_t e = b;
        while (e < last && (e + 2 - b) * B <= cfg_.max_window && !cache_->contains(key, e + 1)) ++e;
        const uint64_t rs = b * B, re = std::min((e + 1) * B, key.size);
        if (buf.size() < re - rs) buf.resize(re - rs);
        uint64_t got = 0;
        while (got < re - rs) {  // bounded: each pass reads >= 1 byte or stops
            ssize_t r = below_.pread(c.file, buf.data() + got, re - rs - got, rs + got);
            if (r < 0) {
                count(ctr.readahead_errors);
                return;
            }
            if (r == 0) break;
            got += static_cast<uint64_t>(r);
        }
        FileKey after;
        if (!file_key(c.file.fd.get(), after) || !(after == key)) return;  // changed: nothing to cache
        for (uint64_t i = b; i <= e; ++i) {
            uint64_t s = i * B - rs;
            uint64_t len = std::min(B, key.size - i * B);
            if (s + len > got) break;
            if (cache_->insert(key, i, buf.data() + s, static_cast<size_t>(len), true))
                count(ctr.readahead_bytes, len);
        }
        if (got < re - rs) return;  // the file ended early
        b = e + 1;
    }
}

void Prefetcher::forget_file(uint64_t dev, uint64_t ino) {
    std::unique_lock<std::mutex> lock(mu_);
    auto match = [&](const Command& c) { return c.file.info.dev == dev && c.file.info.ino == ino; };
    size_t before = queue_.size();
    queue_.erase(std::remove_if(queue_.begin(), queue_.end(), match), queue_.end());  // closes their duplicates
    if (queue_.size() != before) count(counters().readahead_dropped, before - queue_.size());
    for (auto& w : windows_)
        if (w.known && w.dev == dev && w.ino == ino) w.queued_end = 0;
    if (std::find(running_.begin(), running_.end(), std::make_pair(dev, ino)) == running_.end()) return;
    cancel_gen_.fetch_add(1);  // the running prefetch stops after its current read
    idle_cv_.wait_for(lock, std::chrono::seconds(2), [&] {
        return std::find(running_.begin(), running_.end(), std::make_pair(dev, ino)) == running_.end();
    });
}

void Prefetcher::forget_everywhere(uint64_t dev, uint64_t ino) {
    std::lock_guard<std::mutex> reg(g_registry_mu);
    for (Prefetcher* p : g_registry) p->forget_file(dev, ino);
}

bool Prefetcher::drain(double timeout_seconds) {
    std::unique_lock<std::mutex> lock(mu_);
    return idle_cv_.wait_for(lock, std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)),
                             [&] { return queue_.empty() && busy_ == 0; });
}

uint64_t Prefetcher::window_of(uint64_t dev, uint64_t ino) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& w : windows_)
        if (w.known && w.dev == dev && w.ino == ino) return w.size;
    return 0;
}

size_t Prefetcher::threads_alive() {
    std::lock_guard<std::mutex> lock(mu_);
    return worker_ && !worker_->exited ? 1 : 0;
}

// ---- the layer ----

ssize_t ReadaheadStore::pread(OpenFile& f, char* buf, size_t n, uint64_t offset) {
    ssize_t r = next().pread(f, buf, n, offset);
    if (observe_ && r > 0) p_.on_read(f, offset, static_cast<uint64_t>(r));
    return r;
}

void ReadaheadStore::expect_reads(const OpenFile& f, std::span<const std::pair<uint64_t, uint64_t>> ranges) {
    p_.expect(f, ranges);
}

void ReadaheadStore::note_read(const OpenFile& f, uint64_t offset, uint64_t length) { p_.on_read(f, offset, length); }

void ReadaheadStore::forget(const std::string& path) {
    FileInfo fi;
    if (next().stat(path, fi) == 0 && S_ISREG(fi.mode)) Prefetcher::forget_everywhere(fi.dev, fi.ino);
}

int ReadaheadStore::begin_upload(const std::string& path, const WriteSpec& spec, std::unique_ptr<Upload>& out) {
    if (spec.kind != WriteKind::Append) forget(path);  // the file it replaces
    return next().begin_upload(path, spec, out);
}
int ReadaheadStore::unlink(const std::string& path) {
    forget(path);
    return next().unlink(path);
}
int ReadaheadStore::rename(const std::string& from, const std::string& to) {
    forget(from);
    forget(to);  // replaced, if it is a file
    return next().rename(from, to);
}

}  // namespace souk::server
