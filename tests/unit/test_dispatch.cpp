#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "protocol/verbs.hpp"
#include "protocol/message.hpp"
#include "server/request/pipeline.hpp"
#include "tests/unit/pipeline_fixture.hpp"
#include "server/verbs/dispatch.hpp"
#include "transport/sink.hpp"
#include "server/store/fs_store.hpp"

namespace fs = std::filesystem;
using souk::proto::Args;
using souk::proto::Value;
using namespace souk::server;

namespace {

struct Fixture {
    fs::path root;
    FsStore* store = nullptr;
    ServerContext ctx;
    Fixture(bool writable = true) {
        char tmpl[] = "/tmp/souk-dispatch-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        root = tmpl;
        store = new FsStore(root.string());  // NOLINT: owned below
        ctx.store = store;
        ctx.configured.allow_writes = writable;
        ctx.configured.access.allow_anonymous_writes = true;  // the test origin has no user
        ctx.root_realpath = store->root_realpath();
        write("data.txt", "0123456789abcdefghijklmnopqrstuvwxyz");
    }
    ~Fixture() {
        delete store;  // NOLINT
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    void write(const std::string& rel, const std::string& data) {
        fs::create_directories((root / rel).parent_path());
        std::ofstream(root / rel, std::ios::binary) << data;
    }
    // The same request through the whole pipeline (v3 bytes in, v3 bytes
    // out): the reply's args, and the body in *body_out.
    Args serve(Args args, std::string body = {}, std::string* body_out = nullptr) {
        return souk::test::serve_v3(ctx, args, body, body_out);
    }
    Reply call(Args args, std::string body = {}) {
        const auto* verb = souk::proto::find_verb(args[0].bytes);
        REQUIRE(verb != nullptr);
        Reply r;
        dispatch(ctx, *verb, args, body, {}, r);
        return r;
    }
};

std::string body_of(Fixture& f, Reply& r) {
    if (r.body_kind == Reply::Body::Bytes) return r.body;
    std::string out;
    for (auto [off, len] : r.ranges) {
        std::string part(len, '\0');
        REQUIRE(f.store->pread(r.file, part.data(), len, off) == static_cast<ssize_t>(len));
        out += part;
    }
    return out;
}

Args A(std::initializer_list<const char*> items) {
    Args a;
    for (const char* s : items) a.emplace_back(s);
    return a;
}

}  // namespace

TEST_CASE("dispatch: get and readv return exactly the requested bytes") {
    Fixture f;
    Reply r = f.call(A({"get", "/data.txt"}));
    CHECK(r.success);
    CHECK(r.args == A({"ok"}));
    CHECK(body_of(f, r) == "0123456789abcdefghijklmnopqrstuvwxyz");

    r = f.call(A({"readv", "/data.txt"}), "0,3\n10,4\n30,6");
    CHECK(r.args == A({"readv"}));
    CHECK(body_of(f, r) == "012abcduvwxyz");
    r = f.call(A({"readv", "/data.txt"}), "5,3\n4,3\n\n");  // overlapping, unsorted, blank line
    CHECK(body_of(f, r) == "567456");
    r = f.call(A({"readv", "/data.txt"}), "30,10");
    CHECK(!r.success);
    CHECK(r.args == A({"ShortReadvError", "/data.txt", "30", "10", "6"}));
    r = f.call(A({"readv", "/data.txt"}), "40,1");
    CHECK(r.args == A({"ShortReadvError", "/data.txt", "40", "1", "0"}));
    for (const char* bad : {"a,b", "-1,2", "1", "1,2,3", "18446744073709551616,1", "4611686018427387905,1", ",", "1,"}) {
        r = f.call(A({"readv", "/data.txt"}), bad);
        CHECK_MESSAGE(!r.success, bad);
        CHECK(r.args[0].bytes == "error");
    }
}

TEST_CASE("dispatch: readv bounds are checked before any I/O") {
    Params p;
    p.max_readv_ranges = 3;
    p.max_readv_bytes = 100;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    CHECK(parse_readv_ranges("0,1\n1,1\n2,1", p, ranges).empty());
    CHECK(ranges.size() == 3);
    CHECK(!parse_readv_ranges("0,1\n1,1\n2,1\n3,1", p, ranges).empty());
    CHECK(!parse_readv_ranges("0,60\n0,41", p, ranges).empty());
    CHECK(parse_readv_ranges("0,60\n0,40", p, ranges).empty());
}

TEST_CASE("dispatch: errors name the client's path, never the server's") {
    Fixture f;
    Reply r = f.call(A({"get", "/missing%20file"}));
    CHECK(r.args == A({"NoSuchFile", "/missing%20file"}));
    r = f.call(A({"get", "/"}));
    CHECK(r.args[0].bytes == "ReadError");
    r = f.call(A({"get", "/../../etc/passwd"}));
    CHECK(!r.success);
    CHECK(r.args[0].bytes == "error");
    for (const auto& a : r.args) CHECK(a.bytes.find(f.root.string()) == std::string::npos);
    r = f.call(A({"list_dir", "/data.txt"}));
    CHECK(r.args == A({"NoSuchFile", "/data.txt"}));
    r = f.call(A({"mkdir", "/data.txt", ""}));
    CHECK(r.args == A({"FileExists", "/data.txt"}));
}

TEST_CASE("dispatch: argument counts and kinds are checked for every verb") {
    Fixture f;
    Reply r = f.call(A({"get"}));
    CHECK(!r.success);
    CHECK(r.args[0].bytes == "error");
    CHECK(r.args[1].bytes == "TypeError");
    r = f.call(A({"get", "/a", "/b"}));
    CHECK(r.args[1].bytes == "TypeError");
    Args with_int = A({"has"});
    with_int.push_back(Value::of_int(3));
    r = f.call(with_int);
    CHECK(r.args[1].bytes == "TypeError");
    r = f.call(A({"hello"}));
    CHECK(r.args == A({"ok", "2"}));
}

TEST_CASE("pipeline: a read-only server refuses every mutating verb of the table and leaves the disk alone") {
    Fixture f(false);
    CHECK(f.serve(A({"Transport.is_readonly"})) == A({"yes"}));
    for (Args a : {A({"put", "/data.txt", ""}), A({"append", "/data.txt", ""}), A({"mkdir", "/d", ""}),
                   A({"delete", "/data.txt"}), A({"rename", "/data.txt", "/x"}), A({"move", "/data.txt", "/x"}),
                   A({"rmdir", "/"}), A({"put_non_atomic", "/n", "", "T", ""}), A({"BzrDirFormat.initialize", "."}),
                   A({"Repository.unlock", ".", "tok"}), A({"Branch.unlock", ".", "a", "b"})}) {
        CHECK_MESSAGE(f.serve(a, "new") == A({"ReadOnlyError"}), a[0].bytes);
    }
    // Every verb the table marks mutating is refused, whatever its arguments.
    for (const auto& v : souk::proto::kVerbs) {
        if (!v.mutating) continue;
        Args a{Value(v.name)};
        for (int i = 0; i < v.min_args; ++i) a.push_back(Value("x"));
        CHECK_MESSAGE(f.serve(a) == A({"ReadOnlyError"}), v.name);
    }
    std::ifstream in(f.root / "data.txt");
    std::string data((std::istreambuf_iterator<char>(in)), {});
    CHECK(data == "0123456789abcdefghijklmnopqrstuvwxyz");
    CHECK(!fs::exists(f.root / "d"));
    CHECK(!fs::exists(f.root / ".bzr"));
}

TEST_CASE("pipeline: request bodies beyond the workspaces share one cap (--max-body-total)") {
    Fixture f;
    f.ctx.params.max_body_total = 64 * 1024;  // two 40 KiB bodies do not fit; one does
    std::string ranges;
    while (ranges.size() < 40 * 1024) ranges += "0,1\n";  // bounded: 40 KiB of ranges
    ranges.pop_back();
    REQUIRE(ranges.size() > f.ctx.params.workspace);  // it spills to the heap
    auto wire_of = [&] {
        std::string wire;
        souk::proto::request::encode(3, A({"readv", "/data.txt"}), &ranges, wire);
        return wire;
    };
    auto reply_of = [](Pipeline& p) {
        std::string reply;
        souk::io::StringSink sink(reply);
        REQUIRE(p.write_reply(sink));
        return reply;
    };
    const std::string w1 = wire_of(), w2 = wire_of(), w3 = wire_of();
    const log::Origin o1{"test", "first", nullptr}, o2{"test", "second", nullptr}, o3{"test", "third", nullptr};
    Pipeline first(f.ctx, o1), second(f.ctx, o2), third(f.ctx, o3);
    std::string_view in1 = w1, in2 = w2, in3 = w3;
    REQUIRE(first.feed(in1) == Pipeline::Step::Ready);  // holds its 40 KiB body until answered
    REQUIRE(second.feed(in2) == Pipeline::Step::Ready);
    CHECK(in2.empty());  // the rest of its body was read and dropped
    std::string refused = reply_of(second);
    CHECK(refused.find("TooLarge") != std::string::npos);
    CHECK(refused.find("--max-body-total") != std::string::npos);
    std::string answered = reply_of(first);  // answers, and gives its bytes back
    CHECK(answered.find("readv") != std::string::npos);
    CHECK(answered.find("TooLarge") == std::string::npos);
    REQUIRE(third.feed(in3) == Pipeline::Step::Ready);
    CHECK(reply_of(third).find("TooLarge") == std::string::npos);
}

TEST_CASE("dispatch: VFS writes, stat and listings") {
    Fixture f;
    CHECK(f.call(A({"append", "/log", "420"}), "hello").args == A({"appended", "0"}));
    CHECK(f.call(A({"append", "/log", ""}), " world").args == A({"appended", "5"}));
    CHECK(f.call(A({"put", "/dir/x", ""}), "x").args == A({"NoSuchFile", "/dir/x"}));
    CHECK(f.call(A({"mkdir", "/dir", "493"})).args == A({"ok"}));
    CHECK(f.call(A({"put", "/dir/a%20b", "420"}), "x").args == A({"ok"}));
    CHECK(f.call(A({"stat", "/dir/a b"})).args == A({"stat", "1", "0o100644"}));
    CHECK(f.call(A({"stat", "/dir"})).args == A({"stat", "4096", "0o40755"}));
    CHECK(f.call(A({"list_dir", "/dir"})).args == A({"names", "a%20b"}));
    CHECK(f.call(A({"iter_files_recursive", "/"})).args.size() == 4);  // names + log, data.txt, dir/a%20b
    CHECK(f.call(A({"has", "/dir/a%20b"})).args == A({"yes"}));
    CHECK(f.call(A({"has", "/nope"})).args == A({"no"}));
    CHECK(f.call(A({"rmdir", "/dir"})).args == A({"DirectoryNotEmpty", "/dir"}));
    CHECK(f.call(A({"delete", "/dir/a%20b"})).args == A({"ok"}));
    CHECK(f.call(A({"rmdir", "/dir"})).args == A({"ok"}));
    CHECK(f.call(A({"mkdir", "/m", "9999999"})).args[0].bytes == "error");
}

TEST_CASE("dispatch: bzrdir verbs and real LockDir locks") {
    Fixture f;
    CHECK(f.call(A({"BzrDir.open", "b/"})).args == A({"no"}));
    CHECK(f.call(A({"BzrDir.open", "../../"})).args == A({"no"}));
    CHECK(f.call(A({"BzrDirFormat.initialize", "b/"})).args == A({"NoSuchFile", "b/"}));
    fs::create_directory(f.root / "b");
    CHECK(f.call(A({"BzrDirFormat.initialize", "b/"})).args == A({"ok"}));
    CHECK(f.call(A({"BzrDirFormat.initialize", "b/"})).args == A({"AlreadyControlDir", "b/"}));
    CHECK(f.call(A({"BzrDir.open", "b/"})).args == A({"yes"}));
    CHECK(f.call(A({"BzrDir.open_2.1", "b/"})).args == A({"yes", "no"}));
    CHECK(f.call(A({"BzrDir.open_branch", "b/"})).args == A({"nobranch"}));
    CHECK(f.call(A({"BzrDir.find_repository", "b/"})).args == A({"norepository"}));
    CHECK(f.call(A({"BzrDir.open_branch", "nothere/"})).args == A({"nobranch"}));

    f.write("b/.bzr/branch/format", "Bazaar Branch Format 7 (needs bzr 1.6)\n");
    f.write("b/.bzr/branch/last-revision", "0 null:\n");
    CHECK(f.call(A({"BzrDir.open_branch", "b/"})).args == A({"ok", ""}));
    CHECK(f.call(A({"Branch.last_revision_info", "b/"})).args == A({"ok", "0", "null:"}));

    Reply r = f.call(A({"Branch.lock_write", "b/", "", ""}));
    REQUIRE(r.success);
    std::string token = r.args[1].bytes;
    CHECK(token.size() == 20);
    CHECK(std::isalpha(static_cast<unsigned char>(token[0])));
    std::ifstream info(f.root / "b/.bzr/branch/lock/held/info");
    std::string text((std::istreambuf_iterator<char>(info)), {});
    CHECK(text.find("nonce: " + token + "\n") != std::string::npos);
    CHECK(f.call(A({"Branch.lock_write", "b/", "", ""})).args == A({"LockContention"}));
    CHECK(f.call(A({"Branch.lock_write", "b/", token.c_str(), ""})).args == A({"ok", token.c_str(), ""}));
    CHECK(f.call(A({"Branch.unlock", "b/", "wrongtoken", ""})).args == A({"TokenMismatch"}));
    CHECK(f.call(A({"Branch.unlock", "b/", token.c_str(), ""})).args == A({"ok"}));
    CHECK(!fs::exists(f.root / "b/.bzr/branch/lock/held"));
    CHECK(f.call(A({"Branch.unlock", "b/", token.c_str(), ""})).args == A({"TokenMismatch"}));

    // Branch control files and the tip, under the client's lock.
    CHECK(f.call(A({"Branch.get_config_file", "b/"})).args == A({"ok"}));
    CHECK(f.call(A({"Branch.get_tags_bytes", "b/"})).args == A({""}));
    CHECK(f.call(A({"Branch.get_stacked_on_url", "b/"})).args == A({"NotStacked"}));
    f.write("b/.bzr/branch/branch.conf", "parent_location = file:///x/\nstacked_on_location = bzr://h/base\n");
    f.write("b/.bzr/branch/tags", "de");
    r = f.call(A({"Branch.get_config_file", "b/"}));
    CHECK(r.body == "parent_location = file:///x/\nstacked_on_location = bzr://h/base\n");
    CHECK(f.call(A({"Branch.get_tags_bytes", "b/"})).args == A({"de"}));
    CHECK(f.call(A({"Branch.get_stacked_on_url", "b/"})).args == A({"ok", "bzr://h/base"}));
    f.write("b/.bzr/branch/branch.conf", "stacked_on_location = \n");
    CHECK(f.call(A({"Branch.get_stacked_on_url", "b/"})).args == A({"NotStacked"}));
    CHECK(f.call(A({"Branch.set_last_revision_info", "b/", "notheld", "", "1", "rev-1"})).args == A({"TokenMismatch"}));
    r = f.call(A({"Branch.lock_write", "b/", "", ""}));
    REQUIRE(r.success);
    token = r.args[1].bytes;
    CHECK(f.call(A({"Branch.set_last_revision_info", "b/", "wrong", "", "1", "rev-1"})).args == A({"TokenMismatch"}));
    CHECK(f.call(A({"Branch.set_last_revision_info", "b/", token.c_str(), "", "x", "rev-1"})).args[0].bytes == "error");
    CHECK(f.call(A({"Branch.set_last_revision_info", "b/", token.c_str(), "", "1", "rev-1"})).args == A({"ok"}));
    CHECK(f.call(A({"Branch.last_revision_info", "b/"})).args == A({"ok", "1", "rev-1"}));
    CHECK(f.call(A({"Branch.unlock", "b/", token.c_str(), ""})).args == A({"ok"}));
    CHECK(f.call(A({"Branch.get_config_file", "repo-none/"})).args == A({"nobranch"}));
    f.write("b/.bzr/branch/branch.conf", "parent_location = \"file:///src/\"\nnick = b\n");
    CHECK(f.call(A({"Branch.get_parent", "b/"})).args == A({"file:///src/"}));
    f.write("b/.bzr/branch/branch.conf", "");
    CHECK(f.call(A({"Branch.get_parent", "b/"})).args == A({""}));
    r = f.call(A({"Branch.get_all_reference_info", "b/"}));
    CHECK(r.args == A({"ok"}));
    CHECK(r.body == "le");
    f.write("b/.bzr/branch/references", "x");
    CHECK(f.call(A({"Branch.get_all_reference_info", "b/"})).args ==
          A({"UnknownMethod", "Branch.get_all_reference_info"}));
    CHECK(f.call(A({"Branch.get_physical_lock_status", "b/"})).args == A({"no"}));
    r = f.call(A({"Branch.lock_write", "b/", "", ""}));
    CHECK(f.call(A({"Branch.get_physical_lock_status", "b/"})).args == A({"yes"}));
    CHECK(f.call(A({"Branch.unlock", "b/", r.args[1].bytes.c_str(), ""})).args == A({"ok"}));
    r = f.call(A({"BzrDir.get_config_file", "b/"}));
    CHECK(r.success);
    CHECK(r.args.empty());
    CHECK(r.body.empty());
    f.write("b/.bzr/control.conf", "default_stack_on = x\n");
    CHECK(f.call(A({"BzrDir.get_config_file", "b/"})).body == "default_stack_on = x\n");

    // A shared repository in an ancestor bzrdir.
    fs::create_directory(f.root / "repo");
    CHECK(f.call(A({"BzrDirFormat.initialize", "repo/"})).args == A({"ok"}));
    f.write("repo/.bzr/repository/format", "Bazaar repository format 2a (needs bzr 1.16 or later)\n");
    CHECK(f.call(A({"Repository.is_shared", "repo/"})).args == A({"no"}));
    f.write("repo/.bzr/repository/shared-storage", "");
    CHECK(f.call(A({"Repository.is_shared", "repo/"})).args == A({"yes"}));
    fs::create_directory(f.root / "repo/trunk");
    CHECK(f.call(A({"BzrDirFormat.initialize", "repo/trunk/"})).args == A({"ok"}));
    CHECK(f.call(A({"BzrDir.find_repository", "repo/trunk/"})).args == A({"ok", "..", "yes", "yes"}));
    CHECK(f.call(A({"BzrDir.find_repositoryV3", "repo/trunk/"})).args ==
          A({"ok", "..", "yes", "yes", "yes", "Bazaar repository format 2a (needs bzr 1.16 or later)\n"}));
    CHECK(f.call(A({"Repository.lock_write", "repo/", ""})).args == A({"ok", ""}));
    CHECK(f.call(A({"Repository.get_physical_lock_status", "repo/"})).args == A({"no"}));
    CHECK(f.call(A({"Repository.make_working_trees", "repo/"})).args == A({"yes"}));
    CHECK(f.call(A({"Repository.set_make_working_trees", "repo/", "False"})).args == A({"ok"}));
    CHECK(fs::exists(f.root / "repo/.bzr/repository/no-working-trees"));
    CHECK(f.call(A({"Repository.make_working_trees", "repo/"})).args == A({"no"}));
    CHECK(f.call(A({"Repository.set_make_working_trees", "repo/", "True"})).args == A({"ok"}));
    CHECK(f.call(A({"Repository.set_make_working_trees", "repo/", "True"})).args == A({"ok"}));
    CHECK(f.call(A({"Repository.make_working_trees", "repo/"})).args == A({"yes"}));
}
