// The web carriers' shared request logic (DESIGN.md 3.3): one function turns
// an HTTP request into a response, whatever brought it in: soukd's own HTTP
// server (http_server.cpp, cpp-httplib) or CGI (cgi.cpp, environment +
// stdin). Carriers only translate; they never know a verb or a range.
//
//  * POST <path>/.bzr/smart: the body is one smart request of any version;
//    relative client paths start at <path>, the jail stays the served root
//    (spec 11.3). Answer 200 application/octet-stream with the response.
//    Other methods there: 405 with Allow: POST.
//  * GET/HEAD of a file: Range (one range 206, several 206
//    multipart/byteranges, 416 when none is satisfiable), ETag and
//    Last-Modified, If-None-Match / If-Modified-Since (304), If-Range.
//  * Accept-Encoding: zstd: Content-Encoding: zstd on 200 responses when it
//    saves bytes (never on 206: ranges address the identity bytes).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/verbs/dispatch.hpp"

namespace souk::server {

struct WebOptions {
    // The URL prefix that corresponds to the served root ("" or "/bzr"):
    // requests outside it get 404.
    std::string prefix;
    // GET/HEAD here (a path below the prefix, e.g. "/.souk/stats") answers
    // the counters of `soukd stats`: JSON, or Prometheus text when the
    // Accept header asks for text/plain or OpenMetrics. "" = off (default).
    std::string stats_path;
};

struct WebRequest {
    std::string_view method;  // "GET", "HEAD", "POST", ...
    std::string_view path;    // the URL path, already percent-decoded, no query
    std::string_view body;    // POST: the whole body
    // A request header by name (case-insensitive), "" when absent.
    std::function<std::string(std::string_view name)> header;
};

struct WebResponse {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;  // excluding Content-Length
    // The body: `body` in memory, or, when `pieces` is not empty, each
    // piece's text followed by `length` bytes of `file` from `offset`.
    std::string body;
    struct Piece {
        std::string text;
        uint64_t offset = 0, length = 0;
    };
    OpenFile file;
    std::vector<Piece> pieces;
    bool head = false;  // HEAD: send the headers (and Content-Length) only

    uint64_t content_length() const;
    const std::string* find_header(std::string_view name) const;
};

// Answer one request. Never throws (except std::bad_alloc); every failure
// is a status with a short text/plain body that names no server path.
void handle_web(const ServerContext& ctx, const WebOptions& opts, const WebRequest& req, WebResponse& out);

// The reason phrase of a status ("Not Found"); "Unknown" for others.
const char* status_text(int status);

// Helpers, exposed for unit tests.
// Whether an Accept-Encoding value accepts `coding` (a token with q > 0).
bool accepts_coding(std::string_view accept_encoding, std::string_view coding);
// Parse an HTTP-date (IMF-fixdate, RFC 850 or asctime); -1 if malformed.
int64_t parse_http_date(std::string_view s);
std::string format_http_date(int64_t unix_seconds);
// A Range header for a file of `size` bytes. Returns 1 with `out` holding the satisfiable ranges as
// (offset, length) in the order given, or 416 when none is satisfiable or
// the value is malformed or not in bytes (what cpp-httplib answers too, so
// both web carriers agree). More than max_ranges entries: 0 (serve the whole file,
// as nginx and Apache do).
int parse_range_header(std::string_view value, uint64_t size, size_t max_ranges,
                       std::vector<std::pair<uint64_t, uint64_t>>& out);

}  // namespace souk::server
