// Creating control directories, repositories and branches
// (docs/formats/control-dir.md#creating-control-directories).
#include "server/bzr/controldir.hpp"

#include <errno.h>
#include <sys/stat.h>

#include "server/bzr/control.hpp"
#include "server/store/paths.hpp"

namespace souk::server::bzr {
namespace {

CreateError io(int e) { return CreateError{CreateErrc::Io, e}; }
CreateError err(CreateErrc c) { return CreateError{c, 0}; }

bool exists(Store& store, const std::string& path) {
    FileInfo fi;
    return store.stat(path, fi) == 0;
}

// The parent of a root-relative path ("" for a top-level name and the root).
std::string parent_of(const std::string& dir) {
    size_t slash = dir.rfind('/');
    return slash == std::string::npos ? std::string() : dir.substr(0, slash);
}

// The empty pack-names of a pack format: the knit-pack formats before 1.9
// index with GraphIndex, the later ones (and 2a) with B+Tree indices.
std::string_view empty_pack_names(const RepositoryFormat& f) {
    static constexpr std::string_view kGraphIndex = "Bazaar Graph Index 1\nnode_ref_lists=0\nkey_elements=1\nlen=0\n\n";
    static constexpr std::string_view kBTree =
        "B+Tree Graph Index 2\nnode_ref_lists=0\nkey_elements=1\nlen=0\nrow_lengths=\n";
    static constexpr std::string_view kGraphIndexFormats[] = {
        "RepositoryFormatKnitPack1", "RepositoryFormatKnitPack3", "RepositoryFormatKnitPack4",
        "RepositoryFormatKnitPack5", "RepositoryFormatKnitPack5RichRoot", "RepositoryFormatKnitPack5RichRootBroken"};
    for (std::string_view n : kGraphIndexFormats)  // bounded: six names
        if (f.name == n) return kGraphIndex;
    return kBTree;
}

// mkdir `path` and every missing ancestor (Breezy's create_prefix).
int make_dirs(Store& store, const std::string& path) {
    size_t i = 0;
    while (i <= path.size()) {  // bounded: each pass moves past one component
        size_t j = path.find('/', i);
        if (j == std::string::npos) j = path.size();
        if (j > i) {
            int e = store.mkdir(path.substr(0, j), -1);
            if (e && e != EEXIST) return e;
        }
        i = j + 1;
    }
    return 0;
}

// A LockDir's directory, made and left unheld, as Breezy's create_lock
// leaves it once the creator's own lock/unlock round is over. EEXIST:
// the object was created before.
CreateResult<Created> make_lock_dir(Store& store, const std::string& lock) {
    if (int e = store.mkdir(lock, -1)) return e == EEXIST ? err(CreateErrc::LockExists) : io(e);
    return Created{};
}

}  // namespace

std::string RepositoryLocation::relpath() const {
    std::string r;
    for (int i = 0; i < ups; ++i) r += i ? "/.." : "..";  // bounded: the path's depth
    return r;
}

bool is_control_dir(Store& store, const std::string& dir) {
    std::string fmt;
    if (read_file(store, join(dir, ".bzr/branch-format"), fmt, 4096)) return false;
    return find_control_dir_format(fmt) != nullptr;
}

CreateResult<Created> init_control_dir(Store& store, const std::string& dir) {
    std::string dot = join(dir, ".bzr");
    if (int e = store.mkdir(dot, -1)) return e == EEXIST ? err(CreateErrc::AlreadyControlDir) : io(e);
    // Breezy's order: the lock, the README, then branch-format; until that
    // last file exists the directory is not a bzrdir to any reader.
    if (int e = store.mkdir(join(dot, "branch-lock"), -1)) return io(e);
    if (int e = store.put(join(dot, "README"), kControlDirReadme, -1)) return io(e);
    if (int e = store.put(join(dot, "branch-format"), default_control_dir_format().format_string, -1)) return io(e);
    return Created{};
}

bool find_repository(Store& store, const std::string& bzrdir, RepositoryLocation& out, int* err) {
    *err = 0;
    std::string cur = bzrdir;
    int ups = 0;
    // Upwards through every ancestor, bzrdir or plain directory (Breezy's
    // open_containing), to the first repository; above the bzrdir itself
    // only a shared one counts.
    for (;;) {  // bounded: each pass moves one level up; the root ends it
        if (ups == 0 || is_control_dir(store, cur)) {
            std::string fmt;
            int e = read_file(store, join(cur, ".bzr/repository/format"), fmt, 4096);
            if (e == 0) {
                if (ups && !exists(store, join(cur, ".bzr/repository/shared-storage"))) return false;
                out.ups = ups;
                out.bzrdir = cur;
                out.format = find_repository_format(fmt);
                out.format_string = out.format ? std::string(out.format->format_string) : fmt;
                return true;
            }
            if (e != ENOENT && e != ENOTDIR) {
                *err = e;
                return false;
            }
        }
        if (cur.empty()) return false;
        cur = parent_of(cur);
        ++ups;
    }
}

CreateResult<Created> create_repository(Store& store, const std::string& bzrdir, const RepositoryFormat& format,
                                        bool shared, int make_working_trees) {
    if (!is_control_dir(store, bzrdir)) return err(CreateErrc::NoControlDir);
    std::string repo = join(bzrdir, ".bzr/repository");
    if (int e = store.mkdir(repo, -1); e && e != EEXIST) return io(e);
    auto lock = make_lock_dir(store, join(repo, "lock"));
    if (!lock) return lock;
    for (const char* d : {"indices", "obsolete_packs", "packs", "upload"})  // bounded: four names
        if (int e = store.mkdir(join(repo, d), -1)) return io(e);
    if (int e = store.put(join(repo, "pack-names"), empty_pack_names(format), -1)) return io(e);
    if (int e = store.put(join(repo, "format"), format.format_string, -1)) return io(e);
    if (shared)
        if (int e = store.put(join(repo, "shared-storage"), "", -1)) return io(e);
    if (make_working_trees == 0)
        if (int e = store.put(join(repo, "no-working-trees"), "", -1)) return io(e);
    return Created{};
}

CreateResult<Created> create_branch(Store& store, const std::string& bzrdir, const BranchFormat& format,
                                    RepositoryLocation* repo) {
    if (format.reference) return err(CreateErrc::Unsupported);
    if (!is_control_dir(store, bzrdir)) return err(CreateErrc::NoControlDir);
    int e = 0;
    if (!find_repository(store, bzrdir, *repo, &e)) return e ? io(e) : err(CreateErrc::NoRepository);
    std::string br = join(bzrdir, ".bzr/branch");
    if (int m = store.mkdir(br, -1); m && m != EEXIST) return io(m);
    auto lock = make_lock_dir(store, join(br, "lock"));
    if (!lock) return lock;
    // Breezy's files per format, in its order; format last.
    struct File {
        const char* name;
        std::string_view content;
    };
    static constexpr File k5[] = {{"revision-history", ""}, {"branch-name", ""}};
    static constexpr File k67[] = {{"last-revision", "0 null:\n"}, {"branch.conf", ""}, {"tags", ""}};
    static constexpr File k8[] = {{"last-revision", "0 null:\n"}, {"branch.conf", ""}, {"tags", ""}, {"references", ""}};
    std::span<const File> files = format.number == 5 ? std::span<const File>(k5)
                                  : format.number == 8 ? std::span<const File>(k8)
                                                       : std::span<const File>(k67);
    for (const File& f : files)  // bounded: at most four files
        if (int w = store.put(join(br, f.name), f.content, -1)) return io(w);
    if (int w = store.put(join(br, "format"), format.format_string, -1)) return io(w);
    return Created{};
}

CreateResult<InitExResult> initialize_ex(Store& store, const InitExRequest& req) {
    // The directory: made here, unlike BzrDirFormat.initialize.
    if (int e = store.mkdir(req.dir, -1)) {
        if (e == EEXIST) {
            if (!req.use_existing_dir) return err(CreateErrc::TargetExists);
        } else if (e == ENOENT) {
            if (!req.create_prefix) return err(CreateErrc::NoParent);
            if (int p = make_dirs(store, req.dir)) return io(p);
        } else {
            return io(e);
        }
    }
    auto made = init_control_dir(store, req.dir);
    if (!made) return made.err();
    InitExResult out;
    out.require_stacking = !req.stacked_on.empty();
    if (!req.repo_format) return out;
    // A shared repository above serves unless a new one is forced or the
    // branch is to be stacked (Breezy's determine_repository_policy).
    int e = 0;
    if (!req.force_new_repo && req.stacked_on.empty() && find_repository(store, req.dir, out.repo, &e)) {
        out.has_repository = true;
    } else {
        if (e) return io(e);
        auto repo = create_repository(store, req.dir, *req.repo_format, req.shared_repo, req.make_working_trees);
        if (!repo) return repo.err();
        out.has_repository = true;
        out.repo = RepositoryLocation{0, req.dir, std::string(req.repo_format->format_string), req.repo_format};
    }
    if (!req.stacked_on.empty()) {
        out.final_stack = req.stacked_on;
        // An absolute path names a location on this server: Breezy answers
        // it relative to the new bzrdir's own location ('.').
        out.final_stack_pwd = req.stacked_on.front() == '/' ? "." : req.stack_on_pwd;
    }
    return out;
}

int read_branch_entry(Store& store, const std::string& bzrdir, BranchEntry& out) {
    out = BranchEntry{};
    std::string fmt;
    int e = read_file(store, join(bzrdir, ".bzr/branch/format"), fmt, 4096);
    if (e == ENOENT || e == ENOTDIR) return 0;
    if (e) return e;
    const BranchFormat* f = find_branch_format(fmt);
    if (f && f->reference) {
        std::string loc;
        // As stored (Breezy's get_branches does not strip it either).
        if (int l = read_file(store, join(bzrdir, ".bzr/branch/location"), loc, 64 * 1024)) return l;
        out.kind = BranchEntry::Reference;
        out.value = std::move(loc);
        return 0;
    }
    out.kind = BranchEntry::Branch;
    out.value = f ? std::string(f->format_string) : std::string(format_first_line(fmt));
    return 0;
}

}  // namespace souk::server::bzr
