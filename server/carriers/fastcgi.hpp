// The FastCGI carrier (docs/protocol/fastcgi.md): a persistent responder that
// nginx's fastcgi_pass and Apache's mod_proxy_fcgi talk to directly. Each
// request's PARAMS become the CGI-shaped request of cgi.hpp and are served
// by serve_gateway (handle_web, SmartExchange), so FastCGI answers exactly
// what CGI and soukd's HTTP server answer.
//
//  * Listens on a unix socket (`unix:/run/souk/fcgi.sock`, created with
//    --fastcgi-socket-mode, a stale file replaced, removed at exit) or TCP
//    (`ADDR:PORT`).
//  * On the waiter of waiter.hpp, as bzr:// and HTTP: idle and
//    half-arrived requests hold no thread; a request goes to one of at
//    most --fastcgi-workers workers once it has arrived whole
//    (fcgi::measure_request), or streams if larger than --arrival-bytes.
//    Kept-alive connections (FCGI_KEEP_CONN) park between requests.
//  * One request at a time per connection (FCGI_MPXS_CONNS=0): a second
//    BEGIN_REQUEST gets END_REQUEST with CANT_MPX_CONN; roles other than
//    RESPONDER get UNKNOWN_ROLE.
//  * The served root and writes come from soukd's own options only: PARAMS
//    such as SOUK_ROOT are ignored (docs/protocol/fastcgi.md#what-the-web-server-cannot-change).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "server/carriers/web.hpp"
#include "server/verbs/dispatch.hpp"

namespace souk::server {

struct FastcgiOptions {
    std::string unix_path;  // set: a unix socket; else TCP address:port
    std::string address = "127.0.0.1";
    uint16_t port = 0;
    unsigned socket_mode = 0660;
    WebOptions web;
    std::function<void()> on_listening;  // called once listening (systemd readiness)
};

// Parse "unix:/path" or "ADDR:PORT" into `out`. Returns "" or what is wrong.
std::string parse_fastcgi_address(const std::string& text, FastcgiOptions& out);
// Parse an octal mode ("0660", "660"). Returns "" or what is wrong.
std::string parse_socket_mode(const std::string& text, unsigned& mode);

// Serve until *stop; whoever sets it then calls wake_waiters()
// (server/carriers/waiter.hpp). Requests in progress finish; idle
// connections are closed. Returns a process exit code; prints why on
// failure.
int serve_fastcgi(const ServerContext& ctx, const FastcgiOptions& opts, const std::atomic<bool>* stop);

}  // namespace souk::server
