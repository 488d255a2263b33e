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
};

// One option as written: its long name and its value (none for a flag
// given without one), with where it came from for error messages
// ("FILE:LINE: " or "").
struct OptionWord {
    std::string name;
    std::optional<std::string> value;
    std::string where;
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
// apply_options.
std::string read_config_file(const std::string& path, std::vector<OptionWord>& out);

// Apply `words` in order to `opts`. Returns "" or the first error, with
// its word's `where` ("soukd.conf:7: --port=x: expected 0 to 65535").
std::string apply_options(ServeOptions& opts, const std::vector<OptionWord>& words);

// Defaults, then the config file (if cl.config), then cl.words. Returns ""
// or the first error.
std::string load_options(const CommandLine& cl, ServeOptions& out);

// The effective settings, one `name = value` line each (config-file
// syntax; options left unset are shown as comments).
std::string render_options(const ServeOptions& opts);

// The long options that are not parameters, for --help's table.
bool is_option(std::string_view name);

}  // namespace souk::server
