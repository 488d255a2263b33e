#include "server/verbs/dispatch.hpp"

#include <errno.h>
#include <sys/stat.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <set>

#include "protocol/errors.hpp"
#include "server/base/compress.hpp"
#include "server/bzr/control.hpp"
#include "server/bzr/lockdir.hpp"
#include "server/bzr/pack_collection.hpp"
#include "server/bzr/revisions.hpp"

namespace souk::server {

using proto::Args;
using proto::Err;
using proto::Value;

uint64_t Reply::body_size() const {
    if (body_kind == Body::Bytes) return body.size();
    uint64_t n = 0;
    for (const auto& r : ranges) n += r.second;
    return n;
}

void Reply::reset() {
    success = true;
    args.clear();  // the elements go, the vector's capacity stays
    body_kind = Body::None;
    body.clear();
    if (body.capacity() > (1u << 20)) std::string().swap(body);
    file = OpenFile{};  // closes the file now, not when the Reply is reused
    ranges.clear();
    if (ranges.capacity() > 4096) std::vector<std::pair<uint64_t, uint64_t>>().swap(ranges);
}

void Reply::fail(Args error) {
    success = false;
    args = std::move(error);
    body_kind = Body::None;
    body.clear();
    ranges.clear();
    file = OpenFile{};
}

namespace {

// How far get_parent_map fleshes out the ancestry beyond the asked ids
// (uncompressed bytes); Breezy aims at ~64 KiB compressed.
constexpr size_t kParentMapExtraBytes = 192 * 1024;

struct Call {
    const ServerContext& ctx;
    std::span<const Value> args;
    std::string_view body;
    PathContext paths;
    Reply& out;
    std::string* scratch;  // the hot verbs' resolved path (nullptr: a local string)

    Store& store() const { return *ctx.store; }
    const std::string& arg(size_t i) const { return args[i + 1].bytes; }  // args[0] is the verb

    void ok(Args a) {
        out.success = true;
        out.args = std::move(a);
    }
    void ok_body(Args a, std::string b) {
        ok(std::move(a));
        out.body_kind = Reply::Body::Bytes;
        out.body = std::move(b);
    }
    void fail(Args a) { out.fail(std::move(a)); }
    // A success reply of short words, built in place (the hot verbs: no
    // temporary Args, so a reused Reply needs no allocation).
    void ok_words(std::initializer_list<std::string_view> words) {
        out.success = true;
        out.args.clear();
        for (auto w : words) out.args.emplace_back(w);
    }
    void generic(std::string_view kind, std::string msg) { fail({Value("error"), Value(kind), Value(std::move(msg))}); }

    // errno -> the protocol error, naming the path as the client sent it
    // (never the server's, spec 8). `reading`: EISDIR means ReadError.
    void fail_errno(int e, const std::string& client_path, bool reading = false) {
        switch (e) {
        case ENOENT:
        case ENOTDIR: fail(proto::error_args(Err::NoSuchFile, client_path)); return;
        case EEXIST: fail(proto::error_args(Err::FileExists, client_path)); return;
        case ENOTEMPTY: fail(proto::error_args(Err::DirectoryNotEmpty, client_path)); return;
        case EACCES:
        case EPERM: fail(proto::error_args(Err::PermissionDenied, client_path, std::strerror(e))); return;
        case ELOOP:
        case EXDEV:
            fail(proto::error_args(Err::PermissionDenied, client_path, "symbolic links are not followed"));
            return;
        case EROFS: fail(proto::error_args(Err::ReadOnlyError)); return;
        case EISDIR:
            if (reading) {
                fail(proto::error_args(Err::ReadError, client_path));
                return;
            }
            break;
        default: break;
        }
        generic("TransportError", std::string("Transport error: ") + std::strerror(e) + ": " + client_path);
    }

    bool writable() {
        if (ctx.allow_writes) return true;
        fail(proto::error_args(Err::ReadOnlyError));
        return false;
    }

    // VFS path (percent-decoded) or higher-level path (literal).
    bool resolve(const std::string& client, bool vfs, std::string& rel) {
        if (const char* why = resolve_path_into(client, vfs, paths, rel)) {
            generic("PathNotChild", why + (": " + client));
            return false;
        }
        return true;
    }

    bool parse_mode(const std::string& s, int& mode) {
        mode = -1;
        if (s.empty()) return true;
        unsigned v = 0;
        auto r = std::from_chars(s.data(), s.data() + s.size(), v);
        if (r.ec != std::errc() || r.ptr != s.data() + s.size() || v > 07777) {
            generic("ValueError", "invalid mode: " + s);
            return false;
        }
        mode = static_cast<int>(v);
        return true;
    }

    bool exists(const std::string& rel) {
        FileInfo fi;
        return store().stat(rel, fi) == 0;
    }
    bool is_bzrdir(const std::string& d) {
        std::string fmt;
        if (bzr::read_file(store(), join(d, ".bzr/branch-format"), fmt, 4096)) return false;
        return fmt.rfind("Bazaar-NG meta directory", 0) == 0;
    }
    // Resolve a higher-level path that must name a bzrdir, else ('nobranch',).
    bool bzrdir(std::string& d) {
        if (!resolve(arg(0), false, d)) return false;
        if (!is_bzrdir(d)) {
            fail(proto::error_args(Err::NoBranch));
            return false;
        }
        return true;
    }
};

// ------------------------------------------------------------ misc ----

void verb_hello(Call& c) { c.ok({Value("ok"), Value("2")}); }
void verb_is_readonly(Call& c) { c.ok({Value(c.ctx.allow_writes ? "no" : "yes")}); }

// ------------------------------------------------------------- VFS ----

// The hot verbs (has, get, readv, stat) resolve into the caller's scratch
// string and reply with ok_words: a pooled handler serves them without
// touching the heap (tests/alloc).
#define SOUK_HOT_REL(c) \
    std::string local_rel; \
    std::string& rel = (c).scratch ? *(c).scratch : local_rel

void verb_has(Call& c) {
    SOUK_HOT_REL(c);
    if (!c.resolve(c.arg(0), true, rel)) return;
    c.ok_words({c.exists(rel) ? "yes" : "no"});
}

void verb_get(Call& c) {
    SOUK_HOT_REL(c);
    if (!c.resolve(c.arg(0), true, rel)) return;
    if (int e = c.store().open_read(rel, c.out.file)) return c.fail_errno(e, c.arg(0), true);
    c.ok_words({"ok"});
    c.out.body_kind = Reply::Body::File;
    c.out.ranges.assign(1, {0, c.out.file.info.size});
    c.store().expect_reads(c.out.file, c.out.ranges);  // readahead: one access, the window follows its end
}

void verb_readv(Call& c) {
    SOUK_HOT_REL(c);
    if (!c.resolve(c.arg(0), true, rel)) return;
    std::string why = parse_readv_ranges(c.body, c.ctx.params, c.out.ranges);
    if (!why.empty()) return c.generic("ValueError", why);
    if (int e = c.store().open_read(rel, c.out.file)) return c.fail_errno(e, c.arg(0), true);
    uint64_t size = c.out.file.info.size;
    for (const auto& [off, len] : c.out.ranges) {
        if (off + len > size) {
            uint64_t actual = off >= size ? 0 : size - off;
            return c.fail({Value("ShortReadvError"), Value(c.arg(0)), Value(std::to_string(off)),
                           Value(std::to_string(len)), Value(std::to_string(actual))});
        }
    }
    c.ok_words({"readv"});
    c.out.body_kind = Reply::Body::File;
    c.store().expect_reads(c.out.file, c.out.ranges);  // readahead: one access, the window follows the last range
}

void verb_append(Call& c) {
    std::string rel;
    int mode;
    if (!c.writable() || !c.resolve(c.arg(0), true, rel) || !c.parse_mode(c.arg(1), mode)) return;
    uint64_t old = 0;
    if (int e = c.store().append(rel, c.body, mode, &old)) return c.fail_errno(e, c.arg(0));
    c.ok({Value("appended"), Value(std::to_string(old))});
}

void verb_put(Call& c) {
    std::string rel;
    int mode;
    if (!c.writable() || !c.resolve(c.arg(0), true, rel) || !c.parse_mode(c.arg(1), mode)) return;
    if (int e = c.store().put(rel, c.body, mode)) return c.fail_errno(e, c.arg(0));
    c.ok({Value("ok")});
}

void verb_put_non_atomic(Call& c) {
    std::string rel;
    int mode, dir_mode;
    if (!c.writable() || !c.resolve(c.arg(0), true, rel) || !c.parse_mode(c.arg(1), mode) ||
        !c.parse_mode(c.arg(3), dir_mode))
        return;
    if (int e = c.store().put_non_atomic(rel, c.body, mode, c.arg(2) == "T", dir_mode))
        return c.fail_errno(e, c.arg(0));
    c.ok({Value("ok")});
}

void verb_mkdir(Call& c) {
    std::string rel;
    int mode;
    if (!c.writable() || !c.resolve(c.arg(0), true, rel) || !c.parse_mode(c.arg(1), mode)) return;
    if (int e = c.store().mkdir(rel, mode)) return c.fail_errno(e, c.arg(0));
    c.ok({Value("ok")});
}

void verb_rmdir(Call& c) {
    std::string rel;
    if (!c.writable() || !c.resolve(c.arg(0), true, rel)) return;
    if (int e = c.store().rmdir(rel)) return c.fail_errno(e, c.arg(0));
    c.ok({Value("ok")});
}

void verb_del(Call& c) {
    std::string rel;
    if (!c.writable() || !c.resolve(c.arg(0), true, rel)) return;
    if (int e = c.store().unlink(rel)) return c.fail_errno(e, c.arg(0));
    c.ok({Value("ok")});
}

// rename and move share rename(2): atomic, replaces a file or an empty
// directory, fails onto a non-empty directory (LockDir relies on it).
void rename_common(Call& c) {
    std::string from, to;
    if (!c.writable() || !c.resolve(c.arg(0), true, from) || !c.resolve(c.arg(1), true, to)) return;
    if (int e = c.store().rename(from, to)) {
        // Name the destination for "exists"/"not empty", the source otherwise.
        bool dest = e == EEXIST || e == ENOTEMPTY;
        return c.fail_errno(e, dest ? c.arg(1) : c.arg(0));
    }
    c.ok({Value("ok")});
}
void verb_rename(Call& c) { rename_common(c); }
void verb_move(Call& c) { rename_common(c); }

void verb_stat(Call& c) {
    SOUK_HOT_REL(c);
    if (!c.resolve(c.arg(0), true, rel)) return;
    FileInfo fi;
    if (int e = c.store().stat(rel, fi)) return c.fail_errno(e, c.arg(0));
    char mode[24], size[24];
    std::snprintf(mode, sizeof mode, "0o%o", static_cast<unsigned>(fi.mode));
    std::snprintf(size, sizeof size, "%llu", static_cast<unsigned long long>(fi.size));
    c.ok_words({"stat", size, mode});
}

#undef SOUK_HOT_REL

void verb_list_dir(Call& c) {
    std::string rel;
    if (!c.resolve(c.arg(0), true, rel)) return;
    std::vector<std::string> names;
    if (int e = c.store().list_dir(rel, names)) return c.fail_errno(e, c.arg(0));
    Args a{Value("names")};
    a.reserve(names.size() + 1);
    for (const auto& n : names) a.emplace_back(percent_encode(n, false));
    c.ok(std::move(a));
}

void verb_iter_files_recursive(Call& c) {
    std::string rel;
    if (!c.resolve(c.arg(0), true, rel)) return;
    std::vector<std::string> files;
    if (int e = c.store().list_files_recursive(rel, files)) return c.fail_errno(e, c.arg(0));
    Args a{Value("names")};
    a.reserve(files.size() + 1);
    for (const auto& f : files) a.emplace_back(percent_encode(f, true));
    c.ok(std::move(a));
}

// --------------------------------------------------------- BzrDir.* ----

void verb_bzrdir_open(Call& c) {
    // 'no' also for missing paths and paths outside the root (spec 9.3).
    auto r = resolve_path(c.arg(0), false, c.paths);
    c.ok({Value(r && c.is_bzrdir(*r) ? "yes" : "no")});
}

void verb_bzrdir_open_2_1(Call& c) {
    auto r = resolve_path(c.arg(0), false, c.paths);
    if (!r || !c.is_bzrdir(*r)) return c.ok({Value("no")});
    c.ok({Value("yes"), Value(c.exists(join(*r, ".bzr/checkout/format")) ? "yes" : "no")});
}

// ("branch", format) or ("ref", url); false after failing with nobranch.
bool branch_info(Call& c, bool detail, std::string& kind, std::string& value) {
    std::string d;
    if (!c.bzrdir(d)) return false;
    std::string fmt;
    if (int e = bzr::read_file(c.store(), join(d, ".bzr/branch/format"), fmt, 4096)) {
        if (e != ENOENT && e != ENOTDIR) {
            c.fail_errno(e, c.arg(0));
            return false;
        }
        if (detail && c.exists(join(d, ".bzr/repository/format")))
            c.fail(proto::error_args(Err::NoBranch, "location is a repository"));
        else
            c.fail(proto::error_args(Err::NoBranch));
        return false;
    }
    if (fmt.rfind(bzr::kBranchReferenceFormat, 0) == 0) {
        std::string loc;
        if (int e = bzr::read_file(c.store(), join(d, ".bzr/branch/location"), loc, 64 * 1024)) {
            c.fail_errno(e, c.arg(0));
            return false;
        }
        while (!loc.empty() && (loc.back() == '\n' || loc.back() == '\r' || loc.back() == ' ')) loc.pop_back();
        kind = "ref";
        value = std::move(loc);
        return true;
    }
    kind = "branch";
    value = std::move(fmt);
    return true;
}

void verb_open_branch(Call& c) {
    std::string kind, value;
    if (!branch_info(c, false, kind, value)) return;
    c.ok({Value("ok"), Value(kind == "ref" ? value : std::string())});
}
void verb_open_branch_v2(Call& c) {
    std::string kind, value;
    if (branch_info(c, false, kind, value)) c.ok({Value(kind), Value(value)});
}
void verb_open_branch_v3(Call& c) {
    std::string kind, value;
    if (branch_info(c, true, kind, value)) c.ok({Value(kind), Value(value)});
}

struct RepoFound {
    std::string relpath;  // "" or "..", "../..", ...
    std::string format;   // network name
    const char* rich_root = "no";
    const char* tree_ref = "no";
    const char* external = "no";
};

// Find the repository of a bzrdir: its own, or a shared one in an ancestor
// bzrdir (spec 9.3). false after failing (nobranch / norepository).
bool find_repository(Call& c, RepoFound& found) {
    std::string d;
    if (!c.bzrdir(d)) return false;
    std::string cur = d;
    for (int ups = 0;; ++ups) {
        std::string fmt;
        if (bzr::read_file(c.store(), join(cur, ".bzr/repository/format"), fmt, 4096) == 0) {
            if (ups && !c.exists(join(cur, ".bzr/repository/shared-storage"))) break;
            for (int i = 0; i < ups; ++i) found.relpath += i ? "/.." : "..";
            static const struct {
                std::string_view format;
                const char *rich, *tree, *ext;
            } kCaps[] = {
                {"Bazaar repository format 2a (needs bzr 1.16 or later)\n", "yes", "yes", "yes"},
                {"Bazaar pack repository format 1 (needs bzr 0.92)\n", "no", "no", "no"},
                {"Bazaar RepositoryFormatKnitPack5 (bzr 1.6)\n", "no", "no", "yes"},
                {"Bazaar RepositoryFormatKnitPack6 (bzr 1.9)\n", "no", "no", "yes"},
                {"Bazaar RepositoryFormatKnitPack6RichRoot (bzr 1.9)\n", "yes", "no", "yes"},
            };
            for (const auto& cap : kCaps)
                if (cap.format == fmt) {
                    found.rich_root = cap.rich;
                    found.tree_ref = cap.tree;
                    found.external = cap.ext;
                }
            found.format = std::move(fmt);
            return true;
        }
        if (cur.empty()) break;
        size_t slash = cur.rfind('/');
        cur = slash == std::string::npos ? std::string() : cur.substr(0, slash);
        if (!c.is_bzrdir(cur)) break;
    }
    c.fail(proto::error_args(Err::NoRepository));
    return false;
}

void verb_find_repository(Call& c) {
    RepoFound r;
    if (find_repository(c, r)) c.ok({Value("ok"), Value(r.relpath), Value(r.rich_root), Value(r.tree_ref)});
}
void verb_find_repository_v2(Call& c) {
    RepoFound r;
    if (find_repository(c, r))
        c.ok({Value("ok"), Value(r.relpath), Value(r.rich_root), Value(r.tree_ref), Value(r.external)});
}
void verb_find_repository_v3(Call& c) {
    RepoFound r;
    if (find_repository(c, r))
        c.ok({Value("ok"), Value(r.relpath), Value(r.rich_root), Value(r.tree_ref), Value(r.external),
              Value(r.format)});
}

void verb_bzrdir_initialize(Call& c) {
    std::string d;
    if (!c.writable() || !c.resolve(c.arg(0), false, d)) return;
    FileInfo fi;
    if (int e = c.store().stat(d, fi)) return c.fail_errno(e, c.arg(0));
    if (!S_ISDIR(fi.mode)) return c.fail(proto::error_args(Err::NoSuchFile, c.arg(0)));
    std::string dot = join(d, ".bzr");
    if (int e = c.store().mkdir(dot, -1)) {
        if (e == EEXIST) return c.fail(proto::error_args(Err::AlreadyControlDir, c.arg(0)));
        return c.fail_errno(e, c.arg(0));
    }
    static constexpr std::string_view kReadme =
        "This is a Bazaar control directory.\n"
        "Do not change any files in this directory.\n\n"
        "See http://bazaar.canonical.com/ for more information about Bazaar.\n";
    int e = c.store().put(join(dot, "README"), kReadme, -1);
    if (!e) e = c.store().mkdir(join(dot, "branch-lock"), -1);
    // branch-format last: until it exists, this is not a bzrdir.
    if (!e) e = c.store().put(join(dot, "branch-format"), bzr::kMetaDirFormat, -1);
    if (e) return c.fail_errno(e, c.arg(0));
    c.ok({Value("ok")});
}

// --------------------------------------------------------- Branch.* ----

void verb_last_revision_info(Call& c) {
    std::string d, data;
    if (!c.bzrdir(d)) return;
    if (int e = bzr::read_file(c.store(), join(d, ".bzr/branch/last-revision"), data, 64 * 1024)) {
        if (e == ENOENT || e == ENOTDIR) return c.fail(proto::error_args(Err::NoBranch));
        return c.fail_errno(e, c.arg(0));
    }
    while (!data.empty() && (data.back() == '\n' || data.back() == '\r')) data.pop_back();
    size_t sp = data.find(' ');
    if (sp == std::string::npos) return c.generic("BzrCheckError", "malformed last-revision file");
    c.ok({Value("ok"), Value(data.substr(0, sp)), Value(data.substr(sp + 1))});
}

// The branch's control directory ("b/.bzr/branch"), which must exist.
bool branch_dir(Call& c, std::string& dir) {
    std::string d;
    if (!c.bzrdir(d)) return false;
    dir = join(d, ".bzr/branch");
    if (!c.exists(join(dir, "format"))) {
        c.fail(proto::error_args(Err::NoBranch));
        return false;
    }
    return true;
}

bool branch_lock_path(Call& c, std::string& lock) {
    if (!branch_dir(c, lock)) return false;
    lock = join(lock, "lock");
    return true;
}

void lock_failure(Call& c, bzr::LockResult r, int err) {
    switch (r) {
    case bzr::LockResult::Contended: return c.fail(proto::error_args(Err::LockContention));
    case bzr::LockResult::TokenMismatch: return c.fail(proto::error_args(Err::TokenMismatch));
    default: return c.fail_errno(err, c.arg(0));
    }
}

void verb_branch_lock_write(Call& c) {
    std::string lock, nonce;
    if (!c.writable() || !branch_lock_path(c, lock)) return;
    std::string token = c.args.size() > 2 ? c.arg(1) : std::string();
    int err = 0;
    auto r = bzr::lock_acquire(c.store(), lock, token, &nonce, &err);
    if (r != bzr::LockResult::Ok) return lock_failure(c, r, err);
    // Pack (2a) repositories take no persistent lock: the repo token is ''.
    c.ok({Value("ok"), Value(nonce), Value("")});
}

void verb_branch_unlock(Call& c) {
    std::string lock;
    if (!c.writable() || !branch_lock_path(c, lock)) return;
    int err = 0;
    auto r = bzr::lock_release(c.store(), lock, c.arg(1), &err);
    if (r != bzr::LockResult::Ok) return lock_failure(c, r, err);
    c.ok({Value("ok")});
}

// The branch's control directory ("b/.bzr/branch"), which must exist.

// A small control file's content, "" when it does not exist.
bool optional_file(Call& c, const std::string& path, std::string& out) {
    int e = bzr::read_file(c.store(), path, out, 16 * 1024 * 1024);
    if (e == ENOENT) {
        out.clear();
        return true;
    }
    if (e) c.fail_errno(e, c.arg(0));
    return e == 0;
}

void verb_get_config_file(Call& c) {
    std::string dir, conf;
    if (branch_dir(c, dir) && optional_file(c, join(dir, "branch.conf"), conf)) c.ok_body({Value("ok")}, std::move(conf));
}

void verb_get_tags_bytes(Call& c) {
    std::string dir, tags;
    if (branch_dir(c, dir) && optional_file(c, join(dir, "tags"), tags)) c.ok({Value(std::move(tags))});
}

// The value of `key` in a configobj file ("key = value" lines, optionally
// quoted); "" when absent. Enough for the location options Bazaar writes.
std::string config_value(std::string_view conf, std::string_view key) {
    std::string value;
    size_t i = 0;
    while (i < conf.size()) {
        size_t j = conf.find('\n', i);
        if (j == std::string_view::npos) j = conf.size();
        std::string_view line = conf.substr(i, j - i);
        i = j + 1;
        if (line.substr(0, key.size()) != key) continue;
        line.remove_prefix(key.size());
        size_t eq = line.find_first_not_of(" \t");
        if (eq == std::string_view::npos || line[eq] != '=') continue;
        line.remove_prefix(eq + 1);
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
        while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.remove_suffix(1);
        if (line.size() >= 2 && (line.front() == '"' || line.front() == '\'') && line.back() == line.front())
            line = line.substr(1, line.size() - 2);
        value = line;  // the last assignment wins, as in configobj
    }
    return value;
}

void verb_get_stacked_on_url(Call& c) {
    std::string dir, conf;
    if (!branch_dir(c, dir) || !optional_file(c, join(dir, "branch.conf"), conf)) return;
    std::string url = config_value(conf, "stacked_on_location");
    if (url.empty()) return c.fail(proto::error_args(Err::NotStacked));
    c.ok({Value("ok"), Value(url)});
}

void verb_get_parent(Call& c) {
    std::string dir, conf;
    if (branch_dir(c, dir) && optional_file(c, join(dir, "branch.conf"), conf))
        c.ok({Value(config_value(conf, "parent_location"))});
}

void verb_get_all_reference_info(Call& c) {
    std::string dir;
    if (!branch_dir(c, dir)) return;
    // Only the common case is answered here: no tree references at all.
    // A branch that has them (a "references" file) is left to the client's
    // own VFS code, which reads that file itself.
    if (c.exists(join(dir, "references"))) return c.fail(proto::error_args(Err::UnknownMethod, c.args[0].bytes));
    c.ok_body({Value("ok")}, "le");
}

void verb_branch_lock_status(Call& c) {
    std::string dir;
    if (branch_dir(c, dir)) c.ok({Value(c.exists(join(dir, "lock/held")) ? "yes" : "no")});
}

void verb_bzrdir_config_file(Call& c) {
    std::string d, conf;
    if (c.bzrdir(d) && optional_file(c, join(d, ".bzr/control.conf"), conf)) c.ok_body({}, std::move(conf));
}

// (path, branch token, repo token, revno, revid): move the tip under the
// lock the client holds (spec 12, push).
void verb_set_last_revision_info(Call& c) {
    std::string dir;
    if (!c.writable() || !branch_dir(c, dir)) return;
    const std::string& revno = c.arg(3);
    if (revno.empty() || revno.size() > 18 || revno.find_first_not_of("0123456789") != std::string::npos ||
        c.arg(4).empty() || c.arg(4).find_first_of(" \n") != std::string::npos)
        return c.generic("ValueError", "bad revno or revision id");
    int err = 0;
    auto held = bzr::lock_check(c.store(), join(dir, "lock"), c.arg(1), &err);
    if (held != bzr::LockResult::Ok) return lock_failure(c, held, err);
    if (int e = c.store().put(join(dir, "last-revision"), revno + " " + c.arg(4) + "\n", -1))
        return c.fail_errno(e, c.arg(0));
    c.ok({Value("ok")});
}

// ----------------------------------------------------- Repository.* ----

void verb_repo_lock_write(Call& c) {
    RepoFound r;
    if (!c.writable() || !find_repository(c, r)) return;
    c.ok({Value("ok"), Value("")});
}

void verb_repo_unlock(Call& c) {
    RepoFound r;
    if (find_repository(c, r)) c.ok({Value("ok")});
}

// The repository directory of the bzrdir named by arg 0, which must hold
// one itself (the client sends the repository's own bzrdir path).
bool repo_dir(Call& c, std::string& repo) {
    std::string d;
    if (!c.bzrdir(d)) return false;
    repo = join(d, ".bzr/repository");
    if (!c.exists(join(repo, "format"))) {
        c.fail(proto::error_args(Err::NoRepository));
        return false;
    }
    return true;
}

void verb_repo_lock_status(Call& c) {
    std::string repo;
    if (repo_dir(c, repo)) c.ok({Value(c.exists(join(repo, "lock/held")) ? "yes" : "no")});
}

void verb_make_working_trees(Call& c) {
    std::string repo;
    if (repo_dir(c, repo)) c.ok({Value(c.exists(join(repo, "no-working-trees")) ? "no" : "yes")});
}

void verb_set_make_working_trees(Call& c) {
    std::string repo;
    if (!c.writable() || !repo_dir(c, repo)) return;
    std::string marker = join(repo, "no-working-trees");
    int e = c.arg(1) == "True" ? c.store().unlink(marker) : c.store().put(marker, "", -1);
    if (e && e != ENOENT) return c.fail_errno(e, c.arg(0));
    c.ok({Value("ok")});
}

void verb_repo_is_shared(Call& c) {
    std::string repo;
    if (repo_dir(c, repo)) c.ok({Value(c.exists(join(repo, "shared-storage")) ? "yes" : "no")});
}

bool load_graph(Call& c, const std::string& repo, bzr::ParentMap& graph) {
    std::string why;
    if (int e = bzr::read_parent_map(c.store(), repo, graph, &why)) {
        if (e == ENOENT && why.empty()) return true;  // no pack-names yet: empty repository
        if (!why.empty()) c.generic("BzrCheckError", why);
        else c.fail_errno(e, c.arg(0));
        return false;
    }
    return true;
}

void verb_get_parent_map(Call& c) {
    std::string repo;
    if (!repo_dir(c, repo)) return;
    bzr::ParentMap graph;
    if (!load_graph(c, repo, graph)) return;
    std::set<std::string, std::less<>> asked;
    bool include_missing = false;
    for (size_t i = 2; i < c.args.size(); ++i) {
        if (c.args[i].bytes == "include-missing:") include_missing = true;
        else asked.insert(c.args[i].bytes);
    }
    // The body is the client's search recipe: "start keys\nexclude keys\ncount".
    // What it reaches is what the client already has (Breezy's
    // _expand_requested_revs); we don't resend those, except asked ids.
    std::set<std::string, std::less<>> seen;
    {
        std::vector<std::string_view> lines;
        size_t i = 0;
        while (i <= c.body.size() && lines.size() < 3) {
            size_t j = c.body.find('\n', i);
            if (j == std::string_view::npos) j = c.body.size();
            lines.push_back(c.body.substr(i, j - i));
            i = j + 1;
        }
        auto words = [](std::string_view s, std::set<std::string, std::less<>>& into) {
            size_t k = 0;
            while (k < s.size()) {
                size_t e = s.find(' ', k);
                if (e == std::string_view::npos) e = s.size();
                if (e > k) into.emplace(s.substr(k, e - k));
                k = e + 1;
            }
        };
        std::set<std::string, std::less<>> start, exclude;
        if (lines.size() >= 2) {
            words(lines[0], start);
            words(lines[1], exclude);
        }
        std::vector<std::string> todo(start.begin(), start.end());
        while (!todo.empty()) {
            std::string r = std::move(todo.back());
            todo.pop_back();
            if (exclude.count(r) || !seen.insert(r).second) continue;
            if (auto it = graph.find(r); it != graph.end())
                for (const auto& p : it->second) todo.push_back(p);
        }
        for (const auto& a : asked) seen.erase(a);
    }
    std::map<std::string, std::string, std::less<>> result;  // sorted lines compress well
    size_t bytes = 0;
    std::set<std::string, std::less<>> queried;
    std::vector<std::string> level(asked.begin(), asked.end());
    for (bool first = true; !level.empty(); first = false) {
        if (!first && bytes > kParentMapExtraBytes) break;
        std::vector<std::string> next;
        for (const auto& r : level) {
            if (!queried.insert(r).second) continue;
            auto it = graph.find(r);
            bool missing = it == graph.end();
            if (seen.count(r) || (missing && !include_missing)) {
                if (!missing)
                    for (const auto& p : it->second) next.push_back(p);
                continue;
            }
            std::string line = missing ? "missing:" + r : r;
            if (!missing)
                for (const auto& p : it->second) {
                    if (p == "null:") continue;
                    line += ' ';
                    line += p;
                    next.push_back(p);
                }
            bytes += line.size() + 1;
            result.emplace(missing ? "missing:" + r : r, std::move(line));
        }
        level = std::move(next);
    }
    std::string text;
    for (const auto& [key, line] : result) {
        if (!text.empty()) text += '\n';
        text += line;
    }
    c.ok_body({Value("ok")}, bz2_compress(text));
}

void verb_get_revision_graph(Call& c) {
    std::string repo;
    if (!repo_dir(c, repo)) return;
    bzr::ParentMap graph;
    if (!load_graph(c, repo, graph)) return;
    std::string revid = c.args.size() > 2 ? c.arg(1) : std::string();
    std::vector<const std::string*> keep;
    if (revid.empty()) {
        for (const auto& kv : graph) keep.push_back(&kv.first);
    } else {
        if (!graph.count(revid)) {
            // With an empty body, so old clients that always read one stay in sync.
            c.fail(proto::error_args(Err::NoSuchRevisionOld, revid));
            c.out.body_kind = Reply::Body::Bytes;
            return;
        }
        std::set<std::string_view> done;
        std::vector<std::string_view> todo{revid};
        while (!todo.empty()) {
            std::string_view r = todo.back();
            todo.pop_back();
            auto it = graph.find(r);
            if (it == graph.end() || !done.insert(r).second) continue;
            keep.push_back(&it->first);
            for (const auto& p : it->second) todo.push_back(p);
        }
    }
    std::string text;
    for (const auto* r : keep) {
        if (!text.empty()) text += '\n';
        text += *r;
        for (const auto& p : graph.find(*r)->second) {
            if (p == "null:" || !graph.count(p)) continue;  // ghosts stripped, as Breezy does
            text += ' ';
            text += p;
        }
    }
    c.ok_body({Value("ok")}, std::move(text));
}

void verb_gather_stats(Call& c) {
    std::string repo;
    if (!repo_dir(c, repo)) return;
    std::string revid = c.args.size() > 2 ? c.arg(1) : std::string();
    bool committers = c.args.size() > 3 && c.arg(2) == "yes";
    std::string body, why;
    int e = bzr::gather_stats(c.store(), repo, revid, committers, body, &why);
    if (e == bzr::kNoSuchRevision) return c.fail(proto::error_args(Err::NoSuchRevisionOld, revid));
    if (e && !why.empty()) return c.generic("BzrCheckError", why);
    if (e) return c.fail_errno(e, c.arg(0));
    c.ok_body({Value("ok")}, std::move(body));
}

using Handler = void (*)(Call&);
constexpr Handler kHandlers[] = {
#define SOUK_X(id, ...) &verb_##id,
    SOUK_VERBS(SOUK_X)
#undef SOUK_X
};
static_assert(sizeof(kHandlers) / sizeof(kHandlers[0]) == proto::kVerbCount, "one handler per verb");

bool parse_u64(std::string_view s, uint64_t& v) {
    if (s.empty() || s.size() > 20) return false;
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

std::string parse_readv_ranges(std::string_view body, const Params& params,
                               std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
    ranges.clear();
    uint64_t total = 0;
    size_t i = 0;
    while (i < body.size()) {
        size_t j = body.find('\n', i);
        if (j == std::string_view::npos) j = body.size();
        std::string_view line = body.substr(i, j - i);
        i = j + 1;
        if (line.empty()) continue;  // Breezy's server ignores empty lines
        size_t comma = line.find(',');
        uint64_t off = 0, len = 0;
        if (comma == std::string_view::npos || !parse_u64(line.substr(0, comma), off) ||
            !parse_u64(line.substr(comma + 1), len))
            return "invalid readv range: " + std::string(line.substr(0, 64));
        if (off > (1ull << 62) || len > (1ull << 62)) return "readv range too large: " + std::string(line);
        if (ranges.size() >= static_cast<size_t>(params.max_readv_ranges))
            return "too many readv ranges (limit " + std::to_string(static_cast<uint64_t>(params.max_readv_ranges)) + ")";
        total += len;
        if (total > static_cast<uint64_t>(params.max_readv_bytes))
            return "readv asks for too many bytes (limit " +
                   std::to_string(static_cast<uint64_t>(params.max_readv_bytes)) + ")";
        ranges.emplace_back(off, len);
    }
    return {};
}

void dispatch(const ServerContext& ctx, const proto::VerbInfo& verb, std::span<const proto::Value> args,
              std::string_view body, std::string_view base, Reply& out, std::string* scratch) {
    out.reset();
    size_t nargs = args.size() - 1;
    if (nargs < verb.min_args || (verb.max_args != 255 && nargs > verb.max_args)) {
        std::string want = verb.min_args == verb.max_args ? std::to_string(verb.min_args)
                                                          : std::to_string(verb.min_args) + " to " +
                                                                (verb.max_args == 255 ? std::string("any")
                                                                                      : std::to_string(verb.max_args));
        out.fail({Value("error"), Value("TypeError"),
                  Value(std::string(verb.name) + " takes " + want + " arguments (" + std::to_string(nargs) +
                        " given)")});
        return;
    }
    for (size_t i = 1; i < args.size(); ++i) {
        if (!args[i].is_bytes()) {
            out.fail({Value("error"), Value("TypeError"),
                      Value(std::string(verb.name) + ": argument " + std::to_string(i) + " must be a byte string")});
            return;
        }
    }
    Call call{ctx, args, body, PathContext{ctx.root_realpath, base}, out, scratch};
    kHandlers[static_cast<size_t>(verb.id)](call);
}

}  // namespace souk::server
