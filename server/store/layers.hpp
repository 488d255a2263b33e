// The small layers of the store chain (docs/store-chain.md; the nbdkit filter
// idea, docs/conventions.md#layers-with-one-interface): each wraps the next
// Store and forwards what it does not change. The range cache and
// readahead have their own headers.
//
//   stats -> range cache -> readahead -> delay -> jailed filesystem
#pragma once

#include <cstdint>

#include "server/base/counters.hpp"
#include "server/store/store.hpp"

namespace souk::server {

// Forwards every call to `next` (which must outlive it). Layers override
// what they change.
class StoreLayer : public Store {
public:
    explicit StoreLayer(Store& next) : next_(next) {}
    Store& next() const { return next_; }

    int open_read(const std::string& path, OpenFile& out) override { return next_.open_read(path, out); }
    ssize_t pread(OpenFile& f, char* buf, size_t n, uint64_t offset) override { return next_.pread(f, buf, n, offset); }
    int stat(const std::string& path, FileInfo& out) override { return next_.stat(path, out); }
    int begin_upload(const std::string& path, const WriteSpec& spec, std::unique_ptr<Upload>& out) override {
        return next_.begin_upload(path, spec, out);
    }
    int mkdir(const std::string& path, int mode) override { return next_.mkdir(path, mode); }
    int rmdir(const std::string& path) override { return next_.rmdir(path); }
    int unlink(const std::string& path) override { return next_.unlink(path); }
    int rename(const std::string& from, const std::string& to) override { return next_.rename(from, to); }
    int list_dir(const std::string& path, std::vector<std::string>& names) override {
        return next_.list_dir(path, names);
    }
    int list_files_recursive(const std::string& path, std::vector<std::string>& relpaths) override {
        return next_.list_files_recursive(path, relpaths);
    }
    void expect_reads(const OpenFile& f, std::span<const std::pair<uint64_t, uint64_t>> ranges) override {
        next_.expect_reads(f, ranges);
    }
    void note_read(const OpenFile& f, uint64_t offset, uint64_t length) override { next_.note_read(f, offset, length); }
    bool direct_ok() const override { return next_.direct_ok(); }

private:
    Store& next_;
};

// The top layer: counts every store operation, bytes, errors and time spent
// (the store_* counters), whatever the carrier.
class StatsStore final : public StoreLayer {
public:
    explicit StatsStore(Store& next) : StoreLayer(next) {}

    int open_read(const std::string& path, OpenFile& out) override;
    ssize_t pread(OpenFile& f, char* buf, size_t n, uint64_t offset) override;
    int stat(const std::string& path, FileInfo& out) override;
    int begin_upload(const std::string& path, const WriteSpec& spec, std::unique_ptr<Upload>& out) override;
    int mkdir(const std::string& path, int mode) override;
    int rmdir(const std::string& path) override;
    int unlink(const std::string& path) override;
    int rename(const std::string& from, const std::string& to) override;
    int list_dir(const std::string& path, std::vector<std::string>& names) override;
    int list_files_recursive(const std::string& path, std::vector<std::string>& relpaths) override;
    void note_read(const OpenFile& f, uint64_t offset, uint64_t length) override;
};

// Just above the filesystem: counts the reads that reach it (fs_reads,
// fs_read_bytes: client misses and prefetches alike) and, for benchmarks
// and tests, sleeps a fixed delay before each one, like nbdkit's delay
// filter, so the other layers are measured on storage slower than the page
// cache. With a delay, carriers must not sendfile around it (direct_ok).
class DelayStore final : public StoreLayer {
public:
    DelayStore(Store& next, double delay_seconds) : StoreLayer(next), delay_ns_(static_cast<int64_t>(delay_seconds * 1e9)) {}
    ssize_t pread(OpenFile& f, char* buf, size_t n, uint64_t offset) override;
    bool direct_ok() const override { return delay_ns_ == 0 && next().direct_ok(); }

private:
    int64_t delay_ns_;
};

}  // namespace souk::server
