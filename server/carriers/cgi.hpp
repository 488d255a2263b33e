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
#pragma once

#include <cstdint>
#include <string>

#include "server/verbs/dispatch.hpp"
#include "server/carriers/web.hpp"

namespace souk::server {

// Answer the request in the environment. Returns the process exit status
// (0 whenever a response was written).
int run_cgi(const ServerContext& ctx, const WebOptions& opts);

// Answer with `status` and a one-line text body, for failures found before
// a request can be served (no root configured, bad options). Returns 0.
int cgi_fail(int status, const std::string& message);

// The body length CONTENT_LENGTH announces: -1 when absent or empty (read to
// EOF), -2 when malformed or overflowing, else the value. (For unit tests.)
int64_t parse_content_length(const char* value);

}  // namespace souk::server
