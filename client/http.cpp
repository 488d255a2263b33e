#include "client/http.hpp"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <string.h>
#include <zstd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "protocol/http1.hpp"
#include "transport/net.hpp"
#include "transport/stream.hpp"

namespace souk::client {
namespace {

constexpr size_t kMaxResponseHead = 64 * 1024;  // status line and headers of one response
constexpr size_t kMaxInterim = 8;               // 1xx responses skipped before the real one
constexpr size_t kReadStep = 256 * 1024;        // one read of a head or a chunked or unframed body
constexpr size_t kWriteStep = 1 << 20;          // one write of a request body
constexpr size_t kJoinBody = 64 * 1024;         // a body up to this size goes in the head's write
constexpr size_t kMaxDrain = 64 * 1024;         // an unread rest of a body skipped to keep the connection

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

bool parse_u64(std::string_view s, uint64_t& v) {
    if (s.empty() || s.size() > 19) return false;
    v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    return true;
}

// "bytes a-b/size" -> (a, b, size); size "*" -> UINT64_MAX.
bool parse_content_range(std::string_view s, uint64_t& a, uint64_t& b, uint64_t& size) {
    if (s.substr(0, 6) != "bytes ") return false;
    s.remove_prefix(6);
    size_t dash = s.find('-'), slash = s.find('/');
    if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) return false;
    if (!parse_u64(s.substr(0, dash), a) || !parse_u64(s.substr(dash + 1, slash - dash - 1), b) || b < a)
        return false;
    std::string_view total = s.substr(slash + 1);
    if (total == "*") {
        size = UINT64_MAX;
        return true;
    }
    return parse_u64(total, size);
}

Error http_status_error(int status, const std::string& where) {
    return make_error(ErrorKind::Protocol,
                      "unexpected HTTP status " + std::to_string(status) + " from " + where +
                          (status == 404 ? " (no smart server there? bzr+http:// needs POST <path>/.bzr/smart)" : ""));
}

// One connection to the origin: a TCP socket, with TLS over it for https.
// Reads and writes wait at most `timeout` for progress each.
class Link {
public:
    Link() = default;
    Link(const Link&) = delete;
    Link& operator=(const Link&) = delete;
    ~Link() { close(); }

    bool open() const { return stream_.valid(); }

    // Connect (and for TLS, shake hands and verify the server).
    std::optional<Error> connect(const Url& url, SSL_CTX* tls, const Options& opts, const std::string& where) {
        close();
        std::string err;
        auto ms = std::clamp<int64_t>(opts.connect_timeout.count(), 1, INT32_MAX);
        io::Fd fd = io::connect_tcp(url.host, url.tcp_port(), static_cast<int>(ms), &err);
        if (!fd) {
            if (errno == ETIMEDOUT) return make_error(ErrorKind::Timeout, "timed out connecting to " + where);
            return make_error(ErrorKind::Connection, err.empty() ? "cannot reach " + where : err);
        }
        stream_ = io::Stream(std::move(fd));
        if (!tls) return std::nullopt;
        ssl_ = SSL_new(tls);
        if (!ssl_ || SSL_set_fd(ssl_, stream_.in_fd()) != 1) return tls_failure("TLS set-up for " + where + " failed");
        // The name (or address) the certificate must carry; SNI for names.
        in6_addr any;
        bool literal = ::inet_pton(AF_INET, url.host.c_str(), &any) == 1 || ::inet_pton(AF_INET6, url.host.c_str(), &any) == 1;
        if (literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), url.host.c_str()) != 1
                    : SSL_set_tlsext_host_name(ssl_, url.host.c_str()) != 1 || SSL_set1_host(ssl_, url.host.c_str()) != 1)
            return tls_failure("TLS set-up for " + where + " failed");
        io::Deadline dl = io::after_ms(ms);
        for (;;) {  // bounded: each pass makes progress or waits until `dl`
            int r = SSL_connect(ssl_);
            if (r == 1) return std::nullopt;
            int e = SSL_get_error(ssl_, r);
            if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
                wait(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, dl) > 0)
                continue;
            long verify = SSL_get_verify_result(ssl_);
            if (verify != X509_V_OK)
                return tls_failure("TLS: the server certificate of " + where + " could not be verified (" +
                                   X509_verify_cert_error_string(verify) +
                                   "); set SOUK_CA_FILE to a CA certificate that signed it");
            return tls_failure(errno == ETIMEDOUT ? "TLS handshake with " + where + " timed out"
                                                  : "TLS handshake with " + where + " failed");
        }
    }

    // > 0 bytes, 0 at EOF, -1 with errno (ETIMEDOUT past `dl`).
    ssize_t read_some(char* buf, size_t n, io::Deadline dl) {
        if (!ssl_) return stream_.read_some(buf, n, dl);
        for (;;) {  // bounded: each pass makes progress or waits until `dl`
            size_t got = 0;
            int r = SSL_read_ex(ssl_, buf, n, &got);
            if (r == 1) return static_cast<ssize_t>(got);
            int e = SSL_get_error(ssl_, r);
            if (e == SSL_ERROR_ZERO_RETURN) return 0;
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                if (wait(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, dl) > 0) continue;
                return -1;
            }
            errno = ECONNRESET;
            return -1;
        }
    }

    // 0, or -1 with errno.
    int write_all(std::string_view data, io::Deadline dl) {
        if (!ssl_) return stream_.write_all(data, dl);
        io::SigpipeGuard guard;  // OpenSSL writes to the socket with write(2)
        while (!data.empty()) {  // bounded: each pass sends bytes or waits until `dl`
            size_t put = 0;
            int r = SSL_write_ex(ssl_, data.data(), data.size(), &put);
            if (r == 1) {
                data.remove_prefix(put);
                continue;
            }
            int e = SSL_get_error(ssl_, r);
            if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
                wait(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, dl) > 0)
                continue;
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) errno = EPIPE;
            return -1;
        }
        return 0;
    }

    // An idle kept-alive connection the server has not closed (nothing to
    // read on it: EOF or stray bytes both mean it cannot carry a request).
    bool reusable() {
        if (!open()) return false;
        if (ssl_ && SSL_pending(ssl_) > 0) return false;
        struct pollfd p = {stream_.in_fd(), POLLIN, 0};
        int r;
        do r = ::poll(&p, 1, 0);
        while (r < 0 && errno == EINTR);
        return r == 0;
    }

    void close() {
        if (ssl_) SSL_free(ssl_);  // no close_notify: the socket closes next
        ssl_ = nullptr;
        stream_ = io::Stream();
    }

private:
    int wait(short events, io::Deadline dl) {
        for (;;) {  // bounded by `dl`
            auto now = io::Clock::now();
            if (now >= dl) {
                errno = ETIMEDOUT;
                return 0;
            }
            auto ms = std::chrono::ceil<std::chrono::milliseconds>(dl - now).count();
            struct pollfd p = {stream_.in_fd(), events, 0};
            int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, INT32_MAX)));
            if (r > 0) return 1;
            if (r < 0 && errno != EINTR) return -1;
        }
    }

    Error tls_failure(std::string what) {
        ERR_clear_error();
        close();
        return make_error(ErrorKind::Connection, std::move(what));
    }

    io::Stream stream_;
    SSL* ssl_ = nullptr;
};

struct TlsContextFree {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};

}  // namespace

struct ZstdFree {
    void operator()(ZSTD_DCtx* z) const { ZSTD_freeDCtx(z); }
};

struct HttpCarrier::Impl {
    Url url;
    std::string origin;  // "http://host:port", for messages and Host
    std::string host;    // the Host header
    Options opts;
    std::unique_ptr<SSL_CTX, TlsContextFree> tls;
    Link link;
    std::string in;                    // bytes read and not yet used
    std::unique_ptr<char[]> scratch;   // kReadStep bytes, for fill()

    // The body being read, after a head: how it is framed, and decoded.
    enum class Framing : uint8_t { None, Length, Chunked, ToEof };
    Framing framing = Framing::None;
    uint64_t left = 0;                 // Length: bytes still to come
    proto::http1::ChunkedDecoder chunks;
    bool keep = false;                 // the connection carries another request afterwards
    std::string where;                 // origin + path, for messages
    std::unique_ptr<ZSTD_DCtx, ZstdFree> zstd;  // set: Content-Encoding zstd
    std::string zin;                   // zstd: encoded bytes read and not yet decoded
    size_t zin_at = 0;
    bool zin_end = false;              // zstd: the encoded body has ended
    bool zframe_open = false;          // zstd: a frame is begun and not yet whole
    uint64_t decoded = 0;              // body bytes given out (bounded by max_response_body)

    // Send a request and read the head of its answer (interim 1xx skipped);
    // the body is then read with read_body.
    Result<HttpReply> exchange(std::string_view method, const std::string& path, std::string_view extra_headers,
                               std::string_view body);
    Result<HttpReply> exchange_once(std::string_view request, std::string_view body, bool head_only,
                                    bool* nothing_received);
    // Up to n bytes of the body (decoded): > 0, or 0 at its end.
    Result<size_t> read_body(char* buf, size_t n);
    Result<size_t> read_framed(char* buf, size_t n);  // the body as sent (still encoded)
    Result<std::string> read_whole_body();
    // Read more into `in`: bytes read, 0 at EOF; on an error the link is closed.
    Result<size_t> fill();
    // The link failed (errno says how): close it, and say what happened.
    Error link_error(const char* when);
    Error fail(ErrorKind kind, const std::string& what);  // drop(), and the error
    void drop();       // close the link: what is on it is of no use
    void body_done();  // the body ended: the link carries the next request, or closes
};

HttpCarrier::~HttpCarrier() = default;
HttpCarrier::HttpCarrier(HttpCarrier&&) noexcept = default;
HttpCarrier& HttpCarrier::operator=(HttpCarrier&&) noexcept = default;

Result<HttpCarrier> HttpCarrier::open(const Url& url, const Options& opts) {
    HttpCarrier c;
    c.impl_ = std::make_unique<Impl>();
    Impl& m = *c.impl_;
    bool v6 = url.host.find(':') != std::string::npos;
    std::string host = v6 ? "[" + url.host + "]" : url.host;
    m.url = url;
    m.host = host + ":" + std::to_string(url.tcp_port());
    m.origin = std::string(url.is_tls() ? "https://" : "http://") + m.host;
    m.opts = opts;
    if (url.is_tls()) {
        m.tls.reset(SSL_CTX_new(TLS_client_method()));
        if (!m.tls) return make_error(ErrorKind::InvalidArgument, "cannot use " + m.origin + ": TLS not available");
        SSL_CTX_set_min_proto_version(m.tls.get(), TLS1_2_VERSION);
        // A server that closes without close_notify ends the stream (bodies
        // are framed by length or chunks, so a cut one is still an error).
        SSL_CTX_set_options(m.tls.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
        SSL_CTX_set_verify(m.tls.get(), SSL_VERIFY_PEER, nullptr);
        std::string ca = opts.ca_file.value_or("");
        if (ca.empty())
            if (const char* e = std::getenv("SOUK_CA_FILE")) ca = e;
        if (ca.empty() ? SSL_CTX_set_default_verify_paths(m.tls.get()) != 1
                       : SSL_CTX_load_verify_locations(m.tls.get(), ca.c_str(), nullptr) != 1) {
            ERR_clear_error();
            return make_error(ErrorKind::InvalidArgument,
                              ca.empty() ? std::string("cannot load the system's CA certificates")
                                         : "cannot load the CA certificates in " + ca + " (SOUK_CA_FILE?)");
        }
    }
    return c;
}

Result<size_t> HttpCarrier::Impl::fill() {
    if (!scratch) scratch = std::make_unique<char[]>(kReadStep);
    ssize_t n = link.read_some(scratch.get(), kReadStep, io::after_ms(opts.timeout.count()));
    if (n < 0) return link_error("waiting for");
    in.append(scratch.get(), static_cast<size_t>(n));
    return static_cast<size_t>(n);
}

Error HttpCarrier::Impl::link_error(const char* when) {
    int e = errno;
    if (e == ETIMEDOUT) return fail(ErrorKind::Timeout, std::string("timed out ") + when + " " + where);
    return fail(ErrorKind::Connection, std::string("connection lost ") + when + " " + where + ": " + ::strerror(e));
}

Error HttpCarrier::Impl::fail(ErrorKind kind, const std::string& what) {
    drop();
    return make_error(kind, what);
}

void HttpCarrier::Impl::drop() {
    link.close();
    in.clear();
    framing = Framing::None;
    zstd.reset();
}

void HttpCarrier::Impl::body_done() {
    framing = Framing::None;
    if (!keep) link.close();
}

Result<HttpReply> HttpCarrier::Impl::exchange(std::string_view method, const std::string& path,
                                              std::string_view extra_headers, std::string_view body) {
    // The last body was not read to its end (a smart client stops at the
    // message's end, before the chunked body's last chunk): read what is
    // left if it is little, else drop it with its connection.
    for (size_t drained = 0; framing != Framing::None && framing != Framing::ToEof && drained < kMaxDrain;) {
        if (!scratch) scratch = std::make_unique<char[]>(kReadStep);
        auto k = read_framed(scratch.get(), kMaxDrain - drained);
        if (!k || *k == 0) break;
        drained += *k;
    }
    if (framing != Framing::None) drop();
    where = origin + path;
    std::string req;
    req.reserve(256 + extra_headers.size() + (body.size() <= kJoinBody ? body.size() : 0));
    req.append(method).append(" ").append(path).append(" HTTP/1.1\r\nHost: ").append(host);
    // Who we are, for the server's logs: "souk/<the CMake project version>".
    req.append("\r\nUser-Agent: souk/" SOUK_VERSION "\r\n").append(extra_headers);
    if (method == "POST") req.append("Content-Type: application/octet-stream\r\nContent-Length: ")
                              .append(std::to_string(body.size())).append("\r\n");
    req.append("\r\n");
    // A small body leaves in the same write as the head (one segment).
    if (body.size() <= kJoinBody) {
        req.append(body);
        body = {};
    }
    const bool head_only = method == "HEAD";
    // A kept-alive connection the server closed meanwhile is replaced
    // before use; if it dies under the request before any byte of the
    // response, a GET or HEAD is sent once more on a new one (a POST is
    // not: the server may have acted on it; the caller decides).
    bool reused = in.empty() && link.reusable();
    for (int attempt = 0;; ++attempt) {  // bounded: at most two attempts
        if (!reused) {
            in.clear();
            if (auto e = link.connect(url, tls.get(), opts, origin)) return std::move(*e);
        }
        bool nothing = false;
        auto r = exchange_once(req, body, head_only, &nothing);
        if (r || !reused || !nothing || attempt > 0 || method == "POST") return r;
        reused = false;
    }
}

Result<HttpReply> HttpCarrier::Impl::exchange_once(std::string_view request, std::string_view body, bool head_only,
                                                   bool* nothing_received) {
    *nothing_received = true;
    if (link.write_all(request, io::after_ms(opts.timeout.count())) < 0) return link_error("sending to");
    for (size_t off = 0; off < body.size(); off += kWriteStep) {  // each write waits at most `timeout`
        if (link.write_all(body.substr(off, kWriteStep), io::after_ms(opts.timeout.count())) < 0)
            return link_error("sending to");
    }
    // The head; interim 1xx responses are skipped.
    proto::http1::ResponseHead head;
    size_t head_len = 0;
    for (size_t interim = 0;; ++interim) {  // bounded: kMaxInterim responses
        while ((head_len = proto::http1::head_length(in)) == 0) {  // bounded by kMaxResponseHead
            if (in.size() > kMaxResponseHead)
                return fail(ErrorKind::Protocol, "the response head from " + where + " is over " +
                                                     std::to_string(kMaxResponseHead) + " bytes");
            auto n = fill();
            if (!n) return std::move(n).take_error();
            if (*n == 0)
                return fail(ErrorKind::Connection, "connection to " + where + " closed before the response was complete");
            *nothing_received = false;
        }
        *nothing_received = false;
        const char* why = "";
        if (!proto::http1::parse_response_head(std::string_view(in).substr(0, head_len), head, &why))
            return fail(ErrorKind::Protocol, "malformed response from " + where + ": " + why);
        if (head.status >= 200) break;
        if (interim >= kMaxInterim) return fail(ErrorKind::Protocol, "too many interim responses from " + where);
        in.erase(0, head_len);
    }
    HttpReply r;
    r.status = head.status;
    r.content_type = head.header("Content-Type");
    r.content_range = head.header("Content-Range");
    r.content_length = head.content_length;
    std::string encoding(head.header("Content-Encoding"));
    keep = head.keep_alive;
    if (head_only || head.status == 204 || head.status == 304) framing = Framing::None;
    else if (head.chunked) framing = Framing::Chunked, chunks.reset();
    else if (head.has_length) framing = Framing::Length, left = head.content_length;
    else framing = Framing::ToEof, keep = false;
    in.erase(0, head_len);  // the views in `head` are not used past this point
    if (framing == Framing::Length && left > opts.max_response_body)
        return fail(ErrorKind::Protocol, "the response body from " + where + " is over " +
                                             std::to_string(opts.max_response_body) + " bytes (max_response_body)");
    decoded = 0;
    zstd.reset();
    if (framing != Framing::None && !encoding.empty() && !iequals(encoding, "identity")) {
        if (!iequals(encoding, "zstd"))
            return fail(ErrorKind::Protocol, "unrequested Content-Encoding '" + encoding + "' from " + where);
        zstd.reset(ZSTD_createDCtx());
        if (!zstd) return fail(ErrorKind::Protocol, "zstd: out of memory");
        zin.clear();
        zin_at = 0;
        zin_end = false;
        zframe_open = false;
    }
    if (framing == Framing::None) body_done();
    return r;
}

Result<size_t> HttpCarrier::Impl::read_framed(char* buf, size_t n) {
    if (n == 0) return size_t{0};
    auto cut = [&] { return fail(ErrorKind::Connection, "connection to " + where + " closed in the middle of the response"); };
    switch (framing) {
    case Framing::None: return size_t{0};
    case Framing::Length:
    case Framing::ToEof: {
        size_t want = framing == Framing::Length ? static_cast<size_t>(std::min<uint64_t>(n, left)) : n;
        if (want == 0) {
            body_done();
            return size_t{0};
        }
        size_t k;
        if (!in.empty()) {  // what came with the head first
            k = std::min(want, in.size());
            std::memcpy(buf, in.data(), k);
            in.erase(0, k);
        } else {
            ssize_t got = link.read_some(buf, want, io::after_ms(opts.timeout.count()));
            if (got < 0) return link_error("reading from");
            if (got == 0 && framing == Framing::Length) return cut();
            if (got == 0) {
                body_done();
                return size_t{0};
            }
            k = static_cast<size_t>(got);
        }
        if (framing == Framing::Length && (left -= k) == 0) body_done();  // the caller may stop here
        return k;
    }
    case Framing::Chunked:
        for (;;) {  // bounded: each pass decodes bytes of `in`, or reads more, or ends
            if (in.empty()) {
                auto got = fill();
                if (!got) return std::move(got).take_error();
                if (*got == 0) return cut();
            }
            // At most n bytes of input, so at most n bytes of data out.
            std::string_view rest(in.data(), std::min(in.size(), n));
            const size_t offered = rest.size();
            thread_local std::vector<std::string_view> parts;
            parts.clear();
            auto st = chunks.feed(rest, parts);
            size_t k = 0;
            for (auto part : parts) {
                std::memcpy(buf + k, part.data(), part.size());
                k += part.size();
            }
            in.erase(0, offered - rest.size());
            if (st == proto::http1::ChunkedDecoder::Status::Bad)
                return fail(ErrorKind::Protocol, "malformed chunked body from " + where);
            if (st == proto::http1::ChunkedDecoder::Status::Done) {
                body_done();
                return k;  // 0 when the last data came before
            }
            if (k > 0) return k;
        }
    }
    return size_t{0};
}

Result<size_t> HttpCarrier::Impl::read_body(char* buf, size_t n) {
    const uint64_t limit = opts.max_response_body;
    auto over = [&] {
        return fail(ErrorKind::Protocol, "the response body from " + where + " is over " + std::to_string(limit) +
                                             " bytes (max_response_body)");
    };
    if (!zstd) {
        auto k = read_framed(buf, n);
        if (k && (decoded += *k) > limit) return over();
        return k;
    }
    for (size_t pass = 0; pass < (1u << 20); ++pass) {  // bounded: each pass reads, decodes or ends
        if (zin_at == zin.size() && !zin_end) {
            zin.resize(kReadStep);
            zin_at = 0;
            auto k = read_framed(zin.data(), zin.size());
            if (!k) return std::move(k).take_error();
            zin.resize(*k);
            zin_end = *k == 0;
        }
        ZSTD_inBuffer ib{zin.data() + zin_at, zin.size() - zin_at, 0};
        ZSTD_outBuffer ob{buf, n, 0};
        size_t ret = ZSTD_decompressStream(zstd.get(), &ob, &ib);
        zin_at += ib.pos;
        if (ZSTD_isError(ret)) return fail(ErrorKind::Protocol, std::string("zstd: ") + ZSTD_getErrorName(ret));
        // 0: the frame is whole and flushed (a call without input after
        // that returns the size of a next frame's header, not 0).
        if (ib.pos > 0 || ob.pos > 0) zframe_open = ret != 0;
        if (ob.pos > 0) {
            if ((decoded += ob.pos) > limit) return over();
            return ob.pos;
        }
        if (zin_end && zin_at == zin.size()) {
            if (zframe_open) return fail(ErrorKind::Protocol, "zstd: truncated frame from " + where);
            zstd.reset();
            return size_t{0};
        }
    }
    return fail(ErrorKind::Protocol, "zstd: no progress decoding the body from " + where);
}

Result<std::string> HttpCarrier::Impl::read_whole_body() {
    std::string body;
    if (framing == Framing::Length && !zstd) body.reserve(static_cast<size_t>(left));
    for (;;) {  // bounded by max_response_body: read_body fails past it
        size_t at = body.size();
        size_t step = framing == Framing::Length && !zstd ? static_cast<size_t>(std::max<uint64_t>(left, 1)) : kReadStep;
        body.resize(at + step);
        auto k = read_body(body.data() + at, step);
        if (!k) return std::move(k).take_error();
        body.resize(at + *k);
        if (*k == 0) return body;
    }
}

Result<bool> HttpCarrier::begin_post(const std::string& path, std::string_view body) {
    ++requests_;
    auto r = impl_->exchange("POST", path, "Accept: */*\r\nAccept-Encoding: zstd\r\n", body);
    if (!r) return std::move(r).take_error();
    if (r->status != 200) {
        Error e = http_status_error(r->status, impl_->where);
        impl_->drop();  // the error's body is not read
        return e;
    }
    return true;
}

Result<size_t> HttpCarrier::read_body(char* buf, size_t n) { return impl_->read_body(buf, n); }

uint64_t HttpCarrier::body_left() const {
    return impl_->framing == Impl::Framing::Length && !impl_->zstd ? impl_->left : 0;
}

Result<std::string> HttpCarrier::post(const std::string& path, std::string_view body) {
    auto r = begin_post(path, body);
    if (!r) return std::move(r).take_error();
    return impl_->read_whole_body();
}

Result<HttpReply> HttpCarrier::get(const std::string& path, const std::string& range, bool head) {
    ++requests_;
    std::string h = range.empty() ? "Accept: */*\r\nAccept-Encoding: zstd\r\n"
                                  : "Accept: */*\r\nAccept-Encoding: identity\r\nRange: " + range + "\r\n";
    auto r = impl_->exchange(head ? "HEAD" : "GET", path, h, {});
    if (!r) return r;
    auto body = impl_->read_whole_body();
    if (!body) return std::move(body).take_error();
    r->body = std::move(body).value();
    return r;
}

std::string range_header(const std::vector<Range>& wire) {
    std::string out = "bytes=";
    for (size_t i = 0; i < wire.size(); ++i) {
        if (i) out += ',';
        out += std::to_string(wire[i].offset) + "-" + std::to_string(wire[i].offset + wire[i].length - 1);
    }
    return out;
}

Result<std::string> extract_ranges(const HttpReply& reply, const std::vector<Range>& wire) {
    std::string out;
    uint64_t want = wire_bytes(wire);
    out.reserve(static_cast<size_t>(want));
    auto short_error = [&](uint64_t size) {
        return make_error(ErrorKind::ShortReadv, "the file has " + std::to_string(size) +
                                                     " bytes, fewer than the ranges asked for");
    };
    if (reply.status == 200) {  // the whole file (the server ignored Range)
        for (const auto& r : wire) {
            if (r.offset + r.length > reply.body.size()) return short_error(reply.body.size());
            out.append(reply.body, static_cast<size_t>(r.offset), static_cast<size_t>(r.length));
        }
        return out;
    }
    if (reply.status == 416) {
        uint64_t a, b, size = 0;
        std::string_view cr = reply.content_range;
        if (cr.substr(0, 8) == "bytes */") parse_u64(cr.substr(8), size);
        (void)a;
        (void)b;
        return short_error(size);
    }
    if (reply.status != 206) return make_error(ErrorKind::Protocol, "unexpected HTTP status " + std::to_string(reply.status));
    // Collect (offset, data) parts, then cut the wire ranges out of them.
    std::vector<std::pair<uint64_t, std::string_view>> parts;
    uint64_t file_size = UINT64_MAX;
    std::string_view ct = reply.content_type;
    if (ct.substr(0, 20) == "multipart/byteranges") {
        size_t at = ct.find("boundary=");
        if (at == std::string_view::npos) return make_error(ErrorKind::Protocol, "multipart answer without a boundary");
        std::string_view bnd = ct.substr(at + 9);
        if (size_t semi = bnd.find(';'); semi != std::string_view::npos) bnd = bnd.substr(0, semi);
        if (bnd.size() >= 2 && bnd.front() == '"' && bnd.back() == '"') bnd = bnd.substr(1, bnd.size() - 2);
        std::string delim = "--" + std::string(bnd);
        std::string_view body = reply.body;
        size_t pos = body.find(delim);
        for (size_t guard = 0; pos != std::string_view::npos && guard < (1u << 20); ++guard) {
            pos += delim.size();
            if (body.substr(pos, 2) == "--") break;  // the closing delimiter
            size_t head_end = body.find("\r\n\r\n", pos);
            if (head_end == std::string_view::npos) return make_error(ErrorKind::Protocol, "truncated multipart part");
            std::string_view head = body.substr(pos, head_end - pos);
            uint64_t a = 0, b = 0, size = 0;
            bool found = false;
            for (size_t ls = 0; ls < head.size();) {
                size_t le = head.find("\r\n", ls);
                if (le == std::string_view::npos) le = head.size();
                std::string_view line = head.substr(ls, le - ls);
                size_t colon = line.find(':');
                if (colon != std::string_view::npos && iequals(line.substr(0, colon), "content-range")) {
                    std::string_view v = line.substr(colon + 1);
                    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
                    found = parse_content_range(v, a, b, size);
                }
                ls = le + 2;
            }
            if (!found) return make_error(ErrorKind::Protocol, "multipart part without a valid Content-Range");
            size_t data_at = head_end + 4;
            uint64_t n = b - a + 1;
            if (data_at + n > body.size()) return make_error(ErrorKind::Protocol, "truncated multipart part");
            parts.emplace_back(a, body.substr(data_at, static_cast<size_t>(n)));
            file_size = size;
            pos = body.find(delim, data_at + static_cast<size_t>(n));
        }
    } else {
        uint64_t a, b, size;
        if (!parse_content_range(reply.content_range, a, b, size) || b - a + 1 != reply.body.size())
            return make_error(ErrorKind::Protocol, "206 answer without a matching Content-Range");
        parts.emplace_back(a, reply.body);
        file_size = size;
    }
    for (const auto& r : wire) {
        uint64_t off = r.offset, left = r.length;
        for (size_t guard = 0; left > 0 && guard <= parts.size(); ++guard) {
            bool progressed = false;
            for (const auto& [start, data] : parts) {
                if (off >= start && off < start + data.size()) {
                    uint64_t n = std::min<uint64_t>(left, start + data.size() - off);
                    out.append(data.substr(static_cast<size_t>(off - start), static_cast<size_t>(n)));
                    off += n;
                    left -= n;
                    progressed = true;
                    break;
                }
            }
            if (!progressed) break;
        }
        if (left > 0) {
            if (file_size != UINT64_MAX && r.offset + r.length > file_size) return short_error(file_size);
            return make_error(ErrorKind::Protocol, "the server's ranges do not cover what was asked");
        }
    }
    return out;
}

}  // namespace souk::client
