// The Branch verbs (docs/protocol/branch.md): tips, locks, config, tags.
#include "server/verbs/call.hpp"

#include <errno.h>
#include <sys/stat.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <set>

#include "protocol/errors.hpp"

namespace souk::server {

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

void verb_branch_lock_write(Call& c) {
    std::string lock, nonce;
    if (!branch_lock_path(c, lock)) return;
    std::string token = c.args.size() > 2 ? c.arg(1) : std::string();
    int err = 0;
    auto r = bzr::lock_acquire(c.store(), lock, token, &nonce, &err);
    if (r != bzr::LockResult::Ok) return lock_failure(c, r, err);
    // Pack (2a) repositories take no persistent lock: the repo token is ''.
    c.ok({Value("ok"), Value(nonce), Value("")});
}

void verb_branch_unlock(Call& c) {
    std::string lock;
    if (!branch_lock_path(c, lock)) return;
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
// lock the client holds (docs/protocol/branch.md#writing).
void verb_set_last_revision_info(Call& c) {
    std::string dir;
    if (!branch_dir(c, dir)) return;
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

}  // namespace souk::server
