// The client's HTTP carrier (docs/protocol/http.md#the-client): one
// keep-alive HTTP/1.1 connection, TLS (OpenSSL) for https, that POSTs smart requests to <path>/.bzr/smart
// (bzr+http://, docs/protocol/http.md) or GETs files with Range (http://, any web
// server). Asks for zstd and decodes it. Knows nothing of verbs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "client/error.hpp"
#include "client/options.hpp"
#include "client/readv.hpp"
#include "client/url.hpp"

namespace souk::client {

struct HttpReply {
    int status = 0;
    std::string body;               // decoded (zstd removed); get() reads it whole
    std::string content_type;
    std::string content_range;      // "bytes a-b/size" or ""
    uint64_t content_length = 0;    // HEAD: the announced length
};

class HttpCarrier {
public:
    ~HttpCarrier();
    HttpCarrier(HttpCarrier&&) noexcept;
    HttpCarrier& operator=(HttpCarrier&&) noexcept;

    // Set up the connection parameters (the TCP/TLS connection itself opens
    // on the first request and is reused). TLS trusts Options::ca_file, else
    // $SOUK_CA_FILE, else the system's CAs.
    static Result<HttpCarrier> open(const Url& url, const Options& opts);

    // POST `body` to `path` (escaped) and read the head of the answer: true
    // for a 200, whose body then comes from read_body; or an error:
    // Connection (cannot connect / reset), Timeout, Protocol (any other
    // status, bad framing or encoding).
    Result<bool> begin_post(const std::string& path, std::string_view body);
    // Up to n bytes of the body being read (zstd removed): > 0, or 0 at its
    // end. Bounded by Options::max_response_body and Options::timeout.
    Result<size_t> read_body(char* buf, size_t n);
    // Bytes of the current body still to come when its length is known
    // (Content-Length, not compressed), else 0: a hint to size a buffer.
    uint64_t body_left() const;
    // begin_post, then the whole body.
    Result<std::string> post(const std::string& path, std::string_view body);
    // GET `path` (escaped), with a Range header if `range` is not empty;
    // HEAD with head=true. Any status is returned; transport failures are
    // errors.
    Result<HttpReply> get(const std::string& path, const std::string& range, bool head);

    uint64_t requests() const { return requests_; }

private:
    HttpCarrier() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
    uint64_t requests_ = 0;
};

// The bytes of `wire` (ascending, disjoint ranges) from a GET answer:
// 206 single part, 206 multipart/byteranges, or 200 with the whole file.
// Fails with ShortReadv when the file is too short, Protocol when the
// answer does not hold what was asked.
Result<std::string> extract_ranges(const HttpReply& reply, const std::vector<Range>& wire);

// "bytes=a-b,c-d" for `wire`.
std::string range_header(const std::vector<Range>& wire);

}  // namespace souk::client
