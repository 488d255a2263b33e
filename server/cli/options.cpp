#include "server/cli/options.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>

namespace souk::server {
namespace {

enum class Takes : uint8_t {
    Flag,   // no value on the command line (or --name=true|false); true|false in a file
    Value,  // a value: --name=V, --name V, `name = V`
};

enum class Where : uint8_t {
    Both,         // command line and config file
    CommandLine,  // command line only (config, help, brz's global flags)
};

struct OptionInfo {
    const char* name;
    char short_name;  // 0: none
    Takes takes;
    Where where;
    bool repeats = false;  // may be given several times (each adds a rule)
};

// Every option that is not a parameter (params.hpp has those). The brz
// ones: `brz serve --help`, and brz's global flags that only change how
// brz itself loads (docs/configuration.md#bzr-serve-command-lines).
const OptionInfo kOptions[] = {
    {"directory", 'd', Takes::Value, Where::Both},
    {"allow-writes", 0, Takes::Flag, Where::Both},
    {"allow-anonymous-writes", 0, Takes::Flag, Where::Both},
    {"export-all", 0, Takes::Flag, Where::Both},
    {"read-only", 0, Takes::Value, Where::Both, true},
    {"writers", 0, Takes::Value, Where::Both, true},
    {"user", 0, Takes::Value, Where::Both},
    {"inet", 0, Takes::Flag, Where::Both},
    {"listen", 0, Takes::Value, Where::Both},
    {"port", 0, Takes::Value, Where::Both},
    {"port-file", 0, Takes::Value, Where::Both},
    {"http", 0, Takes::Value, Where::Both},
    {"http-port-file", 0, Takes::Value, Where::Both},
    {"fastcgi", 0, Takes::Value, Where::Both},
    {"fastcgi-socket-mode", 0, Takes::Value, Where::Both},
    {"prefix", 0, Takes::Value, Where::Both},
    {"stats-path", 0, Takes::Value, Where::Both},
    {"log", 0, Takes::Value, Where::Both},
    {"log-file", 0, Takes::Value, Where::Both},  // the same as --log FILE
    {"access-log", 0, Takes::Value, Where::Both},
    {"verbose", 'v', Takes::Flag, Where::Both},
    {"quiet", 'q', Takes::Flag, Where::Both},
    {"client-timeout", 0, Takes::Value, Where::Both},  // brz's name for --idle-timeout
    {"protocol", 0, Takes::Value, Where::Both},        // brz: only "bzr" here
    {"bzr", 0, Takes::Flag, Where::Both},              // brz: --protocol=bzr
    {"config", 0, Takes::Value, Where::CommandLine},
    {"help", 'h', Takes::Flag, Where::CommandLine},
    {"usage", 0, Takes::Flag, Where::CommandLine},
    {"no-plugins", 0, Takes::Flag, Where::CommandLine},  // brz global flags: nothing to load here
    {"no-aliases", 0, Takes::Flag, Where::CommandLine},
    {"no-l10n", 0, Takes::Flag, Where::CommandLine},
    {"builtin", 0, Takes::Flag, Where::CommandLine},
};

const OptionInfo* find_option(std::string_view name) {
    for (const auto& o : kOptions)  // bounded: the table
        if (name == o.name) return &o;
    return nullptr;
}

const OptionInfo* find_short(char c) {
    for (const auto& o : kOptions)  // bounded: the table
        if (o.short_name == c) return &o;
    return nullptr;
}

// brz serve's other protocols: named so the error says why.
bool is_other_protocol(std::string_view name) {
    return name == "git" || name == "git-receive-pack" || name == "git-upload-pack";
}

std::string trim(std::string_view s) {
    size_t a = 0, b = s.size();
    while (a < b && (s[a] == ' ' || s[a] == '\t' || s[a] == '\r')) ++a;  // bounded: the text
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\r')) --b;  // bounded: the text
    return std::string(s.substr(a, b - a));
}

// "N" or, as bzr 2.x took it, "ADDR:N" ("[::1]:N" for IPv6).
std::string parse_port(const std::string& v, ServeOptions& o) {
    std::string host, port = v;
    if (size_t colon = v.rfind(':'); colon != std::string::npos) {
        host = v.substr(0, colon);
        port = v.substr(colon + 1);
        if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        else if (host.find(':') != std::string::npos) return "write IPv6 addresses in brackets, e.g. [::1]:4155";
    }
    char* end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end || port[0] == '-' || port[0] == '+' || p > 65535)
        return "expected a port 0 to 65535, or ADDR:PORT";
    if (!host.empty()) o.tcp.address = host;
    o.tcp.port = static_cast<uint16_t>(p);
    return {};
}

// One option. `value` is set for options that take one; for a flag it is
// empty (given bare) or "true"/"false".
std::string apply_one(ServeOptions& o, const std::string& name, const std::optional<std::string>& value) {
    if (is_param(name)) return set_param(o.params, name, value ? *value : std::string());
    const OptionInfo* info = find_option(name);
    if (!info) return "unknown option --" + name;
    const std::string shown = "--" + name + (value ? "=" + *value : std::string());
    bool flag = true;
    if (info->takes == Takes::Flag && value) {
        if (*value == "true") flag = true;
        else if (*value == "false") flag = false;
        else if (name == "verbose" && value->size() == 1 && (*value)[0] >= '0' && (*value)[0] <= '2') {
            o.verbosity = 2 + ((*value)[0] - '0');
            return {};
        } else {
            return shown + ": expected true or false";
        }
    }
    if (info->takes == Takes::Value && !value) return "--" + name + " needs a value";
    const std::string v = value ? *value : std::string();
    if (name == "directory") {
        if (v.empty()) return shown + ": empty directory";
        o.directory = v;
    } else if (name == "allow-writes") {
        o.allow_writes = flag;
    } else if (name == "allow-anonymous-writes") {
        o.access.allow_anonymous_writes = flag;
    } else if (name == "export-all") {
        o.access.export_all = flag;
    } else if (name == "read-only") {
        std::string prefix;
        if (std::string why = parse_rule_prefix(v, prefix); !why.empty()) return shown + ": " + why;
        o.access.read_only.push_back(std::move(prefix));
    } else if (name == "writers") {
        WriterRule rule;
        if (std::string why = parse_writers_rule(v, rule); !why.empty()) return shown + ": " + why;
        for (const auto& r : o.access.writers)  // bounded: the rules
            if (r.prefix == rule.prefix)
                return shown + ": " + format_rule_prefix(rule.prefix) + " already has a writers rule (" +
                       format_writers_rule(r) + "): name every writer in one";
        o.access.writers.push_back(std::move(rule));
    } else if (name == "user") {
        if (std::string why = check_user_name(v); !why.empty()) return shown + ": " + why;
        o.user = v;
    } else if (name == "inet") {
        o.inet = flag;
    } else if (name == "listen") {
        o.tcp.address = v;
        o.tcp_explicit = true;
    } else if (name == "port") {
        if (std::string why = parse_port(v, o); !why.empty()) return shown + ": " + why;
        o.tcp_explicit = true;
    } else if (name == "port-file") {
        o.tcp.port_file = v;
        o.tcp_explicit = true;
    } else if (name == "http") {
        if (std::string why = parse_http_address(v, o.http); !why.empty()) return why;
        o.want_http = true;
    } else if (name == "fastcgi") {
        if (std::string why = parse_fastcgi_address(v, o.fastcgi); !why.empty()) return shown + ": " + why;
        o.want_fastcgi = true;
    } else if (name == "fastcgi-socket-mode") {
        if (std::string why = parse_socket_mode(v, o.fastcgi.socket_mode); !why.empty()) return shown + ": " + why;
    } else if (name == "http-port-file") {
        o.http.port_file = v;
    } else if (name == "prefix") {
        if (v.empty() || v[0] != '/') return shown + ": must start with '/'";
        o.http.web.prefix = v;
    } else if (name == "stats-path") {
        o.http.web.stats_path = v;
    } else if (name == "log" || name == "log-file") {
        o.log_dest = v;
    } else if (name == "access-log") {
        o.access_dest = v;
    } else if (name == "verbose") {
        if (!value) ++o.verbosity;
        else o.verbosity = flag ? 3 : 2;
    } else if (name == "quiet") {
        o.verbosity = flag ? 0 : 2;
    } else if (name == "client-timeout") {
        std::string why = set_param(o.params, "idle-timeout", v);
        if (!why.empty()) return shown + " (brz's name for --idle-timeout): " + why;
    } else if (name == "protocol") {
        if (v != "bzr") return shown + ": soukd serves only the Bazaar smart protocol (--protocol=bzr)";
    } else if (name == "bzr") {
        if (!flag) return shown + ": soukd serves only the Bazaar smart protocol";
    } else {
        // config, help and brz's global flags: taken by split_command_line.
    }
    return {};
}

}  // namespace

bool is_option(std::string_view name) { return find_option(name) != nullptr || is_param(name); }

std::string split_command_line(int argc, char** argv, int first, CommandLine& out) {
    for (int i = first; i < argc; ++i) {  // bounded: argc
        const std::string a = argv[i];
        std::string name;
        std::optional<std::string> value;
        if (a.size() >= 2 && a[0] == '-' && a[1] != '-') {
            // Short options as optparse (brz) reads them: -d DIR, -dDIR,
            // and flags together (-vv).
            const OptionInfo* o = find_short(a[1]);
            if (!o) return "unknown option " + a;
            name = o->name;
            if (a.size() > 2) {
                if (o->takes == Takes::Value) {
                    value = a.substr(2);
                } else {
                    for (size_t k = 2; k < a.size(); ++k) {  // bounded: the word
                        const OptionInfo* f = find_short(a[k]);
                        if (!f || f->takes != Takes::Flag || f->where != Where::Both) return "unknown option " + a;
                        out.words.push_back({f->name, std::nullopt, ""});
                    }
                }
            }
        } else if (a.rfind("--", 0) == 0 && a.size() > 2) {
            name = a.substr(2);
            if (size_t eq = name.find('='); eq != std::string::npos) {
                value = name.substr(eq + 1);
                name.resize(eq);
            }
        } else {
            return "unexpected argument " + a + " (options start with --)";
        }
        if (is_other_protocol(name))
            return "--" + name + ": soukd serves only the Bazaar smart protocol (--protocol=bzr)";
        const OptionInfo* info = find_option(name);
        if (!info && !is_param(name)) return "unknown option " + a;
        const bool takes_value = !info || info->takes == Takes::Value;
        if (takes_value && !value) {
            if (i + 1 >= argc) return a + " needs a value";
            value = argv[++i];
        }
        if (name == "config") {
            out.config = *value;
        } else if (name == "help" || name == "usage") {
            out.help = true;
        } else if (info && info->where == Where::CommandLine) {
            // brz's global flags (--no-plugins, ...): nothing to do here.
        } else {
            out.words.push_back({name, value, ""});
        }
    }
    return {};
}

bool is_access_key(std::string_view name) {
    return name == "allow-writes" || name == "allow-anonymous-writes" || name == "export-all" || name == "read-only" ||
           name == "writers";
}

bool is_root_key(std::string_view name) { return name == "directory" || is_access_key(name); }

namespace {

// "[root /PREFIX]" -> the prefix; "" or why.
std::string parse_section_header(const std::string& text, std::string& prefix) {
    if (text.back() != ']') return "expected `[root /PREFIX]`, got `" + text + "`";
    const std::string inner = trim(std::string_view(text).substr(1, text.size() - 2));
    if (inner.rfind("root", 0) != 0 || inner.size() < 5 || (inner[4] != ' ' && inner[4] != '\t'))
        return "expected `[root /PREFIX]`, got `" + text + "` (the only section is [root /PREFIX])";
    const std::string url = trim(std::string_view(inner).substr(5));
    if (url.empty() || url[0] != '/') return "[root " + url + "]: the prefix must start with '/'";
    if (url.find_first_of(" \t") != std::string::npos) return "[root " + url + "]: a prefix has no spaces";
    if (std::string why = parse_rule_prefix(url, prefix); !why.empty()) return "[root " + url + "]: " + why;
    return {};
}

// The end of section `sec` (at the next header or the end of the file).
std::string close_section(const RootSection& sec) {
    for (const auto& w : sec.words)  // bounded: the section's lines
        if (w.name == "directory") return {};
    return sec.where + "[root " + format_rule_prefix(sec.prefix) + "] has no `directory = DIR`";
}

}  // namespace

std::string read_config_file(const std::string& path, std::vector<OptionWord>& out,
                             std::vector<RootSection>& sections) {
    std::ifstream in(path);
    if (!in) return path + ": cannot open the config file";
    std::string line;
    size_t n = 0;
    std::vector<std::pair<std::string, size_t>> seen;  // this part's names (the globals, or the section's)
    RootSection* sec = nullptr;
    while (std::getline(in, line)) {  // bounded: the file
        ++n;
        if (n > 100000) return path + ": more than 100000 lines";
        const std::string where = path + ":" + std::to_string(n) + ": ";
        std::string text = trim(line);
        if (text.empty() || text[0] == '#') continue;
        if (text[0] == '[') {
            if (sec)
                if (std::string why = close_section(*sec); !why.empty()) return why;
            RootSection next;
            if (std::string why = parse_section_header(text, next.prefix); !why.empty()) return where + why;
            for (const auto& other : sections)  // bounded: the sections
                if (other.prefix == next.prefix)
                    return where + "[root " + format_rule_prefix(next.prefix) + "] is already a section (" +
                           other.where.substr(0, other.where.size() - 2) + ")";
            next.where = where;
            sections.push_back(std::move(next));
            sec = &sections.back();
            seen.clear();
            continue;
        }
        const size_t eq = text.find('=');
        if (eq == std::string::npos) return where + "expected `name = value`, got `" + text + "`";
        std::string name = trim(std::string_view(text).substr(0, eq));
        std::string value = trim(std::string_view(text).substr(eq + 1));
        if (name.rfind("--", 0) == 0) return where + "write the name without \"--\": " + name.substr(2) + " = " + value;
        const OptionInfo* info = find_option(name);
        if (!info && !is_param(name)) return where + "unknown option " + name;
        if (info && info->where == Where::CommandLine) return where + name + " can only be given on the command line";
        if (sec && !is_root_key(name))
            return where + name + " cannot be set in a [root] section (only directory, allow-writes, "
                               "allow-anonymous-writes, export-all, read-only, writers; put it before the first section)";
        for (const auto& [prev, at] : seen)  // bounded: the options seen
            if (prev == name && !(info && info->repeats))
                return where + name + " is already set on line " + std::to_string(at);
        seen.emplace_back(name, n);
        (sec ? sec->words : out).push_back({name, value, where});
    }
    if (sec)
        if (std::string why = close_section(*sec); !why.empty()) return why;
    return {};
}

std::string apply_options(ServeOptions& opts, const std::vector<OptionWord>& words) {
    for (const auto& w : words) {  // bounded: the words
        std::string why = apply_one(opts, w.name, w.value);
        if (!why.empty()) return w.where + why;
    }
    return {};
}

std::string load_options(const CommandLine& cl, ServeOptions& out) {
    ServeOptions o = out;
    if (!cl.config.empty()) {
        std::vector<OptionWord> file;
        o.sections.clear();
        if (std::string why = read_config_file(cl.config, file, o.sections); !why.empty()) return why;
        if (std::string why = apply_options(o, file); !why.empty()) return why;
    }
    if (std::string why = apply_options(o, cl.words); !why.empty()) return why;
    std::vector<RootOptions> roots;  // the sections' values are checked here
    if (std::string why = resolve_roots(o, roots); !why.empty()) return why;
    out = std::move(o);
    return {};
}

std::string resolve_roots(const ServeOptions& o, std::vector<RootOptions>& out) {
    out.clear();
    if (!o.directory.empty() || o.sections.empty()) out.push_back({"", o.directory, o.allow_writes, o.access, false});
    for (const auto& sec : o.sections) {  // bounded: the sections
        if (sec.prefix.empty() && !o.directory.empty())
            return sec.where + "[root /] and the global `directory` (or -d) both serve /: keep one";
        // The global rules, then the section's (its rule lines replace the
        // global lines of the same name).
        ServeOptions r;
        r.allow_writes = o.allow_writes;
        r.access = o.access;
        for (const auto& w : sec.words) {  // bounded: the section's lines
            if (w.name == "read-only") r.access.read_only.clear();
            if (w.name == "writers") r.access.writers.clear();
        }
        if (std::string why = apply_options(r, sec.words); !why.empty()) return why;
        out.push_back({sec.prefix, r.directory, r.allow_writes, std::move(r.access), true});
    }
    return {};
}

namespace {

// A root's access settings, one line each (render_options).
void render_rules(std::string& s, bool allow_writes, const AccessRules& a) {
    auto line = [&s](const char* name, const std::string& v) {
        if (v.empty()) s += std::string("# ") + name + " (unset)\n";
        else s += std::string(name) + " = " + v + "\n";
    };
    auto flag = [](bool b) { return std::string(b ? "true" : "false"); };
    line("allow-writes", flag(allow_writes));
    line("allow-anonymous-writes", flag(a.allow_anonymous_writes));
    line("export-all", flag(a.export_all));
    if (a.read_only.empty()) line("read-only", "");
    for (const auto& p : a.read_only) line("read-only", format_rule_prefix(p));  // bounded: the rules
    if (a.writers.empty()) line("writers", "");
    for (const auto& r : a.writers) line("writers", format_writers_rule(r));  // bounded: the rules
}

}  // namespace

std::string render_options(const ServeOptions& o) {
    std::string s;
    auto line = [&s](const char* name, const std::string& v) {
        if (v.empty()) s += std::string("# ") + name + " (unset)\n";
        else s += std::string(name) + " = " + v + "\n";
    };
    auto flag = [](bool b) { return std::string(b ? "true" : "false"); };
    line("directory", o.directory);
    render_rules(s, o.allow_writes, o.access);
    line("user", o.user);
    line("inet", flag(o.inet));
    if (o.want_http && !o.tcp_explicit) {
        s += "# listen, port: no bzr:// TCP (--http alone)\n";
    } else {
        line("listen", o.tcp.address);
        line("port", std::to_string(o.tcp.port));
    }
    line("port-file", o.tcp.port_file);
    line("http", o.want_http ? (o.http.address.find(':') != std::string::npos ? "[" + o.http.address + "]"
                                                                              : o.http.address) +
                                   ":" + std::to_string(o.http.port)
                             : std::string());
    line("http-port-file", o.http.port_file);
    line("fastcgi", !o.want_fastcgi ? std::string()
                    : !o.fastcgi.unix_path.empty() ? "unix:" + o.fastcgi.unix_path
                                                   : o.fastcgi.address + ":" + std::to_string(o.fastcgi.port));
    {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", o.fastcgi.socket_mode);
        line("fastcgi-socket-mode", mode);
    }
    line("prefix", o.http.web.prefix);
    line("stats-path", o.http.web.stats_path);
    line("log", o.log_dest);
    line("access-log", o.access_dest);
    if (o.verbosity == 0) line("quiet", "true");
    else line("verbose", std::to_string(std::max(0, o.verbosity - 2)));
    s += params_settings(o.params);
    // The sections last: every line after a header is the section's.
    std::vector<RootOptions> roots;
    if (!resolve_roots(o, roots).empty()) return s;  // load_options has checked them
    for (const auto& r : roots) {  // bounded: the roots
        if (!r.from_section) continue;
        s += "\n[root " + format_rule_prefix(r.prefix) + "]\n";
        s += "directory = " + r.directory + "\n";
        render_rules(s, r.allow_writes, r.access);
    }
    return s;
}

}  // namespace souk::server
