// The Branch verbs (docs/protocol/branch.md): tips, locks, config, tags.
#include "server/verbs/call.hpp"

#include <errno.h>
#include <sys/stat.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <set>

#include "protocol/errors.hpp"
#include "server/base/strings.hpp"
#include "server/bzr/config.hpp"
#include "server/bzr/controldir.hpp"
#include "server/bzr/format.hpp"
#include "server/bzr/pack_collection.hpp"
#include "server/bzr/revno.hpp"

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

// ------------------------------------------------ writing under the lock ----
// docs/protocol/branch.md#writing

// The branch of arg 0 (not a reference: nobranch, as for every Branch verb)
// whose lock the client holds with token arg 1. The repository token (arg 2)
// is not checked: pack repositories take no persistent lock. false after
// failing. Breezy answers a token mismatch with the held lock's nonce in the
// error; souk does not hand the token of a lock to a client that lacks it.
bool locked_branch(Call& c, std::string& dir) {
    if (!branch_dir(c, dir)) return false;
    std::string fmt;
    if (int e = bzr::read_file(c.store(), join(dir, "format"), fmt, 4096)) {
        c.fail_errno(e, c.arg(0));
        return false;
    }
    if (const bzr::BranchFormat* f = bzr::find_branch_format(fmt); f && f->reference) {
        c.fail(proto::error_args(Err::NoBranch));
        return false;
    }
    int err = 0;
    auto held = bzr::lock_check(c.store(), join(dir, "lock"), c.arg(1), &err);
    if (held != bzr::LockResult::Ok) {
        lock_failure(c, held, err);
        return false;
    }
    return true;
}

// (path, branch token, repo token, location) -> (): parent_location in
// branch.conf, the rest of the file kept.
void verb_set_parent_location(Call& c) {
    std::string dir, conf;
    if (!locked_branch(c, dir) || !optional_file(c, join(dir, "branch.conf"), conf)) return;
    if (int e = c.store().put(join(dir, "branch.conf"), bzr::config_set(conf, "parent_location", c.arg(3)), -1))
        return c.fail_errno(e, c.arg(0));
    c.ok({});
}

// (path, branch token, repo token) + the bencoded tags dict -> (): stored as
// sent, like Breezy (which does not parse it either).
void verb_set_tags_bytes(Call& c) {
    std::string dir;
    if (!locked_branch(c, dir)) return;
    if (int e = c.store().put(join(dir, "tags"), c.body, -1)) return c.fail_errno(e, c.arg(0));
    c.ok({});
}

// (path, branch token, repo token) + the whole branch.conf -> ('ok',).
void verb_put_config_file(Call& c) {
    std::string dir;
    if (!locked_branch(c, dir)) return;
    if (int e = c.store().put(join(dir, "branch.conf"), c.body, -1)) return c.fail_errno(e, c.arg(0));
    c.ok({Value("ok")});
}

// ------------------------------------------------ revision numbers ----
// docs/protocol/branch.md#revision-numbers

// The packs of the repository a branch's bzrdir uses (its own or a shared
// one above). false after failing.
bool branch_packs(Call& c, const std::string& bzrdir, bzr::PackCollection& packs) {
    bzr::RepositoryLocation loc;
    int err = 0;
    if (!bzr::find_repository(c.store(), bzrdir, loc, &err)) {
        if (err) c.fail_errno(err, c.arg(0));
        else c.fail(proto::error_args(Err::NoRepository));
        return false;
    }
    auto pc = bzr::PackCollection::open(c.store(), join(loc.bzrdir, ".bzr/repository"));
    if (pc) {
        packs = std::move(pc).value();
        return true;
    }
    const bzr::Error& e = pc.err();
    if (e.code == bzr::Errc::NotFound) return true;  // no pack-names yet: an empty repository
    if (e.code == bzr::Errc::Io) c.fail_errno(e.sys_errno ? e.sys_errno : EIO, c.arg(0));
    else c.generic("BzrCheckError", e.detail);
    return false;
}

// (path, revid) -> ('ok', revno) for a revision on the branch's mainline.
void verb_revision_id_to_revno(Call& c) {
    std::string bzrdir, tip;
    if (!c.bzrdir(bzrdir)) return;
    std::string dir = join(bzrdir, ".bzr/branch");
    bzr::BranchEntry br;
    if (int e = bzr::read_branch_entry(c.store(), bzrdir, br)) return c.fail_errno(e, c.arg(0));
    if (br.kind != bzr::BranchEntry::Branch) return c.fail(proto::error_args(Err::NoBranch));
    if (int e = bzr::read_file(c.store(), join(dir, "last-revision"), tip, 64 * 1024)) {
        if (e == ENOENT || e == ENOTDIR) return c.fail(proto::error_args(Err::NoBranch));
        return c.fail_errno(e, c.arg(0));
    }
    while (!tip.empty() && (tip.back() == '\n' || tip.back() == '\r')) tip.pop_back();  // bounded: shrinks
    size_t sp = tip.find(' ');
    uint64_t tip_revno = 0;
    if (sp == std::string::npos || !parse_u64(std::string_view(tip).substr(0, sp), tip_revno) ||
        tip_revno > static_cast<uint64_t>(INT64_MAX))
        return c.generic("BzrCheckError", "malformed last-revision file");
    bzr::PackCollection packs;
    if (!branch_packs(c, bzrdir, packs)) return;
    const std::string& revid = c.arg(1);
    auto r = bzr::mainline_revno(packs, static_cast<int64_t>(tip_revno), std::string_view(tip).substr(sp + 1), revid);
    if (!r) return c.generic("BzrCheckError", r.err().detail);
    switch (r->kind) {
    case bzr::MainlineRevno::Found: return c.ok({Value("ok"), Value(std::to_string(r->revno))});
    case bzr::MainlineRevno::Absent: return c.fail(proto::error_args(Err::NoSuchRevision, revid));
    case bzr::MainlineRevno::Ghost:
        return c.fail(proto::error_args(Err::GhostRevisionsHaveNoRevno, revid, r->ghost));
    case bzr::MainlineRevno::NotOnMainline: break;
    }
    // A merged revision has a dotted revno (2.1.3), which needs the merge
    // sort of the whole graph: the client computes it itself. This verb has
    // no version gate, so the refusal costs nothing else.
    c.fail(proto::error_args(Err::UnknownMethod, c.args[0].bytes));
}

}  // namespace souk::server
