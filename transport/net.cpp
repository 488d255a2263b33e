#include "transport/net.hpp"

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace souk::io {
namespace {

std::string gai_message(int rc) { return ::gai_strerror(rc); }

struct AddrInfo {
    addrinfo* ai = nullptr;
    ~AddrInfo() {
        if (ai) ::freeaddrinfo(ai);
    }
};

}  // namespace

Fd listen_tcp(const std::string& host, uint16_t port, int backlog, std::string* err) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    AddrInfo res;
    std::string service = std::to_string(port);
    int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res.ai);
    if (rc != 0) {
        if (err) *err = "cannot resolve " + host + ": " + gai_message(rc);
        errno = EHOSTUNREACH;
        return Fd();
    }
    int last_errno = 0;
    for (addrinfo* a = res.ai; a; a = a->ai_next) {
        Fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
        if (!fd) { last_errno = errno; continue; }
        int one = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd.get(), backlog) == 0) return fd;
        last_errno = errno;
    }
    if (err) *err = "cannot listen on " + host + ":" + service + ": " + ::strerror(last_errno);
    return Fd();
}

Fd listen_unix(const std::string& path, unsigned mode, int backlog, uint64_t* ino, std::string* err) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof sa.sun_path) {
        if (err) *err = "unix socket path must be 1 to " + std::to_string(sizeof sa.sun_path - 1) + " bytes: " + path;
        return Fd();
    }
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            if (err) *err = path + " exists and is not a socket: not replacing it";
            return Fd();
        }
        Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
            if (err) *err = "another server is listening on " + path;
            return Fd();
        }
        if (errno != ECONNREFUSED && errno != ENOENT) {
            if (err) *err = "cannot check the old socket " + path + ": " + ::strerror(errno);
            return Fd();
        }
        ::unlink(path.c_str());  // stale: its server is gone
    }
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        if (err) *err = std::string("socket: ") + ::strerror(errno);
        return Fd();
    }
    // Created with no access beyond `mode` from its first instant, then set
    // to exactly `mode`. (umask is process-wide: this runs at start-up.)
    const mode_t old = ::umask(static_cast<mode_t>(~mode & 0777));
    const int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    const int bind_errno = errno;
    ::umask(old);
    if (rc != 0) {
        if (err) *err = "cannot bind " + path + ": " + ::strerror(bind_errno);
        return Fd();
    }
    if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0 || ::listen(fd.get(), backlog) != 0 ||
        ::lstat(path.c_str(), &st) != 0) {
        if (err) *err = "cannot listen on " + path + ": " + ::strerror(errno);
        ::unlink(path.c_str());
        return Fd();
    }
    if (ino) *ino = static_cast<uint64_t>(st.st_ino);
    return fd;
}

void remove_unix_socket(const std::string& path, uint64_t ino) {
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && static_cast<uint64_t>(st.st_ino) == ino)
        ::unlink(path.c_str());
}

uint16_t bound_port(int listen_fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    return 0;
}

Fd accept_tcp(int listen_fd, int timeout_ms) {
    for (;;) {
        struct pollfd p = {listen_fd, POLLIN, 0};
        int r = ::poll(&p, 1, timeout_ms);
        if (r == 0) {
            errno = ETIMEDOUT;
            return Fd();
        }
        if (r < 0) {
            if (errno == EINTR) continue;
            return Fd();
        }
        int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return Fd(fd);
        }
        if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
        return Fd();
    }
}

Fd connect_tcp(const std::string& host, uint16_t port, int timeout_ms, std::string* err) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    AddrInfo res;
    std::string service = std::to_string(port);
    int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res.ai);
    if (rc != 0) {
        if (err) *err = "cannot resolve " + host + ": " + gai_message(rc);
        errno = EHOSTUNREACH;
        return Fd();
    }
    int last_errno = 0;
    for (addrinfo* a = res.ai; a; a = a->ai_next) {
        Fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
        if (!fd) { last_errno = errno; continue; }
        if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
            if (errno != EINPROGRESS) { last_errno = errno; continue; }
            struct pollfd p = {fd.get(), POLLOUT, 0};
            int r;
            do r = ::poll(&p, 1, timeout_ms); while (r < 0 && errno == EINTR);
            if (r == 0) { last_errno = ETIMEDOUT; continue; }
            int soerr = 0;
            socklen_t len = sizeof soerr;
            ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soerr, &len);
            if (soerr != 0) { last_errno = soerr; continue; }
        }
        int one = 1;
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return fd;
    }
    if (err) *err = "cannot connect to " + host + ":" + service + ": " + ::strerror(last_errno);
    errno = last_errno;
    return Fd();
}

Child spawn(const std::vector<std::string>& argv, std::string* err) {
    Child child;
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0) {
        if (err) *err = std::string("pipe: ") + ::strerror(errno);
        return child;
    }
    if (::pipe2(from_child, O_CLOEXEC) != 0) {
        if (err) *err = std::string("pipe: ") + ::strerror(errno);
        ::close(to_child[0]);
        ::close(to_child[1]);
        return child;
    }
    posix_spawn_file_actions_t fa;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawn_file_actions_adddup2(&fa, to_child[0], 0);
    ::posix_spawn_file_actions_adddup2(&fa, from_child[1], 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
    ::posix_spawn_file_actions_destroy(&fa);
    ::close(to_child[0]);
    ::close(from_child[1]);
    if (rc != 0) {
        if (err) *err = "cannot run " + argv[0] + ": " + ::strerror(rc);
        ::close(to_child[1]);
        ::close(from_child[0]);
        return child;
    }
    child.pid = pid;
    child.stream = Stream(from_child[0], to_child[1], true);
    return child;
}

int wait_child(pid_t pid) {
    int status = 0;
    for (;;) {
        pid_t r = ::waitpid(pid, &status, 0);
        if (r == pid) return status;
        if (r < 0 && errno == EINTR) continue;
        return -1;
    }
}

bool write_port_file(const std::string& path, uint16_t port) {
    std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) return false;
    std::fprintf(f, "%u\n", port);
    if (std::fclose(f) != 0) return false;
    return std::rename(tmp.c_str(), path.c_str()) == 0;
}

std::vector<PassedSocket> take_passed_sockets() {
    std::vector<PassedSocket> out;
    const char* pid = std::getenv("LISTEN_PID");
    const char* fds = std::getenv("LISTEN_FDS");
    const char* names = std::getenv("LISTEN_FDNAMES");
    long n = 0;
    if (pid && fds && std::strtol(pid, nullptr, 10) == static_cast<long>(::getpid())) n = std::strtol(fds, nullptr, 10);
    const long max_fds = 1024;  // a sanity bound: systemd passes a handful
    std::string rest = names ? names : "";
    for (long i = 0; i < n && i < max_fds; ++i) {
        const int fd = 3 + static_cast<int>(i);  // SD_LISTEN_FDS_START
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        size_t colon = rest.find(':');
        std::string name = rest.substr(0, colon);
        rest = colon == std::string::npos ? std::string() : rest.substr(colon + 1);
        out.push_back({Fd(fd), std::move(name)});
    }
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    return out;
}

bool is_listening_stream(int fd) {
    int type = 0, listening = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return false;
    len = sizeof listening;
    return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening;
}

bool notify_service_manager(const char* state) {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (!path || (path[0] != '/' && path[0] != '@')) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const size_t len = std::strlen(path);
    if (len >= sizeof addr.sun_path) return false;
    std::memcpy(addr.sun_path, path, len);
    if (path[0] == '@') addr.sun_path[0] = '\0';  // abstract: the name is the bytes after the NUL, unterminated
    const socklen_t addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len + (path[0] == '/'));
    Fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) return false;
    const size_t n = std::strlen(state);
    return ::sendto(fd.get(), state, n, MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), addr_len) ==
           static_cast<ssize_t>(n);
}

}  // namespace souk::io
