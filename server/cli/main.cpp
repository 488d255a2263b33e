// soukd: the souk server. `soukd serve --help` for usage.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <thread>
#include <vector>

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
#include "transport/net.hpp"

namespace {

volatile sig_atomic_t g_stop = 0;
void on_stop(int) {
    g_stop = 1;
    souk::server::wake_waiters();
}

const char kUsage[] =
    "usage: soukd serve --inet --directory=DIR [--allow-writes] [options]\n"
    "       soukd serve [--listen ADDR] [--port N] --directory=DIR [--allow-writes] [options]\n"
    "       soukd serve --http ADDR:PORT [--listen ADDR --port N] --directory=DIR [options]\n"
    "       soukd serve --fastcgi unix:/PATH|ADDR:PORT --directory=DIR [--allow-writes] [options]\n"
    "       soukd cgi [--directory=DIR] [--allow-writes] [--prefix /URL/PREFIX] [options]\n"
    "       soukd stats --directory=DIR [--prometheus]   (counters of every soukd serving DIR)\n"
    "       soukd --version\n"
    "\n"
    "Serve the Bazaar smart protocol (bzr://, bzr+ssh://, bzr+http://) and plain\n"
    "HTTP GETs of files from DIR. Read-only unless --allow-writes. No path or\n"
    "symlink can reach outside DIR.\n"
    "\n"
    "  --inet                  serve one client on stdin/stdout (what bzr+ssh runs;\n"
    "                          same arguments as `bzr serve --inet`); exit 0 at EOF\n"
    "  --listen ADDR           TCP address to listen on (default 127.0.0.1)\n"
    "  --port N                TCP port (default 4155; 0 picks a free port)\n"
    "  --port-file FILE        write the bound TCP port to FILE once listening\n"
    "  --http ADDR:PORT        serve HTTP: POST <path>/.bzr/smart (bzr+http://) and\n"
    "                          GET/HEAD of files with ranges; PORT 0 picks a free\n"
    "                          port. With --http, bzr:// TCP runs only when --listen,\n"
    "                          --port or --port-file is also given (one process)\n"
    "  --http-port-file FILE   write the bound HTTP port to FILE once listening\n"
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
    "  --directory=DIR         the root served (required)\n"
    "  --allow-writes          accept writes (put, append, mkdir, locks, ...)\n"
    "  --log-file FILE         log there instead of stderr (stdout is never used)\n"
    "  -v, --verbose           log each connection (twice: each request)\n"
    "  -q, --quiet             log errors only\n"
    "\n"
    "CGI (`soukd cgi`, or any invocation with GATEWAY_INTERFACE set and no `serve`):\n"
    "one request from the environment and stdin (RFC 3875). Settings also come\n"
    "from the environment: SOUK_ROOT (the directory), SOUK_ALLOW_WRITES=1,\n"
    "SOUK_PREFIX (use REQUEST_URI minus it instead of PATH_INFO), SOUK_OPTIONS\n"
    "(more options, e.g. \"--max-body=1048576 --cgi-read-timeout=10\").\n"
    "Command-line options win over the environment.\n"
    "\n"
    "Limits:\n";

int usage_error(const std::string& msg) {
    std::fprintf(stderr, "soukd: %s\n(soukd serve --help for usage)\n", msg.c_str());
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace souk::server;
    if (argc >= 2 && (!std::strcmp(argv[1], "--version") || !std::strcmp(argv[1], "version"))) {
        std::printf("soukd %s\n", SOUK_VERSION);
        return 0;
    }
    if (argc >= 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help"))) {
        std::printf("%s%s", kUsage, params_help().c_str());
        return 0;
    }
    // CGI: `soukd cgi`, or a web server ran us as a script (it may pass
    // query words as arguments, RFC 3875 4.4: ignore them).
    if (argc >= 2 && !std::strcmp(argv[1], "stats")) return stats_main(argc, argv);  // counters of every process serving DIR
    const bool gateway = std::getenv("GATEWAY_INTERFACE") != nullptr;
    const bool cgi = (argc >= 2 && !std::strcmp(argv[1], "cgi")) ||
                     (gateway && (argc < 2 || std::strcmp(argv[1], "serve") != 0));
    if (!cgi && (argc < 2 || std::strcmp(argv[1], "serve") != 0)) return usage_error("expected a command: serve or cgi");

    ServerContext ctx;
    TcpOptions tcp;
    HttpOptions http;
    FastcgiOptions fastcgi;
    bool inet = false, want_http = false, want_fastcgi = false, tcp_explicit = false;
    std::string directory, log_file;
    int verbosity = 1;
    // CGI: options from SOUK_OPTIONS first, then the command line (which wins).
    std::vector<std::string> words = {"soukd", "cgi"};
    if (cgi) {
        if (const char* r = std::getenv("SOUK_ROOT")) directory = r;
        if (const char* w = std::getenv("SOUK_ALLOW_WRITES"))
            ctx.allow_writes = !std::strcmp(w, "1") || !std::strcmp(w, "yes") || !std::strcmp(w, "true");
        if (const char* p = std::getenv("SOUK_PREFIX")) http.web.prefix = p;
        verbosity = 0;  // the web server's error log: errors only unless asked
        if (const char* o = std::getenv("SOUK_OPTIONS")) {
            std::string cur;
            for (const char* c = o;; ++c) {
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
        for (int i = 0; i < argc; ++i) words.emplace_back(argv[i]);
        words.erase(words.begin(), words.begin() + 2);  // drop the CGI placeholders
    }
    std::vector<char*> wargv;
    for (auto& w : words) wargv.push_back(w.data());
    wargv.push_back(nullptr);
    argc = static_cast<int>(words.size());
    argv = wargv.data();
    auto fail = [&](const std::string& msg) {
        if (cgi) {
            std::fprintf(stderr, "soukd cgi: %s\n", msg.c_str());
            return cgi_fail(500, "server misconfigured (see the web server's error log)");
        }
        return usage_error(msg);
    };
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&](const char* name, std::string& out) {
            std::string prefix = std::string(name) + "=";
            if (a.rfind(prefix, 0) == 0) {
                out = a.substr(prefix.size());
                return true;
            }
            if (a == name) {
                if (i + 1 >= argc) {
                    out = "\x01";  // marker: missing value
                    return true;
                }
                out = argv[++i];
                return true;
            }
            return false;
        };
        std::string v, err;
        if (a == "--help" || a == "-h") {
            std::printf("%s%s", kUsage, params_help().c_str());
            return 0;
        } else if (a == "--inet") {
            inet = true;
        } else if (a == "--allow-writes") {
            ctx.allow_writes = true;
        } else if (a == "-v" || a == "--verbose") {
            ++verbosity;
        } else if (a == "-q" || a == "--quiet") {
            verbosity = 0;
        } else if (value("--directory", v)) {
            directory = v;
        } else if (value("--listen", v)) {
            tcp.address = v;
            tcp_explicit = true;
        } else if (value("--port-file", v)) {
            tcp.port_file = v;
            tcp_explicit = true;
        } else if (value("--http-port-file", v)) {
            http.port_file = v;
        } else if (value("--stats-path", v)) {
            http.web.stats_path = v;
        } else if (value("--prefix", v)) {
            http.web.prefix = v;
        } else if (value("--http", v)) {
            if (v != "\x01") {
                std::string why = parse_http_address(v, http);
                if (!why.empty()) return fail(why);
            }
            want_http = true;
        } else if (value("--fastcgi-socket-mode", v)) {
            if (v != "\x01") {
                std::string why = parse_socket_mode(v, fastcgi.socket_mode);
                if (!why.empty()) return fail(why);
            }
        } else if (value("--fastcgi", v)) {
            if (v != "\x01") {
                std::string why = parse_fastcgi_address(v, fastcgi);
                if (!why.empty()) return fail(why);
            }
            want_fastcgi = true;
        } else if (value("--log-file", v)) {
            log_file = v;
        } else if (value("--port", v)) {
            char* end = nullptr;
            long p = std::strtol(v.c_str(), &end, 10);
            if (v.empty() || *end || p < 0 || p > 65535) return fail("--port: expected 0 to 65535, got " + v);
            tcp.port = static_cast<uint16_t>(p);
            tcp_explicit = true;
        } else if (parse_param(argc, argv, i, ctx.params, &err)) {
            if (!err.empty()) return fail(err);
        } else {
            return fail("unknown option " + a);
        }
        if (v == "\x01") return fail(a + " needs a value");
    }
    if (directory.empty()) return fail(cgi ? "no root: set SOUK_ROOT or pass --directory=DIR" : "--directory=DIR is required");
    if (!http.web.prefix.empty() && http.web.prefix[0] != '/') return fail("--prefix must start with '/'");
    if (!log::init(static_cast<log::Level>(std::min(verbosity + 1, 3)), log_file))
        return fail("cannot open --log-file " + log_file);

    StoreChain store(ctx.params, directory, cgi ? ChainMode::Cgi : ChainMode::Daemon);  // stats -> cache -> readahead -> fs
    if (!store.valid()) {
        if (cgi) return fail("cannot serve " + store.error());
        std::fprintf(stderr, "soukd: cannot serve %s\n", store.error().c_str());
        return 1;
    }
    ctx.store = &store;
    ctx.root_realpath = store.root_realpath();
    // What killed writers left (docs/store-chain.md#temporary-files): a
    // read-only server changes nothing on disk, it only hides the torn tail
    // of an unfinished append.
    store.fs().set_repair(ctx.allow_writes);
    std::unique_ptr<souk::server::TempSweeper> sweeper;  // stopped before the store goes
    if (ctx.allow_writes) {
        if (cgi || inet)  // one request or one connection: sweep only when no process has for a while
            store.fs().sweep_if_due(ctx.params.temp_sweep_interval, ctx.params.temp_stale, false, store.sweep_clock());
        else
            sweeper = std::make_unique<souk::server::TempSweeper>(store.fs(), store.sweep_clock(),
                                                                  ctx.params.temp_sweep_interval, ctx.params.temp_stale);
    }

    // Writes to a vanished peer fail with EPIPE instead of killing us.
    ::signal(SIGPIPE, SIG_IGN);

    if (cgi) return run_cgi(ctx, http.web);
    if (inet) {
        // stdout carries only protocol bytes
        // (docs/conventions.md#logs-never-on-the-protocol-channel).
        souk::io::Stream stdio(STDIN_FILENO, STDOUT_FILENO, false);
        SessionEnd why = serve_stream(ctx, stdio, "stdio");
        return (why == SessionEnd::Eof || why == SessionEnd::IdleTimeout) ? 0 : 1;
    }
    // systemd (docs/install.md#systemd): bzr:// on the socket it passed, and
    // READY=1 once every carrier listens.
    if (std::string why = adopt_passed_socket(tcp); !why.empty()) return fail(why);
    if (tcp.passed_fd >= 0) tcp_explicit = true;
    std::atomic<int> not_listening{want_http && tcp_explicit ? 2 : 1};
    tcp.on_listening = http.on_listening = fastcgi.on_listening = [&not_listening] {
        if (--not_listening == 0) souk::io::notify_service_manager("READY=1");
    };
    struct sigaction sa{};
    sa.sa_handler = on_stop;
    ::sigemptyset(&sa.sa_mask);
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    if (want_fastcgi) {
        if (want_http || tcp_explicit) return usage_error("--fastcgi runs alone (no --http, --listen or --port)");
        fastcgi.web = http.web;
        return serve_fastcgi(ctx, fastcgi, &g_stop);
    }
    if (!want_http) return serve_tcp(ctx, tcp, &g_stop);
    if (!tcp_explicit) return serve_http(ctx, http, &g_stop);
    // Both carriers in one process, sharing the context (store, params).
    int http_rc = 0;
    std::thread web([&] {
        http_rc = serve_http(ctx, http, &g_stop);
        g_stop = 1;  // one carrier failing stops the other
        souk::server::wake_waiters();
    });
    int tcp_rc = serve_tcp(ctx, tcp, &g_stop);
    g_stop = 1;
    web.join();
    return tcp_rc ? tcp_rc : http_rc;
}
