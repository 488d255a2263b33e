#include "server/carriers/tcp_server.hpp"

#include <cstdio>
#include <string>
#include <vector>

#include "server/base/log.hpp"
#include "server/carriers/waiter.hpp"
#include "transport/net.hpp"

namespace souk::server {

std::string adopt_passed_socket(TcpOptions& opts) {
    std::vector<io::PassedSocket> passed = io::take_passed_sockets();
    for (const io::PassedSocket& p : passed) {
        if (p.name == "http")
            return "systemd passed a socket named http, but soukd's HTTP server binds its own (--http): "
                   "only bzr:// can be socket-activated";
        if (!io::is_listening_stream(p.fd.get()))
            return "systemd passed descriptor " + std::to_string(p.fd.get()) +
                   ", which is not a listening stream socket (Accept=yes units run soukd serve --inet)";
    }
    if (passed.size() > 1)
        return "systemd passed " + std::to_string(passed.size()) +
               " sockets; soukd serves bzr:// on one (one ListenStream=: [::]:4155 takes IPv4 too)";
    if (passed.size() == 1) opts.passed_fd = passed[0].fd.release();
    return "";
}

int serve_tcp(const ServerContext& ctx, const TcpOptions& opts, const volatile sig_atomic_t* stop) {
    std::string err;
    // A deep backlog: connections wait in the kernel, not in a thread.
    io::Fd listener = opts.passed_fd >= 0 ? io::Fd(opts.passed_fd) : io::listen_tcp(opts.address, opts.port, 1024, &err);
    if (!listener) {
        std::fprintf(stderr, "soukd: %s\n", err.c_str());
        return 1;
    }
    uint16_t port = io::bound_port(listener.get());
    if (!opts.port_file.empty() && !io::write_port_file(opts.port_file, port)) {
        std::fprintf(stderr, "soukd: cannot write --port-file %s\n", opts.port_file.c_str());
        return 1;
    }
    SOUK_LOG(Info, "serving %s on bzr://%s:%u/ (%s%s)", ctx.root_realpath.c_str(),
             opts.passed_fd >= 0 ? "*" : opts.address.c_str(), port, ctx.allow_writes ? "read-write" : "read-only",
             opts.passed_fd >= 0 ? ", socket from systemd" : "");
    if (opts.on_listening) opts.on_listening();
    // Acceptor, epoll waiter and worker pool (server/carriers/waiter.hpp).
    int rc = run_waiter(ctx, std::move(listener), stop);
    if (*stop) io::notify_service_manager("STOPPING=1");
    return rc;
}

}  // namespace souk::server
