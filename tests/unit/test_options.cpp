// soukd's options: `brz serve` command lines, the config file and their
// precedence (server/cli/options.hpp).
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "server/cli/options.hpp"

using namespace souk::server;

namespace {

std::string split(std::vector<std::string> words, CommandLine& cl) {
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    return split_command_line(static_cast<int>(words.size()), argv.data(), 0, cl);
}

std::string load(std::vector<std::string> words, ServeOptions& o) {
    CommandLine cl;
    std::string why = split(std::move(words), cl);
    return why.empty() ? load_options(cl, o) : why;
}

struct TempFile {
    std::string path;
    explicit TempFile(const std::string& text) {
        char tmpl[] = "/tmp/souk-conf-XXXXXX";
        int fd = ::mkstemp(tmpl);
        REQUIRE(fd >= 0);
        REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
        ::close(fd);
        path = tmpl;
    }
    ~TempFile() { ::unlink(path.c_str()); }
};

}  // namespace

TEST_CASE("options: brz serve command lines") {
    ServeOptions o;
    REQUIRE(load({"--inet", "-d", "/srv/bzr", "--allow-writes", "--client-timeout=90", "--protocol=bzr"}, o) == "");
    CHECK(o.inet);
    CHECK(o.directory == "/srv/bzr");
    CHECK(o.allow_writes);
    CHECK(o.params.idle_timeout == 90);

    ServeOptions t;
    REQUIRE(load({"--directory", "/srv", "--listen=0.0.0.0", "--port", "4156", "--bzr", "-q", "--no-plugins"}, t) == "");
    CHECK(t.directory == "/srv");
    CHECK(t.tcp.address == "0.0.0.0");
    CHECK(t.tcp.port == 4156);
    CHECK(t.tcp_explicit);
    CHECK(t.verbosity == 0);

    ServeOptions u;  // bzr 2.x's --port=HOST:PORT, -dDIR, -vv
    REQUIRE(load({"--port=[::1]:4157", "-d/srv", "-vv", "--client-timeout", "2m"}, u) == "");
    CHECK(u.tcp.address == "::1");
    CHECK(u.tcp.port == 4157);
    CHECK(u.directory == "/srv");
    CHECK(u.verbosity == 4);
    CHECK(u.params.idle_timeout == 120);

    ServeOptions bad;
    CHECK(load({"--protocol=git"}, bad).find("only the Bazaar smart protocol") != std::string::npos);
    CHECK(load({"--git"}, bad).find("only the Bazaar smart protocol") != std::string::npos);
    CHECK(load({"--port=70000"}, bad).find("--port=70000: expected a port") == 0);
    CHECK(load({"--port=::1:80"}, bad).find("brackets") != std::string::npos);
    CHECK(load({"--frob"}, bad) == "unknown option --frob");
    CHECK(load({"-x"}, bad) == "unknown option -x");
    CHECK(load({"-d"}, bad) == "-d needs a value");
    CHECK(load({"--cache-size"}, bad) == "--cache-size needs a value");
    CHECK(load({"serve"}, bad).find("unexpected argument") == 0);
    CHECK(load({"--allow-writes=maybe"}, bad) == "--allow-writes=maybe: expected true or false");
}

TEST_CASE("options: the config file, and the command line over it") {
    TempFile f(
        "# soukd.conf\n"
        "\n"
        "directory = /srv/bzr\n"
        "  allow-writes = true   \n"
        "cache-size = 128M\n"
        "idle-timeout = 10m\n"
        "listen = 0.0.0.0\n"
        "verbose = 1\n");
    CommandLine cl;
    REQUIRE(split({"--config", f.path, "--idle-timeout=30s", "--allow-writes=false"}, cl) == "");
    CHECK(cl.config == f.path);
    ServeOptions o;
    REQUIRE(load_options(cl, o) == "");
    CHECK(o.directory == "/srv/bzr");
    CHECK_FALSE(o.allow_writes);  // the command line wins
    CHECK(o.params.cache_size == 128.0 * 1024 * 1024);
    CHECK(o.params.idle_timeout == 30);
    CHECK(o.tcp.address == "0.0.0.0");
    CHECK(o.verbosity == 3);
    // What check-config prints reads back as the same settings.
    TempFile again(render_options(o));
    CommandLine cl2;
    cl2.config = again.path;
    ServeOptions o2;
    REQUIRE(load_options(cl2, o2) == "");
    CHECK(render_options(o2) == render_options(o));
}

TEST_CASE("options: config file errors say FILE:LINE") {
    auto error = [](const std::string& text) {
        TempFile f(text);
        CommandLine cl;
        cl.config = f.path;
        ServeOptions o;
        std::string why = load_options(cl, o);
        CHECK(o.directory.empty());  // nothing applied on failure
        const std::string prefix = f.path + ":";
        REQUIRE_MESSAGE(why.rfind(prefix, 0) == 0, why);
        return why.substr(prefix.size());
    };
    CHECK(error("directory = /srv\nfrob = 1\n") == "2: unknown option frob");
    CHECK(error("# c\ncache-size = 64X\n").rfind("2: --cache-size=64X: not a size", 0) == 0);
    CHECK(error("max-body = 1M\n\nmax-body = 2M\n") == "3: max-body is already set on line 1");
    CHECK(error("allow-writes\n") == "1: expected `name = value`, got `allow-writes`");
    CHECK(error("allow-writes = yes\n") == "1: --allow-writes=yes: expected true or false");
    CHECK(error("--port = 1\n").rfind("1: write the name without \"--\"", 0) == 0);
    CHECK(error("config = /x\n") == "1: config can only be given on the command line");
    CHECK(error("[root /prefix]\n") == "1: [root /prefix] has no `directory = DIR`");
    CHECK(error("[root /a]\ndirectory = /x\n[root /a/]\ndirectory = /y\n").rfind("3: [root /a] is already a section (",
                                                                                  0) == 0);
    CHECK(error("[root /a]\ndirectory = /x\nport = 1\n").rfind("3: port cannot be set in a [root] section", 0) == 0);
    CHECK(error("[root /a]\ndirectory = /x\ndirectory = /y\n") == "3: directory is already set on line 2");
    CHECK(error("[root /a]\ndirectory = /x\nfrob = 1\n") == "3: unknown option frob");
    CHECK(error("[root a]\ndirectory = /x\n") == "1: [root a]: the prefix must start with '/'");
    CHECK(error("[root /a/../b]\ndirectory = /x\n").find("'.' and '..'") != std::string::npos);
    CHECK(error("[server]\n").rfind("1: expected `[root /PREFIX]`", 0) == 0);
    CHECK(error("[root /a\n").rfind("1: expected `[root /PREFIX]`", 0) == 0);
    CHECK(error("[root /a]\ndirectory = /x\nallow-writes = maybe\n") == "3: --allow-writes=maybe: expected true or false");
    CHECK(error("directory = /x\n[root /]\ndirectory = /y\n").rfind("2: [root /] and the global `directory`", 0) == 0);
    CHECK(error("port = \n") == "1: --port=: expected a port 0 to 65535, or ADDR:PORT");

    CommandLine missing;
    missing.config = "/nonexistent/soukd.conf";
    ServeOptions o;
    CHECK(load_options(missing, o) == "/nonexistent/soukd.conf: cannot open the config file");
}

TEST_CASE("options: [root /PREFIX] sections give roots with the global rules as defaults") {
    TempFile f(
        "allow-writes = true\n"
        "read-only = /frozen\n"
        "export-all = false\n"
        "\n"
        "[root /pub]\n"
        "directory = /srv/pub\n"
        "writers = /=alice\n"
        "[root /mirror/ro/]\n"
        "directory = /srv/ro\n"
        "allow-writes = false\n"
        "read-only = /a\n"
        "read-only = /b\n");
    CommandLine cl;
    cl.config = f.path;
    cl.words = {{"allow-anonymous-writes", std::nullopt, ""}};  // a global: every root inherits it
    ServeOptions o;
    REQUIRE(load_options(cl, o) == "");
    CHECK(o.directory.empty());  // no global root: nothing is served at "/"
    REQUIRE(o.sections.size() == 2);
    std::vector<RootOptions> roots;
    REQUIRE(resolve_roots(o, roots) == "");
    REQUIRE(roots.size() == 2);
    CHECK(roots[0].prefix == "pub");
    CHECK(roots[0].directory == "/srv/pub");
    CHECK(roots[0].allow_writes);
    CHECK(roots[0].access.allow_anonymous_writes);
    CHECK_FALSE(roots[0].access.export_all);
    CHECK(roots[0].access.read_only == std::vector<std::string>{"frozen"});  // inherited
    REQUIRE(roots[0].access.writers.size() == 1);
    CHECK(roots[0].access.writers[0].users == std::vector<std::string>{"alice"});
    CHECK(roots[1].prefix == "mirror/ro");
    CHECK_FALSE(roots[1].allow_writes);
    CHECK(roots[1].access.read_only == std::vector<std::string>{"a", "b"});  // its own lines replace the global ones
    CHECK(roots[1].access.writers.empty());

    // check-config's text reads back as the same settings, sections and all.
    const std::string text = render_options(o);
    CHECK(text.find("\n[root /mirror/ro]\ndirectory = /srv/ro\nallow-writes = false\n") != std::string::npos);
    TempFile again(text);
    CommandLine cl2;
    cl2.config = again.path;
    ServeOptions o2;
    REQUIRE(load_options(cl2, o2) == "");
    CHECK(render_options(o2) == text);

    // The single-root form is one root at "/" with the global rules.
    ServeOptions one;
    REQUIRE(load({"-d", "/srv/bzr", "--allow-writes"}, one) == "");
    REQUIRE(resolve_roots(one, roots) == "");
    REQUIRE(roots.size() == 1);
    CHECK(roots[0].prefix == "");
    CHECK(roots[0].directory == "/srv/bzr");
    CHECK(roots[0].allow_writes);
    CHECK_FALSE(roots[0].from_section);
    // -d next to sections is the root at "/".
    CommandLine cl3;
    cl3.config = f.path;
    cl3.words = {{"directory", std::string("/srv/top"), ""}};
    ServeOptions o3;
    REQUIRE(load_options(cl3, o3) == "");
    REQUIRE(resolve_roots(o3, roots) == "");
    REQUIRE(roots.size() == 3);
    CHECK(roots[0].prefix == "");
    CHECK(roots[0].directory == "/srv/top");
}
