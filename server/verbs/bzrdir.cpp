// The BzrDir verbs (docs/protocol/bzrdir.md): opening control directories.
#include "server/verbs/call.hpp"

#include <errno.h>
#include <sys/stat.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <set>

#include "protocol/errors.hpp"
#include "server/bzr/format.hpp"

namespace souk::server {

// --------------------------------------------------------- BzrDir.* ----

void verb_bzrdir_open(Call& c) {
    // 'no' also for missing paths and paths outside the root (docs/protocol/bzrdir.md#bzrdiropen).
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
    if (const bzr::BranchFormat* bf = bzr::find_branch_format(fmt); bf && bf->reference) {
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
    if (!c.resolve(c.arg(0), false, d)) return;
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
    if (!e) e = c.store().put(join(dot, "branch-format"), bzr::default_control_dir_format().format_string, -1);
    if (e) return c.fail_errno(e, c.arg(0));
    c.ok({Value("ok")});
}

}  // namespace souk::server
