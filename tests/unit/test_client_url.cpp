// client/url.hpp: URL parsing, path escaping and joining.
#include <doctest/doctest.h>

#include "client/url.hpp"

using namespace souk::client;

TEST_SUITE("client.url") {

TEST_CASE("bzr:// URLs: host, default port, path") {
    auto u = parse_url("bzr://example.com/srv/repo");
    REQUIRE(u.ok());
    CHECK(u->scheme == Scheme::Bzr);
    CHECK(u->host == "example.com");
    CHECK_FALSE(u->port.has_value());
    CHECK(u->tcp_port() == 4155);
    CHECK(u->path == "/srv/repo");
    CHECK(u->user.empty());
}

TEST_CASE("ports, a missing path, and a trailing slash") {
    auto u = parse_url("bzr://127.0.0.1:9000");
    REQUIRE(u.ok());
    CHECK(u->tcp_port() == 9000);
    CHECK(u->path == "/");
    auto v = parse_url("bzr://h:1/dir/");
    REQUIRE(v.ok());
    CHECK(v->port == 1);
    CHECK(v->path == "/dir");
    CHECK(parse_url("bzr://h:65535/").ok());
}

TEST_CASE("the scheme is case-insensitive") {
    auto u = parse_url("BZR+SSH://h/x");
    REQUIRE(u.ok());
    CHECK(u->scheme == Scheme::BzrSsh);
}

TEST_CASE("IPv6 literals") {
    auto a = parse_url("bzr://[::1]/x");
    REQUIRE(a.ok());
    CHECK(a->host == "::1");
    CHECK(a->tcp_port() == 4155);
    auto b = parse_url("bzr://[::1]:4156/x/y");
    REQUIRE(b.ok());
    CHECK(b->host == "::1");
    CHECK(b->port == 4156);
    CHECK(b->path == "/x/y");
    auto c = parse_url("bzr+ssh://me@[2001:db8::7]:2222/~/repo");
    REQUIRE(c.ok());
    CHECK(c->user == "me");
    CHECK(c->host == "2001:db8::7");
    CHECK(c->port == 2222);
    CHECK(c->path == "/~/repo");
    auto z = parse_url("bzr://[fe80::1%25eth0]/");
    REQUIRE(z.ok());
    CHECK(z->host == "fe80::1%eth0");
    auto m = parse_url("bzr://[::ffff:127.0.0.1]/");
    REQUIRE(m.ok());
    CHECK(m->host == "::ffff:127.0.0.1");
}

TEST_CASE("bzr+ssh:// with and without a user") {
    auto u = parse_url("bzr+ssh://alice@host.example:22/home/alice/repo");
    REQUIRE(u.ok());
    CHECK(u->scheme == Scheme::BzrSsh);
    CHECK(u->user == "alice");
    CHECK(u->host == "host.example");
    CHECK(u->port == 22);
    CHECK(u->path == "/home/alice/repo");
    auto v = parse_url("bzr+ssh://host/");
    REQUIRE(v.ok());
    CHECK(v->user.empty());
    CHECK_FALSE(v->port.has_value());
    auto w = parse_url("bzr+ssh://a%40b@host/");  // an escaped '@' in the user
    REQUIRE(w.ok());
    CHECK(w->user == "a@b");
    CHECK_FALSE(parse_url("bzr+ssh://a%0Ab@host/").ok());  // control character in the user
}

TEST_CASE("the path is percent-decoded and normalised") {
    auto u = parse_url("bzr://h/a%20b/./c/../d%2Fe");
    REQUIRE(u.ok());
    CHECK(u->path == "/a b/d/e");
    auto v = parse_url("bzr://h//x///y");
    REQUIRE(v.ok());
    CHECK(v->path == "/x/y");
    auto w = parse_url("bzr://h/caf%C3%A9");
    REQUIRE(w.ok());
    CHECK(w->path == "/caf\xc3\xa9");
}

TEST_CASE("http URLs: smart (bzr+http) and plain (http), default ports") {
    auto a = parse_url("bzr+http://example.com/srv/repo");
    REQUIRE(a.ok());
    CHECK(a->scheme == Scheme::BzrHttp);
    CHECK(a->tcp_port() == 80);
    CHECK(a->is_http());
    CHECK(!a->is_plain_http());
    CHECK(a->to_string() == "bzr+http://example.com/srv/repo");
    auto b = parse_url("https://[::1]:8443/a%20b");
    REQUIRE(b.ok());
    CHECK(b->scheme == Scheme::Https);
    CHECK(b->tcp_port() == 8443);
    CHECK(b->is_plain_http());
    CHECK(b->is_tls());
    CHECK(b->path == "/a b");
    CHECK(parse_url("bzr+https://h/")->tcp_port() == 443);
    CHECK(parse_url("http://h/")->tcp_port() == 80);
}

TEST_CASE("bad URLs fail with InvalidArgument and a reason") {
    const char* bad[] = {
        "",                        // nothing
        "example.com/x",           // no scheme
        "ftp://h/x",               // unsupported scheme
        "bzr+ftp://h/x",           // unsupported scheme
        "http://user@h/x",         // a user on http://
        "bzr:///x",                // empty host
        "bzr://:4155/x",           // empty host
        "bzr://h:/x",              // empty port
        "bzr://h:0/x",             // port 0
        "bzr://h:65536/x",         // port too large
        "bzr://h:99999999999/x",   // port overflow
        "bzr://h:12a/x",           // not a number
        "bzr://h:-1/x",            // negative
        "bzr://user@h/x",          // a user on bzr://
        "bzr+ssh://u:pw@h/x",      // password
        "bzr+ssh://@h/x",          // empty user
        "bzr+ssh://-oProxyCommand=x@h/x",  // option-like user
        "bzr://-oProxyCommand=x/x",        // option-like host
        "bzr://[::1/x",            // unclosed bracket
        "bzr://[]/x",              // empty IPv6
        "bzr://[zz::1]/x",         // not hex
        "bzr://[::1]x/x",          // junk after bracket
        "bzr://::1/x",             // IPv6 without brackets
        "bzr://h/x?y",             // query
        "bzr://h/x#y",             // fragment
        "bzr://h/a%zz",            // bad escape
        "bzr://h/a%2",             // truncated escape
        "bzr://h/..",              // above the root
        "bzr://h/a/../../b",       // above the root
        "bzr://h/a%00b",           // NUL
        "bzr://h/a\nb",            // control character
        "bzr://h h/x",             // space in host
    };
    for (const char* text : bad) {
        CAPTURE(text);
        auto u = parse_url(text);
        CHECK_FALSE(u.ok());
        if (!u.ok()) {
            CHECK(u.error().kind == ErrorKind::InvalidArgument);
            CHECK(u.error().message.find("invalid URL") == 0);
        }
    }
}

TEST_CASE("to_string renders a canonical URL") {
    CHECK(parse_url("bzr://h/a b")->to_string() == "bzr://h/a%20b");
    CHECK(parse_url("bzr://[::1]:99/x")->to_string() == "bzr://[::1]:99/x");
    CHECK(parse_url("bzr+ssh://u@h:22/~/r")->to_string() == "bzr+ssh://u@h:22/~/r");
    auto a = parse_url("bzr+ssh://u@[::1]:22/p%25q");
    REQUIRE(a.ok());
    auto b = parse_url(a->to_string());
    REQUIRE(b.ok());
    CHECK(b->path == "/p%q");
    CHECK(a->same_server(*b));
    CHECK_FALSE(a->same_server(*parse_url("bzr+ssh://u@[::1]:23/")));
}

TEST_CASE("escape_path keeps unreserved characters, '/' and '~'") {
    CHECK(escape_path("/a/b-c_d.e~f") == "/a/b-c_d.e~f");
    CHECK(escape_path("/a b") == "/a%20b");
    CHECK(escape_path("/50%") == "/50%25");
    CHECK(escape_path("/caf\xc3\xa9") == "/caf%C3%A9");
    CHECK(escape_path(std::string("/x\0y", 4)) == "/x%00y");
    CHECK(escape_path("?#+&=:@") == "%3F%23%2B%26%3D%3A%40");
}

TEST_CASE("unescape is strict, unescape_lenient is not") {
    CHECK(unescape("a%20b") == "a b");
    CHECK(unescape("%2f%2F") == "//");
    CHECK_FALSE(unescape("%").has_value());
    CHECK_FALSE(unescape("%4").has_value());
    CHECK_FALSE(unescape("%zz").has_value());
    CHECK(unescape_lenient("a%20b") == "a b");
    CHECK(unescape_lenient("100%") == "100%");
    CHECK(unescape_lenient("%zz%41") == "%zzA");
    CHECK(unescape_lenient("d%20x/f%20y") == "d x/f y");
    // escape then unescape is the identity for any bytes
    std::string all;
    for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
    CHECK(unescape(escape_path(all)) == all);
}

TEST_CASE("join_path resolves relative paths against the URL path") {
    CHECK(join_path("/base", "") == "/base");
    CHECK(join_path("/base", ".") == "/base");
    CHECK(join_path("/base", "x/y") == "/base/x/y");
    CHECK(join_path("/base/f", "../g") == "/base/g");
    CHECK(join_path("/base", "/abs/p") == "/abs/p");
    CHECK(join_path("/", "a//b/") == "/a/b");
    CHECK(join_path("/", "") == "/");
    CHECK(join_path("/a", "..") == "/");
    CHECK_FALSE(join_path("/", "..").has_value());
    CHECK_FALSE(join_path("/a", "../../b").has_value());
    CHECK_FALSE(join_path("/a", std::string("x\0y", 3)).has_value());
}

}  // TEST_SUITE
