#include "server/carriers/http_server.hpp"

#include <errno.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>

#include "protocol/http1.hpp"
#include "server/base/log.hpp"
#include "server/base/strings.hpp"
#include "server/carriers/cgi.hpp"
#include "server/carriers/waiter.hpp"
#include "transport/net.hpp"
#include "transport/sink.hpp"

namespace souk::server {
namespace {

namespace http1 = proto::http1;

constexpr size_t kReadStep = 64 * 1024;  // bytes asked of the socket per read

// One request as the gateway (cgi.hpp) sees it: the head's fields as
// CGI meta-variables, and the body, decoded from its framing, read from
// what came with the head and then from the connection.
class HttpRequest final : public GatewayRequest {
public:
    HttpRequest(const http1::Head& head, size_t head_bytes, ConnIo& io, InBuffer& in, double write_timeout)
        : head_(head), head_bytes_(head_bytes), io_(io), in_(in), write_timeout_(write_timeout) {
        left_ = head.chunked ? 0 : head.content_length;
        body_done_ = !head.has_body();
        std::string_view peer = io.peer();
        size_t colon = peer.rfind(':');
        addr_ = std::string(peer.substr(0, colon));
        if (colon != std::string_view::npos) port_ = std::string(peer.substr(colon + 1));
    }

    std::string var(std::string_view name) const override {
        if (name == "REQUEST_METHOD") return std::string(head_.method);
        if (name == "REQUEST_URI") return std::string(head_.target);
        if (name == "REMOTE_ADDR") return addr_;
        if (name == "REMOTE_PORT") return port_;
        if (name == "SERVER_PROTOCOL") return head_.minor ? "HTTP/1.1" : "HTTP/1.0";
        if (name == "CONTENT_LENGTH") return head_.has_length ? std::to_string(head_.content_length) : std::string();
        if (name.substr(0, 5) == "HTTP_")
            for (const auto& [k, v] : head_.headers)
                if (header_var(k) == name) return std::string(v);
        return {};
    }
    bool has(std::string_view name) const override {
        return name == "REQUEST_METHOD" || name == "REQUEST_URI" || !var(name).empty();
    }
    uint64_t header_bytes() const override { return head_bytes_; }

    ssize_t read_body(char* buf, size_t n, io::Deadline deadline) override {
        if (body_done_ || n == 0) return 0;
        if (head_.expect_continue && !continued_) {
            // The client waits for this before it sends the body (docs/protocol/http.md#framing).
            continued_ = true;
            io::StreamSink out(io_.stream(), io::after_seconds(write_timeout_));
            if (!out.write("HTTP/1.1 100 Continue\r\n\r\n")) return fail(ECONNABORTED);
        }
        for (;;) {  // bounded: each pass decodes bytes, or reads more, or ends
            std::string_view pending = in_.pending();
            if (!pending.empty()) {
                if (!head_.chunked) {
                    size_t k = static_cast<size_t>(std::min<uint64_t>({n, pending.size(), left_}));
                    std::memcpy(buf, pending.data(), k);
                    in_.consume(k);
                    left_ -= k;
                    body_done_ = left_ == 0;
                    return static_cast<ssize_t>(k);
                }
                // Decoded bytes are never more than the encoded ones: at most n out.
                std::string_view wire = pending.substr(0, n);
                const size_t offered = wire.size();
                pieces_.clear();
                http1::ChunkedDecoder::Status st = chunks_.feed(wire, pieces_);
                in_.consume(offered - wire.size());
                if (st == http1::ChunkedDecoder::Status::Bad) return fail(EPROTO);
                size_t k = 0;
                for (std::string_view p : pieces_) {
                    std::memcpy(buf + k, p.data(), p.size());
                    k += p.size();
                }
                body_done_ = st == http1::ChunkedDecoder::Status::Done;
                if (k > 0 || body_done_) return static_cast<ssize_t>(k);
                continue;  // framing bytes only: read on
            }
            SessionEnd why = SessionEnd::ReadFailed;
            const size_t want = head_.chunked ? kReadStep : static_cast<size_t>(std::min<uint64_t>(kReadStep, left_));
            ssize_t got = in_.fill(io_, want, deadline, &why);
            if (got == 0) return 0;  // the connection ended inside the body
            if (got < 0) return fail(why == SessionEnd::RequestTimeout ? ETIMEDOUT : ECONNABORTED);
        }
    }

    // Whether the connection can carry another request after this one: the
    // body has been read, or what is left of it is already here (dropped).
    bool settle_body() {
        if (body_done_) return true;
        if (head_.expect_continue && !continued_) return false;  // the client may still send it
        std::string_view pending = in_.pending();
        if (!head_.chunked) {
            if (pending.size() < left_) return false;
            in_.consume(static_cast<size_t>(left_));
            left_ = 0;
            return body_done_ = true;
        }
        std::string_view wire = pending;
        pieces_.clear();
        http1::ChunkedDecoder::Status st = chunks_.feed(wire, pieces_);
        in_.consume(pending.size() - wire.size());
        return body_done_ = st == http1::ChunkedDecoder::Status::Done;
    }

private:
    ssize_t fail(int e) {
        errno = e;
        return -1;
    }

    const http1::Head& head_;
    size_t head_bytes_;
    ConnIo& io_;
    InBuffer& in_;
    double write_timeout_;
    std::string addr_, port_;
    uint64_t left_ = 0;  // Content-Length bytes still to come
    http1::ChunkedDecoder chunks_;
    std::vector<std::string_view> pieces_;
    bool body_done_ = false;
    bool continued_ = false;
};

// The gateway answers as a CGI program does (a `Status:` line, headers, a
// blank line, the body, with or without a Content-Length); this sink
// answers the client as an HTTP/1.1 server: the status line, Date, the
// keep-alive decision, and chunked framing for a body of unknown length
// (the same translation nginx makes in front of a CGI program).
class ResponseSink final : public io::Sink {
public:
    // decide_close(): called once the head is complete, before it is
    // sent: whether the connection closes after this response.
    ResponseSink(io::Stream& s, const http1::Head& req, double write_timeout, std::function<bool()> decide_close)
        : out_(s, io::after_seconds(write_timeout)), req_(req), decide_close_(std::move(decide_close)) {}

    bool write(std::string_view data) override {
        written_ += data.size();
        if (state_ == State::Head) {
            // Only what can still be head is copied; the body that came
            // with it is passed on as it is.
            const size_t before = head_.size();
            head_.append(data.substr(0, kMaxHead + 1 - std::min(before, kMaxHead)));
            size_t end = http1::head_length(head_);
            if (end == 0) {
                if (head_.size() > kMaxHead) return fail();
                return true;
            }
            head_.resize(end);
            if (!send_head()) return false;
            data.remove_prefix(end - before);
        }
        return body(data);
    }
    // Before the head too: the gateway asks to decide the body's framing.
    bool direct() const override { return state_ != State::None && out_.direct(); }
    int64_t send_file(int file, uint64_t offset, uint64_t n) override {
        if (state_ == State::Chunked && n > 0) {
            // One chunk, its data sent by the kernel; it must be whole.
            if (!flush_held() || !out_.write(chunk_size(n))) return -1;
            int64_t sent = out_.send_file(file, offset, n);
            if (sent < 0 || static_cast<uint64_t>(sent) != n) {
                if (sent >= 0) errno = EIO;  // the file ended early: the chunk cannot be completed
                return -1;
            }
            written_ += n;
            return out_.write("\r\n") ? sent : -1;
        }
        if (state_ != State::Identity) return io::Sink::send_file(file, offset, n);  // through write()
        if (!within_length(n) || !flush_held()) return -1;
        int64_t sent = out_.send_file(file, offset, n);
        if (sent > 0) written_ += static_cast<uint64_t>(sent);
        return sent;
    }
    void cork(bool on) override { out_.cork(on); }
    bool finish() override {
        if (state_ == State::Head) return fail();  // the gateway always ends its head
        if (state_ == State::Identity && length_ != UINT64_MAX && length_ != 0) return fail();  // short of its length
        if (state_ == State::Chunked && !ended_) {
            // The last chunk and the end of the body leave together: a
            // client that stops reading at the end of the smart message
            // finds nothing of this response left on the connection
            // (docs/protocol/http.md#a-reply-must-end-where-the-client-stops-reading).
            // Once only: a second last chunk would be read as the status
            // line of the connection's next response.
            ended_ = true;
            held_ += "0\r\n\r\n";
        }
        if (!flush_held()) return false;  // the head of a bodiless answer, the last chunk
        return out_.finish();
    }
    bool closing() const { return close_; }
    int status() const { return status_; }

private:
    static constexpr size_t kMaxHead = 64 * 1024;
    static constexpr size_t kHoldChunk = 64 * 1024;  // chunks up to this size are held back (body())
    enum class State : uint8_t { Head, Identity, Chunked, None };

    bool fail() {
        errno = EPROTO;
        return false;
    }
    // n more body bytes within the announced Content-Length: a body that
    // outgrows it (a file that changed while it was sent) ends the
    // connection rather than run into the next response.
    bool within_length(uint64_t n) {
        if (length_ == UINT64_MAX) return true;
        if (n > length_) return fail();
        length_ -= n;
        return true;
    }

    bool send_head() {
        // "Status: 200 OK" first (cgi.cpp writes it so), then the headers.
        std::string_view rest = head_;
        size_t nl = rest.find("\r\n");
        std::string_view status_line = rest.substr(0, nl);
        if (status_line.substr(0, 8) != "Status: ") return fail();
        status_ = std::atoi(std::string(status_line.substr(8, 3)).c_str());
        rest.remove_prefix(nl + 2);
        bool has_length = false;
        for (std::string_view r = rest; !r.empty();) {  // bounded: the head's lines
            size_t e = r.find("\r\n");
            std::string_view line = r.substr(0, e);
            if (line.size() >= 15 && strncasecmp(line.data(), "Content-Length:", 15) == 0) {
                has_length = true;
                std::string_view v = line.substr(15);
                while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
                if (!parse_u64(v, length_)) return fail();
            }
            r.remove_prefix(e == std::string_view::npos ? r.size() : e + 2);
        }
        const bool bodiless = req_.method == "HEAD" || status_ == 204 || status_ == 304 || status_ < 200;
        state_ = bodiless ? State::None : has_length ? State::Identity : req_.minor >= 1 ? State::Chunked : State::Identity;
        // HTTP/1.0 without a length: the end of the body is the end of the connection.
        close_ = decide_close_() || (!bodiless && !has_length && req_.minor == 0);
        std::string out = req_.minor ? "HTTP/1.1 " : "HTTP/1.0 ";
        out.append(status_line.substr(8));
        out += "\r\nDate: ";
        out += format_http_date(static_cast<int64_t>(std::time(nullptr)));
        out += "\r\n";
        out.append(rest.substr(0, rest.size() - 2));  // its headers, without the blank line
        if (state_ == State::Chunked) out += "Transfer-Encoding: chunked\r\n";
        if (close_) out += "Connection: close\r\n";
        else if (req_.minor == 0) out += "Connection: keep-alive\r\n";
        out += "\r\n";
        // Held: it leaves with the first body bytes (one segment for a small
        // answer), or at the end.
        held_ = std::move(out);
        return true;
    }

    static std::string chunk_size(uint64_t n) {
        char size[24];
        int k = std::snprintf(size, sizeof size, "%llx\r\n", static_cast<unsigned long long>(n));
        return std::string(size, static_cast<size_t>(k));
    }
    bool flush_held() {
        if (held_.empty()) return true;
        bool ok = out_.write(held_);
        held_.clear();
        return ok;
    }
    bool body(std::string_view data) {
        if (data.empty() || state_ == State::None) return true;
        if (state_ == State::Identity) {
            if (!within_length(data.size())) return false;
            if (data.size() > kHoldChunk) return flush_held() && out_.write(data);
            held_.append(data);
            return flush_held();
        }
        if (!flush_held()) return false;
        if (data.size() <= kHoldChunk) {
            // Held until the next write or the end, so that the body's
            // last bytes and its end go in one write (finish()).
            held_ = chunk_size(data.size());
            held_.append(data);
            held_ += "\r\n";
            return true;
        }
        return out_.write(chunk_size(data.size())) && out_.write(data) && out_.write("\r\n");
    }

    io::StreamSink out_;
    const http1::Head& req_;
    std::function<bool()> decide_close_;
    std::string head_;
    std::string held_;  // not written yet: the head (until body bytes come), a framed chunk
    State state_ = State::Head;
    int status_ = 0;
    bool close_ = false;
    bool ended_ = false;  // the last chunk went out
    uint64_t length_ = UINT64_MAX;  // Identity with a Content-Length: body bytes still owed
};

// An answer of the carrier's own, before the gateway sees the request (a
// head it cannot parse or that is too large): the connection closes after it.
bool refuse(ConnIo& io, const ServerContext& ctx, int status, std::string_view why, uint64_t bytes_in) {
    const auto started = io::Clock::now();
    std::string body = std::to_string(status) + " " + status_text(status) + ": " + std::string(why) + "\n";
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + status_text(status) + "\r\nDate: " +
                      format_http_date(static_cast<int64_t>(std::time(nullptr))) +
                      "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + std::to_string(body.size()) +
                      "\r\nConnection: close\r\n\r\n" + body;
    io::StreamSink sink(io.stream(), io::after_seconds(ctx.params.write_timeout));
    const bool ok = sink.write(out);
    SOUK_LOG(Info, "http: %s: %d %s", io.peer(), status, std::string(why).c_str());
    const log::Origin origin{"http", io.peer(), nullptr};
    log_web_access(origin, "-", "-", status, bytes_in, ok ? body.size() : 0,
                   static_cast<uint64_t>(
                       std::chrono::duration_cast<std::chrono::microseconds>(io::Clock::now() - started).count()));
    return ok;
}

// HTTP/1.1 on the waiter (docs/protocol/http.md#soukds-own-http-server):
// a request has arrived whole when its head and body are there; each is
// answered by the gateway (handle_web, SmartExchange), so soukd's HTTP
// server answers exactly what CGI and FastCGI answer.
class HttpProtocol final : public WaiterProtocol {
    class Framing final : public Measure {
    public:
        Look look(std::string_view in) override {
            bool expect_continue = false;
            size_t n = http1::request_length(in, &expect_continue);
            if (n == SIZE_MAX) return {Look::Whole, in.size()};  // malformed: the worker reads it and answers 400
            if (n > 0) return {Look::Whole, n};
            return {expect_continue ? Look::Stream : Look::Partial, 0};
        }
    };

public:
    explicit HttpProtocol(const WebOptions& web) : web_(web) {}
    std::unique_ptr<Measure> measure(const Params&) const override { return std::make_unique<Framing>(); }

    SessionEnd serve(const ServerContext& wctx, ConnIo& io) const override {
        thread_local InBuffer in;
        thread_local std::string head_bytes;
        thread_local http1::Head head;
        in.clear();
        const Params& p = wctx.params;
        const size_t max_head = static_cast<size_t>(p.http_max_header_bytes);
        GatewayOptions gw;
        gw.path_from_uri = true;
        gw.body_timeout = p.request_timeout;
        gw.carrier = "http";
        for (;;) {  // one request per pass; bounded by the peer's requests and --http-keepalive-requests
            // The head: from bytes read with the last request, or from the socket.
            size_t hl;
            while ((hl = http1::head_length(in.pending())) == 0) {  // bounded: each pass reads, or ends
                if (in.pending().size() >= max_head) {
                    refuse(io, wctx, 431, "request header fields too large", in.pending().size());
                    return SessionEnd::ProtocolError;
                }
                if (in.pending().empty() && io.between()) {
                    ConnIo::Next next = io.next();
                    if (next == ConnIo::Next::Park) return SessionEnd::Parked;
                    if (next == ConnIo::Next::Eof) return SessionEnd::Eof;
                }
                SessionEnd why = SessionEnd::ReadFailed;
                ssize_t got = in.fill(io, kReadStep, io::no_deadline(), &why);
                if (got == 0) return in.pending().empty() ? SessionEnd::Eof : SessionEnd::Truncated;
                if (got < 0) return why;
            }
            if (hl > max_head) {
                refuse(io, wctx, 431, "request header fields too large", hl);
                return SessionEnd::ProtocolError;
            }
            // The head's fields are views into its bytes, kept apart from
            // the buffer the body is read into.
            head_bytes.assign(in.pending().substr(0, hl));
            in.consume(hl);
            const char* why = "";
            if (int bad = http1::parse_head(head_bytes, head, &why)) {
                refuse(io, wctx, bad, why, hl);
                return SessionEnd::ProtocolError;
            }
            HttpRequest req(head, hl, io, in, p.write_timeout);
            const bool last = !head.keep_alive || io.count_request() >= static_cast<uint64_t>(p.http_keepalive_requests) ||
                              io.draining();
            ResponseSink out(io.stream(), head, p.write_timeout, [&req, last] { return last || !req.settle_body(); });
            const bool ok = serve_gateway(wctx, web_, gw, req, out);
            SOUK_LOG(Debug, "http: %s %.*s %.*s -> %d", io.peer(), static_cast<int>(head.method.size()), head.method.data(),
                     static_cast<int>(head.target.size()), head.target.data(), out.status());
            if (!ok) return SessionEnd::WriteFailed;
            if (out.closing()) return SessionEnd::Eof;
            io.request_done(in.pending().empty());
            if (io.draining()) return SessionEnd::Parked;
        }
    }

private:
    const WebOptions web_;
};

}  // namespace

std::string parse_host_port(const char* option, const std::string& text, std::string& address, uint16_t& port_out) {
    const std::string opt = option;
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) return opt + ": expected ADDR:PORT, got " + text;
    std::string host = text.substr(0, colon), port = text.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    else if (host.find(':') != std::string::npos) return opt + ": write IPv6 addresses in brackets, e.g. [::1]:8080";
    char* end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end || p < 0 || p > 65535) return opt + ": port must be 0 to 65535, got " + port;
    address = host.empty() ? "0.0.0.0" : host;
    port_out = static_cast<uint16_t>(p);
    return {};
}

std::string parse_http_address(const std::string& text, HttpOptions& out) {
    return parse_host_port("--http", text, out.address, out.port);
}

int serve_http(const ServerContext& ctx, const HttpOptions& opts, const std::atomic<bool>* stop) {
    std::string err;
    // A deep backlog: connections wait in the kernel, not in a thread.
    io::Fd listener = opts.passed_fd >= 0 ? io::Fd(opts.passed_fd) : io::listen_tcp(opts.address, opts.port, 1024, &err);
    if (!listener) {
        std::fprintf(stderr, "soukd: cannot listen for HTTP: %s\n", err.c_str());
        return 1;
    }
    const uint16_t port = io::bound_port(listener.get());
    if (!opts.port_file.empty() && !io::write_port_file(opts.port_file, port)) {
        std::fprintf(stderr, "soukd: cannot write --http-port-file %s\n", opts.port_file.c_str());
        return 1;
    }
    SOUK_LOG(Info, "serving %s on http://%s:%u/ (%s%s)", ctx.root_realpath.c_str(),
             opts.passed_fd >= 0 ? "*" : opts.address.c_str(), port, ctx.rules()->allow_writes ? "read-write" : "read-only",
             opts.passed_fd >= 0 ? ", socket from systemd" : "");
    if (opts.on_listening) opts.on_listening();
    const HttpProtocol http(opts.web);
    WaiterConfig cfg = waiter_config(ctx.params);
    cfg.workers = static_cast<size_t>(ctx.params.http_workers);
    cfg.idle_timeout = ctx.params.http_keepalive_timeout;
    cfg.arrival_timeout = ctx.params.http_read_timeout;
    int rc = run_waiter(ctx, std::move(listener), http, cfg, stop);
    if (*stop) io::notify_service_manager("STOPPING=1");
    return rc;
}

}  // namespace souk::server
