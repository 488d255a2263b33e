// soukd: the souk server. `soukd serve --help` for usage.
#include <errno.h>
#include <signal.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <csignal>
#include <cstring>
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include <thread>
#include <vector>

#include "server/carriers/activation.hpp"
#include "server/carriers/cgi.hpp"
#include "server/carriers/fastcgi.hpp"
#include "server/verbs/dispatch.hpp"
#include "server/carriers/http_server.hpp"
#include "server/base/log.hpp"
#include "server/base/params.hpp"
#include "server/carriers/stream.hpp"
#include "server/store/shm_stats.hpp"
#include "server/store/chain.hpp"
#include "server/store/fs_store.hpp"
#include "server/carriers/tcp_server.hpp"
#include "server/carriers/waiter.hpp"
#include "server/request/access.hpp"
#include "server/cli/options.hpp"
#include "transport/net.hpp"

namespace {

// Signals (docs/configuration.md#signals): the handlers only set a flag
// and write to eventfds. SIGTERM/SIGINT wake the carriers (wake_waiters)
// and the signal watcher (main's thread, on g_signal_fd); SIGHUP wakes
// the watcher only, which re-reads the config and reopens the logs.
// Read by every carrier thread: an atomic (lock-free, so a handler may store it).
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free);
volatile sig_atomic_t g_reload = 0;
int g_signal_fd = -1;

void wake_watcher() {
    const int saved = errno;
    const uint64_t one = 1;
    if (g_signal_fd >= 0) (void)!::write(g_signal_fd, &one, sizeof one);
    errno = saved;
}

void on_stop(int) {
    g_stop = true;
    souk::server::wake_waiters();
    wake_watcher();
}

void on_hup(int) {
    g_reload = 1;
    wake_watcher();
}

const char kUsage[] =
    "usage: soukd serve --inet --directory=DIR [--allow-writes] [options]\n"
    "       soukd serve [--listen ADDR] [--port N] --directory=DIR [--allow-writes] [options]\n"
    "       soukd serve --http ADDR:PORT [--listen ADDR --port N] --directory=DIR [options]\n"
    "       soukd serve --fastcgi unix:/PATH|ADDR:PORT --directory=DIR [--allow-writes] [options]\n"
    "       soukd cgi [--directory=DIR] [--allow-writes] [--prefix /URL/PREFIX] [options]\n"
    "       soukd check-config [--config FILE] [options]   (validate, print the effective settings)\n"
    "       soukd stats --directory=DIR [--prometheus]   (counters of every soukd serving DIR)\n"
    "       soukd --version\n"
    "\n"
    "Serve the Bazaar smart protocol (bzr://, bzr+ssh://, bzr+http://) and plain\n"
    "HTTP GETs of files from DIR. Read-only unless --allow-writes. No path or\n"
    "symlink can reach outside DIR. `soukd serve` takes every option of\n"
    "`brz serve` (`server` is accepted for `serve`, as brz does).\n"
    "\n"
    "  --config FILE           read options from FILE first: one `name = value`\n"
    "                          a line (a long option's name, its value as here;\n"
    "                          flags true|false), # comments; options given here\n"
    "                          override the file (docs/configuration.md);\n"
    "                          `[root /PREFIX]` sections add roots, each with\n"
    "                          its directory and access rules\n"
    "  --inet                  serve one client on stdin/stdout (what bzr+ssh runs;\n"
    "                          same arguments as `bzr serve --inet`); exit 0 at EOF\n"
    "  --listen ADDR           TCP address to listen on (default 127.0.0.1)\n"
    "  --port [ADDR:]N         TCP port (default 4155; 0 picks a free port); ADDR:N\n"
    "                          also sets --listen (bzr 2.x's form)\n"
    "  --port-file FILE        write the bound TCP port to FILE once listening\n"
    "  --http ADDR:PORT        serve HTTP: POST <path>/.bzr/smart (bzr+http://) and\n"
    "                          GET/HEAD of files with ranges; PORT 0 picks a free\n"
    "                          port. With --http, bzr:// TCP runs only when --listen,\n"
    "                          --port or --port-file is also given (one process)\n"
    "  --http-port-file FILE   write the bound HTTP port to FILE once listening\n"
    "                          (under systemd, a passed socket named bzr or http is\n"
    "                          served instead of binding: docs/install.md#systemd)\n"
    "  --fastcgi unix:/PATH    serve FastCGI (RESPONDER) for nginx fastcgi_pass or\n"
    "  --fastcgi ADDR:PORT     Apache mod_proxy_fcgi: the same requests as CGI, from a\n"
    "                          persistent process. The path is REQUEST_URI minus\n"
    "                          --prefix; the root and writes come from these options\n"
    "                          only (SOUK_* parameters are ignored)\n"
    "  --fastcgi-socket-mode M unix socket permissions, octal (default 0660)\n"
    "  --prefix /P             HTTP/CGI/FastCGI: the URL prefix that maps to DIR (default /)\n"
    "  --stats-path /P         HTTP/CGI: GET /P answers the counters of `soukd stats`\n"
    "                          (JSON; Prometheus text for Accept: text/plain); off\n"
    "                          unless given\n"
    "  -d DIR, --directory=DIR the root served (default: the current directory, as\n"
    "                          brz serve; CGI: SOUK_ROOT)\n"
    "  --allow-writes          this server may write (put, append, mkdir, locks, ...);\n"
    "                          over HTTP/CGI/FastCGI a write also needs a user\n"
    "                          (docs/access-control.md); bzr:// and --inet: anyone\n"
    "  --allow-anonymous-writes  HTTP/CGI/FastCGI writes without an authenticated\n"
    "                          user too (soukd's own HTTP has none) (default false)\n"
    "  --user NAME             --inet: the user of this session (an authorized_keys\n"
    "                          forced command's, one key per user); default: USER,\n"
    "                          else LOGNAME, as sshd sets them\n"
    "  --read-only /PREFIX     nobody writes at or below PREFIX (root-relative;\n"
    "                          may be given several times)\n"
    "  --writers /PREFIX=U1,U2 only these users write at or below PREFIX (the\n"
    "                          longest covering rule decides; PREFIX= names nobody;\n"
    "                          may be given several times, one per prefix)\n"
    "  --export-all[=false]    serve every directory (default true); false: only\n"
    "                          directories at or below one holding\n"
    "                          .bzr/souk-export-ok, the rest answered as missing\n"
    "  --access-log DEST       one line per request (docs/access-log.md): a FILE\n"
    "                          (appended to), syslog, stderr or off (default:\n"
    "                          stderr; --inet and CGI: syslog)\n"
    "  --log DEST              errors, warnings and -v detail: a FILE, syslog,\n"
    "                          stderr or off (default: stderr; --inet: syslog,\n"
    "                          since ssh shows stderr to the client's user).\n"
    "                          stdout is never used; on stderr under systemd,\n"
    "                          lines carry journal priorities\n"
    "  --log-file FILE         the same as --log FILE\n"
    "  -v, --verbose           also log each connection opened and closed and\n"
    "                          each HTTP exchange; twice: also each request's\n"
    "                          arguments and reply\n"
    "  -q, --quiet             log errors only (default: errors, warnings, info;\n"
    "                          CGI: errors and warnings)\n"
    "  --client-timeout=DURATION  brz's name for --idle-timeout\n"
    "  --protocol=bzr, --bzr   accepted (brz serve's default); any other protocol\n"
    "                          is refused\n"
    "  --no-plugins, --no-aliases, --no-l10n, --builtin\n"
    "                          brz's global flags, accepted and ignored\n"
    "  -h, --help, --usage     this text\n"
    "\n"
    "Signals (daemon): SIGHUP re-reads --config (a bad file is refused and\n"
    "logged with FILE:LINE; run-time parameters and the access rules change\n"
    "at once, the others take a restart) and reopens the logs; SIGTERM/SIGINT\n"
    "stop accepting, let requests in flight finish within --shutdown-grace,\n"
    "then exit 0.\n"
    "\n"
    "CGI (`soukd cgi`, or any invocation with GATEWAY_INTERFACE set and no `serve`):\n"
    "one request from the environment and stdin (RFC 3875). Settings also come\n"
    "from the environment: SOUK_ROOT (the directory), SOUK_ALLOW_WRITES=1,\n"
    "SOUK_ALLOW_ANONYMOUS_WRITES=1, REMOTE_USER (the authenticated user),\n"
    "SOUK_PREFIX (use REQUEST_URI minus it instead of PATH_INFO), SOUK_OPTIONS\n"
    "(more options, e.g. \"--max-body=1048576 --cgi-read-timeout=10\").\n"
    "Command-line options win over the environment.\n"
    "\n"
    "Limits and tunables. A SIZE is a whole number of bytes with an optional\n"
    "suffix K, M, G or T (either case; binary: 1K = 1024, 64M), no fractions\n"
    "(1536K, not 1.5M). A DURATION is seconds (fractions allowed) with an\n"
    "optional suffix ms, s, m, h or d (lower case: 250ms, 30s, 5m); a bare\n"
    "number is seconds. Values outside the range given are refused.\n";

int usage_error(const std::string& msg) {
    std::fprintf(stderr, "soukd: %s\n(soukd serve --help for usage)\n", msg.c_str());
    return 2;
}

// brz's global flags, which may come before the command as well
// (`bzr --no-plugins serve --inet`): they only change how brz loads.
bool is_brz_global_flag(const char* a) {
    for (const char* f : {"--no-plugins", "--no-aliases", "--no-l10n", "--builtin"})  // bounded: 4
        if (!std::strcmp(a, f)) return true;
    return false;
}

void print_help() { std::printf("%s%s", kUsage, souk::server::params_help().c_str()); }

// The checks every way of starting makes once the options are read.
std::string check_options(souk::server::ServeOptions& o, bool cgi) {
    if (o.want_fastcgi && (o.want_http || o.tcp_explicit || o.inet))
        return "--fastcgi runs alone (no --http, --listen, --port or --inet)";
    if (!o.user.empty() && !o.inet)
        return "--user names the user of an --inet session (an SSH forced command's); the web carriers take "
               "REMOTE_USER from the web server, and bzr:// and soukd's own HTTP have no users";
    if (o.directory.empty() && o.sections.empty()) {
        if (cgi) return "no root: set SOUK_ROOT, pass --directory=DIR or a --config with [root /PREFIX] sections";
        // As `brz serve`: the current directory.
        char cwd[4096];
        if (!::getcwd(cwd, sizeof cwd)) return "no --directory given and the current directory is unreadable";
        o.directory = cwd;
    }
    return {};
}

// A daemon's connections are descriptors: raise RLIMIT_NOFILE's soft
// limit to the hard one, and keep --max-connections within it less
// --fd-reserve (docs/configuration.md#connections-and-the-descriptor-limit).
void fit_connections_to_fd_limit(souk::server::Params& p) {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    const rlim_t was = rl.rlim_cur;
    // An unlimited hard limit: the kernel still caps it (fs.nr_open).
    const rlim_t want = rl.rlim_max == RLIM_INFINITY ? rlim_t{1} << 20 : rl.rlim_max;
    if (rl.rlim_cur < want) {
        rlimit raised{want, rl.rlim_max};
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl.rlim_cur = want;
        else SOUK_LOG(Warn, "cannot raise the descriptor limit from %llu to %llu: %s", static_cast<unsigned long long>(was),
                      static_cast<unsigned long long>(want), std::strerror(errno));
    }
    const double limit = static_cast<double>(rl.rlim_cur);
    double allowed = limit - p.fd_reserve;
    if (allowed < 1) {
        allowed = std::max(1.0, std::floor(limit / 2));
        SOUK_LOG(Warn, "descriptor limit %.0f leaves nothing beyond --fd-reserve=%.0f: at most %.0f connections; "
                 "raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower --fd-reserve", limit, p.fd_reserve, allowed);
    }
    allowed = std::min(allowed, static_cast<double>(1 << 24));
    if (p.max_connections == 0) {
        p.max_connections = allowed;
    } else if (p.max_connections > allowed) {
        SOUK_LOG(Warn, "--max-connections=%.0f lowered to %.0f: the descriptor limit is %.0f and --fd-reserve=%.0f; "
                 "raise the hard limit (ulimit -Hn, LimitNOFILE=) for more", p.max_connections, allowed, limit,
                 p.fd_reserve);
        p.max_connections = allowed;
    }
    SOUK_LOG(Info, "descriptor limit %.0f%s: at most %.0f connections", limit,
             rl.rlim_cur != was ? " (raised to the hard limit)" : "", p.max_connections);
}

// "name = value" and "# name (unset)" lines of render_options; a
// section's names are "[root /P] name".
std::map<std::string, std::string> settings_map(const std::string& text) {
    std::map<std::string, std::string> out;
    std::string section;  // "" or "[root /P] "
    size_t at = 0;
    while (at < text.size()) {  // bounded: each pass consumes a line
        size_t end = text.find('\n', at);
        if (end == std::string::npos) end = text.size();
        const std::string line = text.substr(at, end - at);
        at = end + 1;
        const std::string unset = " (unset)";
        if (!line.empty() && line[0] == '[')
            section = line + " ";
        else if (line.rfind("# ", 0) == 0 && line.size() > unset.size() &&
                 line.compare(line.size() - unset.size(), unset.size(), unset) == 0)
            out[section + line.substr(2, line.size() - 2 - unset.size())] = "";
        else if (size_t eq = line.find(" = "); eq != std::string::npos && line[0] != '#') {
            std::string& v = out[section + line.substr(0, eq)];  // rules (read-only, writers) repeat: one value, every line
            v += (v.empty() ? "" : " ") + line.substr(eq + 3);
        }
    }
    return out;
}

// One served root of this process: its store chain, its context (a copy
// is in ServerContext::roots) and, once it may write, its sweeper.
struct ServedRoot {
    souk::server::RootOptions opts;
    std::unique_ptr<souk::server::StoreChain> store;
    std::unique_ptr<souk::server::TempSweeper> sweeper;  // stopped before the store goes
};

// What a root that may write needs (docs/store-chain.md#temporary-files):
// repairs of what killed writers left, and a sweeper in a daemon. A
// read-only root changes nothing on disk, it only hides the torn tail of
// an unfinished append. Called at start and when a reload makes it writable.
void prepare_writes(ServedRoot& r, const souk::server::Params& p, bool one_shot) {
    r.store->fs().set_repair(r.opts.allow_writes);
    if (!r.opts.allow_writes || r.sweeper) return;
    if (one_shot)  // one request or one connection: sweep only when no process has for a while
        r.store->fs().sweep_if_due(p.temp_sweep_interval, p.temp_stale, false, r.store->sweep_clock());
    else
        r.sweeper = std::make_unique<souk::server::TempSweeper>(r.store->fs(), r.store->sweep_clock(),
                                                                p.temp_sweep_interval, p.temp_stale);
}

// The name of a setting in settings_map without its section.
std::string_view setting_name(std::string_view key) {
    if (!key.empty() && key[0] == '[') key.remove_prefix(std::min(key.size(), key.find("] ") + 2));
    return key;
}

// SIGHUP: re-read the config file and apply what can change while
// running (SOUK_RELOADABLE_PARAMS, and every root's access rules, published
// whole for the requests that start after it); a bad file changes nothing.
// Roots added or removed, and a root's directory, take a restart. Then
// reopen the logs. Runs on the signal watcher's thread.
void reload(const souk::server::CommandLine& cl, souk::server::ServeOptions& running,
            souk::server::ServerContext& ctx, std::vector<ServedRoot>& served) {
    using namespace souk::server;
    if (cl.config.empty()) {
        SOUK_LOG(Info, "SIGHUP: no --config to re-read; logs reopened");
        log::reopen_logs();
        return;
    }
    ServeOptions fresh;
    std::vector<RootOptions> fresh_roots;
    std::string why = load_options(cl, fresh);
    if (why.empty()) why = check_options(fresh, false);
    if (why.empty()) why = resolve_roots(fresh, fresh_roots);
    if (!why.empty()) {
        SOUK_LOG(Error, "SIGHUP: %s; config refused, the running settings stay", why.c_str());
        log::reopen_logs();
        return;
    }
    fit_connections_to_fd_limit(fresh.params);
    const auto before = settings_map(render_options(running));
    const auto after = settings_map(render_options(fresh));
    size_t restart = 0;
    std::vector<std::string> changed_rules;
    for (const auto& [name, value] : after) {  // bounded: the options
        auto it = before.find(name);
        const std::string old = it == before.end() ? "" : it->second;
        if (old == value || is_reloadable(name)) continue;
        if (is_access_key(setting_name(name))) {
            // A new root's rules come with it, at the restart.
            if (it != before.end() || name[0] != '[') changed_rules.push_back(name);
            continue;
        }
        ++restart;
        SOUK_LOG(Warn, "SIGHUP: %s changed (%s -> %s) but takes a restart; still %s", name.c_str(),
                 old.empty() ? "unset" : old.c_str(), value.empty() ? "unset" : value.c_str(),
                 old.empty() ? "unset" : old.c_str());
    }
    for (const auto& [name, value] : before)  // bounded: the options
        if (name[0] == '[' && setting_name(name) == "directory" && !after.count(name)) {
            ++restart;
            SOUK_LOG(Warn, "SIGHUP: %s removed but takes a restart; still served", name.c_str());
        }
    // Every running root takes the rules of the fresh root at its prefix
    // (a root that is gone keeps its rules until the restart).
    std::vector<RootRules> rules;
    for (auto& r : served) {  // bounded: the roots
        for (const auto& f : fresh_roots)  // bounded: the roots
            if (f.prefix == r.opts.prefix) {
                r.opts.allow_writes = f.allow_writes;
                r.opts.access = f.access;
            }
        rules.push_back({r.opts.allow_writes, r.opts.access});
        prepare_writes(r, ctx.params, false);
    }
    ctx.live->publish(std::move(rules));
    // What the next reload compares with: the rules now in force.
    running.allow_writes = fresh.allow_writes;
    running.access = fresh.access;
    for (auto& sec : running.sections)  // bounded: the sections
        for (const auto& f : fresh.sections)  // bounded: the sections
            if (f.prefix == sec.prefix) {
                std::vector<OptionWord> words;
                for (const auto& w : sec.words)  // bounded: the section's lines
                    if (w.name == "directory") words.push_back(w);
                for (const auto& w : f.words)  // bounded: the section's lines
                    if (w.name != "directory") words.push_back(w);
                sec.words = std::move(words);
            }
    const std::vector<std::string> changed = apply_reloadable(ctx.params, fresh.params);
    apply_reloadable(running.params, fresh.params);
    std::string names;
    for (const auto& n : changed) names += " " + n;  // bounded: the reloadable parameters
    for (const auto& n : changed_rules) names += " " + n;  // bounded: the settings
    SOUK_LOG(Info, "SIGHUP: %s re-read: %zu changes applied%s%s; %zu need a restart", cl.config.c_str(),
             changed.size() + changed_rules.size(), names.empty() ? "" : ":", names.c_str(), restart);
    log::reopen_logs();
}

// `soukd check-config [--config FILE] [options]`, like `nginx -t`: read
// the options as `soukd serve` would, check them, print the effective
// settings. Exit 0, or 1 with the error (FILE:LINE for the file's).
int check_config_main(int argc, char** argv) {
    using namespace souk::server;
    CommandLine cl;
    if (std::string why = split_command_line(argc, argv, 2, cl); !why.empty()) {
        std::fprintf(stderr, "soukd check-config: %s\n", why.c_str());
        return 1;
    }
    if (cl.help) {
        print_help();
        return 0;
    }
    ServeOptions o;
    std::string why = load_options(cl, o);
    if (why.empty()) why = check_options(o, false);
    std::vector<RootOptions> roots;
    if (why.empty()) why = resolve_roots(o, roots);
    for (const auto& r : roots) {  // bounded: the roots
        struct stat st{};
        if (why.empty() && (::stat(r.directory.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)))
            why = (r.from_section ? "[root " + format_rule_prefix(r.prefix) + "] " : std::string()) + "directory " +
                  r.directory + ": not a directory";
    }
    if (!why.empty()) {
        std::fprintf(stderr, "soukd check-config: %s\n", why.c_str());
        return 1;
    }
    std::printf("# soukd %s: effective settings%s%s\n%s", SOUK_VERSION, cl.config.empty() ? "" : " from ",
                cl.config.c_str(), render_options(o).c_str());
    std::fprintf(stderr, "soukd check-config: %s is valid\n", cl.config.empty() ? "the command line" : cl.config.c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace souk::server;
    // brz's global flags before the command: skipped.
    std::vector<char*> args(argv, argv + argc);
    while (args.size() >= 2 && is_brz_global_flag(args[1])) args.erase(args.begin() + 1);  // bounded: argv
    argc = static_cast<int>(args.size());
    args.push_back(nullptr);
    argv = args.data();
    if (argc >= 2 && (!std::strcmp(argv[1], "--version") || !std::strcmp(argv[1], "version"))) {
        std::printf("soukd %s\n", SOUK_VERSION);
        return 0;
    }
    if (argc >= 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help"))) {
        print_help();
        return 0;
    }
    if (argc >= 2 && !std::strcmp(argv[1], "stats")) return stats_main(argc, argv);  // counters of every process serving DIR
    if (argc >= 2 && !std::strcmp(argv[1], "check-config")) return check_config_main(argc, argv);
    // CGI: `soukd cgi`, or a web server ran us as a script (it may pass
    // query words as arguments, RFC 3875 4.4: ignore them).
    const bool gateway = std::getenv("GATEWAY_INTERFACE") != nullptr;
    const bool serve = argc >= 2 && (!std::strcmp(argv[1], "serve") || !std::strcmp(argv[1], "server"));  // brz's alias
    const bool cgi = (argc >= 2 && !std::strcmp(argv[1], "cgi")) || (gateway && !serve);
    if (!cgi && !serve) return usage_error("expected a command: serve, cgi, check-config or stats");
    if (cgi && !gateway && !std::getenv("REQUEST_METHOD")) {
        // Run by hand or by a misconfigured server: say so, write no response.
        std::fprintf(stderr, "soukd cgi: no CGI request in the environment (REQUEST_METHOD and GATEWAY_INTERFACE "
                             "are not set): run it from a web server (RFC 3875), or use `soukd serve`\n");
        return 2;
    }

    ServerContext ctx;
    ServeOptions opts;
    // CGI: options from SOUK_OPTIONS first, then the command line (which wins).
    std::vector<std::string> words = {"soukd", "cgi"};
    if (cgi) {
        if (const char* r = std::getenv("SOUK_ROOT")) opts.directory = r;
        auto yes = [](const char* w) { return !std::strcmp(w, "1") || !std::strcmp(w, "yes") || !std::strcmp(w, "true"); };
        if (const char* w = std::getenv("SOUK_ALLOW_WRITES")) opts.allow_writes = yes(w);
        if (const char* w = std::getenv("SOUK_ALLOW_ANONYMOUS_WRITES")) opts.access.allow_anonymous_writes = yes(w);
        if (const char* p = std::getenv("SOUK_PREFIX")) opts.http.web.prefix = p;
        opts.verbosity = 1;  // the web server's error log: errors and warnings unless asked
        if (const char* o = std::getenv("SOUK_OPTIONS")) {
            std::string cur;
            for (const char* c = o;; ++c) {  // bounded: the variable's text
                if (*c == 0 || *c == ' ' || *c == '\t' || *c == '\n') {
                    if (!cur.empty()) words.push_back(cur);
                    cur.clear();
                    if (*c == 0) break;
                } else {
                    cur += *c;
                }
            }
        }
        if (argc >= 2 && !std::strcmp(argv[1], "cgi"))
            for (int i = 2; i < argc; ++i) words.emplace_back(argv[i]);
    } else {
        for (int i = 2; i < argc; ++i) words.emplace_back(argv[i]);
    }
    std::vector<char*> wargv;
    for (auto& w : words) wargv.push_back(w.data());
    wargv.push_back(nullptr);
    auto fail = [&](const std::string& msg) {
        if (cgi) {
            std::fprintf(stderr, "soukd cgi: %s\n", msg.c_str());
            return cgi_fail(500, "server misconfigured (see the web server's error log)");
        }
        return usage_error(msg);
    };
    CommandLine cl;
    std::string why = split_command_line(static_cast<int>(words.size()), wargv.data(), 2, cl);
    if (why.empty() && cl.help) {
        print_help();
        return 0;
    }
    if (why.empty()) why = load_options(cl, opts);
    if (why.empty()) why = check_options(opts, cgi);
    if (!why.empty()) return fail(why);
    if (!cgi && !opts.inet) {
        // A daemon: SIGHUP reloads instead of killing, SIGTERM/SIGINT drain.
        g_signal_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (g_signal_fd < 0) return fail(std::string("eventfd: ") + std::strerror(errno));
        struct sigaction sa{};
        ::sigemptyset(&sa.sa_mask);
        sa.sa_handler = on_stop;
        ::sigaction(SIGTERM, &sa, nullptr);
        ::sigaction(SIGINT, &sa, nullptr);
        sa.sa_handler = on_hup;
        ::sigaction(SIGHUP, &sa, nullptr);
    }
    ctx.params = opts.params;
    const bool inet = opts.inet;
    TcpOptions& tcp = opts.tcp;
    HttpOptions& http = opts.http;
    bool want_http = opts.want_http;  // these two also follow the sockets systemd passes, below
    bool tcp_explicit = opts.tcp_explicit;
    FastcgiOptions& fastcgi = opts.fastcgi;
    const bool want_fastcgi = opts.want_fastcgi;
    std::vector<ServedRoot> served;
    {
        std::vector<RootOptions> roots;
        if (std::string err = resolve_roots(opts, roots); !err.empty()) return fail(err);
        for (auto& r : roots) served.push_back({std::move(r), nullptr, nullptr});  // bounded: the roots
    }
    {
        // --inet: stderr reaches the SSH user's terminal; keep it quiet.
        const char* quiet_default = inet ? "syslog" : "stderr";
        std::string err;
        if (!log::init(static_cast<log::Level>(std::min(opts.verbosity, 4)),
                       log::parse_target(opts.log_dest.empty() ? quiet_default : opts.log_dest), &err))
            return fail("--log: " + err);
        if (!log::init_access(
                log::parse_target(!opts.access_dest.empty() ? opts.access_dest : (inet || cgi) ? "syslog" : "stderr"), &err))
            return fail("--access-log: " + err);
    }

    // Each root's store chain (stats -> cache -> readahead -> fs) and context
    // (docs/configuration.md#roots); the rules of all are published together.
    std::vector<RootRules> rules;
    for (const auto& r : served) rules.push_back({r.opts.allow_writes, r.opts.access});  // bounded: the roots
    auto live = std::make_shared<LiveRules>(std::move(rules));
    std::vector<ServerContext> root_ctxs;
    for (size_t i = 0; i < served.size(); ++i) {  // bounded: the roots
        ServedRoot& r = served[i];
        r.store = make_store_chain(ctx.params, r.opts.directory, cgi ? ChainMode::Cgi : ChainMode::Daemon);
        const std::string shown =
            r.opts.from_section ? "[root " + format_rule_prefix(r.opts.prefix) + "] " : std::string();
        if (!r.store->valid()) {
            if (cgi) return fail("cannot serve " + shown + r.store->error());
            std::fprintf(stderr, "soukd: cannot serve %s%s\n", shown.c_str(), r.store->error().c_str());
            return 1;
        }
        ServerContext rc;
        rc.params = ctx.params;
        rc.configured = {r.opts.allow_writes, r.opts.access};
        rc.live = live;
        rc.root_index = i;
        rc.store = r.store.get();
        rc.root_realpath = r.store->root_realpath();
        rc.mount = r.opts.prefix;
        make_unexported_view(rc);  // after the store and root: the view copies them
        if (!r.opts.allow_writes && (r.opts.access.allow_anonymous_writes || r.opts.access.restricts_writes()))
            SOUK_LOG(Warn, "%s--allow-anonymous-writes, --read-only and --writers have no effect without --allow-writes "
                           "(this root is written by nobody)", shown.c_str());
        prepare_writes(r, ctx.params, cgi || inet);
        if (!opts.sections.empty())
            SOUK_LOG(Info, "root %s: %s (%s)", format_rule_prefix(r.opts.prefix).c_str(), rc.root_realpath.c_str(),
                     r.opts.allow_writes ? "read-write" : "read-only");
        root_ctxs.push_back(std::move(rc));
    }
    if (opts.sections.empty()) {
        ctx = std::move(root_ctxs[0]);  // the one root (-d / directory), at "/"
    } else {
        // A server of several roots: the pipeline picks one per request,
        // by the longest prefix.
        ctx.live = live;
        ctx.configured = root_ctxs[0].configured;
        ctx.root_realpath = root_ctxs[0].root_realpath;  // for the logs and --stats-path
        ctx.nowhere = make_nowhere(ctx.params);
        std::stable_sort(root_ctxs.begin(), root_ctxs.end(),
                         [](const ServerContext& a, const ServerContext& b) { return a.mount.size() > b.mount.size(); });
        ctx.roots = std::move(root_ctxs);
        // The process's counters go to the first root's segment (each
        // chain pointed them at its own): docs/metrics.md#several-roots.
        if (shm::Segment* seg = served[0].store->segment()) set_counters(&seg->counters());
    }

    if (!cgi && !inet) {
        fit_connections_to_fd_limit(ctx.params);
        opts.params.max_connections = ctx.params.max_connections;  // what SIGHUP compares with
    }
    // Writes to a vanished peer fail with EPIPE instead of killing us.
    ::signal(SIGPIPE, SIG_IGN);

    if (cgi) return run_cgi(ctx, http.web);
    if (inet) {
        // stdout carries only protocol bytes
        // (docs/conventions.md#logs-never-on-the-protocol-channel).
        souk::io::Stream stdio(STDIN_FILENO, STDOUT_FILENO, false);
        // The forced command's --user, else the account sshd runs us as.
        const std::string peer = log::inet_peer(), user = !opts.user.empty() ? opts.user : log::inet_user();
        const log::Origin origin{"inet", peer.c_str(), user.c_str()};
        SessionEnd end = serve_stream(ctx, stdio, origin);
        return (end == SessionEnd::Eof || end == SessionEnd::IdleTimeout) ? 0 : 1;
    }
    // systemd (docs/install.md#systemd): each carrier on the socket it
    // passed (a passed socket asks for its carrier), and READY=1 once every
    // carrier listens.
    if (std::string refused = want_fastcgi ? adopt_passed_sockets(nullptr, nullptr) : adopt_passed_sockets(&tcp, &http);
        !refused.empty())
        return fail(refused);
    if (tcp.passed_fd >= 0) tcp_explicit = true;
    if (http.passed_fd >= 0) want_http = true;
    const bool want_tcp = !want_fastcgi && (!want_http || tcp_explicit);
    std::atomic<int> not_listening{want_fastcgi ? 1 : int(want_tcp) + int(want_http)};
    tcp.on_listening = http.on_listening = fastcgi.on_listening = [&not_listening] {
        if (--not_listening == 0) souk::io::notify_service_manager("READY=1");
    };
    // A daemon: the carriers run on their threads, this thread watches
    // the signals.
    int tcp_rc = 0, http_rc = 0;
    std::atomic<int> running{0};
    auto carrier = [&](auto serve_fn, int& rc) {
        ++running;
        int* out = &rc;
        return std::thread([&running, serve_fn, out] {
            *out = serve_fn();
            g_stop = true;  // one carrier ending (failing to bind, say) stops the other
            souk::server::wake_waiters();
            --running;
            wake_watcher();
        });
    };
    std::vector<std::thread> carriers;
    if (want_fastcgi) {
        fastcgi.web = http.web;
        carriers.push_back(carrier([&] { return serve_fastcgi(ctx, fastcgi, &g_stop); }, tcp_rc));
    } else {
        if (want_tcp) carriers.push_back(carrier([&] { return serve_tcp(ctx, tcp, &g_stop); }, tcp_rc));
        if (want_http) carriers.push_back(carrier([&] { return serve_http(ctx, http, &g_stop); }, http_rc));
    }
    bool stopping = false;
    using Clock = std::chrono::steady_clock;
    Clock::time_point give_up{};
    for (;;) {  // bounded: until the carriers have ended, or the shutdown's bound
        int timeout = -1;
        if (stopping) {
            if (running == 0) break;
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(give_up - Clock::now()).count();
            if (left <= 0) {
                SOUK_LOG(Warn, "shutdown: the carriers did not end within --shutdown-grace plus 10 s; exiting");
                std::_Exit(tcp_rc ? tcp_rc : http_rc);  // carrier threads still use this frame
            }
            timeout = static_cast<int>(left);
        }
        pollfd pfd{g_signal_fd, POLLIN, 0};
        (void)::poll(&pfd, 1, timeout);
        uint64_t drained;
        (void)!::read(g_signal_fd, &drained, sizeof drained);
        if (g_reload) {
            g_reload = 0;
            if (!stopping) reload(cl, opts, ctx, served);
        }
        if (g_stop && !stopping) {
            stopping = true;
            souk::io::notify_service_manager("STOPPING=1");  // at the start of the drain (docs/install.md#systemd)
            // The carriers bound their own drains by --shutdown-grace; this
            // is the backstop should one not return.
            give_up = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(ctx.params.shutdown_grace + 10));
        }
    }
    for (auto& t : carriers) t.join();
    return tcp_rc ? tcp_rc : http_rc;
}
