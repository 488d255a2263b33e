// The store chain's interface (docs/store-chain.md). Verb handlers
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

// How a streamed write lands (Store::begin_upload). Modes: -1 = the
// default (0666/0777 less umask), else permission bits.
enum class WriteKind : uint8_t { Put, PutNonAtomic, Append };
struct WriteSpec {
    WriteKind kind = WriteKind::Put;
    int mode = -1;
    bool create_parent = false;  // PutNonAtomic: make a missing parent (one level)
    int dir_mode = -1;
};

// A write whose bytes arrive in chunks. Nothing is visible to any reader
// until commit(); destroying an uncommitted upload leaves no trace.
class Upload {
public:
    virtual ~Upload() = default;
    // Take the next chunk. 0 or errno (ENOSPC, EFBIG, EIO).
    virtual int write(std::string_view chunk) = 0;
    // Make the bytes visible: Put and PutNonAtomic replace the file
    // atomically; Append adds them at the end under the file's lock, with
    // *old_size the size before (exact, unique among concurrent appenders).
    // 0 or errno; on failure the file is as it was. Call at most once.
    virtual int commit(uint64_t* old_size) = 0;
};

class Store {
public:
    virtual ~Store() = default;

    // Open a regular file for reading. EISDIR for a directory.
    virtual int open_read(const std::string& path, OpenFile& out) = 0;
    // Read up to n bytes at offset; returns bytes read or -errno.
    virtual ssize_t pread(OpenFile& f, char* buf, size_t n, uint64_t offset) = 0;
    // Read exactly n bytes at offset through the chain, retrying short
    // reads: n, fewer at end of file, or -errno. The one such loop.
    ssize_t read_full(OpenFile& f, char* buf, size_t n, uint64_t offset);
    // lstat semantics: a symlink is reported as itself.
    virtual int stat(const std::string& path, FileInfo& out) = 0;
    // Begin a write whose bytes arrive in chunks (the body of put,
    // put_non_atomic or append, as the request streams in). Fails at once,
    // before any body byte, when the target cannot be written (missing
    // parent, a directory). 0 or errno.
    virtual int begin_upload(const std::string& path, const WriteSpec& spec, std::unique_ptr<Upload>& out) = 0;
    // Whole-buffer writes: begin_upload + one write + commit.
    // Atomic replace: temp file + fsync + rename + directory fsync.
    int put(const std::string& path, std::string_view data, int mode);
    // Replace without the fsyncs; with create_parent, make the immediate
    // parent directory (one level only) if missing.
    int put_non_atomic(const std::string& path, std::string_view data, int mode, bool create_parent, int dir_mode);
    // Append under an exclusive lock: *old_size is the exact size before
    // this append, unique among concurrent appenders; a failed write is
    // truncated back. Creates the file (with mode) if missing.
    int append(const std::string& path, std::string_view data, int mode, uint64_t* old_size);
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
