#include "server/carriers/activation.hpp"

#include <vector>

#include "transport/net.hpp"

namespace souk::server {

std::string adopt_passed_sockets(TcpOptions* tcp, HttpOptions* http) {
    std::vector<io::PassedSocket> passed = io::take_passed_sockets();
    io::PassedSocket* bzr = nullptr;
    io::PassedSocket* web = nullptr;
    for (io::PassedSocket& p : passed) {  // bounded: take_passed_sockets' cap
        const std::string fd = "descriptor " + std::to_string(p.fd.get());
        const bool is_bzr = p.name == "bzr";
        if (!is_bzr && p.name != "http")
            return "systemd passed " + fd +
                   (p.name.empty() ? std::string(" with no name") : " named '" + p.name + "'") +
                   "; soukd serves a socket named bzr (bzr://) or http (HTTP): set FileDescriptorName= in the "
                   "socket unit (systemd-socket-activate --fdname=)";
        io::PassedSocket*& slot = is_bzr ? bzr : web;
        if (slot)
            return "systemd passed two sockets named " + p.name + "; soukd serves each carrier on one " +
                   "(one ListenStream= per socket unit: [::]:PORT takes IPv4 too)";
        if (is_bzr ? tcp == nullptr : http == nullptr)
            return "systemd passed a socket named " + p.name + ", but this soukd serves no " +
                   (is_bzr ? "bzr://" : "HTTP") + " (soukd serve --fastcgi serves FastCGI on its own socket)";
        if (!io::is_listening_stream(p.fd.get()))
            return "systemd passed " + fd + " (" + p.name +
                   "), which is not a listening stream socket (Accept=yes units run soukd serve --inet)";
        slot = &p;
    }
    if (bzr) tcp->passed_fd = bzr->fd.release();
    if (web) http->passed_fd = web->fd.release();
    return "";
}

}  // namespace souk::server
