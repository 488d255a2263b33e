#include <doctest/doctest.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include "server/store/paths.hpp"

using souk::server::PathContext;
using souk::server::resolve_path;

namespace {
std::string ok(std::string_view p, bool vfs, const PathContext& ctx = {"/srv", "", {}}) {
    auto r = resolve_path(p, vfs, ctx);
    REQUIRE_MESSAGE(r.ok(), r.error());
    return r.value();
}
bool refused(std::string_view p, bool vfs, const PathContext& ctx = {"/srv", "", {}}) {
    return !resolve_path(p, vfs, ctx).ok();
}
}  // namespace

TEST_CASE("paths: VFS and higher-level forms map beneath the root") {
    CHECK(ok("/src/.bzr/branch-format", true) == "src/.bzr/branch-format");
    CHECK(ok("src/", false) == "src");
    CHECK(ok(".", false) == "");
    CHECK(ok("/", true) == "");
    CHECK(ok("", false) == "");
    CHECK(ok("a//b/./c/", false) == "a/b/c");
    CHECK(ok("a/b/../c", false) == "a/c");
    CHECK(ok("/a/..", true) == "");
}

TEST_CASE("paths: VFS paths are percent-decoded once, others are literal") {
    CHECK(ok("/dir%20with%20space/x", true) == "dir with space/x");
    CHECK(ok("dir%20x/", false) == "dir%20x");
    CHECK(ok("/a%2541", true) == "a%41");  // decoded once only
    CHECK(ok("/bad%zzescape%", true) == "bad%zzescape%");
    CHECK(ok("dir with space/br/", false) == "dir with space/br");
}

TEST_CASE("paths: nothing climbs above the root") {
    CHECK(refused("/../etc/passwd", true));
    CHECK(refused("..", false));
    CHECK(refused("a/../../b", false));
    CHECK(refused("/%2e%2e/etc", true));
    CHECK(refused("/a/%2E%2E/%2e%2E/x", true));
    CHECK(refused(std::string_view("/a\0b", 4), true));
    CHECK(refused("/a%00b", true));
}

TEST_CASE("paths: relative paths start at the HTTP base, absolute ones at the root") {
    PathContext ctx{"/srv", "repo/trunk", {}};
    CHECK(ok(".bzr/branch-format", true, ctx) == "repo/trunk/.bzr/branch-format");
    CHECK(ok("../", false, ctx) == "repo");
    CHECK(ok("../../", false, ctx) == "");
    CHECK(refused("../../../", false, ctx));
    CHECK(ok("/x", true, ctx) == "x");
}

TEST_CASE("paths: ~ expands only to a home inside the root") {
    // With the root at /, "~" is the server user's home directory.
    const struct passwd* pw = ::getpwuid(::getuid());
    REQUIRE(pw != nullptr);
    char* real = ::realpath(pw->pw_dir, nullptr);
    REQUIRE_MESSAGE(real != nullptr, "the test user's home directory must exist");
    std::string home = real;
    ::free(real);
    // (Strings are built with append: GCC 12 -O2 warns falsely on operator+ here.)
    std::string want = home == "/" ? std::string() : home.substr(1);
    want.append(want.empty() ? "branch" : "/branch");
    CHECK(ok("~/branch/", false, PathContext{"/", "", {}}) == want);
    std::string want_x = want;
    want_x.append("/x");
    CHECK(ok("/~/branch/x", true, PathContext{"/", "", {}}) == want_x);
    // Relative to a root that contains the home.
    if (home != "/") {
        size_t slash = home.rfind('/');
        std::string parent = home.substr(0, slash == 0 ? 1 : slash);
        std::string leaf = home.substr(slash + 1);
        leaf.append("/b");
        CHECK(ok("~/b", false, PathContext{parent, "", {}}) == leaf);
    }
    // A root that does not contain the home keeps '~' literally.
    CHECK(ok("~/branch/", false, PathContext{"/nonexistent-root-for-test", "", {}}) == "~/branch");
    CHECK(ok("/~nosuchuser-souk/x", true, PathContext{"/", "", {}}) == "~nosuchuser-souk/x");
}

TEST_CASE("paths: percent encoding of listed names") {
    CHECK(souk::server::percent_encode("a b", false) == "a%20b");
    CHECK(souk::server::percent_encode("d/e f", true) == "d/e%20f");
    CHECK(souk::server::percent_encode("d/e", false) == "d%2Fe");
    CHECK(souk::server::percent_encode("~x-y_z.1", false) == "~x-y_z.1");
}

TEST_CASE("non_ascii_url_error: brz serve's InvalidURL wording for raw non-ASCII VFS paths") {
    using souk::server::non_ascii_url_error;
    const std::string p = ": URL was not a plain ASCII url: ";
    CHECK(non_ascii_url_error("/plain/ascii %C3%A9 path") == "");
    CHECK(non_ascii_url_error("") == "");
    CHECK(non_ascii_url_error("caf\xc3\xa9") ==
          p + "'ascii' codec can't encode character '\\xe9' in position 3: ordinal not in range(128)");
    CHECK(non_ascii_url_error("a\xe2\x82\xac") ==
          p + "'ascii' codec can't encode character '\\u20ac' in position 1: ordinal not in range(128)");
    CHECK(non_ascii_url_error("a\xf0\x9f\x98\x80z") ==
          p + "'ascii' codec can't encode character '\\U0001f600' in position 1: ordinal not in range(128)");
    // A run is reported as a range of character positions; only the first run.
    CHECK(non_ascii_url_error("x\xc3\xa9\xc3\xa9y\xc3\xa9") ==
          p + "'ascii' codec can't encode characters in position 1-2: ordinal not in range(128)");
    CHECK(non_ascii_url_error("ab\xe9") == p + "not valid UTF-8 at byte 2");
    CHECK(non_ascii_url_error("ab\xc3") == p + "not valid UTF-8 at byte 2");        // truncated
    CHECK(non_ascii_url_error("\xc3(") == p + "not valid UTF-8 at byte 0");         // bad continuation
    CHECK(non_ascii_url_error("\xff\xfe") == p + "not valid UTF-8 at byte 0");
    // Overlong forms decode to ASCII code points: not characters either
    // (read past the code points before, found by fuzz.paths).
    CHECK(non_ascii_url_error("/REA\xc0\xb2" "E") == p + "not valid UTF-8 at byte 4");
    CHECK(non_ascii_url_error("a\xe0\x80\xaf") == p + "not valid UTF-8 at byte 1");
    CHECK(non_ascii_url_error("a\xf0\x80\x80\xaf") == p + "not valid UTF-8 at byte 1");
    CHECK(non_ascii_url_error("\xed\xa0\x80") == p + "not valid UTF-8 at byte 0");     // a surrogate
    CHECK(non_ascii_url_error("\xf4\x90\x80\x80") == p + "not valid UTF-8 at byte 0"); // past U+10FFFF
}

TEST_CASE("paths: in_temp_namespace finds the reserved prefix at the start of any component") {
    using souk::server::in_temp_namespace;
    CHECK(in_temp_namespace(".souk-tmp.0123"));
    CHECK(in_temp_namespace("a/b/.souk-tmp.append.12"));
    CHECK(in_temp_namespace("/a/.souk-tmp.x/f"));
    CHECK(in_temp_namespace(".souk-tmp.append.77"));
    CHECK(!in_temp_namespace(""));
    CHECK(!in_temp_namespace("a/x.souk-tmp.y"));
    CHECK(!in_temp_namespace(".souk-tmp"));     // no final dot: an ordinary name
    CHECK(!in_temp_namespace("a/.souk-tmpx/f"));
    CHECK(in_temp_namespace("x.souk-tmp.y/.souk-tmp.z"));  // a later match counts
}
