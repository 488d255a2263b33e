// Access control (docs/access-control.md): the rules (server/base/access.hpp),
// the options that set them, and the pipeline's decision before a body
// is read (server/request/access.hpp).
#include <doctest/doctest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "server/base/access.hpp"
#include "server/cli/options.hpp"
#include "server/request/access.hpp"
#include "server/request/pipeline.hpp"
#include "server/store/fs_store.hpp"
#include "tests/unit/pipeline_fixture.hpp"

namespace fs = std::filesystem;
using souk::proto::Args;
using souk::proto::Value;
using namespace souk::server;

namespace {

struct Root {
    fs::path root;
    std::unique_ptr<FsStore> store;
    ServerContext ctx;
    Root() {
        char tmpl[] = "/tmp/souk-access-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        root = tmpl;
        store = std::make_unique<FsStore>(root.string());
        ctx.store = store.get();
        ctx.root_realpath = store->root_realpath();
        ctx.configured.allow_writes = true;
        write("pub/.bzr/souk-export-ok", "");
        write("pub/proj/.bzr/branch-format", "Bazaar-NG meta directory, format 1\n");
        write("secret/proj/.bzr/branch-format", "Bazaar-NG meta directory, format 1\n");
        write("secret/proj/file", "hidden bytes");
        write("pub/proj/file", "public bytes");
    }
    ~Root() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    void write(const std::string& rel, const std::string& data) {
        fs::create_directories((root / rel).parent_path());
        std::ofstream(root / rel, std::ios::binary) << data;
    }
    // One request through the pipeline as `user` ("" anonymous): the reply's args.
    Args serve(Args args, const char* user = "", std::string body = {}) {
        return souk::test::serve_v3(ctx, args, body, nullptr, user);
    }
};

std::string first(const Args& a) { return a.empty() || !a[0].is_bytes() ? "?" : a[0].bytes; }

}  // namespace

TEST_CASE("access rules: prefixes, user names, writers rules") {
    std::string p;
    CHECK(parse_rule_prefix("/team/proj/", p) == "");
    CHECK(p == "team/proj");
    CHECK(parse_rule_prefix("//a//b", p) == "");
    CHECK(p == "a/b");
    CHECK(parse_rule_prefix("/", p) == "");
    CHECK(p == "");
    CHECK(parse_rule_prefix("/a/../b", p) != "");
    CHECK(parse_rule_prefix(std::string("/a\nb"), p) != "");
    CHECK(check_user_name("alice") == "");
    CHECK(check_user_name("") != "");
    CHECK(check_user_name("bob smith") != "");
    CHECK(check_user_name("a,b") != "");
    WriterRule r;
    CHECK(parse_writers_rule("/team=alice,bob", r) == "");
    CHECK(r.prefix == "team");
    CHECK(r.users == std::vector<std::string>{"alice", "bob"});
    CHECK(format_writers_rule(r) == "/team=alice,bob");
    CHECK(parse_writers_rule("/frozen=", r) == "");
    CHECK(r.users.empty());
    CHECK(parse_writers_rule("/team", r) != "");
    CHECK(parse_writers_rule("/team=alice,,bob", r) != "");
    CHECK(covers("team", "team"));
    CHECK(covers("team", "team/x/y"));
    CHECK_FALSE(covers("team", "teamwork"));
    CHECK(covers("", "anything"));
}

TEST_CASE("access rules: who may write where") {
    AccessRules rules;
    CHECK(write_refusal(rules, "", "a", false).find("authenticated user") != std::string::npos);
    CHECK(write_refusal(rules, "alice", "a", false) == "");
    CHECK(write_refusal(rules, "", "a", true) == "");
    rules.read_only.push_back("old");
    CHECK(write_refusal(rules, "alice", "old/x", false).find("read-only") != std::string::npos);
    CHECK(write_refusal(rules, "", "old/x", true).find("read-only") != std::string::npos);
    CHECK(write_refusal(rules, "alice", "older", false) == "");
    rules.writers.push_back({"team", {"alice"}});
    rules.writers.push_back({"team/open", {"alice", "bob"}});
    CHECK(write_refusal(rules, "alice", "team/x", false) == "");
    CHECK(write_refusal(rules, "bob", "team/x", false).find("user bob may not write under /team") != std::string::npos);
    CHECK(write_refusal(rules, "bob", "team/open/x", false) == "");  // the longest prefix decides
    CHECK(write_refusal(rules, "", "team/x", true).find("anonymous") != std::string::npos);
    CHECK(write_refusal(rules, "bob", "elsewhere", false) == "");
}

TEST_CASE("access options: command line and config file, rules repeat") {
    CommandLine cl;
    const char* words[] = {"--allow-writes", "--writers=/team=alice,bob", "--read-only", "/old", "--read-only=/older",
                           "--export-all=false", "--allow-anonymous-writes", "--user=carol"};
    std::vector<std::string> w(std::begin(words), std::end(words));
    std::vector<char*> argv;
    for (auto& s : w) argv.push_back(s.data());
    REQUIRE(split_command_line(static_cast<int>(argv.size()), argv.data(), 0, cl) == "");
    ServeOptions o;
    REQUIRE(load_options(cl, o) == "");
    CHECK(o.access.read_only == std::vector<std::string>{"old", "older"});
    REQUIRE(o.access.writers.size() == 1);
    CHECK(o.access.writers[0].users.size() == 2);
    CHECK_FALSE(o.access.export_all);
    CHECK(o.access.allow_anonymous_writes);
    CHECK(o.user == "carol");
    const std::string text = render_options(o);
    CHECK(text.find("read-only = /old\nread-only = /older\n") != std::string::npos);
    CHECK(text.find("writers = /team=alice,bob\n") != std::string::npos);
    CHECK(text.find("export-all = false\n") != std::string::npos);

    // What check-config prints reads back as the same settings.
    char tmpl[] = "/tmp/souk-access-conf-XXXXXX";
    int fd = ::mkstemp(tmpl);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    ::close(fd);
    CommandLine again;
    again.config = tmpl;
    ServeOptions o2;
    CHECK(load_options(again, o2) == "");
    CHECK(render_options(o2) == text);
    ::unlink(tmpl);

    ServeOptions bad;
    CommandLine b1;
    b1.words = {{"writers", std::string("/team"), "f:3: "}};
    CHECK(load_options(b1, bad) == "f:3: --writers=/team: expected PREFIX=USER[,USER...] (PREFIX= for nobody)");
    b1.words = {{"writers", std::string("/t=a"), ""}, {"writers", std::string("/t/=b"), ""}};
    CHECK(load_options(b1, bad).find("already has a writers rule") != std::string::npos);
    b1.words = {{"read-only", std::string("/../etc"), ""}};
    CHECK(load_options(b1, bad).find("'..'") != std::string::npos);
    b1.words = {{"user", std::string("bob smith"), ""}};
    CHECK(load_options(b1, bad).find("--user=bob smith: user name with a space") == 0);
}

TEST_CASE("access control in the pipeline: anonymous, read-only and writers refused before the body") {
    Root r;
    r.ctx.configured.access.writers.push_back({"pub", {"alice"}});
    r.ctx.configured.access.read_only.push_back("pub/frozen");
    Args put = {Value("put"), Value("pub/new.txt"), Value("")};
    Args got = r.serve(put, "", "body");
    CHECK(first(got) == "PermissionDenied");
    REQUIRE(got.size() == 3);
    CHECK(got[1].bytes == "pub/new.txt");
    CHECK(got[2].bytes.find("authenticated user") != std::string::npos);
    CHECK(first(r.serve(put, "bob", "body")) == "PermissionDenied");
    CHECK_FALSE(fs::exists(r.root / "pub/new.txt"));
    CHECK(first(r.serve(put, "alice", "body")) == "ok");
    CHECK(fs::exists(r.root / "pub/new.txt"));
    CHECK(first(r.serve({Value("mkdir"), Value("pub/frozen"), Value("")}, "alice")) == "PermissionDenied");
    CHECK_FALSE(fs::exists(r.root / "pub/frozen"));
    // rename checks both paths: into a read-only prefix is refused.
    r.ctx.configured.access.read_only.push_back("pub/proj");
    CHECK(first(r.serve({Value("rename"), Value("pub/new.txt"), Value("pub/proj/x")}, "alice")) ==
          "PermissionDenied");
    CHECK(fs::exists(r.root / "pub/new.txt"));
    // Reads are never refused by write rules.
    CHECK(first(r.serve({Value("get"), Value("pub/proj/file")}, "")) == "ok");
    // --allow-writes off wins over everything: ReadOnlyError, as before.
    r.ctx.configured.allow_writes = false;
    CHECK(first(r.serve(put, "alice", "body")) == "ReadOnlyError");
}

TEST_CASE("access control: anonymous writes pass on brz serve's carriers, and need the opt-in on the web ones") {
    Root r;
    const Args mkdir = {Value("mkdir"), Value("anon-dir"), Value("")};
    for (const char* carrier : {"http", "cgi", "fastcgi"})
        CHECK(first(souk::test::serve_v3(r.ctx, mkdir, {}, nullptr, "", carrier)) == "PermissionDenied");
    CHECK_FALSE(fs::exists(r.root / "anon-dir"));
    CHECK(first(souk::test::serve_v3(r.ctx, mkdir, {}, nullptr, "", "tcp")) == "ok");  // `brz serve --allow-writes`
    CHECK(fs::exists(r.root / "anon-dir"));
    const Args mkdir2 = {Value("mkdir"), Value("anon-dir2"), Value("")};
    CHECK(first(souk::test::serve_v3(r.ctx, mkdir2, {}, nullptr, "", "inet")) == "ok");
    r.ctx.configured.access.read_only.push_back("frozen");  // path rules still hold there
    CHECK(first(souk::test::serve_v3(r.ctx, {Value("mkdir"), Value("frozen"), Value("")}, {}, nullptr, "", "tcp")) ==
          "PermissionDenied");
    r.ctx.configured.access.allow_anonymous_writes = true;
    const Args mkdir3 = {Value("mkdir"), Value("anon-dir3"), Value("")};
    CHECK(first(souk::test::serve_v3(r.ctx, mkdir3, {}, nullptr, "", "http")) == "ok");
}

TEST_CASE("access control: an unexported path answers exactly as a missing one") {
    Root r;
    r.ctx.configured.access.allow_anonymous_writes = true;
    r.ctx.configured.access.export_all = false;
    make_unexported_view(r.ctx);
    CHECK(exported(r.ctx, "pub"));
    CHECK(exported(r.ctx, "pub/proj/file"));
    CHECK_FALSE(exported(r.ctx, "secret/proj"));
    CHECK_FALSE(exported(r.ctx, ""));
    auto same = [&](Args hidden, Args missing) {
        Args a = r.serve(hidden), b = r.serve(missing);
        REQUIRE(!a.empty());
        CHECK(first(a) == first(b));
        CHECK(a.size() == b.size());
        return first(a);
    };
    CHECK(same({Value("BzrDir.open_2.1"), Value("secret/proj")}, {Value("BzrDir.open_2.1"), Value("pub/nothing")}) ==
          "no");
    CHECK(same({Value("BzrDir.open_branchV3"), Value("secret/proj")},
               {Value("BzrDir.open_branchV3"), Value("pub/nothing")}) == "nobranch");
    CHECK(same({Value("get"), Value("secret/proj/file")}, {Value("get"), Value("pub/proj/nothing")}) == "NoSuchFile");
    CHECK(same({Value("stat"), Value("secret")}, {Value("stat"), Value("pub/nothing")}) == "NoSuchFile");
    // The exported branch is served as usual.
    CHECK(first(r.serve({Value("BzrDir.open_2.1"), Value("pub/proj")})) == "yes");
    // A write into an unexported directory changes nothing.
    r.serve({Value("mkdir"), Value("secret/new"), Value("")});
    CHECK_FALSE(fs::exists(r.root / "secret/new"));
    // Exporting the directory (the marker) makes it visible at once.
    r.write("secret/.bzr/souk-export-ok", "");
    CHECK(first(r.serve({Value("BzrDir.open_2.1"), Value("secret/proj")})) == "yes");
}

TEST_CASE("roots: the longest whole-component prefix picks the root, paths stay inside it, and none answers as missing") {
    Root a, b;  // served at /pub and /pub/deep; nothing at "/"
    ServerContext server;
    auto live = std::make_shared<LiveRules>(std::vector<RootRules>{{true, {}}, {false, {}}});
    a.ctx.live = live;
    a.ctx.root_index = 0;
    a.ctx.mount = "pub";
    b.ctx.live = live;
    b.ctx.root_index = 1;
    b.ctx.mount = "pub/deep";
    server.live = live;
    server.roots = {b.ctx, a.ctx};  // longest mount first
    server.nowhere = make_nowhere(server.params);
    CHECK(&select_root(server, "pub") == &server.roots[1]);
    CHECK(&select_root(server, "pub/x/y") == &server.roots[1]);
    CHECK(&select_root(server, "pub/deep") == &server.roots[0]);
    CHECK(&select_root(server, "pub/deeper") == &server.roots[1]);  // whole components only
    CHECK(&select_root(server, "public") == server.nowhere.get());
    CHECK(&select_root(server, "") == server.nowhere.get());
    // A single root's context is its own server.
    CHECK(&select_root(a.ctx, "anything") == &a.ctx);

    auto serve = [&](Args args) { return souk::test::serve_v3(server, args, {}, nullptr, "", "tcp"); };
    // Each root serves its own directory, under its prefix.
    CHECK(first(serve({Value("BzrDir.open_2.1"), Value("pub/pub/proj")})) == "yes");
    Args got;
    std::string body;
    got = souk::test::serve_v3(server, {Value("get"), Value("/pub/pub/proj/file")}, {}, &body, "", "tcp");
    CHECK(first(got) == "ok");
    CHECK(body == "public bytes");
    CHECK(first(serve({Value("BzrDir.open_2.1"), Value("pub/deep/pub/proj")})) == "yes");
    // Under no root: what a missing path gets, reading or writing.
    CHECK(first(serve({Value("BzrDir.open_2.1"), Value("public/proj")})) == "no");
    CHECK(first(serve({Value("get"), Value("/elsewhere/file")})) == "NoSuchFile");
    CHECK(first(serve({Value("mkdir"), Value("/elsewhere"), Value("")})) == "NoSuchFile");
    // Confined: ".." cannot climb out of a root into another or above it.
    CHECK(first(serve({Value("get"), Value("/pub/deep/../pub/proj/file")})) == "ok");  // the namespace's /pub/pub/...
    got = serve({Value("rename"), Value("/pub/pub/proj/file"), Value("/pub/deep/stolen")});
    CHECK(first(got) != "ok");
    CHECK(fs::exists(a.root / "pub/proj/file"));
    CHECK_FALSE(fs::exists(b.root / "stolen"));
    // Per-root rules: /pub writes, /pub/deep is read-only.
    CHECK(first(serve({Value("mkdir"), Value("/pub/made"), Value("")})) == "ok");
    CHECK(fs::exists(a.root / "made"));
    CHECK(first(serve({Value("mkdir"), Value("/pub/deep/made"), Value("")})) == "ReadOnlyError");
    CHECK(first(serve({Value("Transport.is_readonly")})) == "no");  // no path: the shortest prefix's root (/pub)

    // A reload publishes new rules: the next request sees them.
    live->publish({{false, {}}, {true, {}}});
    CHECK(first(serve({Value("mkdir"), Value("/pub/deep/made"), Value("")})) == "ok");
    CHECK(fs::exists(b.root / "made"));
    CHECK(first(serve({Value("mkdir"), Value("/pub/made2"), Value("")})) == "ReadOnlyError");
}

TEST_CASE("roots: a path resolves under its root's mount or not at all") {
    const PathContext pc{"/srv", "", "pub/x"};
    std::string rel;
    CHECK(resolve_path_into("/pub/x/a/b", true, pc, rel) == nullptr);
    CHECK(rel == "a/b");
    CHECK(resolve_path_into("pub/x", false, pc, rel) == nullptr);
    CHECK(rel == "");
    CHECK(resolve_path_into("pub/xy/a", false, pc, rel) != nullptr);
    CHECK(resolve_path_into("pub/x/../y", false, pc, rel) != nullptr);
    CHECK(resolve_path_into("/pub/x/%2e%2e/a", true, pc, rel) != nullptr);
    CHECK(resolve_path_into("~/pub/x/a", false, pc, rel) != nullptr);  // no home expansion under a mount
    const PathContext http{"/srv", "pub/x/trunk", "pub/x"};  // relative paths start at the URL's directory
    CHECK(resolve_path_into(".bzr/smart", false, http, rel) == nullptr);
    CHECK(rel == "trunk/.bzr/smart");
    CHECK(resolve_path_into("../../../etc", false, http, rel) != nullptr);
}
