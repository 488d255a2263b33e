// The bottom of the store chain: the jailed filesystem (docs/store-chain.md).
// Every path is resolved beneath the root's directory descriptor with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) (or, where the kernel lacks
// it, a component walk with O_NOFOLLOW), and the final component is never
// followed either: no spelling and no symlink leaves the root.
#pragma once

#include <string>

#include "server/store/store.hpp"
#include "transport/fd.hpp"

namespace souk::server {

// Temporary files of atomic put carry this prefix; listings hide them.
inline constexpr std::string_view kTempPrefix = ".souk-tmp.";
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

private:
    // Open a directory beneath the root (O_RDONLY|O_DIRECTORY), never
    // following a symlink. Returns the fd or -errno.
    int open_dir(std::string_view rel) const;
    // Split "a/b/c" into the parent directory fd ("a/b") and leaf "c" (a
    // NUL-terminated view into `path`). For the root itself, leaf is ".".
    // Returns 0 or errno.
    int open_parent(const std::string& path, io::Fd& dir, std::string_view& leaf) const;

    io::Fd root_;
    std::string root_path_;
    std::string error_;
};

}  // namespace souk::server
