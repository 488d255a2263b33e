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

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>

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
    io::Fd dir;
    std::string_view leaf;
    if (int e = open_parent(path, dir, leaf)) return e;
    struct stat st;
    if (::fstatat(dir.get(), leaf.data(), &st, AT_SYMLINK_NOFOLLOW) != 0) return errno;
    out = info_of(st);
    return 0;
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

private:
    int open_file(int dir) {
        int fd = ::openat(dir, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
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
class TempFileUpload final : public Upload {
public:
    TempFileUpload(io::Fd dir, std::string leaf, std::string tmp, io::Fd fd, bool durable)
        : dir_(std::move(dir)), leaf_(std::move(leaf)), tmp_(std::move(tmp)), fd_(std::move(fd)), durable_(durable) {}
    ~TempFileUpload() override {
        if (!tmp_.empty()) ::unlinkat(dir_.get(), tmp_.c_str(), 0);
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
        fd_.reset();
        if (!e && ::renameat(dir_.get(), tmp_.c_str(), dir_.get(), leaf_.c_str()) != 0) e = errno;
        if (e) return e;  // the destructor removes the temporary file
        tmp_.clear();
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

// Append: the bytes wait in a Spool beside the target; commit copies them
// to the end of the target under its lock.
class AppendUpload final : public Upload {
public:
    AppendUpload(io::Fd dir, std::string leaf, int mode) : dir_(std::move(dir)), leaf_(std::move(leaf)), mode_(mode) {}
    int write(std::string_view chunk) override { return spool_.write(dir_.get(), chunk); }
    int commit(uint64_t* old_size) override {
        bool created = true;
        int fd = ::openat(dir_.get(), leaf_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST) {
            created = false;
            fd = ::openat(dir_.get(), leaf_.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        }
        if (fd < 0) return errno;
        io::Fd f(fd);
        int e = append_locked(fd, created, old_size);
        // A failed append to a new name leaves nothing behind.
        if (e && created) ::unlinkat(dir_.get(), leaf_.c_str(), 0);
        return e;  // closing f releases the lock
    }

private:
    int append_locked(int fd, bool created, uint64_t* old_size) {
        struct stat st;
        if (::fstat(fd, &st) != 0) return errno;
        if (S_ISDIR(st.st_mode)) return EISDIR;
        if (!S_ISREG(st.st_mode)) return EINVAL;
        if (created) apply_mode(fd, mode_);
        // flock is per open file description: it serialises appenders in
        // every thread and every soukd process, so the size read below is exact.
        while (::flock(fd, LOCK_EX) != 0)  // bounded: retries only on EINTR
            if (errno != EINTR) return errno;
        if (::fstat(fd, &st) != 0) return errno;
        const uint64_t old = static_cast<uint64_t>(st.st_size);
        if (int e = spool_.copy_to(fd, old)) {
            if (::ftruncate(fd, static_cast<off_t>(old)) != 0) { /* report the write error */ }
            return e;
        }
        *old_size = old;
        return 0;
    }

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
        out = std::make_unique<AppendUpload>(std::move(dir), std::string(leaf), spec.mode);
        return 0;
    }
    std::string tmp = temp_name();
    int fd = ::openat(dir.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) return errno;
    io::Fd f(fd);
    apply_mode(fd, spec.mode);
    out = std::make_unique<TempFileUpload>(std::move(dir), std::string(leaf), std::move(tmp), std::move(f),
                                           spec.kind == WriteKind::Put);
    return 0;
}

int FsStore::mkdir(const std::string& path, int mode) {
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
    io::Fd dir;
    std::string_view leaf;
    if (int e = open_parent(path, dir, leaf)) return e;
    if (leaf == ".") return EBUSY;
    return ::unlinkat(dir.get(), leaf.data(), AT_REMOVEDIR) == 0 ? 0 : errno;
}

int FsStore::unlink(const std::string& path) {
    io::Fd dir;
    std::string_view leaf;
    if (int e = open_parent(path, dir, leaf)) return e;
    if (leaf == ".") return EISDIR;
    return ::unlinkat(dir.get(), leaf.data(), 0) == 0 ? 0 : errno;
}

int FsStore::rename(const std::string& from, const std::string& to) {
    io::Fd d1, d2;
    std::string_view l1, l2;
    if (int e = open_parent(from, d1, l1)) return e;
    if (int e = open_parent(to, d2, l2)) return e;
    if (l1 == "." || l2 == ".") return EBUSY;
    return ::renameat(d1.get(), l1.data(), d2.get(), l2.data()) == 0 ? 0 : errno;
}

int FsStore::list_dir(const std::string& path, std::vector<std::string>& names) {
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
        if (name == "." || name == ".." || name.substr(0, kTempPrefix.size()) == kTempPrefix) continue;
        names.emplace_back(name);
    }
    return errno;
}

int FsStore::list_files_recursive(const std::string& path, std::vector<std::string>& relpaths) {
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
            if (name == "." || name == ".." || name.substr(0, kTempPrefix.size()) == kTempPrefix) continue;
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

}  // namespace souk::server
