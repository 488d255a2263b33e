#include "server/store/fs_store.hpp"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <unordered_map>

#include "server/base/counters.hpp"
#include "server/base/log.hpp"
#include "server/store/paths.hpp"

namespace souk::server {
namespace {

std::atomic<bool> g_have_openat2{true};

struct DirCloser {
    void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

FileInfo info_of(const struct stat& st) {
    FileInfo i;
    i.size = static_cast<uint64_t>(st.st_size);
    i.mode = st.st_mode;
    i.dev = st.st_dev;
    i.ino = st.st_ino;
    i.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    i.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
    return i;
}

int write_all_at(int fd, std::string_view data, uint64_t offset) {
    while (!data.empty()) {
        ssize_t r = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
        if (r < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (r == 0) return EIO;
        data.remove_prefix(static_cast<size_t>(r));
        offset += static_cast<uint64_t>(r);
    }
    return 0;
}

std::string temp_name() {
    unsigned char rnd[8];
    if (::getrandom(rnd, sizeof rnd, 0) != static_cast<ssize_t>(sizeof rnd)) {
        uint64_t t = static_cast<uint64_t>(::getpid()) ^ reinterpret_cast<uintptr_t>(&rnd);
        std::memcpy(rnd, &t, sizeof rnd);
    }
    static const char hex[] = "0123456789abcdef";
    std::string name(kTempPrefix);
    for (unsigned char c : rnd) {
        name += hex[c >> 4];
        name += hex[c & 15];
    }
    return name;
}

// Apply explicit permission bits (the client's mode beats the umask, as in
// Breezy's local transport).
void apply_mode(int fd, int mode) {
    if (mode >= 0) ::fchmod(fd, static_cast<mode_t>(mode & 07777));
}

// flock, retried on EINTR. 0 or errno.
int lock_fd(int fd, int op) {
    while (::flock(fd, op) != 0)  // bounded: retries only on EINTR
        if (errno != EINTR) return errno;
    return 0;
}

// The intent record of an append (docs/store-chain.md#append-intent-records):
// one line, written whole before the first byte lands, removed after the
// last. Keyed by the target's inode, so a reader that has fstat'ed the file
// finds it with one lookup beside it.
struct Intent {
    uint64_t dev = 0, ino = 0;
    uint64_t old = 0;  // the target's length before the append
    uint64_t end = 0;  // old + the append's length
};
constexpr size_t kIntentNameMax = 48;

// ".souk-tmp.append.<ino>", NUL-terminated, into buf[kIntentNameMax].
void intent_name(char* buf, uint64_t ino) {
    std::snprintf(buf, kIntentNameMax, "%.*s%llu", static_cast<int>(kIntentPrefix.size()), kIntentPrefix.data(),
                  static_cast<unsigned long long>(ino));
}

std::string intent_text(const Intent& in) {
    char buf[160];
    int n = std::snprintf(buf, sizeof buf, "souk-append-intent 1 %llu %llu %llu %llu\n",
                          static_cast<unsigned long long>(in.dev), static_cast<unsigned long long>(in.ino),
                          static_cast<unsigned long long>(in.old), static_cast<unsigned long long>(in.end));
    return std::string(buf, static_cast<size_t>(n));
}

// Read and check the record `name` in `dirfd`: 1 valid, 0 present but
// incomplete (its writer died, or is still writing it, before any byte
// landed), -errno when absent or unreadable.
int read_intent(int dirfd, const char* name, Intent& out) {
    io::Fd f(::openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (!f) return -errno;
    char buf[160];
    ssize_t n;
    do n = ::pread(f.get(), buf, sizeof buf - 1, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    buf[n] = '\0';
    unsigned long long dev, ino, old, end;
    int used = 0;
    if (std::sscanf(buf, "souk-append-intent 1 %llu %llu %llu %llu\n%n", &dev, &ino, &old, &end, &used) != 4 ||
        used != n || buf[n - 1] != '\n' || old > end)
        return 0;
    out = Intent{dev, ino, old, end};
    return 1;
}

bool is_temp_name(std::string_view name) { return name.substr(0, kTempPrefix.size()) == kTempPrefix; }

// The last change of a file, in seconds before now (never negative).
double age_of(const struct stat& st) {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    const timespec& t = st.st_ctim.tv_sec > st.st_mtim.tv_sec ? st.st_ctim : st.st_mtim;
    double age = static_cast<double>(now.tv_sec - t.tv_sec) + static_cast<double>(now.tv_nsec - t.tv_nsec) * 1e-9;
    return age < 0 ? 0 : age;
}

// Link the open file `fd` (an O_TMPFILE) as `leaf` in `dir` only if the
// name is free: 0, EEXIST, or another errno when the kernel cannot link an
// unnamed file here (the caller then takes the named-file way).
int link_unnamed(int fd, int dir, const char* leaf) {
    if (::linkat(fd, "", dir, leaf, AT_EMPTY_PATH) == 0) return 0;
    if (errno == EEXIST) return EEXIST;
    char proc[48];
    std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (::linkat(AT_FDCWD, proc, dir, leaf, AT_SYMLINK_FOLLOW) == 0) return 0;
    return errno == EEXIST ? EEXIST : (errno ? errno : EIO);
}

}  // namespace

FsStore::FsStore(const std::string& root) {
    std::unique_ptr<char, decltype(&::free)> real(::realpath(root.c_str(), nullptr), &::free);
    if (!real) {
        error_ = root + ": " + std::strerror(errno);
        return;
    }
    root_path_ = real.get();
    root_.reset(::open(root_path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_) error_ = root + ": " + std::strerror(errno);
}

int FsStore::open_dir(std::string_view rel) const {
    // NUL-terminated copy on the stack for the usual lengths (the request
    // hot path allocates nothing), on the heap beyond.
    char stack_path[512];
    std::string heap_path;
    const char* cpath = ".";
    if (!rel.empty() && rel.size() < sizeof stack_path) {
        std::memcpy(stack_path, rel.data(), rel.size());
        stack_path[rel.size()] = '\0';
        cpath = stack_path;
    } else if (!rel.empty()) {
        heap_path.assign(rel);
        cpath = heap_path.c_str();
    }
    if (g_have_openat2.load(std::memory_order_relaxed)) {
        struct open_how how{};
        how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        for (;;) {
            long fd = ::syscall(SYS_openat2, root_.get(), cpath, &how, sizeof how);
            if (fd >= 0) return static_cast<int>(fd);
            if (errno == EINTR || errno == EAGAIN) continue;
            if (errno != ENOSYS && errno != EPERM) return -errno;
            break;  // no openat2 here (old kernel or seccomp): walk instead
        }
        g_have_openat2.store(false, std::memory_order_relaxed);
    }
    // Component walk; lexical '..' was already removed by resolve_path.
    int cur = ::openat(root_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cur < 0) return -errno;
    size_t i = 0;
    while (i < rel.size()) {
        size_t j = rel.find('/', i);
        if (j == std::string_view::npos) j = rel.size();
        std::string seg(rel.substr(i, j - i));
        int next = ::openat(cur, seg.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        ::close(cur);
        if (next < 0) return -e;
        cur = next;
        i = j + 1;
    }
    return cur;
}

int FsStore::open_parent(const std::string& path, io::Fd& dir, std::string_view& leaf) const {
    size_t slash = path.rfind('/');
    std::string_view parent = slash == std::string::npos ? std::string_view() : std::string_view(path).substr(0, slash);
    // A suffix of `path` (so NUL-terminated) or the literal ".": no copy.
    leaf = path.empty() ? std::string_view(".") : std::string_view(path).substr(slash == std::string::npos ? 0 : slash + 1);
    int fd = open_dir(parent);
    if (fd < 0) return -fd;
    dir.reset(fd);
    return 0;
}

int FsStore::open_read(const std::string& path, OpenFile& out) {
    // O_NONBLOCK: opening a FIFO must not hang the worker.
    constexpr int kFlags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    if (in_temp_namespace(path)) return ENOENT;
    int fd = -1;
    if (g_have_openat2.load(std::memory_order_relaxed) && !path.empty()) {
        // The hot path: one openat2 beneath the root, no symlink in any
        // component (the leaf included), instead of parent + leaf opens.
        struct open_how how{};
        how.flags = kFlags;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        long r;
        do r = ::syscall(SYS_openat2, root_.get(), path.c_str(), &how, sizeof how);
        while (r < 0 && (errno == EINTR || errno == EAGAIN));
        if (r < 0 && errno != ENOSYS && errno != EPERM) return errno;
        fd = static_cast<int>(r);
    }
    if (fd < 0) {
        io::Fd dir;
        std::string_view leaf;
        if (int e = open_parent(path, dir, leaf)) return e;
        fd = ::openat(dir.get(), leaf.data(), kFlags);
        if (fd < 0) return errno;
    }
    io::Fd f(fd);
    struct stat st;
    if (::fstat(fd, &st) != 0) return errno;
    if (S_ISDIR(st.st_mode)) return EISDIR;
    if (!S_ISREG(st.st_mode)) return EINVAL;
    if (int e = settle(path, -1, {}, fd, st)) return e;
    out.fd = std::move(f);
    out.info = info_of(st);
    return 0;
}

ssize_t FsStore::pread(OpenFile& f, char* buf, size_t n, uint64_t offset) {
    for (;;) {
        ssize_t r = ::pread(f.fd.get(), buf, n, static_cast<off_t>(offset));
        if (r >= 0) return r;
        if (errno != EINTR) return -errno;
    }
}

int FsStore::stat(const std::string& path, FileInfo& out) {
    if (in_temp_namespace(path)) return ENOENT;
    io::Fd dir;
    std::string_view leaf;
    if (int e = open_parent(path, dir, leaf)) return e;
    struct stat st;
    if (::fstatat(dir.get(), leaf.data(), &st, AT_SYMLINK_NOFOLLOW) != 0) return errno;
    if (S_ISREG(st.st_mode))
        if (int e = settle(path, dir.get(), leaf, -1, st)) return e;
    out = info_of(st);
    return 0;
}

// ------------------------------------------------- unfinished appends ----

int FsStore::open_intent(const std::string& path, int dirfd, uint64_t ino) const {
    char name[kIntentNameMax];
    intent_name(name, ino);
    constexpr int kFlags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
    if (dirfd >= 0) {
        int fd = ::openat(dirfd, name, kFlags);
        return fd >= 0 ? fd : -errno;
    }
    // "<parent>/<name>" on the stack, opened beneath the root: the read hot
    // path allocates nothing.
    size_t slash = path.rfind('/');
    size_t plen = slash == std::string::npos ? 0 : slash + 1;
    char buf[PATH_MAX + kIntentNameMax];
    if (plen + std::strlen(name) + 1 > sizeof buf) return -ENAMETOOLONG;
    std::memcpy(buf, path.data(), plen);
    std::strcpy(buf + plen, name);
    if (g_have_openat2.load(std::memory_order_relaxed)) {
        struct open_how how{};
        how.flags = kFlags;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        long r;
        do r = ::syscall(SYS_openat2, root_.get(), buf, &how, sizeof how);
        while (r < 0 && (errno == EINTR || errno == EAGAIN));
        if (r >= 0) return static_cast<int>(r);
        if (errno != ENOSYS && errno != EPERM) return -errno;
    }
    io::Fd dir;
    std::string_view leaf;
    if (int e = open_parent(path, dir, leaf)) return -e;
    int fd = ::openat(dir.get(), name, kFlags);
    return fd >= 0 ? fd : -errno;
}

int FsStore::settle(const std::string& path, int dirfd, std::string_view leaf, int fd, struct stat& st) const {
    int ifd = open_intent(path, dirfd, st.st_ino);
    if (ifd >= 0) {
        ::close(ifd);
        return settle_slow(path, dirfd, leaf, fd, st);
    }
    if (ifd != -ENOENT) return 0;  // cannot tell (ENAMETOOLONG, EACCES): as before intent records
    // No record now; a second look shows whether an append finished landing
    // (and removed its record) since `st` was taken, which may then hold a
    // part of it.
    struct stat again;
    if (fd >= 0 ? ::fstat(fd, &again) != 0 : ::fstatat(dirfd, leaf.data(), &again, AT_SYMLINK_NOFOLLOW) != 0)
        return 0;
    if (again.st_ino == st.st_ino && again.st_size == st.st_size) return 0;
    return settle_slow(path, dirfd, leaf, fd, st);
}

int FsStore::settle_slow(const std::string& path, int dirfd, std::string_view leaf, int fd, struct stat& st) const {
    io::Fd dir_hold, file_hold;
    if (dirfd < 0) {
        if (open_parent(path, dir_hold, leaf)) return 0;
        dirfd = dir_hold.get();
    }
    if (fd < 0) {
        file_hold.reset(::openat(dirfd, leaf.data(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
        if (!file_hold) return errno == ENOENT ? ENOENT : 0;
        fd = file_hold.get();
    }
    char name[kIntentNameMax];
    // An appender holds LOCK_EX from before its record is written until
    // after it is removed; a reader never waits for it.
    if (lock_fd(fd, LOCK_EX | LOCK_NB) == 0) {
        // Nobody is landing: a record is a dead appender's. Roll it back
        // (or, without repairs, hide its tail).
        if (::fstat(fd, &st) == 0) {
            io::Fd wfd;
            if (repair()) {
                wfd.reset(::openat(dirfd, leaf.data(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
                struct stat wst;
                if (wfd && (::fstat(wfd.get(), &wst) != 0 || wst.st_ino != st.st_ino || wst.st_dev != st.st_dev))
                    wfd.reset();  // the name moved on: hide the tail only
            }
            intent_name(name, st.st_ino);
            roll_back_locked(dirfd, name, wfd.get(), st);
        }
        lock_fd(fd, LOCK_UN);
        return 0;
    }
    // An append is landing: show the length before it. The record is read
    // between two fstats that agree, so the length and the record belong
    // to the same moment.
    // bounded: a few looks; appends landing back to back could go on
    for (int look = 0; look < 4; ++look) {
        struct stat a, b;
        if (::fstat(fd, &a) != 0) return 0;
        intent_name(name, a.st_ino);
        Intent in;
        int r = read_intent(dirfd, name, in);
        if (::fstat(fd, &b) != 0) return 0;
        st = b;
        if (r == 1 && in.dev == b.st_dev && in.ino == b.st_ino && static_cast<uint64_t>(b.st_size) > in.old)
            st.st_size = static_cast<off_t>(in.old);
        if (a.st_size == b.st_size) break;
    }
    return 0;
}

bool FsStore::roll_back_locked(int dirfd, const char* name, int wfd, struct stat& st) const {
    Intent in;
    int r = read_intent(dirfd, name, in);
    if (r < 0) return false;
    // With the lock held, a record is a dead appender's: an incomplete one
    // (r == 0) died before any byte landed; a valid one names the inode and
    // the length to return to.
    const bool mine = r == 1 && in.dev == st.st_dev && in.ino == st.st_ino;
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (mine && size > in.old && size <= in.end) {
        if (wfd < 0 || ::ftruncate(wfd, static_cast<off_t>(in.old)) != 0) {
            st.st_size = static_cast<off_t>(in.old);  // cannot repair here: hide the tail, keep the record
            return true;
        }
        // A repair is not a write: the file keeps the time of its last
        // real write (the dead appender's), so what ages files by mtime
        // (upload/ leftovers) does not see it as new.
        const struct timespec times[2] = {{0, UTIME_OMIT}, st.st_mtim};
        ::futimens(wfd, times);
        count(counters().store_appends_rolled_back);
        SOUK_LOG(Info, "rolled back an append cut short by the death of its process (%llu -> %llu bytes, %s)",
                 static_cast<unsigned long long>(size), static_cast<unsigned long long>(in.old), name);
        ::fstat(wfd, &st);
    } else if (mine && size > in.end) {
        // Longer than the append could make it: another program wrote since.
        // Not ours to cut; the record goes.
        SOUK_LOG(Warn, "%s: the file grew past an interrupted append's end (%llu > %llu); left as it is", name,
                 static_cast<unsigned long long>(size), static_cast<unsigned long long>(in.end));
    }
    if (wfd >= 0) ::unlinkat(dirfd, name, 0);
    return mine;
}

void FsStore::settle_for_write(int dirfd, const char* leaf) const {
    struct stat st;
    if (::fstatat(dirfd, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) return;
    char name[kIntentNameMax];
    intent_name(name, st.st_ino);
    if (::faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) != 0) return;
    io::Fd f(::openat(dirfd, leaf, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!f || lock_fd(f.get(), LOCK_EX)) return;  // waits for a live appender to finish
    if (::fstat(f.get(), &st) == 0) {
        intent_name(name, st.st_ino);
        roll_back_locked(dirfd, name, f.get(), st);
    }
}

namespace {

// Bytes that wait for their commit: in memory up to kSpoolInMemory, then
// in an unnamed temporary file (O_TMPFILE) in `dir`, which a crash cannot
// leave behind.
class Spool {
public:
    int write(int dir, std::string_view chunk) {
        if (!file_ && mem_.size() + chunk.size() <= kSpoolInMemory) {
            mem_.append(chunk);
            return 0;
        }
        if (!file_) {
            if (int e = open_file(dir)) return e;
            if (int e = write_all_at(file_.get(), mem_, 0)) return e;
            size_ = mem_.size();
            std::string().swap(mem_);
        }
        int e = write_all_at(file_.get(), chunk, size_);
        if (!e) size_ += chunk.size();
        return e;
    }
    // Write everything to `fd` at `at` (copy_file_range from the file: no
    // copy through user space). 0 or errno.
    int copy_to(int fd, uint64_t at) const {
        if (!file_) return write_all_at(fd, mem_, at);
        loff_t in = 0, out = static_cast<loff_t>(at);
        uint64_t left = size_;
        while (left > 0) {  // bounded: each pass copies >= 1 byte or fails
            ssize_t r = ::copy_file_range(file_.get(), &in, fd, &out,
                                          static_cast<size_t>(std::min<uint64_t>(left, 1u << 30)), 0);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP))
                return copy_by_hand(fd, static_cast<uint64_t>(in), static_cast<uint64_t>(out), left);
            if (r < 0) return errno;
            if (r == 0) return EIO;
            left -= static_cast<uint64_t>(r);
        }
        return 0;
    }
    // The unnamed file holding the bytes, or -1 while they are in memory.
    int file() const { return file_.get(); }
    uint64_t size() const { return file_ ? size_ : mem_.size(); }

private:
    int open_file(int dir) {
        // 0666 less the umask: an append to a new name links this very file
        // into place (AppendUpload::publish).
        int fd = ::openat(dir, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0666);
        if (fd < 0) {
            // No O_TMPFILE on this filesystem: a named file, unlinked at once.
            std::string tmp = temp_name();
            fd = ::openat(dir, tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (fd < 0) return errno;
            ::unlinkat(dir, tmp.c_str(), 0);
        }
        file_.reset(fd);
        return 0;
    }
    int copy_by_hand(int fd, uint64_t in, uint64_t out, uint64_t left) const {
        char buf[64 * 1024];
        while (left > 0) {  // bounded: each pass copies >= 1 byte or fails
            ssize_t r = ::pread(file_.get(), buf, static_cast<size_t>(std::min<uint64_t>(left, sizeof buf)),
                                static_cast<off_t>(in));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return r < 0 ? errno : EIO;
            if (int e = write_all_at(fd, std::string_view(buf, static_cast<size_t>(r)), out)) return e;
            in += static_cast<uint64_t>(r);
            out += static_cast<uint64_t>(r);
            left -= static_cast<uint64_t>(r);
        }
        return 0;
    }

    std::string mem_;
    io::Fd file_;
    uint64_t size_ = 0;
};

// Put and PutNonAtomic: a named temporary file in the target's directory,
// renamed over the target at commit (readers see the old or the new file).
// The writer holds flock(LOCK_EX) on it from creation until after the
// rename, so a sweep never takes a live writer's file
// (docs/store-chain.md#temporary-files).
class TempFileUpload final : public Upload {
public:
    TempFileUpload(io::Fd dir, std::string leaf, std::string tmp, io::Fd fd, bool durable)
        : dir_(std::move(dir)), leaf_(std::move(leaf)), tmp_(std::move(tmp)), fd_(std::move(fd)), durable_(durable) {}
    ~TempFileUpload() override {
        if (!tmp_.empty()) ::unlinkat(dir_.get(), tmp_.c_str(), 0);  // still locked: fd_ closes after
    }
    int write(std::string_view chunk) override {
        int e = write_all_at(fd_.get(), chunk, size_);
        if (!e) size_ += chunk.size();
        return e;
    }
    // Take the whole body from a spool at once (NewParentUpload).
    int fill_from(const Spool& s) { return s.copy_to(fd_.get(), 0); }
    int commit(uint64_t* old_size) override {
        if (old_size) *old_size = 0;
        int e = 0;
        if (durable_ && ::fsync(fd_.get()) != 0) e = errno;
        // The file this put replaces: an unfinished append's record of it
        // goes with it.
        struct stat old;
        const bool replaces = ::fstatat(dir_.get(), leaf_.c_str(), &old, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(old.st_mode);
        if (!e && ::renameat(dir_.get(), tmp_.c_str(), dir_.get(), leaf_.c_str()) != 0) e = errno;
        if (e) return e;  // the destructor removes the temporary file
        tmp_.clear();
        fd_.reset();  // unlock: the name is the target's now
        if (replaces) {
            char name[kIntentNameMax];
            intent_name(name, old.st_ino);
            ::unlinkat(dir_.get(), name, 0);
        }
        if (durable_) ::fsync(dir_.get());  // make the rename durable
        return 0;
    }

private:
    io::Fd dir_;
    std::string leaf_, tmp_;
    io::Fd fd_;
    bool durable_;
    uint64_t size_ = 0;
};

// Append: the bytes wait in a Spool beside the target; commit lands them
// (docs/store-chain.md#append-intent-records).
//
// * To an existing file: under the target's flock(LOCK_EX), roll back what a
//   dead appender left, write an intent record (the old length), copy the
//   spool to the end, remove the record. A process killed at any point
//   leaves either no record (nothing landed, or all of it and committed) or
//   a record that the next toucher (reader, appender, sweep) rolls back.
// * To a new name: the whole file is built unnamed (the spool's O_TMPFILE),
//   then linked under the name only if it is still free: readers see
//   nothing or all of it, and a failure at any point leaves nothing.
class AppendUpload final : public Upload {
public:
    AppendUpload(const FsStore& store, io::Fd dir, std::string leaf, int mode)
        : store_(store), dir_(std::move(dir)), leaf_(std::move(leaf)), mode_(mode) {}
    int write(std::string_view chunk) override { return spool_.write(dir_.get(), chunk); }
    int commit(uint64_t* old_size) override {
        // bounded: another attempt only when the name changed between two
        // steps (made, removed or replaced by a concurrent request)
        for (int attempt = 0; attempt < 16; ++attempt) {
            struct stat st;
            if (::fstatat(dir_.get(), leaf_.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
                if (errno != ENOENT) return errno;
                int e = publish();
                if (e == 0) *old_size = 0;
                if (e != EEXIST) return e;
                continue;  // made meanwhile: append to it
            }
            if (S_ISDIR(st.st_mode)) return EISDIR;
            if (S_ISLNK(st.st_mode)) return ELOOP;
            if (!S_ISREG(st.st_mode)) return EINVAL;
            io::Fd f(::openat(dir_.get(), leaf_.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
            if (!f) {
                if (errno == ENOENT) continue;
                return errno;
            }
            int e = append_locked(f.get(), old_size);
            if (e != EAGAIN) return e;  // closing f releases the lock
        }
        return EBUSY;
    }

private:
    // With f open on the name: lock, check it is still the name's file,
    // land. EAGAIN: the name moved on while we waited; try again.
    int append_locked(int fd, uint64_t* old_size) {
        // flock is per open file description: it serialises appenders in
        // every thread and every soukd process, so the size read below is exact.
        if (int e = lock_fd(fd, LOCK_EX)) return e;
        struct stat st, named;
        if (::fstat(fd, &st) != 0) return errno;
        if (!S_ISREG(st.st_mode)) return EINVAL;
        if (::fstatat(dir_.get(), leaf_.c_str(), &named, AT_SYMLINK_NOFOLLOW) != 0 || named.st_ino != st.st_ino ||
            named.st_dev != st.st_dev)
            return EAGAIN;  // deleted or replaced while we waited for the lock
        char name[kIntentNameMax];
        intent_name(name, st.st_ino);
        // Any record of this inode is a dead appender's (we hold the lock).
        store_.roll_back_locked(dir_.get(), name, fd, st);
        const uint64_t old = static_cast<uint64_t>(st.st_size);
        const Intent in{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), old, old + spool_.size()};
        {
            io::Fd rec(::openat(dir_.get(), name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666));
            if (!rec) return errno;  // no record, no append: it could not be rolled back
            if (int e = write_all_at(rec.get(), intent_text(in), 0)) {
                ::unlinkat(dir_.get(), name, 0);
                return e;
            }
        }
        int e = spool_.copy_to(fd, old);
        if (e && ::ftruncate(fd, static_cast<off_t>(old)) != 0) {
            // The record stays: the next toucher rolls the tail back.
            return e;
        }
        ::unlinkat(dir_.get(), name, 0);  // the commit point
        if (e) return e;
        *old_size = old;
        return 0;
    }

    // The append made the file: link the complete file under the name if it
    // is still free. 0, EEXIST (someone made it meanwhile) or errno.
    int publish() {
        io::Fd own;
        int src = spool_.file();
        if (src < 0) {
            own.reset(::openat(dir_.get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0666));
            if (own) {
                if (int e = spool_.copy_to(own.get(), 0)) return e;
                src = own.get();
            }
        }
        if (src >= 0) {
            apply_mode(src, mode_);
            int e = link_unnamed(src, dir_.get(), leaf_.c_str());
            if (e == 0 || e == EEXIST) return e;
        }
        // No O_TMPFILE here, or no way to link one: a named temporary file,
        // locked as put's are, linked (never replacing) and then unnamed.
        std::string tmp = temp_name();
        io::Fd f(::openat(dir_.get(), tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666));
        if (!f) return errno;
        lock_fd(f.get(), LOCK_EX | LOCK_NB);
        apply_mode(f.get(), mode_);
        int e = spool_.copy_to(f.get(), 0);
        if (!e && ::linkat(dir_.get(), tmp.c_str(), dir_.get(), leaf_.c_str(), 0) != 0) e = errno;
        ::unlinkat(dir_.get(), tmp.c_str(), 0);
        return e;
    }

    const FsStore& store_;
    io::Fd dir_;
    std::string leaf_;
    int mode_;
    Spool spool_;
};

// put_non_atomic with create_parent into a missing parent: the bytes wait
// in a Spool in the grandparent, and the parent is made only at commit, so
// an aborted upload leaves no directory behind.
class NewParentUpload final : public Upload {
public:
    NewParentUpload(FsStore& store, io::Fd grandparent, std::string path, WriteSpec spec)
        : store_(store), gp_(std::move(grandparent)), path_(std::move(path)), spec_(spec) {}
    int write(std::string_view chunk) override { return spool_.write(gp_.get(), chunk); }
    int commit(uint64_t* old_size) override {
        const std::string parent = path_.substr(0, path_.rfind('/'));
        if (int e = store_.mkdir(parent, spec_.dir_mode); e && e != EEXIST) return e;
        WriteSpec plain = spec_;
        plain.create_parent = false;
        std::unique_ptr<Upload> up;
        if (int e = store_.begin_upload(path_, plain, up)) return e;
        auto* temp = static_cast<TempFileUpload*>(up.get());
        if (int e = temp->fill_from(spool_)) return e;
        return up->commit(old_size);
    }

private:
    FsStore& store_;
    io::Fd gp_;
    std::string path_;
    WriteSpec spec_;
    Spool spool_;
};

}  // namespace

int FsStore::begin_upload(const std::string& path, const WriteSpec& spec, std::unique_ptr<Upload>& out) {
    if (in_temp_namespace(path)) return EACCES;
    io::Fd dir;
    std::string_view leaf;
    int e = open_parent(path, dir, leaf);
    if (e == ENOENT && spec.kind == WriteKind::PutNonAtomic && spec.create_parent) {
        // The parent (one level only) is made at commit.
        size_t slash = path.rfind('/');
        if (slash == std::string::npos) return ENOENT;
        const std::string parent = path.substr(0, slash);
        io::Fd gp;
        std::string_view parent_leaf;
        if (int ge = open_parent(parent, gp, parent_leaf)) return ge;
        out = std::make_unique<NewParentUpload>(*this, std::move(gp), path, spec);
        return 0;
    }
    if (e) return e;
    if (leaf == ".") return EISDIR;
    // Refuse a directory before any body arrives (a symlink is replaced by
    // put, as rename(2) does, and refused by append, which never follows it).
    struct stat st;
    if (::fstatat(dir.get(), leaf.data(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISDIR(st.st_mode)) return EISDIR;
        if (S_ISLNK(st.st_mode) && spec.kind == WriteKind::Append) return ELOOP;
    }
    if (spec.kind == WriteKind::Append) {
        out = std::make_unique<AppendUpload>(*this, std::move(dir), std::string(leaf), spec.mode);
        return 0;
    }
    std::string tmp = temp_name();
    int fd = ::openat(dir.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) return errno;
    io::Fd f(fd);
    lock_fd(fd, LOCK_EX | LOCK_NB);  // a new file: only a sweep could hold it, for an instant
    apply_mode(fd, spec.mode);
    out = std::make_unique<TempFileUpload>(std::move(dir), std::string(leaf), std::move(tmp), std::move(f),
                                           spec.kind == WriteKind::Put);
    return 0;
}

int FsStore::mkdir(const std::string& path, int mode) {
    if (in_temp_namespace(path)) return EACCES;
    io::Fd dir;
    std::string_view leaf;
    if (int e = open_parent(path, dir, leaf)) return e;
    if (::mkdirat(dir.get(), leaf.data(), 0777) != 0) return errno;
    if (mode >= 0) {
        io::Fd d(::openat(dir.get(), leaf.data(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (d) apply_mode(d.get(), mode);
    }
    return 0;
}

int FsStore::rmdir(const std::string& path) {
    if (in_temp_namespace(path)) return ENOENT;
    io::Fd dir;
    std::string_view leaf;
    if (int e = open_parent(path, dir, leaf)) return e;
    if (leaf == ".") return EBUSY;
    if (::unlinkat(dir.get(), leaf.data(), AT_REMOVEDIR) == 0) return 0;
    int e = errno;
    if ((e != ENOTEMPTY && e != EEXIST) || !repair()) return e;
    // Empty but for the temporary files of dead writers (a put killed in
    // flight): remove them and try again. Clients cannot see them, so the
    // directory is empty to them; a live writer's file keeps it.
    io::Fd d(::openat(dir.get(), leaf.data(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    SweepCounts c;
    if (!d || !sweep_dir(d.get(), 0, true, c, nullptr)) return e;
    return ::unlinkat(dir.get(), leaf.data(), AT_REMOVEDIR) == 0 ? 0 : errno;
}

int FsStore::unlink(const std::string& path) {
    if (in_temp_namespace(path)) return ENOENT;
    io::Fd dir;
    std::string_view leaf;
    if (int e = open_parent(path, dir, leaf)) return e;
    if (leaf == ".") return EISDIR;
    struct stat st;
    const bool reg = ::fstatat(dir.get(), leaf.data(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
    if (::unlinkat(dir.get(), leaf.data(), 0) != 0) return errno;
    if (reg) {  // an unfinished append's record goes with its file
        char name[kIntentNameMax];
        intent_name(name, st.st_ino);
        ::unlinkat(dir.get(), name, 0);
    }
    return 0;
}

int FsStore::rename(const std::string& from, const std::string& to) {
    if (in_temp_namespace(from)) return ENOENT;
    if (in_temp_namespace(to)) return EACCES;
    io::Fd d1, d2;
    std::string_view l1, l2;
    if (int e = open_parent(from, d1, l1)) return e;
    if (int e = open_parent(to, d2, l2)) return e;
    if (l1 == "." || l2 == ".") return EBUSY;
    // The record of an unfinished append stays beside the old name: settle
    // the file before it moves.
    settle_for_write(d1.get(), l1.data());
    struct stat st;
    const bool replaces = ::fstatat(d2.get(), l2.data(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
    if (::renameat(d1.get(), l1.data(), d2.get(), l2.data()) != 0) return errno;
    if (replaces) {
        struct stat now;
        if (::fstatat(d2.get(), l2.data(), &now, AT_SYMLINK_NOFOLLOW) != 0 || now.st_ino != st.st_ino) {
            char name[kIntentNameMax];
            intent_name(name, st.st_ino);
            ::unlinkat(d2.get(), name, 0);
        }
    }
    return 0;
}

int FsStore::list_dir(const std::string& path, std::vector<std::string>& names) {
    if (in_temp_namespace(path)) return ENOENT;
    int fd = open_dir(path);
    if (fd < 0) return -fd;
    DIR* d = ::fdopendir(fd);
    if (!d) {
        int e = errno;
        ::close(fd);
        return e;
    }
    DirPtr guard(d);
    errno = 0;
    while (struct dirent* ent = ::readdir(d)) {
        std::string_view name = ent->d_name;
        if (name == "." || name == ".." || is_temp_name(name)) continue;
        names.emplace_back(name);
    }
    return errno;
}

int FsStore::list_files_recursive(const std::string& path, std::vector<std::string>& relpaths) {
    if (in_temp_namespace(path)) return ENOENT;
    std::vector<std::string> todo{""};  // directories relative to `path`
    while (!todo.empty()) {
        std::string cur = std::move(todo.back());
        todo.pop_back();
        int fd = open_dir(join(path, cur));
        if (fd < 0) {
            if (cur.empty()) return -fd;
            continue;  // vanished or unreadable subdirectory: skip it
        }
        DIR* d = ::fdopendir(fd);
        if (!d) {
            ::close(fd);
            continue;
        }
        DirPtr guard(d);
        while (struct dirent* ent = ::readdir(d)) {
            std::string_view name = ent->d_name;
            if (name == "." || name == ".." || is_temp_name(name)) continue;
            unsigned char type = ent->d_type;
            if (type == DT_UNKNOWN) {
                struct stat st;
                if (::fstatat(::dirfd(d), ent->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
                type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_LNK;
            }
            if (type == DT_DIR) todo.push_back(join(cur, name));
            else if (type == DT_REG) relpaths.push_back(join(cur, name));
        }
    }
    return 0;
}

// ------------------------------------------------------------ sweeps ----

bool FsStore::sweep_dir(int dirfd, double min_age, bool require_empty, SweepCounts& c,
                        std::vector<std::string>* subdirs) const {
    int dup = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dup < 0) return false;
    DIR* d = ::fdopendir(dup);
    if (!d) {
        ::close(dup);
        return false;
    }
    DirPtr guard(d);
    ++c.dirs;
    std::vector<std::string> temps;
    std::unordered_map<uint64_t, std::string> files;  // inode -> name, for intent records
    while (struct dirent* ent = ::readdir(d)) {       // bounded: the directory's entries
        std::string_view name = ent->d_name;
        if (name == "." || name == "..") continue;
        if (is_temp_name(name)) {
            temps.emplace_back(name);
            continue;
        }
        if (require_empty) return false;
        unsigned char type = ent->d_type;
        if (type == DT_UNKNOWN) {
            struct stat st;
            if (::fstatat(dirfd, ent->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
            type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
        }
        if (type == DT_REG) files.emplace(static_cast<uint64_t>(ent->d_ino), std::string(name));
        else if (type == DT_DIR && subdirs) subdirs->emplace_back(name);
    }
    for (const std::string& t : temps) {  // bounded: the temporary names found above
        struct stat st;
        if (::fstatat(dirfd, t.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone meanwhile
        if (!S_ISREG(st.st_mode)) {
            ++c.busy;  // not one of ours (a directory made before names were reserved): left alone
            continue;
        }
        if (std::string_view(t).substr(0, kIntentPrefix.size()) == kIntentPrefix) {
            unsigned long long ino = 0;
            char tail = 0;
            const bool parsed = std::sscanf(t.c_str() + kIntentPrefix.size(), "%llu%c", &ino, &tail) == 1;
            auto target = parsed ? files.find(ino) : files.end();
            if (target != files.end()) {
                // Its appender is dead if the target's lock is free: roll back.
                io::Fd f(::openat(dirfd, target->second.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
                struct stat fst;
                if (!f || lock_fd(f.get(), LOCK_EX | LOCK_NB) || ::fstat(f.get(), &fst) != 0 || fst.st_ino != ino) {
                    ++c.busy;
                    continue;
                }
                const uint64_t before = static_cast<uint64_t>(fst.st_size);
                roll_back_locked(dirfd, t.c_str(), f.get(), fst);
                if (static_cast<uint64_t>(fst.st_size) < before) ++c.rolled_back;
                ++c.removed;
                continue;
            }
            // Its file is gone (deleted or replaced by another program):
            // nothing to roll back.
        } else {
            // A put's file: its writer holds LOCK_EX until it is renamed.
            io::Fd f(::openat(dirfd, t.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
            if (!f || lock_fd(f.get(), LOCK_EX | LOCK_NB) || ::fstat(f.get(), &st) != 0) {
                ++c.busy;
                continue;
            }
            struct stat named;
            if (::fstatat(dirfd, t.c_str(), &named, AT_SYMLINK_NOFOLLOW) != 0 || named.st_ino != st.st_ino) continue;
        }
        // min_age covers the instant between a writer creating its file and
        // locking it, and a lock the filesystem does not share.
        if (age_of(st) < min_age) {
            ++c.busy;
            continue;
        }
        if (::unlinkat(dirfd, t.c_str(), 0) == 0) {
            ++c.removed;
            count(counters().store_temps_swept);
        } else {
            ++c.busy;
        }
    }
    return c.busy == 0 || !require_empty;
}

FsStore::SweepCounts FsStore::sweep(double min_age) {
    SweepCounts c;
    if (!repair() || !valid()) return c;
    count(counters().store_sweeps);
    std::vector<std::string> todo{""};
    std::set<std::pair<dev_t, ino_t>> seen;
    while (!todo.empty()) {  // bounded: each directory once (seen), none reached through a symlink
        std::string rel = std::move(todo.back());
        todo.pop_back();
        int fd = open_dir(rel);
        if (fd < 0) continue;  // vanished or unreadable
        io::Fd dir(fd);
        struct stat st;
        if (::fstat(fd, &st) != 0 || !seen.emplace(st.st_dev, st.st_ino).second) continue;
        std::vector<std::string> subs;
        sweep_dir(fd, min_age, false, c, &subs);
        for (auto& s : subs) todo.push_back(join(rel, s));
    }
    if (c.removed || c.rolled_back)
        SOUK_LOG(Info, "swept %s: %llu temporary files removed, %llu interrupted appends rolled back (%llu directories)",
                 root_path_.c_str(), static_cast<unsigned long long>(c.removed),
                 static_cast<unsigned long long>(c.rolled_back), static_cast<unsigned long long>(c.dirs));
    return c;
}

bool FsStore::sweep_if_due(double interval, double min_age, bool force, std::atomic<int64_t>* clock,
                           SweepCounts* out) {
    if (!repair() || !valid()) return false;
    if (clock) {
        timespec now{};
        ::clock_gettime(CLOCK_REALTIME, &now);
        const int64_t now_ns = static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
        int64_t last = clock->load(std::memory_order_relaxed);
        if (!force && last != 0 && now_ns - last < static_cast<int64_t>(interval * 1e9)) return false;
        // Claim this round first: a process that lost the race skips it.
        if (!clock->compare_exchange_strong(last, now_ns)) return false;
    } else if (!force) {
        return false;
    }
    SweepCounts c = sweep(min_age);
    if (out) *out = c;
    return true;
}

TempSweeper::TempSweeper(FsStore& fs, std::atomic<int64_t>* clock, double interval, double min_age)
    : fs_(fs), clock_(clock), interval_(interval), min_age_(min_age), thread_([this] { run(); }) {}

TempSweeper::~TempSweeper() {
    {
        std::lock_guard<std::mutex> g(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void TempSweeper::run() {
    bool first = true;
    std::unique_lock<std::mutex> g(mu_);
    while (!stop_) {  // bounded: one sweep per interval until the destructor stops it
        g.unlock();
        fs_.sweep_if_due(interval_, min_age_, first || !clock_, clock_);
        first = false;
        g.lock();
        cv_.wait_for(g, std::chrono::duration<double>(interval_), [this] { return stop_; });
    }
}

}  // namespace souk::server
