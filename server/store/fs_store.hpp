// The bottom of the store chain: the jailed filesystem (docs/store-chain.md).
// Every path is resolved beneath the root's directory descriptor with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) (or, where the kernel lacks
// it, a component walk with O_NOFOLLOW), and the final component is never
// followed either: no spelling and no symlink leaves the root.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "server/store/paths.hpp"
#include "server/store/store.hpp"
#include "transport/fd.hpp"

namespace souk::server {

// The temporary namespace (kTempPrefix, paths.hpp; docs/store-chain.md#temporary-files):
//   .souk-tmp.<16 hex>       a put's (or put_non_atomic's) file while its body
//                            arrives; its writer holds flock(LOCK_EX) on it
//   .souk-tmp.append.<ino>   an append's intent record: the target inode's
//                            length before the append, beside the target,
//                            while the bytes land under the target's lock
// Reads answer ENOENT for any path in it, creating verbs EACCES; listings
// hide it.
inline constexpr std::string_view kIntentPrefix = ".souk-tmp.append.";
// An append's bytes (and a put_non_atomic's whose parent is made at
// commit) are held in memory up to this size, then spooled to an unnamed
// temporary file (O_TMPFILE) beside the target, so a large upload costs no
// memory and a crash leaves nothing behind.
inline constexpr size_t kSpoolInMemory = 256 * 1024;

class FsStore final : public Store {
public:
    // Opens `root` (which must be an existing directory). On failure
    // valid() is false and error() says why.
    explicit FsStore(const std::string& root);
    bool valid() const { return root_.valid(); }
    const std::string& error() const { return error_; }
    // The root's canonical path.
    const std::string& root_realpath() const { return root_path_; }

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

    // Whether this process may change the disk to repair what a killed
    // writer left (roll back a torn append, remove dead temporary files).
    // Off (a read-only server): readers still see an unfinished append's
    // old length, and nothing is written. Set before serving, and turned
    // on by a reload that makes the root writable (any thread may read it).
    void set_repair(bool on) { repair_.store(on, std::memory_order_relaxed); }
    bool repair() const { return repair_.load(std::memory_order_relaxed); }

    struct SweepCounts {
        uint64_t dirs = 0;         // directories visited
        uint64_t removed = 0;      // temporary files and orphan intent records removed
        uint64_t rolled_back = 0;  // torn appends truncated back to their old length
        uint64_t busy = 0;         // left alone: a live writer holds them, or too young
    };
    // Walk the tree (no symlink, each directory once): remove the temporary
    // files no live writer holds whose last change is at least `min_age`
    // seconds old, and roll back appends whose process died while landing.
    // Does nothing unless repair() is on.
    SweepCounts sweep(double min_age);
    // sweep() unless `clock` (the root's last sweep by any process, in the
    // shared segment) says it was less than `interval` seconds ago; a
    // compare-and-swap claims the round, so concurrent processes sweep
    // once. `force`: regardless of the clock (a daemon's start-up, or no
    // clock at all). Without a clock and without force: no sweep. True if
    // it swept.
    bool sweep_if_due(double interval, double min_age, bool force, std::atomic<int64_t>* clock,
                      SweepCounts* out = nullptr);

    // The append's slow path and the sweeps (internal; public for the
    // upload classes in fs_store.cpp).
    // With the target's flock(LOCK_EX) held, so that the intent record
    // `name` in `dirfd` is a dead appender's: with the target open for
    // writing as `wfd`, truncate the tail it landed and remove the record;
    // with wfd < 0, change nothing and only make `st` (the target's fstat)
    // show the old length. Returns true if the record was valid for `st`.
    bool roll_back_locked(int dirfd, const char* name, int wfd, struct stat& st) const;

private:
    // Open a directory beneath the root (O_RDONLY|O_DIRECTORY), never
    // following a symlink. Returns the fd or -errno.
    int open_dir(std::string_view rel) const;
    // Split "a/b/c" into the parent directory fd ("a/b") and leaf "c" (a
    // NUL-terminated view into `path`). For the root itself, leaf is ".".
    // Returns 0 or errno.
    int open_parent(const std::string& path, io::Fd& dir, std::string_view& leaf) const;

    // Open the intent record of inode `ino` in `dirfd`, or (dirfd < 0)
    // beside `path` beneath the root. fd or -errno. No allocation.
    int open_intent(const std::string& path, int dirfd, uint64_t ino) const;
    // For a reader of the regular file `path` (open as `fd`, or -1; `st`
    // its fstat): if an append has not finished landing on it, make `st`
    // show the old length, rolling the tail back when its appender is dead
    // and repair() is on. Cheap when there is no intent record (one failed
    // open, one fstat). 0 or errno.
    int settle(const std::string& path, int dirfd, std::string_view leaf, int fd, struct stat& st) const;
    int settle_slow(const std::string& path, int dirfd, std::string_view leaf, int fd, struct stat& st) const;
    // A writer about to rename or replace `leaf` in `dirfd`: roll back a
    // dead append on it first (waiting for a live one to land).
    void settle_for_write(int dirfd, const char* leaf) const;
    // Sweep one directory (see sweep()). With require_empty, does nothing
    // (and returns false) if it holds a name outside the temporary
    // namespace. Appends the other subdirectories' names to *subdirs.
    bool sweep_dir(int dirfd, double min_age, bool require_empty, SweepCounts& c,
                   std::vector<std::string>* subdirs) const;

    io::Fd root_;
    std::string root_path_;
    std::string error_;
    std::atomic<bool> repair_{true};
};

// A daemon's sweeper: a thread that sweeps at once (a restart after a crash
// cleans up), then every `interval` seconds unless another process swept
// more recently (`clock`, as for sweep_if_due; nullptr: every interval).
// The destructor stops and joins it.
class TempSweeper {
public:
    TempSweeper(FsStore& fs, std::atomic<int64_t>* clock, double interval, double min_age);
    ~TempSweeper();
    TempSweeper(const TempSweeper&) = delete;
    TempSweeper& operator=(const TempSweeper&) = delete;

private:
    void run();
    FsStore& fs_;
    std::atomic<int64_t>* clock_;
    double interval_, min_age_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace souk::server
