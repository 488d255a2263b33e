#include "server/carriers/tcp_server.hpp"

#include <cstdio>

#include "server/base/log.hpp"
#include "server/carriers/waiter.hpp"
#include "transport/net.hpp"

namespace souk::server {

int serve_tcp(const ServerContext& ctx, const TcpOptions& opts, const volatile sig_atomic_t* stop) {
    std::string err;
    // A deep backlog: connections wait in the kernel, not in a thread.
    io::Fd listener = io::listen_tcp(opts.address, opts.port, 1024, &err);
    if (!listener) {
        std::fprintf(stderr, "soukd: %s\n", err.c_str());
        return 1;
    }
    uint16_t port = io::bound_port(listener.get());
    if (!opts.port_file.empty() && !io::write_port_file(opts.port_file, port)) {
        std::fprintf(stderr, "soukd: cannot write --port-file %s\n", opts.port_file.c_str());
        return 1;
    }
    SOUK_LOG(Info, "serving %s on bzr://%s:%u/ (%s)", ctx.root_realpath.c_str(), opts.address.c_str(), port,
             ctx.allow_writes ? "read-write" : "read-only");
    // Acceptor, epoll waiter and worker pool (server/carriers/waiter.hpp).
    return run_waiter(ctx, std::move(listener), stop);
}

}  // namespace souk::server
