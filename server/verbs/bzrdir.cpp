// The BzrDir verbs (docs/protocol/bzrdir.md): opening control directories.
#include "server/verbs/call.hpp"

#include <errno.h>
#include <sys/stat.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <set>

#include "protocol/errors.hpp"
#include "protocol/bencode.hpp"
#include "server/bzr/controldir.hpp"
#include "server/bzr/format.hpp"

namespace souk::server {

void creation_failure(Call& c, const bzr::CreateError& e, const std::string& path, std::string_view object);

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
    auto made = bzr::init_control_dir(c.store(), d);
    if (!made) return creation_failure(c, made.err(), c.arg(0), "");
    c.ok({Value("ok")});
}

// ------------------------------------------------ creating (1.13-1.16) ----
// docs/protocol/bzrdir.md#creating-control-directories

namespace {

// Python's repr() of a byte string, as Breezy's KeyError messages show it.
std::string py_bytes_repr(std::string_view s) {
    static const char hex[] = "0123456789abcdef";
    char q = s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos ? '"' : '\'';
    std::string out = "b";
    out += q;
    for (unsigned char ch : s) {  // bounded: the string
        if (ch == '\\' || ch == static_cast<unsigned char>(q)) {
            out += '\\';
            out += static_cast<char>(ch);
        } else if (ch == '\n') out += "\\n";
        else if (ch == '\r') out += "\\r";
        else if (ch == '\t') out += "\\t";
        else if (ch < 0x20 || ch >= 0x7f) {
            out += "\\x";
            out += hex[ch >> 4];
            out += hex[ch & 15];
        } else out += static_cast<char>(ch);
    }
    out += q;
    return out;
}

// A format name no entry of the table has: Breezy's registry lookup fails
// with KeyError.
void unknown_format(Call& c, const std::string& name) { c.generic("KeyError", py_bytes_repr(name)); }

// Breezy's three-way flag: "True", "False", "" (None); -2 after failing.
int tri_state(Call& c, const std::string& v) {
    if (v.empty()) return -1;
    if (v == "True") return 1;
    if (v == "False") return 0;
    c.generic("AssertionError", "invalid arg " + py_bytes_repr(v));
    return -2;
}

const char* yes_no(bool b) { return b ? "yes" : "no"; }

// The control directory format of a bzrdir (its branch-format's first line).
std::string control_dir_name(Call& c, const std::string& d) {
    std::string fmt;
    if (bzr::read_file(c.store(), join(d, ".bzr/branch-format"), fmt, 4096)) return {};
    return std::string(bzr::format_first_line(fmt));
}

}  // namespace

// A failed creation, as Breezy's server reports each case (with the
// client's path where Breezy names its own).
void creation_failure(Call& c, const bzr::CreateError& e, const std::string& path, std::string_view object) {
    switch (e.code) {
    case bzr::CreateErrc::TargetExists: return c.fail(proto::error_args(Err::FileExists, path));
    case bzr::CreateErrc::NoParent: return c.fail(proto::error_args(Err::NoSuchFile, path));
    case bzr::CreateErrc::AlreadyControlDir: return c.fail(proto::error_args(Err::AlreadyControlDir, path));
    case bzr::CreateErrc::LockExists:
        return c.generic("LockFailed", "Cannot lock LockDir(" + path + (path.empty() || path.back() == '/' ? "" : "/") +
                                           ".bzr/" + std::string(object) + "/lock): File exists");
    case bzr::CreateErrc::NoControlDir: return c.generic("NotBranchError", "Not a branch: \"" + path + "\".");
    case bzr::CreateErrc::NoRepository: return c.generic("NoRepositoryPresent", "No repository present: \"" + path + "\"");
    case bzr::CreateErrc::Unsupported:
        return c.generic("UninitializableFormat", "Format cannot be initialised by this server.");
    case bzr::CreateErrc::Io: break;
    }
    c.fail_errno(e.sys_errno ? e.sys_errno : EIO, path);
}

// (bzrdir format, path, use_existing_dir, create_prefix, force_new_repo,
//  stacked_on, stack_on_pwd, repo format, make_working_trees, shared_repo)
void verb_initialize_ex(Call& c) {
    const bzr::ControlDirFormat* dir_format = bzr::find_control_dir_format(c.arg(0));
    if (!dir_format || dir_format->format_string != c.arg(0)) return unknown_format(c, c.arg(0));
    bzr::InitExRequest req;
    int use_existing = tri_state(c, c.arg(2)), prefix = tri_state(c, c.arg(3)), force = tri_state(c, c.arg(4));
    int trees = tri_state(c, c.arg(8)), shared = tri_state(c, c.arg(9));
    for (int v : {use_existing, prefix, force, trees, shared})  // bounded: five flags
        if (v == -2) return;
    if (!c.arg(7).empty()) {
        req.repo_format = bzr::find_repository_format(c.arg(7));
        if (!req.repo_format || req.repo_format->format_string != c.arg(7)) return unknown_format(c, c.arg(7));
    }
    if (!c.resolve(c.arg(1), false, req.dir)) return;
    req.use_existing_dir = use_existing == 1;
    req.create_prefix = prefix == 1;
    req.force_new_repo = force == 1;
    req.stacked_on = c.arg(5);
    req.stack_on_pwd = c.arg(6);
    req.make_working_trees = trees;
    req.shared_repo = shared == 1;
    auto r = bzr::initialize_ex(c.store(), req);
    if (!r) return creation_failure(c, r.err(), c.arg(1), "repository");
    std::string dir_name(dir_format->format_string);
    if (!r->has_repository)
        return c.ok({Value(""), Value(""), Value(""), Value(""), Value(""), Value(""), Value(dir_name),
                     Value(r->require_stacking ? "True" : "False"), Value(""), Value(""), Value("")});
    const bzr::RepositoryLocation& repo = r->repo;
    const bzr::RepositoryFormat* f = repo.format;
    std::string repo_dir_name = repo.ups == 0 ? dir_name : control_dir_name(c, repo.bzrdir);
    // Pack repositories take no persistent lock: the repository token is ''.
    c.ok({Value(repo.ups == 0 ? std::string(".") : repo.relpath()), Value(yes_no(f && f->rich_root)),
          Value(yes_no(f && f->tree_reference)), Value(yes_no(f && f->external_lookups)), Value(repo.format_string),
          Value(repo_dir_name), Value(dir_name), Value(r->require_stacking ? "True" : "False"), Value(r->final_stack),
          Value(r->final_stack_pwd), Value("")});
}

// (path, repository format, 'True'|'False' shared)
void verb_create_repository(Call& c) {
    std::string d;
    if (!c.resolve(c.arg(0), false, d)) return;
    if (!c.is_bzrdir(d)) return creation_failure(c, {bzr::CreateErrc::NoControlDir, 0}, c.arg(0), "");
    const bzr::RepositoryFormat* f = bzr::find_repository_format(c.arg(1));
    if (!f || f->format_string != c.arg(1)) return unknown_format(c, c.arg(1));
    auto r = bzr::create_repository(c.store(), d, *f, c.arg(2) == "True", -1);
    if (!r) return creation_failure(c, r.err(), c.arg(0), "repository");
    c.ok({Value("ok"), Value(yes_no(f->rich_root)), Value(yes_no(f->tree_reference)), Value(yes_no(f->external_lookups)),
          Value(f->format_string)});
}

// (path, branch format)
void verb_create_branch(Call& c) {
    std::string d;
    if (!c.resolve(c.arg(0), false, d)) return;
    if (!c.is_bzrdir(d)) return creation_failure(c, {bzr::CreateErrc::NoControlDir, 0}, c.arg(0), "");
    const bzr::BranchFormat* f = bzr::find_branch_format(c.arg(1));
    if (!f || f->format_string != c.arg(1)) return unknown_format(c, c.arg(1));
    bzr::RepositoryLocation repo;
    auto r = bzr::create_branch(c.store(), d, *f, &repo);
    if (!r) return creation_failure(c, r.err(), c.arg(0), "branch");
    const bzr::RepositoryFormat* rf = repo.format;
    c.ok({Value("ok"), Value(f->format_string), Value(repo.relpath()), Value(yes_no(rf && rf->rich_root)),
          Value(yes_no(rf && rf->tree_reference)), Value(yes_no(rf && rf->external_lookups)),
          Value(repo.format_string)});
}

// The formats a copy of this bzrdir should use: its own, the branch's and
// the repository's (the branch's repository may be a shared one above);
// the defaults where there is none. false after failing.
bool metadir_formats(Call& c, std::string& dir_name, std::string& repo_name, std::string& branch_name) {
    std::string d;
    if (!c.bzrdir(d)) return false;
    bzr::BranchEntry br;
    if (int e = bzr::read_branch_entry(c.store(), d, br)) {
        c.fail_errno(e, c.arg(0));
        return false;
    }
    if (br.kind == bzr::BranchEntry::Reference) {
        // The client resolves references itself before asking again.
        c.fail(proto::error_args(Err::BranchReference));
        return false;
    }
    dir_name = control_dir_name(c, d);
    branch_name = br.kind == bzr::BranchEntry::Branch ? br.value
                                                       : std::string(bzr::default_branch_format().format_string);
    bzr::RepositoryLocation repo;
    int err = 0;
    bool found = bzr::find_repository(c.store(), d, repo, &err);
    if (err) {
        c.fail_errno(err, c.arg(0));
        return false;
    }
    // Without a branch only the bzrdir's own repository is the source.
    if (found && (br.kind == bzr::BranchEntry::Branch || repo.ups == 0)) repo_name = repo.format_string;
    else repo_name = std::string(bzr::default_repository_format().format_string);
    return true;
}

// (path, 'True'|'False' require_stacking) -> (bzrdir, repository, ('branch', branch))
void verb_cloning_metadir(Call& c) {
    std::string dir_name, repo_name, branch_name;
    if (metadir_formats(c, dir_name, repo_name, branch_name))
        c.ok({Value(dir_name), Value(repo_name), Value::of_list({Value("branch"), Value(branch_name)})});
}

// (path) -> (bzrdir, repository, branch): flat, unlike cloning_metadir.
void verb_checkout_metadir(Call& c) {
    std::string dir_name, repo_name, branch_name;
    if (metadir_formats(c, dir_name, repo_name, branch_name))
        c.ok({Value(dir_name), Value(repo_name), Value(branch_name)});
}

void verb_has_workingtree(Call& c) {
    std::string d;
    if (c.bzrdir(d)) c.ok({Value(c.exists(join(d, ".bzr/checkout/format")) ? "yes" : "no")});
}

// -> ('success',) + a bencoded dict: branch name -> (kind, value).
void verb_get_branches(Call& c) {
    std::string d;
    if (!c.bzrdir(d)) return;
    // Colocated branches (.bzr/branches/NAME) are left to the client's VFS
    // code: this verb has no version gate, so refusing it costs nothing else.
    const bzr::ControlDirFormat* f = bzr::find_control_dir_format(control_dir_name(c, d));
    if (f && f->colocated) return c.fail(proto::error_args(Err::UnknownMethod, c.args[0].bytes));
    bzr::BranchEntry br;
    if (int e = bzr::read_branch_entry(c.store(), d, br)) return c.fail_errno(e, c.arg(0));
    if (br.kind == bzr::BranchEntry::None) return c.ok_body({Value("success")}, "de");
    Value entry = Value::of_list({Value(br.kind == bzr::BranchEntry::Branch ? "branch" : "ref"), Value(br.value)});
    c.ok_body({Value("success")}, proto::bencode(Value::of_dict({{std::string(), entry}})));
}

}  // namespace souk::server
