// The store chain's interface (DESIGN.md 3.2, STYLE.md 2). Verb handlers
// talk only to a Store; layers (stats, range cache, readahead) wrap the
// next one and the jailed filesystem is at the bottom.
//
// Paths are root-relative as produced by resolve_path(): "" is the root,
// "a/b" a descendant. Failures are errno values (0 = success) so the verb
// layer maps them to protocol errors with the client's path.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "transport/fd.hpp"

namespace souk::server {

struct FileInfo {
    uint64_t size = 0;
    uint32_t mode = 0;       // st_mode (type and permission bits)
    uint64_t dev = 0, ino = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
};

// A file opened for reading: the descriptor and its identity at open time.
struct OpenFile {
    io::Fd fd;
    FileInfo info;
};

// Write modes: -1 = the default (0666/0777 less umask), else permission bits.
class Store {
public:
    virtual ~Store() = default;

    // Open a regular file for reading. EISDIR for a directory.
    virtual int open_read(const std::string& path, OpenFile& out) = 0;
    // Read up to n bytes at offset; returns bytes read or -errno.
    virtual ssize_t pread(OpenFile& f, char* buf, size_t n, uint64_t offset) = 0;
    // lstat semantics: a symlink is reported as itself.
    virtual int stat(const std::string& path, FileInfo& out) = 0;
    // Atomic replace: temp file + fsync + rename + directory fsync.
    virtual int put(const std::string& path, std::string_view data, int mode) = 0;
    // Truncate-and-write in place; with create_parent, make the immediate
    // parent directory (one level only) if missing.
    virtual int put_non_atomic(const std::string& path, std::string_view data, int mode, bool create_parent,
                               int dir_mode) = 0;
    // Append under an exclusive lock: *old_size is the exact size before
    // this append, unique among concurrent appenders; a failed write is
    // truncated back. Creates the file (with mode) if missing.
    virtual int append(const std::string& path, std::string_view data, int mode, uint64_t* old_size) = 0;
    virtual int mkdir(const std::string& path, int mode) = 0;
    virtual int rmdir(const std::string& path) = 0;
    virtual int unlink(const std::string& path) = 0;
    // rename(2): fails (ENOTEMPTY/EEXIST) when `to` is a non-empty directory.
    virtual int rename(const std::string& from, const std::string& to) = 0;
    // Entries of a directory (raw names, any order); ENOTDIR on a file.
    virtual int list_dir(const std::string& path, std::vector<std::string>& names) = 0;
    // Every regular file below a directory, as paths relative to it.
    virtual int list_files_recursive(const std::string& path, std::vector<std::string>& relpaths) = 0;

    // ---- Hooks for the chain's layers; the defaults suit a plain store ----
    // A request is about to read these (offset, length) ranges of f, in this
    // order (readv, get): readahead makes its window follow the last one
    // instead of reacting to every range. Advisory, cheap, never blocks.
    virtual void expect_reads(const OpenFile& f, std::span<const std::pair<uint64_t, uint64_t>> ranges) {
        (void)f, (void)ranges;
    }
    // The client read [offset, offset + length) of f by a path that did
    // not call this layer's pread (a hit in a layer above, or sendfile).
    // Advisory, cheap, never blocks.
    virtual void note_read(const OpenFile& f, uint64_t offset, uint64_t length) { (void)f, (void)offset, (void)length; }
    // Whether a carrier may send file bytes straight from the descriptor
    // (sendfile) instead of through pread: false when a layer must see
    // every read (slow storage).
    virtual bool direct_ok() const { return true; }
    // The store one stream connection (SSH, TCP) should use while it lasts:
    // layers with per-connection state (readahead's thread) hand out a
    // fresh chain sharing everything else. nullptr: use this store. The
    // result must not outlive this store; destroying it ends that state
    // (readahead's thread quits).
    virtual std::unique_ptr<Store> for_connection() { return nullptr; }
};

}  // namespace souk::server
