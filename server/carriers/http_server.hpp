// soukd's own HTTP/1.1 carrier (docs/protocol/http.md#soukds-own-http-server):
// HTTP framing (protocol/http1.hpp) on the waiter of waiter.hpp, so idle
// and half-arrived requests hold no thread; --http-workers serve requests
// that have arrived; each is answered by the gateway CGI and FastCGI use
// (serve_gateway, cgi.hpp). Runs until *stop becomes true.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "server/verbs/dispatch.hpp"
#include "server/carriers/web.hpp"

namespace souk::server {

struct HttpOptions {
    std::string address = "127.0.0.1";
    uint16_t port = 8080;       // 0 picks a free port
    std::string port_file;      // if set, the bound port is written here once listening
    int passed_fd = -1;         // a listening socket from systemd (activation.hpp): served instead of binding; serve_http owns it
    std::function<void()> on_listening;  // called once listening (systemd readiness)
    WebOptions web;
};

// Parse "ADDR:PORT" ("127.0.0.1:8080", "[::1]:8080", ":8080" = all
// addresses) for `option` ("--http", "--fastcgi"). Returns "" or what is
// wrong.
std::string parse_host_port(const char* option, const std::string& text, std::string& host, uint16_t& port);
std::string parse_http_address(const std::string& text, HttpOptions& out);

// Serve until *stop; whoever sets it then calls wake_waiters()
// (server/carriers/waiter.hpp). Returns a process exit code; prints why
// on failure.
int serve_http(const ServerContext& ctx, const HttpOptions& opts, const std::atomic<bool>* stop);

}  // namespace souk::server
