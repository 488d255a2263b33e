// Creating control directories (server/bzr/controldir.*), editing
// branch.conf (server/bzr/config.*) and revision numbers
// (server/bzr/revno.*). Trees made by the library are compared byte for
// byte with the ones Breezy's own formats make (run through /usr/bin/python3).
#include <doctest/doctest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "server/bzr/btree.hpp"
#include "server/bzr/config.hpp"
#include "server/bzr/control.hpp"
#include "server/bzr/controldir.hpp"
#include "server/bzr/format.hpp"
#include "server/bzr/pack_collection.hpp"
#include "server/bzr/revno.hpp"
#include "server/store/fs_store.hpp"

using namespace souk::server;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "souk-ctrldir-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

std::string read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_all(const fs::path& p, std::string_view data) {
    fs::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// Every entry below `root`: relative path -> "DIR" or the file's bytes.
std::map<std::string, std::string> tree(const fs::path& root) {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(root))
        out[fs::relative(e.path(), root).string()] = e.is_directory() ? "DIR" : read_all(e.path());
    return out;
}

int sh(const std::string& cmd) {
    int st = std::system(cmd.c_str());
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Breezy's own formats make the same objects in `dir` (an existing directory).
void breezy_make(const fs::path& dir, const std::string& what) {
    std::string py =
        "import sys\n"
        "from breezy.bzr import bzrdir\n"
        "from breezy import repository, branch\n"
        "from breezy.transport import get_transport\n"
        "t = get_transport(sys.argv[1])\n"
        "bd = bzrdir.BzrDirMetaFormat1().initialize_on_transport(t)\n"
        "what = sys.argv[2]\n"
        "R = b'Bazaar repository format 2a (needs bzr 1.16 or later)\\n'\n"
        "if 'repo' in what:\n"
        "    r = repository.network_format_registry.get(R).initialize(bd, shared='shared' in what)\n"
        "    if 'notrees' in what: r.set_make_working_trees(False)\n"
        "if 'knitpack1' in what:\n"
        "    repository.network_format_registry.get(b'Bazaar pack repository format 1 (needs bzr 0.92)\\n').initialize(bd)\n"
        "B = {'5': b'Bazaar-NG branch format 5\\n', '6': b'Bazaar Branch Format 6 (bzr 0.15)\\n',\n"
        "     '7': b'Bazaar Branch Format 7 (needs bzr 1.6)\\n', '8': b'Bazaar Branch Format 8 (needs bzr 1.15)\\n'}\n"
        "for n, name in B.items():\n"
        "    if 'branch' + n in what:\n"
        "        branch.network_format_registry.get(name).initialize(bd)\n";
    fs::path script = dir.parent_path() / "make.py";
    write_all(script, py);
    REQUIRE_MESSAGE(sh("HOME=" + dir.parent_path().string() + " /usr/bin/python3 " + script.string() + " " +
                       dir.string() + " '" + what + "' >/dev/null 2>&1") == 0,
                    "Breezy could not make " << what);
}

const bzr::BranchFormat& branch_format(int number) {
    for (const auto& f : bzr::branch_formats())
        if (f.number == number && !f.reference) return f;
    FAIL("no branch format " << number);
    return bzr::default_branch_format();
}

}  // namespace

TEST_CASE("control directories, repositories and branches are Breezy's, byte for byte") {
    struct Case {
        std::string what;
        bool shared;
        int trees;  // make_working_trees
        int branch;
        const char* repo_class;
    };
    const Case cases[] = {
        {"bzrdir", false, -1, 0, nullptr},
        {"repo", false, -1, 0, "RepositoryFormat2a"},
        {"repo shared notrees", true, 0, 0, "RepositoryFormat2a"},
        {"repo branch7", false, -1, 7, "RepositoryFormat2a"},
        {"repo branch5", false, -1, 5, "RepositoryFormat2a"},
        {"repo branch6", false, -1, 6, "RepositoryFormat2a"},
        {"repo branch8", false, -1, 8, "RepositoryFormat2a"},
        {"knitpack1", false, -1, 0, "RepositoryFormatKnitPack1"},
    };
    for (const Case& k : cases) {
        CAPTURE(k.what);
        TempDir tmp;
        fs::create_directories(tmp.path / "brz" / "d");
        fs::create_directories(tmp.path / "souk" / "d");
        breezy_make(tmp.path / "brz" / "d", k.what);
        FsStore store((tmp.path / "souk").string());
        REQUIRE(store.valid());
        REQUIRE(bzr::init_control_dir(store, "d"));
        if (k.repo_class) {
            const bzr::RepositoryFormat* rf = nullptr;
            for (const auto& f : bzr::repository_formats())
                if (f.name == k.repo_class) rf = &f;
            REQUIRE(rf);
            REQUIRE(bzr::create_repository(store, "d", *rf, k.shared, k.trees));
        }
        if (k.branch) {
            bzr::RepositoryLocation repo;
            REQUIRE(bzr::create_branch(store, "d", branch_format(k.branch), &repo));
            CHECK(repo.ups == 0);
        }
        CHECK(tree(tmp.path / "souk" / "d") == tree(tmp.path / "brz" / "d"));
    }
}

TEST_CASE("creation failures leave the disk as it was") {
    TempDir tmp;
    FsStore store(tmp.path.string());
    fs::create_directories(tmp.path / "plain");
    const auto& r2a = bzr::default_repository_format();
    SUBCASE("no bzrdir") {
        auto r = bzr::create_repository(store, "plain", r2a, false, -1);
        REQUIRE(!r);
        CHECK(r.err().code == bzr::CreateErrc::NoControlDir);
        bzr::RepositoryLocation repo;
        auto b = bzr::create_branch(store, "plain", bzr::default_branch_format(), &repo);
        REQUIRE(!b);
        CHECK(b.err().code == bzr::CreateErrc::NoControlDir);
        CHECK(fs::is_empty(tmp.path / "plain"));
    }
    SUBCASE("twice") {
        REQUIRE(bzr::init_control_dir(store, "plain"));
        auto again = bzr::init_control_dir(store, "plain");
        REQUIRE(!again);
        CHECK(again.err().code == bzr::CreateErrc::AlreadyControlDir);
        REQUIRE(bzr::create_repository(store, "plain", r2a, false, -1));
        auto r = bzr::create_repository(store, "plain", r2a, false, -1);
        REQUIRE(!r);
        CHECK(r.err().code == bzr::CreateErrc::LockExists);
        bzr::RepositoryLocation repo;
        REQUIRE(bzr::create_branch(store, "plain", bzr::default_branch_format(), &repo));
        auto b = bzr::create_branch(store, "plain", bzr::default_branch_format(), &repo);
        REQUIRE(!b);
        CHECK(b.err().code == bzr::CreateErrc::LockExists);
    }
    SUBCASE("a branch needs a repository, checked before writing") {
        REQUIRE(bzr::init_control_dir(store, "plain"));
        bzr::RepositoryLocation repo;
        auto b = bzr::create_branch(store, "plain", bzr::default_branch_format(), &repo);
        REQUIRE(!b);
        CHECK(b.err().code == bzr::CreateErrc::NoRepository);
        CHECK(!fs::exists(tmp.path / "plain/.bzr/branch"));
    }
    SUBCASE("a branch reference cannot be created") {
        REQUIRE(bzr::init_control_dir(store, "plain"));
        REQUIRE(bzr::create_repository(store, "plain", r2a, false, -1));
        const bzr::BranchFormat* ref = nullptr;
        for (const auto& f : bzr::branch_formats())
            if (f.reference) ref = &f;
        REQUIRE(ref);
        bzr::RepositoryLocation repo;
        auto b = bzr::create_branch(store, "plain", *ref, &repo);
        REQUIRE(!b);
        CHECK(b.err().code == bzr::CreateErrc::Unsupported);
    }
}

TEST_CASE("initialize_ex: directories, shared repositories above, stacking") {
    TempDir tmp;
    FsStore store(tmp.path.string());
    const auto& r2a = bzr::default_repository_format();
    bzr::InitExRequest shared;
    shared.dir = "x/y";
    shared.repo_format = &r2a;
    shared.shared_repo = true;
    shared.make_working_trees = 0;
    auto missing = bzr::initialize_ex(store, shared);
    REQUIRE(!missing);
    CHECK(missing.err().code == bzr::CreateErrc::NoParent);
    CHECK(!fs::exists(tmp.path / "x"));
    shared.create_prefix = true;
    auto made = bzr::initialize_ex(store, shared);
    REQUIRE(made);
    CHECK(made->has_repository);
    CHECK(made->repo.ups == 0);
    CHECK(fs::exists(tmp.path / "x/y/.bzr/repository/shared-storage"));
    CHECK(fs::exists(tmp.path / "x/y/.bzr/repository/no-working-trees"));
    CHECK(read_all(tmp.path / "x/y/.bzr/README") == bzr::kControlDirReadme);

    auto exists = bzr::initialize_ex(store, shared);
    REQUIRE(!exists);
    CHECK(exists.err().code == bzr::CreateErrc::TargetExists);

    // Inside the shared repository, through a plain directory: no new repository.
    fs::create_directories(tmp.path / "x/y/plain");
    bzr::InitExRequest inner;
    inner.dir = "x/y/plain/w";
    inner.repo_format = &r2a;
    auto in = bzr::initialize_ex(store, inner);
    REQUIRE(in);
    CHECK(in->has_repository);
    CHECK(in->repo.ups == 2);
    CHECK(in->repo.relpath() == "../..");
    CHECK(!fs::exists(tmp.path / "x/y/plain/w/.bzr/repository"));
    CHECK(!in->require_stacking);

    // Forced, or stacked: a repository of its own.
    inner.dir = "x/y/v";
    inner.force_new_repo = true;
    auto forced = bzr::initialize_ex(store, inner);
    REQUIRE(forced);
    CHECK(forced->repo.ups == 0);
    CHECK(fs::exists(tmp.path / "x/y/v/.bzr/repository/format"));
    inner.dir = "x/y/s";
    inner.force_new_repo = false;
    inner.stacked_on = "bzr://host/trunk";
    inner.stack_on_pwd = "file:///home/me/loc/";
    auto stacked = bzr::initialize_ex(store, inner);
    REQUIRE(stacked);
    CHECK(stacked->repo.ups == 0);
    CHECK(stacked->require_stacking);
    CHECK(stacked->final_stack == "bzr://host/trunk");
    CHECK(stacked->final_stack_pwd == "file:///home/me/loc/");
    inner.dir = "x/y/t";
    inner.stacked_on = "/trunk";
    inner.stack_on_pwd.clear();
    auto absolute = bzr::initialize_ex(store, inner);
    REQUIRE(absolute);
    CHECK(absolute->final_stack_pwd == ".");

    // No repository wanted; an existing directory when allowed.
    fs::create_directories(tmp.path / "empty");
    bzr::InitExRequest bare;
    bare.dir = "empty";
    bare.use_existing_dir = true;
    auto b = bzr::initialize_ex(store, bare);
    REQUIRE(b);
    CHECK(!b->has_repository);
    CHECK(!fs::exists(tmp.path / "empty/.bzr/repository"));
    auto again = bzr::initialize_ex(store, bare);
    REQUIRE(!again);
    CHECK(again.err().code == bzr::CreateErrc::AlreadyControlDir);

    // A non-shared repository above does not serve.
    bzr::RepositoryLocation loc;
    int err = 0;
    fs::create_directories(tmp.path / "x/y/v/sub");
    CHECK(!bzr::find_repository(store, "x/y/v/sub", loc, &err));
    CHECK(err == 0);
}

TEST_CASE("read_branch_entry: branch, reference, none") {
    TempDir tmp;
    FsStore store(tmp.path.string());
    fs::create_directories(tmp.path / "b");
    REQUIRE(bzr::init_control_dir(store, "b"));
    bzr::BranchEntry e;
    CHECK(bzr::read_branch_entry(store, "b", e) == 0);
    CHECK(e.kind == bzr::BranchEntry::None);
    REQUIRE(bzr::create_repository(store, "b", bzr::default_repository_format(), false, -1));
    bzr::RepositoryLocation repo;
    REQUIRE(bzr::create_branch(store, "b", bzr::default_branch_format(), &repo));
    CHECK(bzr::read_branch_entry(store, "b", e) == 0);
    CHECK(e.kind == bzr::BranchEntry::Branch);
    CHECK(e.value == bzr::default_branch_format().format_string);
    write_all(tmp.path / "r/.bzr/branch-format", bzr::kMetaDirFormat);
    write_all(tmp.path / "r/.bzr/branch/format", bzr::kBranchReferenceFormat);
    write_all(tmp.path / "r/.bzr/branch/location", "file:///elsewhere/");
    CHECK(bzr::read_branch_entry(store, "r", e) == 0);
    CHECK(e.kind == bzr::BranchEntry::Reference);
    CHECK(e.value == "file:///elsewhere/");
}

TEST_CASE("config_set writes branch.conf as Breezy's config store does") {
    // Each expectation is what Breezy 3.3 wrote for the same edit.
    CHECK(bzr::config_set("", "parent_location", "x") == "parent_location = x\n");
    CHECK(bzr::config_set("# comment\nnick = foo\n\n[sect]\na = 1\n", "parent_location", "http://h/p") ==
          "# comment\nnick = foo\nparent_location = http://h/p\n\n[sect]\na = 1\n");
    CHECK(bzr::config_set("parent_location = old\nnick = n\n", "parent_location", "new") ==
          "parent_location = new\nnick = n\n");
    CHECK(bzr::config_set("nick = a\r\n", "parent_location", "u") == "nick = a\r\nparent_location = u\r\n");
    CHECK(bzr::config_set("[s]\nk = v\n", "parent_location", "u") == "parent_location = u\n[s]\nk = v\n");
    CHECK(bzr::config_set("nick = a", "parent_location", "u") == "nick = a\nparent_location = u\n");
    CHECK(bzr::config_quote("") == "\"\"");
    CHECK(bzr::config_quote(" lead") == "\" lead\"");
    CHECK(bzr::config_quote("a,b") == "\"a,b\"");
    CHECK(bzr::config_quote("a#b") == "\"a#b\"");
    CHECK(bzr::config_quote("it's") == "it's");
    CHECK(bzr::config_quote("say \"hi\"") == "'say \"hi\"'");
    CHECK(bzr::config_quote("both ' \"") == "\"\"\"both ' \"\"\"\"");
    CHECK(bzr::config_quote("x\ny") == "'''\"\"\"x\ny\"\"\"'''");
    CHECK(bzr::config_quote("file:///a b/c") == "file:///a b/c");
}

namespace {

// A 2a-style repository at root/r/.bzr/repository whose .rix holds `g`
// (revid -> parents), in one pack.
void write_graph(const fs::path& root, const std::map<std::string, std::vector<std::string>>& g) {
    fs::path repo = root / "r/.bzr/repository";
    std::vector<bzr::BTreeNode> rix;
    for (const auto& [id, parents] : g) rix.push_back({id, {parents}, "0 100 0 10"});
    auto bytes = bzr::write_btree({1, 1, true}, rix);
    REQUIRE(bytes);
    write_all(repo / "indices/p0.rix", *bytes);
    auto pn = bzr::write_btree({0, 1, false}, {{"p0", {}, std::to_string(bytes->size()) + " 72 72 72 72"}});
    REQUIRE(pn);
    write_all(repo / "pack-names", *pn);
    write_all(repo / "format", bzr::default_repository_format().format_string);
}

}  // namespace

TEST_CASE("revision numbers on the left-hand history") {
    TempDir tmp;
    // r1 <- r2 <- r3 <- r4 (r4 merges m1, whose parent is r2); g1 has a ghost parent.
    write_graph(tmp.path, {{"r1", {}},
                           {"r2", {"r1"}},
                           {"m1", {"r2"}},
                           {"r3", {"r2"}},
                           {"r4", {"r3", "m1"}},
                           {"g1", {"ghost"}},
                           {"g2", {"g1"}}});
    FsStore store(tmp.path.string());
    auto pc = bzr::PackCollection::open(store, "r/.bzr/repository");
    REQUIRE(pc);
    bzr::PackCollection& packs = *pc;

    SUBCASE("get_rev_id_for_revno, as Breezy answers it") {
        auto one = bzr::rev_id_for_revno(packs, 1, 4, "r4");
        REQUIRE(one);
        CHECK(one->kind == bzr::RevidForRevno::Found);
        CHECK(one->revid == "r1");
        auto same = bzr::rev_id_for_revno(packs, 4, 4, "r4");
        REQUIRE(same);
        CHECK(same->revid == "r4");
        auto zero = bzr::rev_id_for_revno(packs, 0, 4, "r4");
        REQUIRE(zero);
        CHECK(zero->kind == bzr::RevidForRevno::HistoryIncomplete);
        CHECK(zero->revno == 1);
        CHECK(zero->revid == "r1");
        auto wrong_known = bzr::rev_id_for_revno(packs, 1, 6, "r4");  // the history runs out at "revno 3"
        REQUIRE(wrong_known);
        CHECK(wrong_known->kind == bzr::RevidForRevno::HistoryIncomplete);
        CHECK(wrong_known->revno == 3);
        auto oob = bzr::rev_id_for_revno(packs, 5, 4, "r4");
        REQUIRE(oob);
        CHECK(oob->kind == bzr::RevidForRevno::OutOfBounds);
        auto absent = bzr::rev_id_for_revno(packs, 1, 4, "nosuch");
        REQUIRE(absent);
        CHECK(absent->kind == bzr::RevidForRevno::NoSuchRevision);
        CHECK(absent->revid == "nosuch");
        auto ghost = bzr::rev_id_for_revno(packs, 1, 3, "g2");  // g2, g1, then the ghost is the next step
        REQUIRE(ghost);
        CHECK(ghost->kind == bzr::RevidForRevno::Found);
        CHECK(ghost->revid == "ghost");
        auto past_ghost = bzr::rev_id_for_revno(packs, 0, 3, "g2");
        REQUIRE(past_ghost);
        CHECK(past_ghost->kind == bzr::RevidForRevno::HistoryIncomplete);
        CHECK(past_ghost->revno == 1);
        CHECK(past_ghost->revid == "ghost");
        auto limited = bzr::rev_id_for_revno(packs, 1, 4, "r4", 1);
        CHECK(!limited);
    }
    SUBCASE("mainline_revno") {
        auto r = bzr::mainline_revno(packs, 4, "r4", "r2");
        REQUIRE(r);
        CHECK(r->kind == bzr::MainlineRevno::Found);
        CHECK(r->revno == 2);
        auto tip = bzr::mainline_revno(packs, 4, "r4", "r4");
        REQUIRE(tip);
        CHECK(tip->revno == 4);
        auto null = bzr::mainline_revno(packs, 4, "r4", "null:");
        REQUIRE(null);
        CHECK(null->kind == bzr::MainlineRevno::Found);
        CHECK(null->revno == 0);
        auto merged = bzr::mainline_revno(packs, 4, "r4", "m1");
        REQUIRE(merged);
        CHECK(merged->kind == bzr::MainlineRevno::NotOnMainline);
        auto absent = bzr::mainline_revno(packs, 4, "r4", "nosuch");
        REQUIRE(absent);
        CHECK(absent->kind == bzr::MainlineRevno::Absent);
        auto ghost = bzr::mainline_revno(packs, 2, "g2", "r1");
        REQUIRE(ghost);
        CHECK(ghost->kind == bzr::MainlineRevno::Ghost);
        CHECK(ghost->ghost == "ghost");
        auto empty = bzr::mainline_revno(packs, 0, "null:", "r1");
        REQUIRE(empty);
        CHECK(empty->kind == bzr::MainlineRevno::NotOnMainline);
    }
}
