// What the libFuzzer targets share (docs/fuzzing.md): the invariant check
// that fails a run, a scratch directory that goes away at exit, and the
// small served tree the web and CGI targets answer from.
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>

#include <fuzzer/FuzzedDataProvider.h>

#include "server/base/log.hpp"
#include "server/store/fs_store.hpp"
#include "server/verbs/context.hpp"

// An invariant of the code under test: a failure aborts, so libFuzzer
// saves the input as a crash.
#define FUZZ_CHECK(cond)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            ::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);  \
            ::abort();                                                                        \
        }                                                                                     \
    } while (0)

// The same, also printing `shown` (a string: what was produced), escaped
// and cut to 4 KiB, when it fails.
#define FUZZ_CHECK_SHOW(cond, shown)                                                          \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            ::souk::fuzz::show(shown);                                                        \
            FUZZ_CHECK(cond);                                                                 \
        }                                                                                     \
    } while (0)

namespace souk::fuzz {

namespace fs = std::filesystem;

inline void show(std::string_view s) {
    std::string out;
    for (unsigned char c : s.substr(0, 4096)) {
        if (c == '\n' || (c >= 0x20 && c < 0x7f && c != '\\')) {
            out += static_cast<char>(c);
        } else {
            char buf[8];
            ::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    ::fprintf(stderr, "--- produced (%zu bytes) ---\n%s\n---\n", s.size(), out.c_str());
}

inline std::string_view view(const uint8_t* data, size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

// Feed `in` to `step` in pieces: all at once without `rng`, else pieces of
// 1 to max_piece bytes. step(piece) takes what it can from the piece (a
// decoder advances it) and returns false to stop. Returns the bytes taken.
template <typename Step>
size_t feed_in_pieces(std::string_view in, std::minstd_rand* rng, size_t max_piece, Step&& step) {
    size_t at = 0;
    do {  // bounded: a pass either stops or takes its whole, non-empty piece
        size_t n = in.size() - at;
        if (rng && n > 0) n = std::min<size_t>(n, 1 + (*rng)() % max_piece);
        std::string_view piece = in.substr(at, n);
        const bool more = step(piece);
        at += n - piece.size();
        if (!more) return at;
        FUZZ_CHECK(piece.empty());
    } while (at < in.size());
    return at;
}

// A directory under $TMPDIR (or /tmp) removed when the process exits.
class ScratchDir {
public:
    explicit ScratchDir(const char* tag) {
        const char* tmp = ::getenv("TMPDIR");
        std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/souk-fuzz-" + tag + "-XXXXXX";
        if (!::mkdtemp(tmpl.data())) {
            ::perror("mkdtemp");
            ::abort();
        }
        path_ = tmpl;
        pid_ = ::getpid();
    }
    ~ScratchDir() {
        if (::getpid() != pid_) return;  // a forked child leaves it to its parent
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
    pid_t pid_;
};

inline void write_file(const fs::path& p, std::string_view data) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc).write(data.data(), static_cast<std::streamsize>(data.size()));
}

// The tree the web and CGI targets serve: files of a few sizes (ranges,
// zstd), a name that needs escaping, a directory, a control directory and
// the server's temporary namespace (which must never be served).
inline void make_served_tree(const fs::path& root) {
    std::string big;
    for (int i = 0; i < 4000; ++i) big += "line " + std::to_string(i) + " of a compressible file\n";
    write_file(root / "data.txt", "0123456789abcdefghijklmnopqrstuvwxyz");
    write_file(root / "big.txt", big);
    write_file(root / "empty", "");
    write_file(root / "dir" / "has space.txt", "spaced\n");
    write_file(root / "dir" / "sub" / "b.txt", "bee\n");
    write_file(root / "branch" / ".bzr" / "branch-format", "Bazaar-NG meta directory, format 1\n");
    write_file(root / "branch" / ".bzr" / "README", "This is a Bazaar control directory.\n");
    write_file(root / ".souk-tmp.secret", "never served\n");
}

// A read-only server over make_served_tree's tree, its logs off.
struct ServedTree {
    ScratchDir dir;
    server::FsStore store;
    server::ServerContext ctx;
    explicit ServedTree(const char* tag) : dir(tag), store((make_served_tree(dir.path()), dir.path().string())) {
        if (!store.valid()) {
            ::fprintf(stderr, "served tree: %s\n", store.error().c_str());
            ::abort();
        }
        server::log::Target off;
        off.kind = server::log::Target::Kind::Off;
        server::log::init(server::log::Level::Error, off, nullptr);
        ctx.store = &store;
        ctx.root_realpath = store.root_realpath();
    }
    // Whether `out` shows the served root's real path, which no answer may
    // (unless the request itself spelled it: `in`).
    bool reveals_root(std::string_view out, std::string_view in) const {
        return out.find(ctx.root_realpath) != std::string_view::npos &&
               in.find(ctx.root_realpath) == std::string_view::npos;
    }
};

}  // namespace souk::fuzz
