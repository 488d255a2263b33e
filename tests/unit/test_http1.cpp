// protocol/http1: request framing as nginx does it.
#include <doctest/doctest.h>

#include <string>

#include "protocol/http1.hpp"

using namespace souk::proto::http1;

namespace {

int parse(const std::string& head, Head& h, std::string* why = nullptr) {
    const char* w = "";
    int st = parse_head(head, h, &w);
    if (why) *why = w;
    return st;
}

std::string decode_all(const std::string& wire, ChunkedDecoder::Status* st, size_t* left) {
    ChunkedDecoder d;
    std::vector<std::string_view> out;
    std::string_view in = wire;
    *st = d.feed(in, out);
    *left = in.size();
    std::string s;
    for (auto v : out) s += v;
    return s;
}

}  // namespace

TEST_CASE("http1: head_length finds the blank line, CRLF or bare LF, after leading empty lines") {
    CHECK(head_length("GET / HTTP/1.1\r\nHost: a\r\n\r\nrest") == 27);
    CHECK(head_length("GET / HTTP/1.1\nHost: a\n\nrest") == 24);
    CHECK(head_length("\r\n\r\nGET / HTTP/1.0\r\n\r\n") == 22);
    CHECK(head_length("GET / HTTP/1.1\r\nHost: a\r\n") == 0);
    CHECK(head_length("") == 0);
}

TEST_CASE("http1: a well-formed head") {
    Head h;
    const std::string head = "POST /a/.bzr/smart HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\nX-Y:  v w \r\n\r\n";
    REQUIRE(parse(head, h) == 0);  // h's views point into `head`
    CHECK(h.method == "POST");
    CHECK(h.target == "/a/.bzr/smart");
    CHECK(h.minor == 1);
    CHECK(h.has_length);
    CHECK(h.content_length == 12);
    CHECK(h.keep_alive);
    CHECK(h.header("x-y") == "v w");
    CHECK(h.header("absent").empty());
    const std::string absolute = "GET http://example.org/p?q HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    REQUIRE(parse(absolute, h) == 0);
    CHECK(h.target == "/p?q");
    CHECK(h.keep_alive);
    REQUIRE(parse("GET / HTTP/1.0\r\n\r\n", h) == 0);
    CHECK_FALSE(h.keep_alive);
    REQUIRE(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n", h) == 0);
    CHECK_FALSE(h.keep_alive);
}

TEST_CASE("http1: ambiguous framing and missing Host are refused as nginx refuses them") {
    Head h;
    std::string why;
    CHECK(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", h, &why) == 400);
    CHECK(why.find("Transfer-Encoding") != std::string::npos);
    CHECK(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", h) == 400);
    CHECK(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", h) == 400);
    CHECK(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", h) == 400);
    CHECK(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", h) == 400);
    CHECK(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", h) == 400);
    CHECK(parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", h) == 501);
    CHECK(parse("GET / HTTP/1.1\r\n\r\n", h, &why) == 400);
    CHECK(why.find("Host") != std::string::npos);
    CHECK(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", h) == 400);
    CHECK(parse("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", h) == 400);
    CHECK(parse("GET / HTTP/1.1\r\nHost : a\r\n\r\n", h) == 400);
    CHECK(parse("GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", h) == 400);
    CHECK(parse("GET / HTTP/2.0\r\nHost: a\r\n\r\n", h) == 505);
    CHECK(parse("GET / FOO/1.1\r\nHost: a\r\n\r\n", h) == 400);
    CHECK(parse("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", h) == 400);
    CHECK(parse("GET relative HTTP/1.1\r\nHost: a\r\n\r\n", h) == 400);
    CHECK(parse("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", h) == 400);
    CHECK(parse("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", h) == 400);
}

TEST_CASE("http1: chunked bodies decode across any split, with extensions and trailers") {
    const std::string wire = "5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    ChunkedDecoder::Status st;
    size_t left = 0;
    CHECK(decode_all(wire, &st, &left) == "hello 0123456789");
    CHECK(st == ChunkedDecoder::Status::Done);
    CHECK(left == 4);
    for (size_t cut = 1; cut < wire.size() - 4; ++cut) {  // bounded: the wire's length
        ChunkedDecoder d;
        std::vector<std::string_view> out;
        std::string_view a(wire.data(), cut), b(wire.data() + cut, wire.size() - cut);
        REQUIRE(d.feed(a, out) == ChunkedDecoder::Status::More);
        CHECK(a.empty());
        REQUIRE(d.feed(b, out) == ChunkedDecoder::Status::Done);
        std::string s;
        for (auto v : out) s += v;
        CHECK(s == "hello 0123456789");
        CHECK(b == "NEXT");
        CHECK(d.decoded() == 16);
    }
    CHECK(decode_all("0\r\n\r\n", &st, &left).empty());
    CHECK(st == ChunkedDecoder::Status::Done);
    decode_all("x\r\n", &st, &left);
    CHECK(st == ChunkedDecoder::Status::Bad);
    decode_all("5\r\nhelloX\r\n", &st, &left);
    CHECK(st == ChunkedDecoder::Status::Bad);
    decode_all("1000000000000000\r\n", &st, &left);  // 16 hex digits: over the cap
    CHECK(st == ChunkedDecoder::Status::Bad);
    decode_all("1;" + std::string(5000, 'e') + "\r\n", &st, &left);
    CHECK(st == ChunkedDecoder::Status::Bad);
}

TEST_CASE("http1: request_length tells a whole request, pipelined ones apart, and what waits for 100-continue") {
    bool cont = false;
    const std::string get = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK(request_length(get + get, &cont) == get.size());
    CHECK(request_length(get.substr(0, 10), &cont) == 0);
    const std::string post = "POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    CHECK(request_length(post + get, &cont) == post.size());
    CHECK(request_length(post.substr(0, post.size() - 1), &cont) == 0);
    CHECK_FALSE(cont);
    const std::string chunked = "POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    CHECK(request_length(chunked + get, &cont) == chunked.size());
    CHECK(request_length(chunked.substr(0, chunked.size() - 2), &cont) == 0);
    const std::string expect = "POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
    CHECK(request_length(expect, &cont) == 0);
    CHECK(cont);
    CHECK(request_length(expect + "a", &cont) == 0);
    CHECK_FALSE(cont);  // the body has begun: no need to ask for it
    CHECK(request_length("GET / HTTP/1.1\r\n\r\n", &cont) == SIZE_MAX);
    CHECK(request_length("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", &cont) == SIZE_MAX);
}

TEST_CASE("http1: response heads, as libsouk's client reads them") {
    ResponseHead r;
    const char* why = "";
    const std::string head = "HTTP/1.1 206 Partial Content\r\nContent-Length: 3\r\nContent-Range: bytes 0-2/9\r\n\r\n";
    REQUIRE(parse_response_head(head, r, &why));
    CHECK(r.status == 206);
    CHECK(r.has_length);
    CHECK(r.content_length == 3);
    CHECK(r.keep_alive);
    CHECK(r.header("content-range") == "bytes 0-2/9");
    REQUIRE(parse_response_head("HTTP/1.1 200\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", r, &why));
    CHECK(r.status == 200);  // the reason phrase may be absent
    CHECK(r.chunked);
    CHECK_FALSE(r.keep_alive);
    REQUIRE(parse_response_head("HTTP/1.0 200 OK\r\n\r\n", r, &why));
    CHECK_FALSE(r.keep_alive);
    CHECK_FALSE(r.has_length);
    // Refused: what the server refuses in requests, and status lines that are not.
    for (const char* bad : {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                            "HTTP/1.1 200 OK\r\n folded\r\n\r\n",
                            "HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n",
                            "HTTP/1.1 abc OK\r\n\r\n", "ICY 200 OK\r\n\r\n", "\r\n"}) {
        CAPTURE(bad);
        why = "";
        CHECK_FALSE(parse_response_head(bad, r, &why));
        CHECK(*why != '\0');
    }
}
