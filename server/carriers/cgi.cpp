#include "server/carriers/cgi.hpp"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>

#include "server/base/log.hpp"
#include "server/store/paths.hpp"
#include "server/store/send.hpp"
#include "transport/sink.hpp"
#include "transport/stream.hpp"

extern char** environ;

namespace souk::server {
namespace {

// Flush a multi-range answer's buffer beyond this size.
constexpr size_t kFlushBytes = 1024 * 1024;

std::string env(const char* name) {
    const char* v = ::getenv(name);
    return v ? std::string(v) : std::string();
}

// The request in the environment and stdin.
class EnvRequest final : public GatewayRequest {
public:
    explicit EnvRequest(io::Stream& in) : in_(in) {}
    std::string var(std::string_view name) const override { return env(std::string(name).c_str()); }
    bool has(std::string_view name) const override { return ::getenv(std::string(name).c_str()) != nullptr; }
    uint64_t header_bytes() const override {
        uint64_t n = 0;
        for (char** e = environ; e && *e; ++e)
            if (std::strncmp(*e, "HTTP_", 5) == 0) n += std::strlen(*e) + 2;
        return n;
    }
    ssize_t read_body(char* buf, size_t n, io::Deadline deadline) override { return in_.read_some(buf, n, deadline); }

private:
    io::Stream& in_;
};

// A body up to this size goes out in the same write as the head.
constexpr size_t kJoinBytes = 16 * 1024;

bool write_response(io::Sink& out, WebResponse& r) {
    // The thread's buffer: its memory stays mapped from one answer to the
    // next (a fresh 256 KiB buffer per answer cost more in page faults than
    // the copies, measured on this project's machines). At most kFlushBytes
    // and one copied range.
    thread_local std::string buf;
    buf = "Status: " + std::to_string(r.status) + " " + status_text(r.status) + "\r\n";
    for (const auto& [k, v] : r.headers) buf += k + ": " + v + "\r\n";
    bool has_body = r.status != 304;
    if (has_body) buf += "Content-Length: " + std::to_string(r.content_length()) + "\r\n";
    buf += "\r\n";
    if (r.head || !has_body || r.pieces.empty()) {
        // A large body goes out as it is, not copied behind the head (each
        // page of a fresh copy is a page fault: a 256 KiB readv answer).
        const bool body = !r.head && has_body && !r.body.empty();
        if (body && r.body.size() <= kJoinBytes) buf += r.body;
        return out.write(buf) && (!body || r.body.size() <= kJoinBytes || out.write(r.body)) && out.finish();
    }
    // File ranges as the smart readv sends them (server/request/reply.cpp):
    // small ones copied behind their part heads into one buffer, large ones
    // with sendfile; the socket corked so the parts fill whole segments.
    io::CorkScope corked(out);
    auto flush = [&] {
        bool ok = buf.empty() || out.write(buf);
        buf.clear();
        return ok;
    };
    for (const auto& p : r.pieces) {
        buf += p.text;
        if (p.length == 0) continue;
        int64_t sent;
        if (p.length <= kCopyRange) {
            const size_t at = buf.size();
            buf.resize(at + p.length);
            const ssize_t got = r.store->read_full(r.file, buf.data() + at, p.length, p.offset);
            sent = got < 0 ? -1 : got;
        } else {
            sent = flush() ? send_range(*r.store, out, r.file, p.offset, p.length) : -1;
        }
        if (sent < 0 || static_cast<uint64_t>(sent) != p.length) {
            SOUK_LOG(Warn, "cgi: the file shrank or the web server went away while sending");
            return false;
        }
        if (buf.size() >= kFlushBytes && !flush()) return false;
    }
    return flush() && out.finish();
}

WebResponse failure(int status, std::string_view msg) {
    WebResponse r;
    r.status = status;
    r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    r.body.assign(msg);
    r.body += '\n';
    return r;
}

bool fail(io::Sink& out, int status, std::string_view msg) {
    WebResponse r = failure(status, msg);
    return write_response(out, r);
}

}  // namespace

std::string header_var(std::string_view name) {
    std::string key = "HTTP_";
    for (char c : name) key += c == '-' ? '_' : (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    return key;
}

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
    io::Stream io(-1, STDOUT_FILENO, false);
    io::StreamSink out(io, io::after_seconds(Params{}.write_timeout));
    fail(out, status, message);
    return 0;
}

bool serve_gateway(const ServerContext& ctx, const WebOptions& opts, const GatewayOptions& gw, GatewayRequest& req,
                   io::Sink& out) {
    // Who asked, for the access line (docs/access-log.md) and the logs.
    const auto started = io::Clock::now();
    std::string peer = req.var("REMOTE_ADDR");
    if (const std::string port = req.var("REMOTE_PORT"); !peer.empty() && !port.empty()) peer += ":" + port;
    const std::string user = req.var("REMOTE_USER");
    const log::Origin origin{gw.carrier, peer.c_str(), user.c_str()};
    const std::string method = req.var("REQUEST_METHOD");
    std::string logged_path = req.var("REQUEST_URI");
    logged_path = percent_decode(logged_path.substr(0, logged_path.find('?')));
    if (logged_path.empty()) logged_path = req.var("SCRIPT_NAME") + req.var("PATH_INFO");
    uint64_t bytes_in = 0;
    // Answer with a response of our own (not the pipeline's reply), and log it.
    auto answer = [&](WebResponse& r) {
        const bool ok = write_response(out, r);
        const uint64_t sent = !ok || r.head || r.status == 304 ? 0 : r.content_length();
        log_web_access(origin, method, logged_path, r.status, bytes_in, sent,
                       static_cast<uint64_t>(
                           std::chrono::duration_cast<std::chrono::microseconds>(io::Clock::now() - started).count()));
        return ok;
    };
    auto refuse = [&](int status, std::string_view msg) {
        WebResponse f = failure(status, msg);
        f.head = method == "HEAD";  // the headers a GET would get, no body (as handle_web's answers)
        return answer(f);
    };
    if (method.empty()) return refuse(400, "bad request: REQUEST_METHOD is not set (is this a CGI request?)");
    if (req.header_bytes() > static_cast<uint64_t>(ctx.params.http_max_header_bytes))
        return refuse(431, "request header fields too large");
    // The path, already decoded (PATH_INFO), or REQUEST_URI minus the prefix.
    std::string path;
    if (gw.path_from_uri || !opts.prefix.empty()) {
        if (!req.has("REQUEST_URI")) {
            SOUK_LOG(Error, "%s: %s: the web server passes no REQUEST_URI (%s)", gw.carrier, origin.peer,
                     gw.path_from_uri ? "include fastcgi_params" : "needed with SOUK_PREFIX");
            return refuse(500, "server misconfigured: no REQUEST_URI");
        }
        std::string uri = req.var("REQUEST_URI");
        path = percent_decode(uri.substr(0, uri.find('?')));
    } else {
        path = req.var("PATH_INFO");
        if (path.empty()) path = "/";
    }
    WebRequest wr;
    wr.method = method;
    wr.path = path;
    wr.header = [&req](std::string_view name) { return req.var(header_var(name)); };
    WebResponse r;
    handle_web(ctx, opts, wr, r);
    if (!r.smart) return answer(r);  // a request body, if any, is never read

    // A smart request: its body goes through the request pipeline as it
    // arrives, never held whole.
    const std::string cl = req.var("CONTENT_LENGTH");
    const int64_t want = parse_content_length(cl.c_str());
    const uint64_t cap = static_cast<uint64_t>(ctx.params.max_upload);
    if (want == -2) return refuse(400, "bad request: malformed CONTENT_LENGTH");
    const std::string too_large = "payload too large (limit " + std::to_string(cap) + " bytes, --max-upload)";
    if (want >= 0 && static_cast<uint64_t>(want) > cap) return refuse(413, too_large);
    SmartExchange ex(ctx, origin, wr, r.smart_base);
    const auto deadline = io::after_seconds(gw.body_timeout);
    char buf[64 * 1024];
    uint64_t got = 0;
    for (;;) {  // bounded: each pass reads >= 1 byte, or ends (EOF, error, deadline, cap)
        size_t room = sizeof buf;
        if (want >= 0) {
            uint64_t left = static_cast<uint64_t>(want) - got;
            if (left == 0) break;
            room = static_cast<size_t>(std::min<uint64_t>(room, left));
        } else if (got > cap) {
            return refuse(413, too_large);
        }
        ssize_t n = req.read_body(buf, room, deadline);
        if (n == 0) {
            if (want < 0) break;  // EOF ends a body of unannounced length
            return refuse(400, "bad request: the body is shorter than CONTENT_LENGTH");
        }
        if (n < 0) {
            const int e = errno;
            bool timeout = e == ETIMEDOUT;
            SOUK_LOG(Info, "%s: %s: reading the request body: %s", gw.carrier, origin.peer,
                     timeout ? "timed out" : std::strerror(e));
            if (e == ECONNABORTED) return false;  // the web server gave the request up: no answer
            return timeout ? refuse(408, "request timeout: the body did not arrive in time")
                           : refuse(400, "bad request: cannot read the body");
        }
        got += static_cast<uint64_t>(n);
        bytes_in = got;
        ex.body(std::string_view(buf, static_cast<size_t>(n)));
    }
    ex.end();
    if (ex.zstd()) r.headers.emplace_back("Content-Encoding", "zstd");
    // The length of a file reply (UINT64_MAX: not one, or compressed), worked
    // out only where it decides something: a streamed reply's head, or CGI's
    // lower limit for gathering a file reply whole.
    const bool file_limit = gw.inline_file < SmartExchange::kInlineReply;
    const uint64_t length = !ex.small() || file_limit ? ex.length(out.direct()) : UINT64_MAX;
    if (ex.small() && (length == UINT64_MAX || length <= gw.inline_file)) {
        // Small enough to answer with a Content-Length.
        io::StringSink s(r.body);
        if (!ex.write(s)) return refuse(500, "the file changed while it was read; try again");
        return write_response(out, r);  // the pipeline wrote its access line
    }
    // Streamed as it is produced. File ranges (get, readv) have a length
    // known now: a Content-Length, and the file leaves with sendfile where
    // `out` allows it (docs/protocol/http.md#large-replies); else the web
    // server frames the body (chunked or to EOF).
    std::string head = "Status: 200 OK\r\n";
    for (const auto& [k, v] : r.headers) head += k + ": " + v + "\r\n";
    if (length != UINT64_MAX) head += "Content-Length: " + std::to_string(length) + "\r\n";
    if (gw.out_pipe >= 0 && length != UINT64_MAX)  // not a pipe, or past the user's pipe quota: stays as it is
        ::fcntl(gw.out_pipe, F_SETPIPE_SZ, static_cast<int>(std::min(length, kCgiPipeMax)));
    head += "\r\n";
    // Head, message prefix, file bytes and suffix fill whole segments: the
    // suffix does not leave alone behind the file (as nginx's tcp_nopush).
    io::CorkScope corked(out, length != UINT64_MAX);
    if (!out.write(head)) return false;
    // The pipeline finishes `out` after the reply (Pipeline::write_reply);
    // a second finish() would end soukd's chunked HTTP body twice.
    return ex.write(out);
}

int run_cgi(const ServerContext& ctx, const WebOptions& opts) {
    io::Stream io(STDIN_FILENO, STDOUT_FILENO, false);
    EnvRequest req(io);
    io::StreamSink out(io, io::after_seconds(ctx.params.write_timeout), /*one_shot=*/true);
    GatewayOptions gw;
    gw.body_timeout = ctx.params.cgi_read_timeout;
    gw.inline_file = kCgiInlineFile;
    gw.out_pipe = STDOUT_FILENO;
    return serve_gateway(ctx, opts, gw, req, out) ? 0 : 1;
}

}  // namespace souk::server
