// systemd socket activation (docs/install.md#systemd): each listening
// socket systemd passed goes to the carrier its FileDescriptorName= names.
#pragma once

#include <string>

#include "server/carriers/http_server.hpp"
#include "server/carriers/tcp_server.hpp"

namespace souk::server {

// Take the sockets systemd passed (LISTEN_FDS, LISTEN_FDNAMES): the one
// named "bzr" becomes tcp->passed_fd, the one named "http"
// http->passed_fd (the carriers then own them). A null tcp or http: this
// soukd serves no such carrier (soukd serve --fastcgi passes both null).
// Returns "" when done, or when nothing was passed; else why soukd cannot
// serve what it was given (a name other than bzr or http, or none; two
// sockets of one name; a socket for a carrier not served; a descriptor
// that is not a listening stream socket), and then adopts none. Call
// once, before any thread starts.
std::string adopt_passed_sockets(TcpOptions* tcp, HttpOptions* http);

}  // namespace souk::server
