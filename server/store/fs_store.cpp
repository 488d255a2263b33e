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

int FsStore::put(const std::string& path, std::string_view data, int mode) {
    io::Fd dir;
    std::string_view leaf;
    if (int e = open_parent(path, dir, leaf)) return e;
    if (leaf == ".") return EISDIR;
    std::string tmp = temp_name();
    int fd = ::openat(dir.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) return errno;
    io::Fd f(fd);
    apply_mode(fd, mode);
    int e = write_all_at(fd, data, 0);
    if (!e && ::fsync(fd) != 0) e = errno;
    f.reset();
    if (!e && ::renameat(dir.get(), tmp.c_str(), dir.get(), leaf.data()) != 0) e = errno;
    if (e) {
        ::unlinkat(dir.get(), tmp.c_str(), 0);
        return e;
    }
    ::fsync(dir.get());  // make the rename durable
    return 0;
}

int FsStore::put_non_atomic(const std::string& path, std::string_view data, int mode, bool create_parent,
                            int dir_mode) {
    io::Fd dir;
    std::string_view leaf;
    int e = open_parent(path, dir, leaf);
    if (e == ENOENT && create_parent) {
        size_t slash = path.rfind('/');
        if (slash == std::string::npos) return ENOENT;
        if (int me = mkdir(path.substr(0, slash), dir_mode); me && me != EEXIST) return me;
        e = open_parent(path, dir, leaf);
    }
    if (e) return e;
    if (leaf == ".") return EISDIR;
    int fd = ::openat(dir.get(), leaf.data(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) return errno;
    io::Fd f(fd);
    apply_mode(fd, mode);
    return write_all_at(fd, data, 0);
}

int FsStore::append(const std::string& path, std::string_view data, int mode, uint64_t* old_size) {
    io::Fd dir;
    std::string_view leaf;
    if (int e = open_parent(path, dir, leaf)) return e;
    if (leaf == ".") return EISDIR;
    bool created = true;
    int fd = ::openat(dir.get(), leaf.data(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0 && errno == EEXIST) {
        created = false;
        fd = ::openat(dir.get(), leaf.data(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    }
    if (fd < 0) return errno;
    io::Fd f(fd);
    struct stat st;
    if (::fstat(fd, &st) != 0) return errno;
    if (S_ISDIR(st.st_mode)) return EISDIR;
    if (!S_ISREG(st.st_mode)) return EINVAL;
    if (created) apply_mode(fd, mode);
    // flock is per open file description: it serialises appenders in every
    // thread and every soukd process, so the size read below is exact.
    while (::flock(fd, LOCK_EX) != 0)
        if (errno != EINTR) return errno;
    if (::fstat(fd, &st) != 0) return errno;
    uint64_t old = static_cast<uint64_t>(st.st_size);
    if (int e = write_all_at(fd, data, old)) {
        if (::ftruncate(fd, static_cast<off_t>(old)) != 0) { /* nothing more to do; report the write error */ }
        return e;
    }
    *old_size = old;
    return 0;  // closing f releases the lock
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
