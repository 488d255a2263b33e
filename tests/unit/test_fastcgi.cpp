// The FastCGI record codec (docs/protocol/fastcgi.md): records, padding,
// name-value pairs split across records, hostile lengths, and a bounded
// randomized decode that must never crash or read out of bounds.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/fastcgi.hpp"

using namespace souk::proto::fcgi;
using namespace std::literals;

namespace {

using Pairs = std::vector<std::pair<std::string_view, std::string_view>>;

// All records of `buf`, or stops at the first NeedMore/Bad (returned).
Parse records(std::string_view buf, std::vector<Record>& out, size_t& used_total) {
    used_total = 0;
    for (int i = 0; i < 100000; ++i) {  // bounded: count
        Record r;
        size_t used = 0;
        Parse p = parse_record(buf.substr(used_total), r, used);
        if (p != Parse::Ok) return p;
        out.push_back(r);
        used_total += used;
    }
    return Parse::Ok;
}

}  // namespace

TEST_CASE("fastcgi: records round-trip with padding to 8 bytes") {
    std::string buf;
    append_records(buf, Stdout, 7, "hello");
    CHECK(buf.size() == 8 + 5 + 3);
    CHECK(static_cast<uint8_t>(buf[6]) == 3);  // padding length
    append_records(buf, Stdout, 7, "");          // the end of the stream
    append_end_request(buf, 7, 0, RequestComplete);
    std::vector<Record> rs;
    size_t used = 0;
    CHECK(records(buf, rs, used) == Parse::NeedMore);
    CHECK(used == buf.size());
    REQUIRE(rs.size() == 3);
    CHECK(rs[0].type == Stdout);
    CHECK(rs[0].request_id == 7);
    CHECK(rs[0].content == "hello");
    CHECK(rs[1].content.empty());
    CHECK(rs[2].type == EndRequest);
    CHECK(rs[2].content == std::string_view("\0\0\0\0\0\0\0\0", 8));
}

TEST_CASE("fastcgi: large content splits at 65535 bytes") {
    std::string big(200000, 'x'), buf;
    append_records(buf, Stdin, 1, big);
    std::vector<Record> rs;
    size_t used = 0;
    records(buf, rs, used);
    REQUIRE(rs.size() == 4);
    std::string joined;
    for (const auto& r : rs) {
        CHECK(r.content.size() <= kMaxContent);
        joined.append(r.content);
    }
    CHECK(joined == big);
}

TEST_CASE("fastcgi: truncated records need more, never read past the end") {
    std::string buf;
    append_records(buf, Params, 1, "abcdefghij");
    for (size_t n = 0; n < buf.size(); ++n) {
        Record r;
        size_t used = 99;
        CHECK(parse_record(std::string_view(buf).substr(0, n), r, used) == Parse::NeedMore);
        CHECK(used == 0);
    }
    // A content length past what arrived: wait, do not trust it.
    std::string lying;
    append_header(lying, Stdin, 1, 60000, 0);
    lying += "short";
    Record r;
    size_t used = 0;
    CHECK(parse_record(lying, r, used) == Parse::NeedMore);
}

TEST_CASE("fastcgi: a version other than 1 is bad") {
    std::string buf;
    append_records(buf, Stdin, 1, "x");
    buf[0] = 2;
    Record r;
    size_t used = 0;
    CHECK(parse_record(buf, r, used) == Parse::Bad);
    buf[0] = 'G';  // an HTTP request sent to the FastCGI socket
    CHECK(parse_record("GET / HTTP/1.1\r\n\r\n", r, used) == Parse::Bad);
}

TEST_CASE("fastcgi: begin request body") {
    std::string buf;
    append_begin_request(buf, 1, Responder, kKeepConn);
    Record r;
    size_t used = 0;
    REQUIRE(parse_record(buf, r, used) == Parse::Ok);
    uint16_t role = 0;
    uint8_t flags = 0;
    REQUIRE(parse_begin(r.content, role, flags));
    CHECK(role == Responder);
    CHECK(flags == kKeepConn);
    CHECK_FALSE(parse_begin("short", role, flags));
}

TEST_CASE("fastcgi: name-value pairs with 1- and 4-byte lengths") {
    std::string block, longname(300, 'N'), longvalue(70000, 'v');
    append_pair(block, "REQUEST_METHOD", "POST");
    append_pair(block, longname, "x");
    append_pair(block, "BIG", longvalue);
    append_pair(block, "EMPTY", "");
    CHECK(static_cast<uint8_t>(block[0]) == 14);
    Pairs out;
    REQUIRE(decode_pairs(block, 10, out).empty());
    REQUIRE(out.size() == 4);
    CHECK(out[0] == std::make_pair("REQUEST_METHOD"sv, "POST"sv));
    CHECK(out[1].first == longname);
    CHECK(out[2].second == longvalue);
    CHECK(out[3].second.empty());
    out.clear();
    CHECK_FALSE(decode_pairs(block, 3, out).empty());  // too many pairs
}

TEST_CASE("fastcgi: hostile pair lengths are errors, never reads") {
    Pairs out;
    // A 4-byte name length of 2^31-1 with nothing after it.
    CHECK_FALSE(decode_pairs("\xff\xff\xff\xff\x01"s, 10, out).empty());
    // A 4-byte length cut short.
    CHECK_FALSE(decode_pairs("\x80\x00"s, 10, out).empty());
    // Value length past the end, and name + value that would wrap a 32-bit sum.
    CHECK_FALSE(decode_pairs("\x01\x05" "Ab"s, 10, out).empty());
    CHECK_FALSE(decode_pairs("\x01\xff\xff\xff\xff" "A"s, 10, out).empty());
    // Only a name length.
    CHECK_FALSE(decode_pairs("\x03"s, 10, out).empty());
    CHECK(out.empty());
}

TEST_CASE("fastcgi: a PARAMS stream split anywhere, even inside a length") {
    std::string block;
    append_pair(block, "SCRIPT_NAME", "");
    append_pair(block, "REQUEST_URI", std::string(200, 'u'));  // 4-byte value length
    append_pair(block, "CONTENT_LENGTH", "12");
    for (size_t cut = 0; cut <= block.size(); ++cut) {
        ParamsBlock p(PairLimits{});
        REQUIRE(p.add(std::string_view(block).substr(0, cut)).empty());
        REQUIRE(p.add(std::string_view(block).substr(cut)).empty());
        REQUIRE(p.finish().empty());
        CHECK(p.get("CONTENT_LENGTH") == "12");
        CHECK(p.get("REQUEST_URI").size() == 200);
        CHECK(p.has("SCRIPT_NAME"));
        CHECK_FALSE(p.has("PATH_INFO"));
    }
}

TEST_CASE("fastcgi: PARAMS limits") {
    ParamsBlock p(PairLimits{100, 4});
    CHECK(p.add(std::string(60, 'a')).empty());
    CHECK_FALSE(p.add(std::string(41, 'a')).empty());  // over 100 bytes
    p.reset();
    std::string block;
    for (int i = 0; i < 5; ++i) append_pair(block, "N", "v");
    REQUIRE(p.add(block).empty());
    CHECK_FALSE(p.finish().empty());  // five pairs, limit four
    CHECK_FALSE(p.add("x").empty());   // after the end
    ParamsBlock q(PairLimits{});
    REQUIRE(q.add(block).empty());
    REQUIRE(q.finish().empty());
    CHECK(q.pairs().size() == 5);
}

TEST_CASE("fastcgi: GET_VALUES answers known names only") {
    std::string query, out;
    append_pair(query, "FCGI_MAX_CONNS", "");
    append_pair(query, "FCGI_MPXS_CONNS", "");
    append_pair(query, "SOMETHING_ELSE", "");
    REQUIRE(answer_get_values(query, PairLimits{}, 16, 16, out).empty());
    Record r;
    size_t used = 0;
    REQUIRE(parse_record(out, r, used) == Parse::Ok);
    CHECK(r.type == GetValuesResult);
    CHECK(r.request_id == 0);
    Pairs got;
    REQUIRE(decode_pairs(r.content, 10, got).empty());
    REQUIRE(got.size() == 2);
    CHECK(got[0] == std::make_pair("FCGI_MAX_CONNS"sv, "16"sv));
    CHECK(got[1] == std::make_pair("FCGI_MPXS_CONNS"sv, "0"sv));
    out.clear();
    CHECK_FALSE(answer_get_values("\x7f"s, PairLimits{}, 1, 1, out).empty());
    CHECK(out.empty());
}

TEST_CASE("fastcgi: unknown type and end request encodings") {
    std::string buf;
    append_unknown_type(buf, 200);
    append_end_request(buf, 3, 0x01020304, UnknownRole);
    Record r;
    size_t used = 0;
    REQUIRE(parse_record(buf, r, used) == Parse::Ok);
    CHECK(r.type == UnknownType);
    CHECK(static_cast<uint8_t>(r.content[0]) == 200);
    REQUIRE(parse_record(std::string_view(buf).substr(used), r, used) == Parse::Ok);
    CHECK(r.type == EndRequest);
    CHECK(r.content == std::string_view("\x01\x02\x03\x04\x03\0\0\0", 8));
}

TEST_CASE("fastcgi: randomized decode never crashes (bounded)") {
    std::mt19937 rng(20261205);
    std::uniform_int_distribution<int> byte(0, 255), len(0, 400);
    size_t ok = 0;
    for (int round = 0; round < 3000; ++round) {  // bounded: rounds
        std::string buf;
        // Half the inputs start as valid records, then get bytes flipped.
        if (round % 2 == 0) {
            std::string block;
            append_pair(block, "REQUEST_METHOD", "GET");
            append_pair(block, "REQUEST_URI", std::string(static_cast<size_t>(len(rng)), 'p'));
            append_records(buf, Params, 1, block);
            for (int f = 0; f < 4; ++f)
                buf[static_cast<size_t>(rng()) % buf.size()] = static_cast<char>(byte(rng));
        } else {
            const int n = len(rng);
            for (int i = 0; i < n; ++i) buf += static_cast<char>(byte(rng));
        }
        std::vector<Record> rs;
        size_t used = 0;
        records(buf, rs, used);
        CHECK(used <= buf.size());
        for (const auto& r : rs) {
            // Every view lies inside the input.
            CHECK(r.content.data() >= buf.data());
            CHECK(r.content.data() + r.content.size() <= buf.data() + buf.size());
            ParamsBlock p(PairLimits{1024, 64});
            if (p.add(r.content).empty() && p.finish().empty()) ++ok;
            size_t total = 0;
            for (const auto& [n, v] : p.pairs()) total += n.size() + v.size();
            CHECK(total <= p.bytes());
        }
        Pairs out;
        (void)decode_pairs(buf, 64, out);
        for (const auto& [n, v] : out) CHECK(v.data() + v.size() <= buf.data() + buf.size());
    }
    CHECK(ok > 0);
}

TEST_CASE("fastcgi: measure_request: whole at the empty STDIN, partial before, at every cut") {
    std::string params, req;
    append_pair(params, "REQUEST_METHOD", "POST");
    append_pair(params, "REQUEST_URI", "/.bzr/smart");
    append_begin_request(req, 7, Responder, kKeepConn);
    append_records(req, Params, 7, params);
    append_records(req, Params, 7, {});
    append_records(req, Stdin, 7, "body bytes");
    append_records(req, Stdin, 7, {});
    const size_t whole = req.size();
    std::string next;
    append_begin_request(next, 8, Responder, 0);  // the next request, started
    ParamsBlock scratch(PairLimits{});
    for (size_t cut = 0; cut < whole; ++cut) {
        Arrival a = measure_request(std::string_view(req).substr(0, cut), scratch);
        CHECK(a.kind == Arrival::Partial);
    }
    Arrival a = measure_request(req, scratch);
    CHECK((a.kind == Arrival::Whole && a.bytes == whole));
    a = measure_request(req + next, scratch);  // what follows is not this request's
    CHECK((a.kind == Arrival::Whole && a.bytes == whole));
}

TEST_CASE("fastcgi: measure_request: what a responder answers before a request is whole") {
    ParamsBlock scratch(PairLimits{64, 8});
    auto measure = [&scratch](const std::string& in) { return measure_request(in, scratch); };
    std::string query;
    append_pair(query, "FCGI_MPXS_CONNS", "");
    std::string mgmt;
    append_records(mgmt, GetValues, 0, query);
    Arrival a = measure(mgmt + "\x01");  // a management record: at once
    CHECK((a.kind == Arrival::Whole && a.bytes == mgmt.size()));

    std::string stray;  // records of no open request (a finished one's STDIN): skipped together
    append_records(stray, Stdin, 3, "late");
    append_records(stray, Stdin, 3, {});
    std::string begin;
    append_begin_request(begin, 1, Responder, kKeepConn);
    a = measure(stray + begin);
    CHECK((a.kind == Arrival::Whole && a.bytes == stray.size()));

    std::string role;  // a role souk refuses: answered at once
    append_begin_request(role, 2, Authorizer, kKeepConn);
    a = measure(role + begin);
    CHECK((a.kind == Arrival::Whole && a.bytes == role.size()));

    std::string abort = begin;  // an abort ends the request
    append_records(abort, Params, 1, {});
    append_records(abort, Stdin, 1, "part");
    append_header(abort, AbortRequest, 1, 0, 0);
    a = measure(abort);
    CHECK((a.kind == Arrival::Whole && a.bytes == abort.size()));

    std::string big = begin;  // a PARAMS block over its limit: answered 431 at that record
    append_records(big, Params, 1, std::string(65, 'x'));
    a = measure(big + "\x01\x05");
    CHECK((a.kind == Arrival::Whole && a.bytes == big.size()));

    std::string bad = begin;  // an undecodable PARAMS block: answered at its end
    append_records(bad, Params, 1, "\xff\xff");
    append_records(bad, Params, 1, {});
    a = measure(bad);
    CHECK((a.kind == Arrival::Whole && a.bytes == bad.size()));

    std::string mpx = begin;  // another BEGIN_REQUEST (or a management record) while one is open: stream
    append_begin_request(mpx, 2, Responder, kKeepConn);
    CHECK(measure(mpx).kind == Arrival::Stream);
    CHECK(measure(begin + mgmt).kind == Arrival::Stream);

    const std::string http = "GET / HTTP/1.1\r\n\r\n";  // not FastCGI: all of it, the responder closes
    a = measure(http);
    CHECK((a.kind == Arrival::Whole && a.bytes == http.size()));
    CHECK(measure({}).kind == Arrival::Partial);
}
