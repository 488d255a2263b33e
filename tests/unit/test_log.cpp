// The access-log line format (docs/access-log.md#fields) and log reopening.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "server/base/log.hpp"

namespace fs = std::filesystem;
using namespace souk::server;

namespace {

std::string line_of(const log::Access& a, int64_t ms = 1733398451577) {
    char buf[16384];
    size_t n = log::format_access(buf, sizeof buf, a, ms);
    return std::string(buf, n);
}

std::string slurp(const fs::path& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace

TEST_CASE("access log: fields, escaping and absent values") {
    const log::Origin o{"cgi", "198.51.100.9:40404", "bob smith"};
    log::Access a;
    a.origin = &o;
    a.version = 3;
    a.verb = "get";
    a.path = "trunk/caf\xc3\xa9 \"x\"\\\n";
    a.result = "ok";
    a.bytes_in = 51;
    a.bytes_out = 91;
    a.duration_us = 1234567;
    CHECK(line_of(a) == "2024-12-05T11:34:11.577Z cgi 198.51.100.9:40404 bob\\x20smith 3 get "
                        "trunk/caf\\xc3\\xa9\\x20\\x22x\\x22\\x5c\\x0a ok 51 91 1.234567");

    const log::Origin none{"tcp", "127.0.0.1:1", nullptr};
    log::Access b;
    b.origin = &none;
    b.verb = "GET";
    b.result = "http404";
    b.duration_us = 7;
    CHECK(line_of(b, 0) == "1970-01-01T00:00:00.000Z tcp 127.0.0.1:1 - - GET - http404 0 0 0.000007");

    // A value that is "-" is not confused with an absent one.
    b.path = "-";
    CHECK(line_of(b, 0).find(" GET \\x2d http404 ") != std::string::npos);
}

TEST_CASE("access log: long values are cut and marked") {
    const log::Origin o{"tcp", "p", nullptr};
    log::Access a;
    a.origin = &o;
    a.version = 2;
    a.verb = "get";
    const std::string path(5000, 'a');
    a.path = path;
    a.result = "ok";
    std::string l = line_of(a);
    CHECK(l.find(" " + std::string(1024, 'a') + "\\... ok ") != std::string::npos);
    // Every field escaped to the full: still fits the buffer format_access asks for.
    const std::string hostile(5000, '\x01');
    const log::Origin h{"tcp", hostile.c_str(), hostile.c_str()};
    a.origin = &h;
    a.verb = hostile;
    a.path = hostile;
    a.result = hostile;
    l = line_of(a);
    CHECK(l.size() > 4 * 1024);
    CHECK(l.find(' ', 30) != std::string::npos);
    CHECK(l.find('\x01') == std::string::npos);
}

TEST_CASE("log targets parse") {
    CHECK(log::parse_target("off").kind == log::Target::Kind::Off);
    CHECK(log::parse_target("stderr").kind == log::Target::Kind::Stderr);
    CHECK(log::parse_target("syslog").kind == log::Target::Kind::Syslog);
    log::Target f = log::parse_target("/var/log/souk/access.log");
    CHECK(f.kind == log::Target::Kind::File);
    CHECK(log::to_string(f) == "/var/log/souk/access.log");
}

TEST_CASE("reopen_logs: a renamed log file is reopened by name") {
    fs::path dir = fs::temp_directory_path() / ("souk-log-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const fs::path p = dir / "access.log";
    std::string err;
    REQUIRE(log::init_access(log::parse_target(p.string()), &err));
    const log::Origin o{"tcp", "127.0.0.1:1", nullptr};
    log::Access a;
    a.origin = &o;
    a.version = 3;
    a.verb = "hello";
    a.result = "ok";
    log::access(a);
    fs::rename(p, dir / "access.log.1");  // logrotate
    a.verb = "get";
    log::access(a);  // still the old file until reopened
    log::reopen_logs();
    a.verb = "stat";
    log::access(a);
    const std::string old_text = slurp(dir / "access.log.1"), new_text = slurp(p);
    CHECK(old_text.find(" hello ") != std::string::npos);
    CHECK(old_text.find(" get ") != std::string::npos);
    CHECK(old_text.find(" stat ") == std::string::npos);
    CHECK(new_text.find(" stat ") != std::string::npos);
    CHECK(new_text.back() == '\n');
    CHECK(std::count(new_text.begin(), new_text.end(), '\n') == 1);
    REQUIRE(log::init_access(log::parse_target("off"), &err));
    CHECK(!log::access_enabled());
    fs::remove_all(dir);
}

TEST_CASE("inet peer and user from the SSH environment") {
    ::setenv("SSH_CONNECTION", "192.0.2.7 50022 192.0.2.1 22", 1);
    CHECK(log::inet_peer() == "192.0.2.7:50022");
    ::unsetenv("SSH_CONNECTION");
    CHECK(log::inet_peer() == "stdio");
}
