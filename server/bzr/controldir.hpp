// Creating control directories, repositories and branches
// (docs/formats/control-dir.md#creating-control-directories): the files
// Breezy's own formats create, byte for byte, written through the Store.
// Also where a bzrdir's repository is (its own or a shared one above) and
// what a bzrdir's default branch is. Never sees the wire.
#pragma once

#include <string>
#include <string_view>

#include "protocol/result.hpp"
#include "server/bzr/format.hpp"
#include "server/store/store.hpp"

namespace souk::server::bzr {

// Breezy's .bzr/README (147 bytes).
inline constexpr std::string_view kControlDirReadme =
    "This is a Bazaar control directory.\n"
    "Do not change any files in this directory.\n"
    "See http://bazaar.canonical.com/ for more information about Bazaar.\n";

// Why a creation failed; the verb adapter picks the wire error.
enum class CreateErrc : uint8_t {
    Io,                 // the Store failed (sys_errno)
    TargetExists,       // initialize_ex: the directory exists and use_existing_dir is false
    NoParent,           // initialize_ex: the parent is missing and create_prefix is false
    AlreadyControlDir,  // .bzr already exists
    LockExists,         // the repository's or branch's lock/ exists: it was created before
    NoControlDir,       // the bzrdir to create in does not exist
    NoRepository,       // create_branch: no repository here or shared above
    Unsupported,        // a format souk cannot create (a branch reference, a knit repository)
};
struct CreateError {
    CreateErrc code = CreateErrc::Io;
    int sys_errno = 0;
};
template <typename T>
using CreateResult = BasicResult<T, CreateError>;
struct Created {};

// Whether `dir` (root-relative) holds a control directory (.bzr/branch-format
// names a metadir).
bool is_control_dir(Store& store, const std::string& dir);

// Make `dir`/.bzr in the existing directory `dir`: README, branch-lock/ and,
// last (until then it is not a bzrdir), branch-format = a metadir.
// AlreadyControlDir when .bzr exists.
CreateResult<Created> init_control_dir(Store& store, const std::string& dir);

// The repository a bzrdir uses: its own, or a shared one in the nearest
// ancestor bzrdir (the search stops at the first ancestor that is not a
// bzrdir, or at a repository that is not shared).
struct RepositoryLocation {
    int ups = 0;                               // 0: in the bzrdir itself; n: n levels up
    std::string bzrdir;                        // the root-relative bzrdir that holds it
    std::string format_string;                 // the format file's first line (the network name)
    const RepositoryFormat* format = nullptr;  // nullptr: a format souk does not know
    // "" (ups 0), "..", "../.." ...
    std::string relpath() const;
};
// false when there is none; *err is an errno when reading failed (else 0).
bool find_repository(Store& store, const std::string& bzrdir, RepositoryLocation& out, int* err);

// Make `bzrdir`/.bzr/repository in `format` (a pack format: 2a and the
// knit-pack formats), with shared-storage when shared and no-working-trees
// when make_working_trees is 0 (-1: leave the default). LockExists when the
// repository's lock/ exists, NoControlDir without a bzrdir, Unsupported
// for a format that is not a pack format.
CreateResult<Created> create_repository(Store& store, const std::string& bzrdir, const RepositoryFormat& format,
                                        bool shared, int make_working_trees);

// Make `bzrdir`/.bzr/branch in `format` (5, 6, 7 or 8), empty (revision 0).
// The bzrdir must have a repository (its own or a shared one above):
// NoRepository otherwise, checked before anything is written; *repo is it.
// LockExists when the branch's lock/ exists, Unsupported for a branch
// reference.
CreateResult<Created> create_branch(Store& store, const std::string& bzrdir, const BranchFormat& format,
                                    RepositoryLocation* repo);

// BzrDirFormat.initialize_ex_1.16: make a bzrdir at `dir` and, when
// repo_format is set, find a shared repository above (unless
// force_new_repo or stacking) or create one.
struct InitExRequest {
    std::string dir;  // root-relative; "" is the root
    bool use_existing_dir = false;
    bool create_prefix = false;
    bool force_new_repo = false;
    std::string stacked_on;    // "" = not stacked
    std::string stack_on_pwd;  // "" = none
    const RepositoryFormat* repo_format = nullptr;  // nullptr: no repository wanted
    int make_working_trees = -1;                    // -1 = the format's default, 0, 1
    bool shared_repo = false;
};
struct InitExResult {
    bool has_repository = false;
    RepositoryLocation repo;  // when has_repository
    bool require_stacking = false;
    std::string final_stack;      // the stacked-on location the client is to configure, or ""
    std::string final_stack_pwd;  // what it is relative to, or ""
};
CreateResult<InitExResult> initialize_ex(Store& store, const InitExRequest& req);

// The default branch of a bzrdir, as BzrDir.get_branches lists it.
struct BranchEntry {
    enum Kind : uint8_t { None, Branch, Reference } kind = None;
    std::string value;  // Branch: the format string; Reference: the location file, as stored
};
// 0 or an errno (ENOENT/ENOTDIR are "no branch", not errors).
int read_branch_entry(Store& store, const std::string& bzrdir, BranchEntry& out);

}  // namespace souk::server::bzr
