// soukd's options (docs/configuration.md): every long option of
// `soukd serve` / `soukd cgi`, read the same way from the command line,
// SOUK_OPTIONS (CGI) and a config file (`--config FILE`, one
// `name = value` per line). The parameters of server/base/params.hpp are
// options too, parsed by set_param.
//
// Precedence: defaults, then the config file, then the command line, so
// a command-line option overrides the file. A reload (SIGHUP) re-reads
// the file and re-applies the same command-line words on top.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/base/access.hpp"
#include "server/base/params.hpp"
#include "server/carriers/fastcgi.hpp"
#include "server/carriers/http_server.hpp"
#include "server/carriers/tcp_server.hpp"

namespace souk::server {

// One option as written: its long name and its value (none for a flag
// given without one), with where it came from for error messages
// ("FILE:LINE: " or "").
struct OptionWord {
    std::string name;
    std::optional<std::string> value;
    std::string where;
};

// A `[root /PREFIX]` section of a config file (docs/configuration.md#roots):
// a served root at a URL prefix, with its own directory and access rules.
struct RootSection {
    std::string prefix;             // parse_rule_prefix's form: "" for "/", "pub/x" for "/pub/x"
    std::string where;              // "FILE:LINE: " of its header
    std::vector<OptionWord> words;  // its settings, in order
};

// Everything an option can set.
struct ServeOptions {
    Params params;
    std::string directory;   // empty: the current directory (as `brz serve`)
    bool allow_writes = false;
    AccessRules access;      // --allow-anonymous-writes, --export-all, --read-only, --writers
    std::string user;        // --user: the user of an --inet session (an SSH forced command's)
    bool inet = false;
    TcpOptions tcp;
    bool tcp_explicit = false;  // --listen, --port or --port-file given
    HttpOptions http;
    bool want_http = false;
    FastcgiOptions fastcgi;   // --fastcgi, --fastcgi-socket-mode
    bool want_fastcgi = false;
    std::string log_dest;     // --log (--log-file): "" = the default for the carrier
    std::string access_dest;  // --access-log
    int verbosity = 2;  // a log::Level: 0 errors only (-q), 2 default, 3 and 4 (-v, -v -v)
    std::vector<RootSection> sections;  // the config file's [root /PREFIX] sections, in order
};

// One served root with its effective settings (resolve_roots).
struct RootOptions {
    std::string prefix;  // as RootSection::prefix
    std::string directory;
    bool allow_writes = false;
    AccessRules access;
    bool from_section = false;  // false: the global `directory` (the root at "/")
};

// What a command line holds besides its options.
struct CommandLine {
    std::vector<OptionWord> words;  // in order; applied after the config file
    std::string config;             // --config FILE, or ""
    bool help = false;              // -h, --help, --usage
};

// Split argv[first..argc) into option words. Knows short forms (-d DIR,
// -v, -q, -h), "--name=value", "--name value" for options that take one,
// and the flags of `brz serve` that mean nothing here (--bzr,
// --no-plugins, ...). Returns "" or what is wrong ("unknown option --x").
std::string split_command_line(int argc, char** argv, int first, CommandLine& out);

// Read a config file: one `name = value` per line, `#` comments and blank
// lines ignored, names the long options (without "--"). Unknown names,
// options that cannot be in a file (config, help), duplicates and lines
// without '=' are errors "FILE:LINE: why". Values are checked by
// apply_options. A line `[root /PREFIX]` starts a section: the lines up to
// the next one go to `sections` (only is_root_key names; `directory`
// required; each prefix once); the lines before the first go to `out`.
std::string read_config_file(const std::string& path, std::vector<OptionWord>& out,
                             std::vector<RootSection>& sections);

// The settings a [root] section may have: directory and the access rules
// (allow-writes, allow-anonymous-writes, export-all, read-only, writers).
bool is_root_key(std::string_view name);
// The settings a reload applies to running roots (the access rules).
bool is_access_key(std::string_view name);

// The served roots: the global `directory` as the root at "/" (also when
// there is no section, then possibly empty: the current directory), then
// each section, whose access rules start from the global ones (a
// section's read-only or writers lines replace the global lines of that
// name). Returns "" or the first error ("FILE:LINE: ...").
std::string resolve_roots(const ServeOptions& opts, std::vector<RootOptions>& out);

// Apply `words` in order to `opts`. Returns "" or the first error, with
// its word's `where` ("soukd.conf:7: --port=x: expected 0 to 65535").
std::string apply_options(ServeOptions& opts, const std::vector<OptionWord>& words);

// Defaults, then the config file (if cl.config), then cl.words. Returns ""
// or the first error.
std::string load_options(const CommandLine& cl, ServeOptions& out);

// The effective settings, one `name = value` line each (config-file
// syntax; options left unset are shown as comments), then each section
// with every access setting spelled out: reading the text back gives the
// same settings.
std::string render_options(const ServeOptions& opts);

// The long options that are not parameters, for --help's table.
bool is_option(std::string_view name);

}  // namespace souk::server
