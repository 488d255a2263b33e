// The per-request context of a verb handler and the helpers several verb
// families share. Internal to server/verbs/.
#pragma once

#include <charconv>
#include <memory>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "protocol/errors.hpp"
#include "protocol/verbs.hpp"
#include "server/bzr/control.hpp"
#include "server/bzr/lockdir.hpp"
#include "server/store/paths.hpp"
#include "server/verbs/context.hpp"

namespace souk::server {

using proto::Args;
using proto::Err;
using proto::Value;

// The failure reply for a failed file operation on `client_path`
// (docs/protocol/errors.md).
Args errno_args(int e, const std::string& client_path, bool reading = false);

struct Call {
    const ServerContext& ctx;
    std::span<const Value> args;
    std::string_view body;
    PathContext paths;
    Reply& out;
    std::string* scratch;  // the hot verbs' resolved path (nullptr: a local string)
    // Streamed verbs: where to leave the body sink (nullptr: the body is
    // already whole in `body`, apply it at once).
    std::unique_ptr<BodySink>* sink;

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

    // errno -> the protocol error (proto::err_for_errno), naming the path
    // as the client sent it, never the server's.
    void fail_errno(int e, const std::string& client_path, bool reading = false) { fail(errno_args(e, client_path, reading)); }

    // VFS path (percent-decoded) or higher-level path (literal).
    bool resolve(const std::string& client, bool vfs, std::string& rel) {
        if (vfs) {
            if (std::string why = non_ascii_url_error(client); !why.empty()) {
                fail({Value("InvalidURL"), Value(client), Value(std::move(why))});
                return false;
            }
        }
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

// One handler per verb of the table (protocol/verbs.hpp), defined in the
// family files: vfs.cpp, bzrdir.cpp, branch.cpp, repository.cpp.
#define SOUK_X(id, ...) void verb_##id(Call& c);
SOUK_VERBS(SOUK_X)
#undef SOUK_X

struct RepoFound {
    std::string relpath;  // "" or "..", "../..", ...
    std::string format;   // network name
    const char* rich_root = "no";
    const char* tree_ref = "no";
    const char* external = "no";
};

// Find the repository of a bzrdir: its own, or a shared one in an ancestor
// bzrdir. false after failing (nobranch / norepository).
bool find_repository(Call& c, RepoFound& found);

// Hand a streamed verb's body sink to the pipeline, or, when the body is
// already whole (c.sink is nullptr), feed it and finish at once.
void take_body(Call& c, std::unique_ptr<BodySink> s);

// Reply to a failed LockDir operation.
void lock_failure(Call& c, bzr::LockResult r, int err);

}  // namespace souk::server
