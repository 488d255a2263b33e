// The CGI carrier (RFC 3875; docs/protocol/http.md#cgi): one request from the
// environment and stdin, one response on stdout, then exit. Start-up does
// almost nothing (no threads, no directory scan), so a request costs little
// more than fork + exec. Works behind nginx + fcgiwrap and Apache mod_cgi(d).
//
//  * The path: PATH_INFO, or, when a prefix is configured (SOUK_PREFIX or
//    --prefix), REQUEST_URI (percent-decoded, query dropped) minus it.
//  * The body (POST only): exactly CONTENT_LENGTH bytes; to EOF when it is
//    absent or empty; up to --max-body (413 beyond); 400 for a malformed or
//    overflowing value or a body shorter than announced; 408 when stdin
//    does not deliver within --cgi-read-timeout. The whole body is read
//    before anything is written.
//  * Every failure is a `Status:` line with a short text body.
//
// The FastCGI carrier (fastcgi.cpp) brings the same CGI-shaped request in
// PARAMS and STDIN records and answers it with serve_gateway too, so both
// behave alike (docs/protocol/fastcgi.md#from-params-to-a-request).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "server/verbs/dispatch.hpp"
#include "server/carriers/web.hpp"
#include "transport/sink.hpp"
#include "transport/stream.hpp"

namespace souk::server {

// One CGI-shaped request: its meta-variables (RFC 3875) and its body.
class GatewayRequest {
public:
    virtual ~GatewayRequest() = default;
    // A meta-variable ("" when absent), and whether it is present.
    virtual std::string var(std::string_view name) const = 0;
    virtual bool has(std::string_view name) const = 0;
    // Total size of the HTTP_* variables: the request's header block.
    virtual uint64_t header_bytes() const = 0;
    // The next bytes of the body: > 0 read, 0 at its end, -1 with errno
    // (ETIMEDOUT past `deadline`, ECONNABORTED when the web server aborted).
    virtual ssize_t read_body(char* buf, size_t n, io::Deadline deadline) = 0;
};

struct GatewayOptions {
    // Take the path from REQUEST_URI (decoded, query dropped) minus the
    // prefix, instead of PATH_INFO.
    bool path_from_uri = false;
    // The deadline for reading the whole body, in seconds.
    double body_timeout = 30;
    const char* carrier = "cgi";  // names the carrier in logs and access lines
    // A file reply (get, readv) longer than this, in bytes, streams with
    // its Content-Length (large ranges with sendfile) instead of being
    // gathered whole first. A persistent process gathers into warm buffers;
    // a CGI process's buffers are all fresh pages, each a page fault, so
    // it gathers at most what one pipe buffer holds (kCgiInlineFile).
    uint64_t inline_file = SmartExchange::kInlineReply;
    // CGI: stdout, a pipe grown to hold a streamed reply of a known length
    // (up to kCgiPipeMax), so the process writes it and exits without
    // waiting for the web server to read each 64 KiB. -1: none.
    int out_pipe = -1;
};
// A CGI process gathers at most one default pipe buffer (64 KiB).
inline constexpr uint64_t kCgiInlineFile = 64 * 1024;
// The most a CGI process grows its stdout pipe to: Linux's default
// pipe-max-size, what an unprivileged process may ask for.
inline constexpr uint64_t kCgiPipeMax = 1024 * 1024;

// Answer `req` on `out`: a `Status:` line, headers, the body. Returns false
// when the response could not be written whole.
bool serve_gateway(const ServerContext& ctx, const WebOptions& opts, const GatewayOptions& gw, GatewayRequest& req,
                   io::Sink& out);

// Answer the request in the environment. Returns the process exit status
// (0 whenever a response was written).
int run_cgi(const ServerContext& ctx, const WebOptions& opts);

// Answer with `status` and a one-line text body, for failures found before
// a request can be served (no root configured, bad options). Returns 0.
int cgi_fail(int status, const std::string& message);

// The meta-variable that carries a request header: "If-None-Match" ->
// HTTP_IF_NONE_MATCH (RFC 3875's rule for HTTP_* variables).
std::string header_var(std::string_view name);

// The body length CONTENT_LENGTH announces: -1 when absent or empty (read to
// EOF), -2 when malformed or overflowing, else the value. (For unit tests.)
int64_t parse_content_length(const char* value);

}  // namespace souk::server
