#include "server/carriers/cgi.hpp"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>

#include "server/base/log.hpp"
#include "server/store/paths.hpp"
#include "transport/sink.hpp"
#include "transport/stream.hpp"

extern char** environ;

namespace souk::server {
namespace {

std::string env(const char* name) {
    const char* v = ::getenv(name);
    return v ? std::string(v) : std::string();
}

// "If-None-Match" -> HTTP_IF_NONE_MATCH (RFC 3875 4.1.18).
std::string header_from_env(std::string_view name) {
    std::string key = "HTTP_";
    for (char c : name) key += c == '-' ? '_' : (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    return env(key.c_str());
}

// Total size of the HTTP_* variables: the request's header block.
uint64_t header_bytes() {
    uint64_t n = 0;
    for (char** e = environ; e && *e; ++e)
        if (std::strncmp(*e, "HTTP_", 5) == 0) n += std::strlen(*e) + 2;
    return n;
}

// This process's one request, for its access line
// (docs/access-log.md): set by run_cgi.
struct CgiRequest {
    std::string peer, user, method, path;
    log::Origin origin;
    io::Clock::time_point started = io::Clock::now();
    uint64_t bytes_in = 0;
};
CgiRequest g_req;

bool write_response(io::Stream& out, const ServerContext& ctx, WebResponse& r) {
    std::string head = "Status: " + std::to_string(r.status) + " " + status_text(r.status) + "\r\n";
    for (const auto& [k, v] : r.headers) head += k + ": " + v + "\r\n";
    bool has_body = r.status != 304;
    if (has_body) head += "Content-Length: " + std::to_string(r.content_length()) + "\r\n";
    head += "\r\n";
    auto deadline = io::after_seconds(ctx.params.write_timeout);
    if (r.head || !has_body || r.pieces.empty()) {
        if (!r.head && has_body) head += r.body;
        return out.write_all(head, deadline) == 0;
    }
    if (out.write_all(head, deadline) != 0) return false;
    for (const auto& p : r.pieces) {
        if (!p.text.empty() && out.write_all(p.text, deadline) != 0) return false;
        if (p.length == 0) continue;
        int64_t sent = out.send_file(r.file.fd.get(), p.offset, p.length, deadline);
        if (sent < 0 || static_cast<uint64_t>(sent) != p.length) {
            SOUK_LOG(Warn, "cgi: %s: the file shrank or the web server went away while sending", g_req.origin.peer);
            return false;
        }
    }
    return true;
}


// Answer with a status of our own (not the pipeline's reply), and log it.
int answer(io::Stream& out, const ServerContext& ctx, WebResponse& r) {
    const bool ok = write_response(out, ctx, r);
    const uint64_t sent = !ok || r.head || r.status == 304 ? 0 : r.content_length();
    log_web_access(g_req.origin, g_req.method, g_req.path, r.status, g_req.bytes_in, sent,
                   static_cast<uint64_t>(
                       std::chrono::duration_cast<std::chrono::microseconds>(io::Clock::now() - g_req.started).count()));
    return ok ? 0 : 1;
}

WebResponse failure(int status, std::string_view msg) {
    WebResponse r;
    r.status = status;
    r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    r.body.assign(msg);
    r.body += '\n';
    return r;
}

}  // namespace

int64_t parse_content_length(const char* value) {
    if (!value || !*value) return -1;
    std::string_view s(value);
    for (char c : s)
        if (c < '0' || c > '9') return -2;
    uint64_t v = 0;
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size() || v > static_cast<uint64_t>(INT64_MAX)) return -2;
    return static_cast<int64_t>(v);
}

int cgi_fail(int status, const std::string& message) {
    io::Stream out(-1, STDOUT_FILENO, false);
    WebResponse r = failure(status, message);
    Params p;
    std::string head = "Status: " + std::to_string(status) + " " + status_text(status) +
                       "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                       std::to_string(r.body.size()) + "\r\n\r\n" + r.body;
    out.write_all(head, io::after_seconds(p.write_timeout));
    return 0;
}

int run_cgi(const ServerContext& ctx, const WebOptions& opts) {
    io::Stream io(STDIN_FILENO, STDOUT_FILENO, false);
    std::string method = env("REQUEST_METHOD");
    g_req.peer = env("REMOTE_ADDR");
    if (const std::string port = env("REMOTE_PORT"); !g_req.peer.empty() && !port.empty()) g_req.peer += ":" + port;
    g_req.user = env("REMOTE_USER");
    g_req.method = method;
    g_req.path = env("REQUEST_URI");
    g_req.path = percent_decode(g_req.path.substr(0, g_req.path.find('?')));
    if (g_req.path.empty()) g_req.path = env("SCRIPT_NAME") + env("PATH_INFO");
    g_req.origin = log::Origin{"cgi", g_req.peer.c_str(), g_req.user.c_str()};
    if (method.empty()) {
        WebResponse r = failure(400, "bad request: REQUEST_METHOD is not set (is this a CGI request?)");
        return answer(io, ctx, r);
    }
    if (header_bytes() > static_cast<uint64_t>(ctx.params.http_max_header_bytes)) {
        WebResponse r = failure(431, "request header fields too large");
        return answer(io, ctx, r);
    }
    // The path, already decoded (PATH_INFO), or REQUEST_URI minus the prefix.
    std::string path;
    if (!opts.prefix.empty()) {
        std::string uri = env("REQUEST_URI");
        if (uri.empty()) {
            SOUK_LOG(Error, "cgi: SOUK_PREFIX is set but the web server passes no REQUEST_URI");
            WebResponse r = failure(500, "server misconfigured: no REQUEST_URI for SOUK_PREFIX");
            return answer(io, ctx, r);
        }
        path = percent_decode(uri.substr(0, uri.find('?')));
    } else {
        path = env("PATH_INFO");
        if (path.empty()) path = "/";
    }
    WebRequest req;
    req.method = method;
    req.path = path;
    req.header = [](std::string_view name) { return header_from_env(name); };
    WebResponse r;
    handle_web(ctx, opts, req, r);
    if (!r.smart) return answer(io, ctx, r);  // a request body, if any, is never read

    // A smart request: its body goes through the request pipeline as it
    // arrives from stdin, never held whole.
    const char* cl = ::getenv("CONTENT_LENGTH");
    const int64_t want = parse_content_length(cl);
    const uint64_t cap = static_cast<uint64_t>(ctx.params.max_upload);
    if (want == -2) {
        WebResponse f = failure(400, "bad request: malformed CONTENT_LENGTH");
        return answer(io, ctx, f);
    }
    if (want >= 0 && static_cast<uint64_t>(want) > cap) {
        WebResponse f = failure(413, "payload too large (limit " + std::to_string(cap) + " bytes, --max-upload)");
        return answer(io, ctx, f);
    }
    SmartExchange ex(ctx, g_req.origin, req, r.smart_base);
    const auto deadline = io::after_seconds(ctx.params.cgi_read_timeout);
    char buf[64 * 1024];
    uint64_t got = 0;
    for (;;) {  // bounded: each pass reads >= 1 byte, or ends (EOF, error, deadline, cap)
        size_t room = sizeof buf;
        if (want >= 0) {
            uint64_t left = static_cast<uint64_t>(want) - got;
            if (left == 0) break;
            room = static_cast<size_t>(std::min<uint64_t>(room, left));
        } else if (got > cap) {
            WebResponse f = failure(413, "payload too large (limit " + std::to_string(cap) + " bytes, --max-upload)");
            return answer(io, ctx, f);
        }
        ssize_t n = io.read_some(buf, room, deadline);
        if (n == 0) {
            if (want < 0) break;  // EOF ends a body of unannounced length
            WebResponse f = failure(400, "bad request: the body is shorter than CONTENT_LENGTH");
            return answer(io, ctx, f);
        }
        if (n < 0) {
            bool timeout = errno == ETIMEDOUT;
            SOUK_LOG(Info, "cgi: %s: reading the request body: %s", g_req.origin.peer,
                     timeout ? "timed out" : std::strerror(errno));
            WebResponse f = timeout ? failure(408, "request timeout: the body did not arrive in time")
                                    : failure(400, "bad request: cannot read the body");
            return answer(io, ctx, f);
        }
        got += static_cast<uint64_t>(n);
        g_req.bytes_in = got;
        ex.body(std::string_view(buf, static_cast<size_t>(n)));
    }
    ex.end();
    if (ex.zstd()) r.headers.emplace_back("Content-Encoding", "zstd");
    if (ex.small()) {
        // Small enough to answer with a Content-Length.
        io::StringSink s(r.body);
        if (!ex.write(s)) {
            WebResponse f = failure(500, "the file changed while it was read; try again");
            return answer(io, ctx, f);
        }
        return answer(io, ctx, r);
    }
    // Streamed as it is produced; the web server frames it (chunked or
    // to EOF), since the length is not known in advance.
    std::string head = "Status: 200 OK\r\n";
    for (const auto& [k, v] : r.headers) head += k + ": " + v + "\r\n";
    head += "\r\n";
    io::StreamSink out(io, io::after_seconds(ctx.params.write_timeout));
    if (!out.write(head)) return 1;
    return ex.write(out) ? 0 : 1;
}

}  // namespace souk::server
