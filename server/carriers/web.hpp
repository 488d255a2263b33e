// The web carriers' shared request logic (docs/protocol/http.md): one function turns
// an HTTP request into a response, whatever brought it in: soukd's own HTTP
// server (http_server.cpp) or CGI (cgi.cpp, environment +
// stdin). Carriers only translate; they never know a verb or a range.
//
//  * POST <path>/.bzr/smart: the body is one smart request of any version;
//    relative client paths start at <path>, the jail stays the served root
//    (docs/protocol/http.md#post-to-bzrsmart). Answer 200 application/octet-stream with the response.
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

#include "server/request/pipeline.hpp"
#include "server/verbs/dispatch.hpp"
#include "transport/sink.hpp"

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
    Store* store = nullptr;  // the store chain `file` was opened through
    std::vector<Piece> pieces;
    bool head = false;  // HEAD: send the headers (and Content-Length) only
    // A smart request (status 200, headers set): the carrier streams the
    // request body through a SmartExchange rooted at smart_base.
    bool smart = false;
    std::string smart_base;

    uint64_t content_length() const;
    const std::string* find_header(std::string_view name) const;
};

// Route one request and answer it, except the body of a smart request
// (out.smart): the carrier then runs a SmartExchange. Never throws (except
// std::bad_alloc); every failure is a status with a short text/plain body
// that names no server path. Reads no request body.
void handle_web(const ServerContext& ctx, const WebOptions& opts, const WebRequest& req, WebResponse& out);

// One smart request over HTTP or CGI: the POST body is fed to the request
// pipeline as it arrives, and the reply is written to the carrier's Sink,
// zstd-compressed when the client accepts it and the body is worth it.
class SmartExchange {
public:
    // Replies up to this body size (generated ones included) are written
    // whole, with a Content-Length; larger ones stream (chunked, or to EOF
    // for CGI) (docs/protocol/http.md#a-reply-must-end-where-the-client-stops-reading).
    static constexpr uint64_t kInlineReply = 256 * 1024;

    // `origin` is copied (the exchange may outlive the carrier's request).
    SmartExchange(const ServerContext& ctx, const log::Origin& origin, const WebRequest& req, std::string base);
    void body(std::string_view chunk);  // the next piece of the POST body
    void end();                         // the POST body is complete
    bool zstd() const;                  // after end(): Content-Encoding: zstd
    bool small() const;                 // after end(): write it whole (Content-Length)
    // After end(): the body's length when it is sent uncompressed to a sink
    // whose direct() is `direct` and known now (file ranges: get, readv), so
    // a large one gets a Content-Length and goes out with sendfile; else
    // UINT64_MAX (streamed: chunked, or to EOF).
    uint64_t length(bool direct) const;
    // After end(): write the reply (counted by the pipeline). false when it
    // could not be written whole.
    bool write(io::Sink& out);

private:
    const ServerContext& ctx_;
    const WebRequest& req_;
    std::string base_;
    std::string peer_, user_;
    log::Origin origin_;
    Pipeline pipe_;
    bool ready_ = false;
    bool zstd_ = false;
    uint64_t body_size_ = UINT64_MAX;  // the reply body's, once end() has settled it
};

// The access-log line of a web request the pipeline did not answer (a
// file GET, a refusal with an HTTP status): verb the method, result "ok"
// below 400, else "http<status>" (docs/access-log.md).
void log_web_access(const log::Origin& origin, std::string_view method, std::string_view path, int status,
                    uint64_t bytes_in, uint64_t bytes_out, uint64_t duration_us);

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
// the value is malformed or not in bytes (as cpp-httplib, the first HTTP
// carrier, answered). More than max_ranges entries: 0 (serve the whole file,
// as nginx and Apache do).
int parse_range_header(std::string_view value, uint64_t size, size_t max_ranges,
                       std::vector<std::pair<uint64_t, uint64_t>>& out);

}  // namespace souk::server
