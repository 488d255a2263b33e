// soukd: the souk server. `soukd serve --help` for usage.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "server/dispatch.hpp"
#include "server/log.hpp"
#include "server/params.hpp"
#include "server/session.hpp"
#include "server/store/fs_store.hpp"
#include "server/tcp_server.hpp"

namespace {

volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

const char kUsage[] =
    "usage: soukd serve --inet --directory=DIR [--allow-writes] [options]\n"
    "       soukd serve [--listen ADDR] [--port N] --directory=DIR [--allow-writes] [options]\n"
    "       soukd --version\n"
    "\n"
    "Serve the Bazaar smart protocol (bzr://, bzr+ssh://) from DIR. Read-only\n"
    "unless --allow-writes. No path or symlink can reach outside DIR.\n"
    "\n"
    "  --inet                  serve one client on stdin/stdout (what bzr+ssh runs;\n"
    "                          same arguments as `bzr serve --inet`); exit 0 at EOF\n"
    "  --listen ADDR           TCP address to listen on (default 127.0.0.1)\n"
    "  --port N                TCP port (default 4155; 0 picks a free port)\n"
    "  --port-file FILE        write the bound TCP port to FILE once listening\n"
    "  --directory=DIR         the root served (required)\n"
    "  --allow-writes          accept writes (put, append, mkdir, locks, ...)\n"
    "  --log-file FILE         log there instead of stderr (stdout is never used)\n"
    "  -v, --verbose           log each connection (twice: each request)\n"
    "  -q, --quiet             log errors only\n"
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
    if (argc < 2 || std::strcmp(argv[1], "serve") != 0) return usage_error("expected a command: serve");

    ServerContext ctx;
    TcpOptions tcp;
    bool inet = false;
    std::string directory, log_file;
    int verbosity = 1;
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
        } else if (value("--port-file", v)) {
            tcp.port_file = v;
        } else if (value("--log-file", v)) {
            log_file = v;
        } else if (value("--port", v)) {
            char* end = nullptr;
            long p = std::strtol(v.c_str(), &end, 10);
            if (v.empty() || *end || p < 0 || p > 65535) return usage_error("--port: expected 0 to 65535, got " + v);
            tcp.port = static_cast<uint16_t>(p);
        } else if (parse_param(argc, argv, i, ctx.params, &err)) {
            if (!err.empty()) return usage_error(err);
        } else {
            return usage_error("unknown option " + a);
        }
        if (v == "\x01") return usage_error(a + " needs a value");
    }
    if (directory.empty()) return usage_error("--directory=DIR is required");
    if (!log::init(static_cast<log::Level>(std::min(verbosity + 1, 3)), log_file))
        return usage_error("cannot open --log-file " + log_file);

    FsStore store(directory);
    if (!store.valid()) {
        std::fprintf(stderr, "soukd: cannot serve %s\n", store.error().c_str());
        return 1;
    }
    ctx.store = &store;
    ctx.root_realpath = store.root_realpath();

    // Writes to a vanished peer fail with EPIPE instead of killing us.
    ::signal(SIGPIPE, SIG_IGN);

    if (inet) {
        // stdout carries only protocol bytes (STYLE.md 10).
        souk::io::Stream stdio(STDIN_FILENO, STDOUT_FILENO, false);
        SessionEnd why = serve_stream(ctx, stdio, "stdio");
        return (why == SessionEnd::Eof || why == SessionEnd::IdleTimeout) ? 0 : 1;
    }
    struct sigaction sa{};
    sa.sa_handler = on_stop;
    ::sigemptyset(&sa.sa_mask);
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    return serve_tcp(ctx, tcp, &g_stop);
}
