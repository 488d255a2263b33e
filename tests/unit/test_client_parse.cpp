// Small pure parts of libsouk: stat modes, decimals, error mapping, the
// SOUK_SSH command line and the bzr+ssh argv.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "client/client.hpp"
#include "client/connection.hpp"
#include "client/error.hpp"

using namespace souk::client;
using souk::proto::Args;
using souk::proto::Value;

TEST_SUITE("client.parse") {

TEST_CASE("stat modes: Python oct() form and classic octal") {
    CHECK(parse_mode("0o100644") == 0100644u);
    CHECK(parse_mode("0O40755") == 040755u);
    CHECK(parse_mode("0100644") == 0100644u);
    CHECK(parse_mode("40755") == 040755u);
    CHECK(parse_mode("0") == 0u);
    CHECK(parse_mode("0o0") == 0u);
    CHECK(parse_mode("37777777777") == 0xffffffffu);
    for (const char* bad : {"", "0o", "0x1a4", "100648", "-644", "644 ", "0o1o", "77777777777", "999999999999"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_mode(bad).has_value());
    }
    FileStat f{5, 0100644};
    CHECK(f.is_file());
    CHECK_FALSE(f.is_dir());
    CHECK(f.permissions() == 0644);
    FileStat d{4096, 040755};
    CHECK(d.is_dir());
    CHECK(FileStat{0, 0120777}.is_symlink());
}

TEST_CASE("decimals") {
    CHECK(parse_decimal("0") == 0u);
    CHECK(parse_decimal("14") == 14u);
    CHECK(parse_decimal("9223372036854775807") == 9223372036854775807ull);
    for (const char* bad : {"", "-1", "+1", "1 ", "1e3", "9223372036854775808", "99999999999999999999"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_decimal(bad).has_value());
    }
}

TEST_CASE("server failures map to kinds, with the client's path") {
    auto e = error_from_reply("get", "/x", Args{"NoSuchFile", "/srv/secret/layout/x"});
    CHECK(e.kind == ErrorKind::NoSuchFile);
    CHECK(e.message == "no such file: /x");
    CHECK(e.path == "/x");
    CHECK(e.remote());
    CHECK(e.args == Args{"NoSuchFile", "/srv/secret/layout/x"});

    CHECK(error_from_reply("mkdir", "/d", Args{"FileExists", "/d"}).kind == ErrorKind::FileExists);
    CHECK(error_from_reply("rmdir", "/d", Args{"DirectoryNotEmpty", "/d"}).kind == ErrorKind::DirectoryNotEmpty);
    auto p = error_from_reply("get", "/f", Args{"PermissionDenied", "/f", "Permission denied"});
    CHECK(p.kind == ErrorKind::PermissionDenied);
    CHECK(p.message == "permission denied: /f (Permission denied)");
    CHECK(error_from_reply("get", "/", Args{"ReadError", "/"}).kind == ErrorKind::ReadError);
    auto s = error_from_reply("readv", "/f", Args{"ShortReadvError", "./f", "4", "5", "1"});
    CHECK(s.kind == ErrorKind::ShortReadv);
    CHECK(s.message == "range past end of file: /f (wanted 5 bytes at offset 4, got 1)");
    auto ro = error_from_reply("put", "/f", Args{"ReadOnlyError"});
    CHECK(ro.kind == ErrorKind::ReadOnly);
    CHECK(ro.message.find("read-only") != std::string::npos);
    auto um = error_from_reply("frob", "", Args{"UnknownMethod", "frob"});
    CHECK(um.kind == ErrorKind::UnknownMethod);
    CHECK(um.message == "server does not support the 'frob' verb");
    CHECK(error_from_reply("x", "", Args{"LockContention"}).kind == ErrorKind::LockContention);
    auto g = error_from_reply("readv", "/f", Args{"error", "ValueError", "Overlapping range not allowed"});
    CHECK(g.kind == ErrorKind::Other);
    CHECK(g.message == "server error: ValueError: Overlapping range not allowed");
    auto o = error_from_reply("x", "", Args{"TokenMismatch", Value::of_int(3)});
    CHECK(o.kind == ErrorKind::Other);
    CHECK(o.message == "server error TokenMismatch: 3");
    // a hostile server cannot put terminal escapes into our messages
    auto h = error_from_reply("x", "", Args{"error", "\x1b[2Jboom"});
    CHECK(h.message == "server error: \\x1b[2Jboom");
    // an empty failure tuple is still a remote error
    CHECK(error_from_reply("x", "", Args{}).remote());
}

TEST_CASE("kind names") {
    CHECK(kind_name(ErrorKind::NoSuchFile) == "NoSuchFile");
    CHECK(kind_name(ErrorKind::ShortReadv) == "ShortReadv");
    CHECK(kind_name(ErrorKind::Timeout) == "Timeout");
    CHECK_FALSE(make_error(ErrorKind::Connection, "x").remote());
}

TEST_CASE("split_command: spaces, quotes, backslashes") {
    using V = std::vector<std::string>;
    CHECK(*split_command("ssh") == V{"ssh"});
    CHECK(*split_command("  ssh   -i  key ") == V{"ssh", "-i", "key"});
    CHECK(*split_command("sh -c 'shift; exec \"$@\"' ssh") == V{"sh", "-c", "shift; exec \"$@\"", "ssh"});
    CHECK(*split_command("a\"b c\"d") == V{"ab cd"});
    CHECK(*split_command("\"x \\\" \\\\ \\n\"") == V{"x \" \\ \\n"});
    CHECK(*split_command("a\\ b") == V{"a b"});
    CHECK(*split_command("''") == V{""});
    CHECK(split_command("")->empty());
    CHECK_FALSE(split_command("'open").ok());
    CHECK_FALSE(split_command("\"open").ok());
    CHECK_FALSE(split_command("trailing\\").ok());
}

TEST_CASE("ssh argv: Breezy's OpenSSH form") {
    using V = std::vector<std::string>;
    auto u = parse_url("bzr+ssh://alice@host:2222/srv/repo");
    REQUIRE(u.ok());
    auto a = ssh_argv(*u, "", "soukd");
    REQUIRE(a.ok());
    CHECK(*a == V{"ssh", "-oForwardX11=no", "-oForwardAgent=no", "-oClearAllForwardings=yes", "-p", "2222", "-l",
                  "alice", "--", "host", "soukd", "serve", "--inet", "--directory=/", "--allow-writes"});
    auto v = parse_url("bzr+ssh://[::1]/x");
    auto b = ssh_argv(*v, "  ", "");  // blank = defaults
    REQUIRE(b.ok());
    CHECK(*b == V{"ssh", "-oForwardX11=no", "-oForwardAgent=no", "-oClearAllForwardings=yes", "--", "::1", "soukd",
                  "serve", "--inet", "--directory=/", "--allow-writes"});
}

TEST_CASE("ssh argv: SOUK_SSH replaces ssh and its -o options") {
    using V = std::vector<std::string>;
    auto u = parse_url("bzr+ssh://host/x");
    auto a = ssh_argv(*u, "sh -c 'shift; exec \"$@\"' ssh", "brz");
    REQUIRE(a.ok());
    CHECK(*a == V{"sh", "-c", "shift; exec \"$@\"", "ssh", "host", "brz", "serve", "--inet", "--directory=/",
                  "--allow-writes"});
    auto w = parse_url("bzr+ssh://bob@host:22/x");
    auto b = ssh_argv(*w, "ssh -i /k", "/opt/soukd");
    REQUIRE(b.ok());
    CHECK(*b == V{"ssh", "-i", "/k", "-p", "22", "-l", "bob", "host", "/opt/soukd", "serve", "--inet",
                  "--directory=/", "--allow-writes"});
    auto bad = ssh_argv(*u, "ssh 'oops", "soukd");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().kind == ErrorKind::InvalidArgument);
    CHECK(bad.error().message.find("SOUK_SSH") == 0);
    CHECK_FALSE(ssh_argv(*u, "''", "soukd").ok());  // an empty program name
}

TEST_CASE("options override the environment") {
    Options o;
    o.ssh_command = "myssh";
    o.remote_program = "/usr/bin/brz";
    CHECK(effective_ssh_command(o) == "myssh");
    CHECK(effective_remote_program(o) == "/usr/bin/brz");
    Options d;
    d.remote_program = " ";
    CHECK_FALSE(effective_remote_program(d).empty());
}

}  // TEST_SUITE
