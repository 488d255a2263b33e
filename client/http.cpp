#include "client/http.hpp"

#include <httplib.h>
#include <zstd.h>

#include <cstdlib>

namespace souk::client {
namespace {

std::pair<time_t, time_t> split_ms(std::chrono::milliseconds ms) {
    auto c = std::max<int64_t>(1, ms.count());
    return {static_cast<time_t>(c / 1000), static_cast<time_t>((c % 1000) * 1000)};
}

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

}  // namespace

struct HttpCarrier::Impl {
    std::unique_ptr<httplib::Client> cli;
    std::string origin;   // "http://host:port", for messages
    Options opts;
};

HttpCarrier::~HttpCarrier() = default;
HttpCarrier::HttpCarrier(HttpCarrier&&) noexcept = default;
HttpCarrier& HttpCarrier::operator=(HttpCarrier&&) noexcept = default;

Result<HttpCarrier> HttpCarrier::open(const Url& url, const Options& opts) {
    HttpCarrier c;
    c.impl_ = std::make_unique<Impl>();
    bool v6 = url.host.find(':') != std::string::npos;
    std::string host = v6 ? "[" + url.host + "]" : url.host;
    c.impl_->origin = std::string(url.is_tls() ? "https://" : "http://") + host + ":" + std::to_string(url.tcp_port());
    c.impl_->opts = opts;
    auto cli = std::make_unique<httplib::Client>(c.impl_->origin);
    if (!cli->is_valid())
        return make_error(ErrorKind::InvalidArgument, "cannot use " + c.impl_->origin + " (TLS not available?)");
    // Who we are, for the server's logs: "souk/<the CMake project version>".
    cli->set_default_headers({{"User-Agent", "souk/" SOUK_VERSION}});
    cli->set_keep_alive(true);
    // Headers and body go out in separate writes: without TCP_NODELAY the
    // body waits for the server's delayed ACK (40 ms per POST).
    cli->set_tcp_nodelay(true);
    cli->set_decompress(false);   // zstd is ours; nothing else is asked for
    cli->set_follow_location(false);
    auto [cs, cus] = split_ms(opts.connect_timeout);
    cli->set_connection_timeout(cs, cus);
    auto [rs, rus] = split_ms(opts.timeout);
    cli->set_read_timeout(rs, rus);
    cli->set_write_timeout(rs, rus);
    if (url.is_tls()) {
        std::string ca = opts.ca_file.value_or("");
        if (ca.empty())
            if (const char* e = std::getenv("SOUK_CA_FILE")) ca = e;
        if (!ca.empty()) cli->set_ca_cert_path(ca);
        cli->enable_server_certificate_verification(true);
    }
    c.impl_->cli = std::move(cli);
    return c;
}

namespace {

Error transport_error(httplib::Error e, const std::string& where, long verify) {
    switch (e) {
    case httplib::Error::ConnectionTimeout:
        return make_error(ErrorKind::Timeout, "timed out connecting to " + where);
    case httplib::Error::Read:
        return make_error(ErrorKind::Connection, "connection to " + where + " closed or timed out before the response");
    case httplib::Error::SSLServerVerification:
        return make_error(ErrorKind::Connection,
                          "TLS: the server certificate of " + where + " could not be verified (OpenSSL verify error " +
                              std::to_string(verify) + "); set SOUK_CA_FILE to a CA certificate that signed it");
    case httplib::Error::SSLConnection:
        return make_error(ErrorKind::Connection, "TLS handshake with " + where + " failed");
    case httplib::Error::SSLLoadingCerts:
        return make_error(ErrorKind::InvalidArgument, "cannot load the CA certificates (SOUK_CA_FILE?)");
    default:
        return make_error(ErrorKind::Connection, "cannot reach " + where + ": " + httplib::to_string(e));
    }
}

}  // namespace

Result<std::string> HttpCarrier::post(const std::string& path, std::string_view body) {
    ++requests_;
    httplib::Headers h = {{"Accept", "*/*"}, {"Accept-Encoding", "zstd"}};
    auto res = impl_->cli->Post(path, h, body.data(), body.size(), "application/octet-stream");
    std::string where = impl_->origin + path;
    if (!res) return transport_error(res.error(), where, impl_->cli->get_openssl_verify_result());
    if (res->status != 200) return http_status_error(res->status, where);
    std::string enc = res->get_header_value("Content-Encoding");
    if (enc.empty() || iequals(enc, "identity")) return std::move(res->body);
    if (iequals(enc, "zstd")) return zstd_decode(res->body, impl_->opts.max_response_body);
    return make_error(ErrorKind::Protocol, "unrequested Content-Encoding '" + enc + "' from " + where);
}

Result<HttpReply> HttpCarrier::get(const std::string& path, const std::string& range, bool head) {
    ++requests_;
    httplib::Headers h = {{"Accept", "*/*"}, {"Accept-Encoding", range.empty() ? "zstd" : "identity"}};
    if (!range.empty()) h.emplace("Range", range);
    auto res = head ? impl_->cli->Head(path, h) : impl_->cli->Get(path, h);
    std::string where = impl_->origin + path;
    if (!res) return transport_error(res.error(), where, impl_->cli->get_openssl_verify_result());
    HttpReply r;
    r.status = res->status;
    r.content_type = res->get_header_value("Content-Type");
    r.content_range = res->get_header_value("Content-Range");
    parse_u64(res->get_header_value("Content-Length"), r.content_length);
    std::string enc = res->get_header_value("Content-Encoding");
    if (head || enc.empty() || iequals(enc, "identity")) {
        r.body = std::move(res->body);
    } else if (iequals(enc, "zstd")) {
        auto d = zstd_decode(res->body, impl_->opts.max_response_body);
        if (!d) return std::move(d).take_error();
        r.body = std::move(d).value();
    } else {
        return make_error(ErrorKind::Protocol, "unrequested Content-Encoding '" + enc + "' from " + where);
    }
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

Result<std::string> zstd_decode(std::string_view in, uint64_t limit) {
    std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
    if (!dctx) return make_error(ErrorKind::Protocol, "zstd: out of memory");
    std::string out;
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    std::string buf(ZSTD_DStreamOutSize(), '\0');
    size_t ret = 1;
    for (size_t guard = 0; guard < (1u << 30); ++guard) {  // bounded: each pass consumes or produces
        ZSTD_outBuffer ob{buf.data(), buf.size(), 0};
        ret = ZSTD_decompressStream(dctx.get(), &ob, &ib);
        if (ZSTD_isError(ret)) return make_error(ErrorKind::Protocol, std::string("zstd: ") + ZSTD_getErrorName(ret));
        out.append(buf.data(), ob.pos);
        if (out.size() > limit) return make_error(ErrorKind::Protocol, "zstd: the decoded body is too large");
        if (ret == 0 && ib.pos == ib.size) break;
        if (ib.pos == ib.size && ob.pos < ob.size) break;  // input exhausted
    }
    if (ret != 0) return make_error(ErrorKind::Protocol, "zstd: truncated frame");
    return out;
}

}  // namespace souk::client
