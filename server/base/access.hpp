// Access rules (docs/access-control.md): who may write where, and what is
// served at all. Plain data and the pure decisions on it, read from the
// options (server/cli/options.cpp); the request pipeline applies them to
// every request, whatever carried it (server/request/access.hpp).
//
// Paths here are root-relative as resolve_path() gives them: "" is the
// root, "team/proj" a descendant. A rule's prefix covers itself and what
// is below it, component by component ("team" covers "team/x", not
// "teamwork").
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace souk::server {

// The marker that exports a directory and everything below it when
// export-all is off (git-daemon's git-daemon-export-ok, in the control
// directory: DIR/.bzr/souk-export-ok).
inline constexpr std::string_view kExportMarker = ".bzr/souk-export-ok";

struct WriterRule {
    std::string prefix;               // root-relative, "" = the whole root
    std::vector<std::string> users;  // who may write below it; empty: nobody
};

struct AccessRules {
    // Writes by a request without an authenticated user (bzr://, soukd's
    // own HTTP, CGI/FastCGI without REMOTE_USER, --inet without a user).
    bool allow_anonymous_writes = false;
    // Serve every directory (the default); false: only those at or below
    // a directory holding kExportMarker.
    bool export_all = true;
    std::vector<std::string> read_only;  // prefixes where nobody writes
    std::vector<WriterRule> writers;     // the longest prefix that covers a path decides

    bool restricts_writes() const { return !read_only.empty() || !writers.empty(); }
};

// "/team/proj/" -> "team/proj"; "/" or "" -> "" (the whole root). Refuses
// "." and ".." components and control bytes. Returns "" or why.
std::string parse_rule_prefix(std::string_view text, std::string& out);
// A user name of a rule or --user: 1 to 256 bytes, no control bytes,
// spaces, ',' or '='. Returns "" or why.
std::string check_user_name(std::string_view name);
// "PREFIX=USER[,USER...]" (split at the last '='; "PREFIX=" names nobody).
// Returns "" or why.
std::string parse_writers_rule(std::string_view text, WriterRule& out);
// The rule's text as parse_writers_rule reads it back ("/team=alice,bob").
std::string format_writers_rule(const WriterRule& rule);
std::string format_rule_prefix(std::string_view prefix);  // "" -> "/", "a/b" -> "/a/b"

// Whether `prefix` covers `path` (itself or below it).
bool covers(std::string_view prefix, std::string_view path);

// Why `user` ("" when anonymous) may not write at `path` under these
// rules, or "" when it may. anonymous_ok: a write with no user may pass
// (anonymous_writes_allowed(), server/request/access.hpp). Does not look
// at --allow-writes (the caller checks that first).
std::string write_refusal(const AccessRules& rules, std::string_view user, std::string_view path, bool anonymous_ok);

}  // namespace souk::server
