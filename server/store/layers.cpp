#include "server/store/layers.hpp"

#include <errno.h>
#include <time.h>

#include <chrono>
#include <memory>

namespace souk::server {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t micros_since(Clock::time_point t0) {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
}

// Count one metadata operation and its failure.
int meta(int e) {
    Counters& c = counters();
    count(c.store_meta_ops);
    if (e) count(c.store_meta_errors);
    return e;
}

int write_op(int e, size_t bytes, Clock::time_point t0) {
    Counters& c = counters();
    count(c.store_writes);
    count(c.store_write_us, micros_since(t0));
    if (e) count(c.store_write_errors);
    else count(c.store_write_bytes, bytes);
    return e;
}

}  // namespace

int StatsStore::open_read(const std::string& path, OpenFile& out) {
    int e = next().open_read(path, out);
    count(counters().store_opens);
    if (e) count(counters().store_open_errors);
    return e;
}

ssize_t StatsStore::pread(OpenFile& f, char* buf, size_t n, uint64_t offset) {
    auto t0 = Clock::now();
    ssize_t r = next().pread(f, buf, n, offset);
    uint64_t us = micros_since(t0);
    Counters& c = counters();
    count(c.store_reads);
    count(c.store_read_us, us);
    if (us >= 10000) count(c.store_reads_slow);
    if (r < 0) count(c.store_read_errors);
    else count(c.store_read_bytes, static_cast<uint64_t>(r));
    return r;
}

void StatsStore::note_read(const OpenFile& f, uint64_t offset, uint64_t length) {
    count(counters().store_direct_bytes, length);
    next().note_read(f, offset, length);
}

int StatsStore::stat(const std::string& path, FileInfo& out) { return meta(next().stat(path, out)); }
int StatsStore::mkdir(const std::string& path, int mode) { return meta(next().mkdir(path, mode)); }
int StatsStore::rmdir(const std::string& path) { return meta(next().rmdir(path)); }
int StatsStore::unlink(const std::string& path) { return meta(next().unlink(path)); }
int StatsStore::rename(const std::string& from, const std::string& to) { return meta(next().rename(from, to)); }
int StatsStore::list_dir(const std::string& path, std::vector<std::string>& names) {
    return meta(next().list_dir(path, names));
}
int StatsStore::list_files_recursive(const std::string& path, std::vector<std::string>& relpaths) {
    return meta(next().list_files_recursive(path, relpaths));
}

namespace {

// Counts one streamed write: its bytes and time (begin to commit), and
// whether it failed. An upload dropped before commit counts as a failure.
class CountedUpload final : public Upload {
public:
    explicit CountedUpload(std::unique_ptr<Upload> next) : next_(std::move(next)), t0_(Clock::now()) {}
    ~CountedUpload() override {
        if (!done_) write_op(ECANCELED, 0, t0_);
    }
    int write(std::string_view chunk) override {
        int e = next_->write(chunk);
        if (!e) bytes_ += chunk.size();
        return e;
    }
    int commit(uint64_t* old_size) override {
        int e = next_->commit(old_size);
        done_ = true;
        write_op(e, bytes_, t0_);
        return e;
    }

private:
    std::unique_ptr<Upload> next_;
    Clock::time_point t0_;
    uint64_t bytes_ = 0;
    bool done_ = false;
};

}  // namespace

int StatsStore::begin_upload(const std::string& path, const WriteSpec& spec, std::unique_ptr<Upload>& out) {
    auto t0 = Clock::now();
    std::unique_ptr<Upload> up;
    if (int e = next().begin_upload(path, spec, up)) return write_op(e, 0, t0);
    out = std::make_unique<CountedUpload>(std::move(up));
    return 0;
}

ssize_t DelayStore::pread(OpenFile& f, char* buf, size_t n, uint64_t offset) {
    if (delay_ns_ > 0) {
        struct timespec ts{static_cast<time_t>(delay_ns_ / 1000000000), static_cast<long>(delay_ns_ % 1000000000)};
        while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {  // bounded: ts shrinks
        }
    }
    ssize_t r = next().pread(f, buf, n, offset);
    count(counters().fs_reads);
    if (r > 0) count(counters().fs_read_bytes, static_cast<uint64_t>(r));
    return r;
}

}  // namespace souk::server
