#include "server/tcp_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>

#include "server/counters.hpp"
#include "server/log.hpp"
#include "server/session.hpp"
#include "transport/net.hpp"

namespace souk::server {
namespace {

std::string peer_name(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
    char host[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
    }
    return std::string(host) + ":" + std::to_string(port);
}

// Live connections, so that shutdown can wake their threads.
struct Registry {
    std::mutex mu;
    std::condition_variable cv;
    std::set<int> fds;
};

bool write_port_file(const std::string& path, uint16_t port) {
    std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) return false;
    std::fprintf(f, "%u\n", port);
    if (std::fclose(f) != 0) return false;
    return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int serve_tcp(const ServerContext& ctx, const TcpOptions& opts, const volatile sig_atomic_t* stop) {
    std::string err;
    io::Fd listener = io::listen_tcp(opts.address, opts.port, 128, &err);
    if (!listener) {
        std::fprintf(stderr, "soukd: %s\n", err.c_str());
        return 1;
    }
    uint16_t port = io::bound_port(listener.get());
    if (!opts.port_file.empty() && !write_port_file(opts.port_file, port)) {
        std::fprintf(stderr, "soukd: cannot write --port-file %s\n", opts.port_file.c_str());
        return 1;
    }
    SOUK_LOG(Info, "serving %s on bzr://%s:%u/ (%s)", ctx.root_realpath.c_str(), opts.address.c_str(), port,
             ctx.allow_writes ? "read-write" : "read-only");

    Registry reg;
    size_t cap = static_cast<size_t>(ctx.params.max_connections);
    while (!*stop) {
        io::Fd conn = io::accept_tcp(listener.get(), 200);
        if (!conn) continue;  // timeout (re-check stop) or transient error
        std::string peer = peer_name(conn.get());
        {
            std::lock_guard<std::mutex> lock(reg.mu);
            if (reg.fds.size() >= cap) {
                SOUK_LOG(Warn, "%s: refused, %zu connections already (--max-connections)", peer.c_str(), cap);
                count(counters().connections_refused);
                continue;  // closes conn
            }
            reg.fds.insert(conn.get());
        }
        count(counters().connections_accepted);
        int fd = conn.release();
        std::thread([&ctx, &reg, fd, peer] {
            {
                io::Stream stream{io::Fd(fd)};
                SOUK_LOG(Debug, "%s: connected", peer.c_str());
                SessionEnd why = serve_stream(ctx, stream, peer);
                SOUK_LOG(Debug, "%s: closed (%s)", peer.c_str(), to_string(why));
                std::lock_guard<std::mutex> lock(reg.mu);
                reg.fds.erase(fd);
                // Notify under the lock: once it is released the acceptor may
                // return and `reg` be gone. The stream closes fd after that,
                // when the registry no longer names it (shutdown never
                // touches a reused descriptor).
                reg.cv.notify_all();
            }
        }).detach();
    }
    listener.reset();
    // Wake every session (they see EOF) and wait, bounded, for them to end.
    std::unique_lock<std::mutex> lock(reg.mu);
    for (int fd : reg.fds) ::shutdown(fd, SHUT_RDWR);
    reg.cv.wait_for(lock, std::chrono::seconds(10), [&] { return reg.fds.empty(); });
    if (!reg.fds.empty()) {
        SOUK_LOG(Warn, "%zu connections still open at shutdown", reg.fds.size());
        std::_Exit(0);  // their threads still use this frame: do not unwind under them
    }
    return 0;
}

}  // namespace souk::server
