// The web carriers' pure helpers (server/web.hpp, server/cgi.hpp) and the
// client's HTTP helpers (client/http.hpp, relative_path).
#include <doctest/doctest.h>

#include "client/http.hpp"
#include "client/url.hpp"
#include "server/carriers/cgi.hpp"
#include "server/carriers/web.hpp"

using namespace souk;

TEST_CASE("web: Range header parsing") {
    std::vector<std::pair<uint64_t, uint64_t>> r;
    CHECK(server::parse_range_header("bytes=0-9", 100, 8, r) == 1);
    CHECK(r == std::vector<std::pair<uint64_t, uint64_t>>{{0, 10}});
    CHECK(server::parse_range_header("bytes=90-200, -5,50-", 100, 8, r) == 1);
    CHECK(r == std::vector<std::pair<uint64_t, uint64_t>>{{90, 10}, {95, 5}, {50, 50}});
    CHECK(server::parse_range_header("bytes=100-", 100, 8, r) == 416);   // unsatisfiable
    CHECK(server::parse_range_header("bytes=5-9,200-300", 100, 8, r) == 1);
    CHECK(r.size() == 1);
    CHECK(server::parse_range_header("bytes=9-5", 100, 8, r) == 416);     // malformed
    CHECK(server::parse_range_header("bytes=a-b", 100, 8, r) == 416);
    CHECK(server::parse_range_header("bytes=", 100, 8, r) == 416);
    CHECK(server::parse_range_header("items=1-2", 100, 8, r) == 416);
    CHECK(server::parse_range_header("bytes=-0", 100, 8, r) == 416);
    CHECK(server::parse_range_header("bytes=99999999999999999999-", 100, 8, r) == 416);  // overflow
    CHECK(server::parse_range_header("bytes=0-0,1-1,2-2", 100, 2, r) == 0);  // over the cap: whole file
    CHECK(server::parse_range_header("bytes=0-0", 0, 8, r) == 0);           // empty file, as nginx
    CHECK(server::parse_range_header("bytes=5-9", 0, 8, r) == 416);
}

TEST_CASE("web: Accept-Encoding and HTTP dates") {
    CHECK(server::accepts_coding("zstd", "zstd"));
    CHECK(server::accepts_coding("gzip, ZSTD;q=0.5", "zstd"));
    CHECK(!server::accepts_coding("gzip, zstd;q=0", "zstd"));
    CHECK(!server::accepts_coding("zstdx, gzip", "zstd"));
    CHECK(!server::accepts_coding("", "zstd"));
    CHECK(server::format_http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK(server::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777);
    CHECK(server::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777);
    CHECK(server::parse_http_date("Sun Nov  6 08:49:37 1994") == 784111777);
    CHECK(server::parse_http_date("yesterday") == -1);
    CHECK(server::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT trailing") == -1);
}

TEST_CASE("cgi: CONTENT_LENGTH") {
    CHECK(server::parse_content_length(nullptr) == -1);
    CHECK(server::parse_content_length("") == -1);
    CHECK(server::parse_content_length("0") == 0);
    CHECK(server::parse_content_length("123") == 123);
    CHECK(server::parse_content_length("-1") == -2);
    CHECK(server::parse_content_length(" 1") == -2);
    CHECK(server::parse_content_length("1e3") == -2);
    CHECK(server::parse_content_length("99999999999999999999") == -2);
    CHECK(server::parse_content_length("9223372036854775808") == -2);
}

TEST_CASE("client: relative paths for bzr+http") {
    CHECK(client::relative_path("/a/b", "/a/b") == ".");
    CHECK(client::relative_path("/a/b", "/a/b/c") == "c");
    CHECK(client::relative_path("/a/b", "/a/c") == "../c");
    CHECK(client::relative_path("/", "/x/y") == "x/y");
    CHECK(client::relative_path("/a/b", "/") == "../..");
}

TEST_CASE("client: ranges out of GET answers") {
    using client::HttpReply;
    using client::Range;
    std::vector<Range> wire = {{0, 2}, {10, 3}};
    CHECK(client::range_header(wire) == "bytes=0-1,10-12");
    HttpReply whole;
    whole.status = 200;
    whole.body = "0123456789abcdef";
    CHECK(*client::extract_ranges(whole, wire) == "01abc");
    HttpReply multi;
    multi.status = 206;
    multi.content_type = "multipart/byteranges; boundary=XYZ";
    multi.body = "\r\n--XYZ\r\nContent-Type: a/b\r\nContent-Range: bytes 0-1/16\r\n\r\n01"
                 "\r\n--XYZ\r\nContent-Range: bytes 10-12/16\r\n\r\nabc\r\n--XYZ--\r\n";
    CHECK(*client::extract_ranges(multi, wire) == "01abc");
    HttpReply single;  // a server that merged both into one range
    single.status = 206;
    single.content_type = "application/octet-stream";
    single.content_range = "bytes 0-12/16";
    single.body = "0123456789abc";
    CHECK(*client::extract_ranges(single, wire) == "01abc");
    HttpReply past;
    past.status = 416;
    past.content_range = "bytes */5";
    auto e = client::extract_ranges(past, wire);
    REQUIRE(!e);
    CHECK(e.error().kind == client::ErrorKind::ShortReadv);
    HttpReply bad = multi;
    bad.body = "\r\n--XYZ\r\nContent-Range: bytes 0-1/16\r\n\r\n01\r\n--XYZ--\r\n";
    CHECK(!client::extract_ranges(bad, wire));   // 10-12 missing
}
