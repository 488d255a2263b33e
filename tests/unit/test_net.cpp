// systemd's protocols in transport/net.hpp (docs/install.md#systemd):
// notify_service_manager's addressing, and take_passed_sockets ignoring
// another process's sockets. Passing a real fd 3 is tested end to end in
// tests/integration/test_systemd.py (a test process's fd 3 is not ours to replace).
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "transport/net.hpp"

using namespace souk;

namespace {

// A datagram socket bound to `name` (a leading '@': abstract); "" on failure.
io::Fd bound_datagram(const std::string& name) {
    io::Fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name.data(), name.size());
    if (name[0] == '@') addr.sun_path[0] = '\0';
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (name[0] == '/'));
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) == 0);
    return fd;
}

std::string receive(int fd) {
    char buf[256];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n < 0 ? std::string("(nothing)") : std::string(buf, static_cast<size_t>(n));
}

}  // namespace

TEST_CASE("net: notify_service_manager sends one datagram to a path or an abstract NOTIFY_SOCKET") {
    char dir[] = "/tmp/souk-notify-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    const std::string path = std::string(dir) + "/notify";
    {
        io::Fd sock = bound_datagram(path);
        ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
        CHECK(io::notify_service_manager("READY=1"));
        CHECK(receive(sock.get()) == "READY=1");
    }
    ::unlink(path.c_str());
    ::rmdir(dir);

    const std::string abstract = "@souk-unit-notify-" + std::to_string(::getpid());
    io::Fd sock = bound_datagram(abstract);
    ::setenv("NOTIFY_SOCKET", abstract.c_str(), 1);
    CHECK(io::notify_service_manager("STOPPING=1"));
    CHECK(receive(sock.get()) == "STOPPING=1");

    ::setenv("NOTIFY_SOCKET", "relative/path", 1);  // neither '/' nor '@': not a socket address
    CHECK_FALSE(io::notify_service_manager("READY=1"));
    ::setenv("NOTIFY_SOCKET", ("/" + std::string(200, 'x')).c_str(), 1);  // longer than sun_path
    CHECK_FALSE(io::notify_service_manager("READY=1"));
    ::unsetenv("NOTIFY_SOCKET");
    CHECK_FALSE(io::notify_service_manager("READY=1"));
    CHECK(receive(sock.get()) == "(nothing)");
}

TEST_CASE("net: take_passed_sockets ignores sockets passed to another process, and unsets the variables") {
    ::setenv("LISTEN_PID", std::to_string(::getpid() + 1).c_str(), 1);
    ::setenv("LISTEN_FDS", "1", 1);
    ::setenv("LISTEN_FDNAMES", "bzr", 1);
    CHECK(io::take_passed_sockets().empty());
    CHECK(std::getenv("LISTEN_PID") == nullptr);
    CHECK(std::getenv("LISTEN_FDS") == nullptr);
    CHECK(std::getenv("LISTEN_FDNAMES") == nullptr);
    CHECK(io::take_passed_sockets().empty());  // nothing set: nothing passed
}
