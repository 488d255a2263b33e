// Smart-protocol messages (docs/protocol/framing.md): RequestDecoder, ResponseDecoder and
// the request::/response:: encoders, fed whole, byte by byte and in random
// (seeded) splits.
#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/bencode.hpp"
#include "protocol/errors.hpp"
#include "protocol/message.hpp"
#include "protocol/verbs.hpp"

using namespace souk::proto;
using namespace std::string_literals;

namespace {

// ------------------------------------------------------------ builders --

std::string u32(uint32_t n) {
    std::string s(4, '\0');
    s[0] = static_cast<char>(n >> 24);
    s[1] = static_cast<char>(n >> 16);
    s[2] = static_cast<char>(n >> 8);
    s[3] = static_cast<char>(n);
    return s;
}
std::string S(std::string_view bencoded) {
    return "s" + u32(static_cast<uint32_t>(bencoded.size())) + std::string(bencoded);
}
std::string B(std::string_view data) { return "b" + u32(static_cast<uint32_t>(data.size())) + std::string(data); }
// Marker + headers; the caller appends parts and the final 'e'.
std::string v3(std::string_view header = "de") {
    return std::string(kV3Marker) + u32(static_cast<uint32_t>(header.size())) + std::string(header);
}
const std::string kBreezyHeader = "d16:Software version5:3.3.2e";
const std::string kAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz";

// ------------------------------------------------------------- tracing --

// One event with consecutive body chunks merged, so that traces from
// different input splits compare equal.
struct Rec {
    Ev kind = Ev::NeedMore;
    int version = 0;
    bool success = true;
    Args args;
    std::string body;
    std::string error;
    size_t offset = 0;  // input bytes consumed when the event was produced
};

std::string render(const Rec& r, bool offsets = true) {
    std::string v = " v" + std::to_string(r.version);
    switch (r.kind) {
    case Ev::ArgsReady: return "args" + v + (r.success ? " S " : " E ") + to_display(r.args);
    case Ev::BodyChunk: return "body " + to_display(Value(r.body));
    case Ev::Abort: return "abort" + v + " " + to_display(r.args);
    case Ev::StreamError: return "stream-error" + v + " " + to_display(r.args);
    case Ev::End: return "end" + v;
    case Ev::Error: return "error" + v + (offsets ? " @" + std::to_string(r.offset) : "") + ": " + r.error;
    case Ev::NeedMore: break;
    }
    return "need-more";
}

// Offsets of errors found while buffering a fixed-size item (a line, the
// v3 marker, the "done" trailer) depend on how the input was split.
std::string render(const std::vector<Rec>& recs, bool offsets = true) {
    std::string out;
    for (const auto& r : recs) out += render(r, offsets) + "\n";
    return out;
}

void record(std::vector<Rec>& recs, const Event& ev, size_t offset) {
    if (ev.kind == Ev::BodyChunk && !recs.empty() && recs.back().kind == Ev::BodyChunk) {
        recs.back().body += ev.chunk;
        recs.back().offset = offset;
        return;
    }
    Rec r;
    r.kind = ev.kind;
    r.version = ev.version;
    r.success = ev.success;
    r.args = ev.args;
    r.body = std::string(ev.chunk);
    r.error = ev.error;
    r.offset = offset;
    recs.push_back(std::move(r));
}

enum class Feed { Whole, Bytewise, Random };

std::vector<std::string_view> split(std::string_view data, Feed feed, unsigned seed = 0) {
    std::vector<std::string_view> pieces;
    if (feed == Feed::Whole) {
        pieces.push_back(data);
        return pieces;
    }
    std::mt19937 rng(seed);
    std::uniform_int_distribution<size_t> small(1, 9), big(10, 300), pick(0, 3);
    while (!data.empty()) {
        size_t n = feed == Feed::Bytewise ? 1 : (pick(rng) == 0 ? big(rng) : small(rng));
        n = std::min(n, data.size());
        pieces.push_back(data.substr(0, n));
        data.remove_prefix(n);
    }
    return pieces;
}

// Decode a stream of requests; stops at the first Error.
std::vector<Rec> decode_requests(std::string_view data, Feed feed, unsigned seed = 0, DecoderLimits limits = {}) {
    RequestDecoder d(limits);
    std::vector<Rec> recs;
    size_t base = 0;
    for (std::string_view piece : split(data, feed, seed)) {
        std::string_view in = piece;
        for (;;) {
            Event ev = d.next(in);
            size_t offset = base + (piece.size() - in.size());
            if (ev.kind == Ev::NeedMore) {
                CHECK(in.empty());  // NeedMore only when the input is used up
                break;
            }
            record(recs, ev, offset);
            if (ev.kind == Ev::Error) return recs;
        }
        base += piece.size();
    }
    return recs;
}

// Decode one response; stops at End or Error.
std::vector<Rec> decode_response(std::string_view data, int version, bool expect_body, Feed feed,
                                 unsigned seed = 0, DecoderLimits limits = {}) {
    ResponseDecoder d(version, expect_body, limits);
    std::vector<Rec> recs;
    size_t base = 0;
    for (std::string_view piece : split(data, feed, seed)) {
        std::string_view in = piece;
        for (;;) {
            Event ev = d.next(in);
            size_t offset = base + (piece.size() - in.size());
            if (ev.kind == Ev::NeedMore) {
                CHECK(in.empty());
                break;
            }
            record(recs, ev, offset);
            if (ev.kind == Ev::Error) return recs;
            if (ev.kind == Ev::End) {
                CHECK(d.done());
                return recs;
            }
        }
        base += piece.size();
    }
    return recs;
}

// All feeding strategies must agree with each other and with `expected`.
void check_requests(std::string_view data, const std::string& expected, DecoderLimits limits = {}) {
    std::string whole = render(decode_requests(data, Feed::Whole, 0, limits));
    CHECK(whole == expected);
    CHECK(render(decode_requests(data, Feed::Bytewise, 0, limits)) == whole);
    for (unsigned seed = 1; seed <= 8; ++seed) {
        CAPTURE(seed);
        CHECK(render(decode_requests(data, Feed::Random, seed, limits)) == whole);
    }
}

void check_response(std::string_view data, int version, bool expect_body, const std::string& expected,
                    DecoderLimits limits = {}) {
    std::string whole = render(decode_response(data, version, expect_body, Feed::Whole, 0, limits));
    CHECK(whole == expected);
    CHECK(render(decode_response(data, version, expect_body, Feed::Bytewise, 0, limits)) == whole);
    for (unsigned seed = 1; seed <= 8; ++seed) {
        CAPTURE(seed);
        CHECK(render(decode_response(data, version, expect_body, Feed::Random, seed, limits)) == whole);
    }
}

// The Error ending a request stream fed whole (a NeedMore Rec if none).
// Fed byte by byte the events must be the same; with `same_offset` the
// error must also come at the same input position.
Rec first_error(std::string_view data, DecoderLimits limits = {}, bool same_offset = true) {
    auto recs = decode_requests(data, Feed::Whole, 0, limits);
    auto bytewise = decode_requests(data, Feed::Bytewise, 0, limits);
    CHECK(render(bytewise, same_offset) == render(recs, same_offset));
    if (!recs.empty() && recs.back().kind == Ev::Error) return recs.back();
    return Rec{};
}

// A v3 message split after its header: the header dict and the rest.
std::pair<Value, std::string> split_v3(const std::string& msg) {
    REQUIRE(msg.size() >= kV3Marker.size() + 4);
    REQUIRE(msg.compare(0, kV3Marker.size(), kV3Marker) == 0);
    std::string_view len = std::string_view(msg).substr(kV3Marker.size(), 4);
    uint32_t n = (uint32_t(uint8_t(len[0])) << 24) | (uint32_t(uint8_t(len[1])) << 16) |
                 (uint32_t(uint8_t(len[2])) << 8) | uint32_t(uint8_t(len[3]));
    REQUIRE(msg.size() >= kV3Marker.size() + 4 + n);
    auto header = bdecode(std::string_view(msg).substr(kV3Marker.size() + 4, n));
    REQUIRE(header.ok());
    CHECK(header->is_dict());
    return {std::move(header).value(), msg.substr(kV3Marker.size() + 4 + n)};
}

// v3 bytes after the marker and header (the header differs: souk names itself).
std::string after_v3_header(const std::string& msg) { return split_v3(msg).second; }

// Requests used by several tests.
const std::string kV1Hello = "hello\n";
const std::string kV2Hello = "bzr request 2\nhello\n";
const std::string kV3Hello = v3() + S("l5:helloe") + "e";
const std::string kV1Readv = "readv\x01/p\n8\n0,3\n10,4done\n"s;
const std::string kV2Readv = "bzr request 2\nreadv\x01/p\n8\n0,3\n10,4done\n"s;
const std::string kV3Readv = v3(kBreezyHeader) + S("l5:readv17:/vfsdemo/data.txte") + B("0,3\n10,4\n30,6") + "e";
const std::string kV3Streamed =
    v3() + S("l3:put21:/vfsdemo/streamed.txt0:e") + B("part one,") + B("") + B("part two,") + B("part three") + "e";
const std::string kV3Aborted =
    v3() + S("l3:put20:/vfsdemo/aborted.txt0:e") + B("some data") + "oE" + S("l5:errore") + "e";

}  // namespace

// --------------------------------------------------------- RequestDecoder --

TEST_CASE("RequestDecoder: v1, v2 and v3 hello") {
    check_requests(kV1Hello, "args v1 S ('hello')\nend v1\n");
    check_requests(kV2Hello, "args v2 S ('hello')\nend v2\n");
    check_requests(kV3Hello, "args v3 S ('hello')\nend v3\n");
    // The observed v3 hello, byte for byte (docs/protocol/framing.md#examples).
    check_requests("bzr message 3 (bzr 1.6)\n\x00\x00\x00\x02" "de" "s\x00\x00\x00\tl5:helloee"s,
                   "args v3 S ('hello')\nend v3\n");
}

TEST_CASE("RequestDecoder: requests with bodies in every version") {
    check_requests(kV1Readv, "args v1 S ('readv', '/p')\nbody '0,3\\n10,4'\nend v1\n");
    check_requests(kV2Readv, "args v2 S ('readv', '/p')\nbody '0,3\\n10,4'\nend v2\n");
    check_requests(kV3Readv, "args v3 S ('readv', '/vfsdemo/data.txt')\nbody '0,3\\n10,4\\n30,6'\nend v3\n");
    // v1 put/append/put_non_atomic take bodies; an empty one is legal.
    check_requests("put\x01/f\x01" "420\n0\ndone\n"s, "args v1 S ('put', '/f', '420')\nend v1\n");
    check_requests("append\x01/f\x01\n3\nabcdone\n"s, "args v1 S ('append', '/f', '')\nbody 'abc'\nend v1\n");
    // Body bytes that look like framing are data.
    check_requests("bzr request 2\nput\x01/f\x01\n10\ndone\ndone\ndone\n"s,
                   "args v2 S ('put', '/f', '')\nbody 'done\\ndone\\n'\nend v2\n");
}

TEST_CASE("RequestDecoder: a body split over many b parts concatenates; zero-length parts are legal") {
    check_requests(kV3Streamed,
                   "args v3 S ('put', '/vfsdemo/streamed.txt', '')\n"
                   "body 'part one,part two,part three'\nend v3\n");
    // Only zero-length parts: no body bytes at all, still a clean End.
    check_requests(v3() + S("l3:put2:/f0:e") + B("") + B("") + "e", "args v3 S ('put', '/f', '')\nend v3\n");
    // Many one-byte parts.
    std::string many = v3() + S("l3:put2:/f0:e");
    std::string expect_body;
    for (int i = 0; i < 200; ++i) {
        char c = static_cast<char>('a' + i % 26);
        many += B(std::string(1, c));
        expect_body += c;
    }
    many += "e";
    check_requests(many, "args v3 S ('put', '/f', '')\nbody '" + expect_body + "'\nend v3\n");
}

TEST_CASE("RequestDecoder: v3 client abort gives Abort then End") {
    check_requests(kV3Aborted,
                   "args v3 S ('put', '/vfsdemo/aborted.txt', '')\nbody 'some data'\n"
                   "abort v3 ('error')\nend v3\n");
    // The exact abort bytes from docs/protocol/framing.md#abort, right after the args.
    check_requests(v3() + S("l3:put2:/f0:e") + "oE"s + "s\x00\x00\x00\x09l5:errore"s + "e",
                   "args v3 S ('put', '/f', '')\nabort v3 ('error')\nend v3\n");
    // The decoder is ready for the next request afterwards.
    check_requests(kV3Aborted + kV3Hello,
                   "args v3 S ('put', '/vfsdemo/aborted.txt', '')\nbody 'some data'\n"
                   "abort v3 ('error')\nend v3\nargs v3 S ('hello')\nend v3\n");
}

TEST_CASE("RequestDecoder: unknown verb with a streamed body still reaches End, next request parses") {
    std::string probe = v3(kBreezyHeader) + S("l29:Repository.insert_stream_1.199:newbranch0:e") + B("Bazaar pack") +
                        B("") + B(std::string(1000, 'x')) + "e";
    check_requests(probe + kV3Hello,
                   "args v3 S ('Repository.insert_stream_1.19', 'newbranch', '')\nbody 'Bazaar pack" +
                       std::string(1000, 'x') + "'\nend v3\nargs v3 S ('hello')\nend v3\n");
    // v1/v2 unknown verbs never take a body
    // (docs/protocol/framing.md#unknown-verbs): the next line is a request.
    check_requests("frobnicate\x01x\nhello\n"s,
                   "args v1 S ('frobnicate', 'x')\nend v1\nargs v1 S ('hello')\nend v1\n");
    // A known verb without body given a stray body (malformed-4 capture).
    check_requests(v3() + S("l3:has17:/vfsdemo/data.txte") + B("unexpected body") + "e" + kV3Hello,
                   "args v3 S ('has', '/vfsdemo/data.txt')\nbody 'unexpected body'\nend v3\n"
                   "args v3 S ('hello')\nend v3\n");
}

TEST_CASE("RequestDecoder: args may hold ints and nested lists (docs/protocol/framing.md#bencode)") {
    auto recs = decode_requests(
        v3() + S("l31:Repository.get_rev_id_for_revno5:/src/i5eli3e5:rev-3ee") + "e", Feed::Whole);
    REQUIRE(recs.size() == 2);
    REQUIRE(recs[0].kind == Ev::ArgsReady);
    REQUIRE(recs[0].args.size() == 4);
    CHECK(recs[0].args[2] == Value::of_int(5));
    CHECK(recs[0].args[3] == Value::of_list({Value::of_int(3), Value("rev-3")}));
    CHECK(recs[1].kind == Ev::End);
    check_requests(v3() + S("l27:Repository.revision_archive3:out0:i1795238047ee") + "e",
                   "args v3 S ('Repository.revision_archive', 'out', '', 1795238047)\nend v3\n");
}

TEST_CASE("RequestDecoder: several requests of mixed versions back to back in one buffer") {
    std::string all = kV1Hello + kV3Readv + kV2Hello + kV3Streamed + kV1Readv + kV3Aborted + kV2Readv + kV3Hello +
                      "Transport.is_readonly\n";
    check_requests(all,
                   "args v1 S ('hello')\nend v1\n"
                   "args v3 S ('readv', '/vfsdemo/data.txt')\nbody '0,3\\n10,4\\n30,6'\nend v3\n"
                   "args v2 S ('hello')\nend v2\n"
                   "args v3 S ('put', '/vfsdemo/streamed.txt', '')\nbody 'part one,part two,part three'\nend v3\n"
                   "args v1 S ('readv', '/p')\nbody '0,3\\n10,4'\nend v1\n"
                   "args v3 S ('put', '/vfsdemo/aborted.txt', '')\nbody 'some data'\nabort v3 ('error')\nend v3\n"
                   "args v2 S ('readv', '/p')\nbody '0,3\\n10,4'\nend v2\n"
                   "args v3 S ('hello')\nend v3\n"
                   "args v1 S ('Transport.is_readonly')\nend v1\n");
}

TEST_CASE("RequestDecoder: idle() exactly between messages") {
    RequestDecoder d;
    CHECK(d.idle());
    std::string all = kV3Readv + kV1Readv + kV2Hello;
    std::vector<size_t> ends;  // input positions at which End came
    for (size_t i = 0; i < all.size(); ++i) {
        std::string_view one = std::string_view(all).substr(i, 1);
        bool ended = false;
        for (;;) {
            Event ev = d.next(one);
            if (ev.kind == Ev::NeedMore) break;
            REQUIRE(ev.kind != Ev::Error);
            if (ev.kind == Ev::End) {
                ended = true;
                ends.push_back(i + 1);
            }
        }
        CAPTURE(i);
        CHECK(d.idle() == ended);
    }
    CHECK(ends == std::vector<size_t>{kV3Readv.size(), kV3Readv.size() + kV1Readv.size(), all.size()});
}

TEST_CASE("RequestDecoder: malformed v3 framing gives Error at the right place") {
    const size_t hdr = kV3Marker.size() + 4 + 2;  // marker + length + "de"
    struct Case {
        const char* name;
        std::string data;
        size_t at;
        const char* says;
        bool split_moves_error = false;  // partial body data is reported as it arrives
    };
    const std::vector<Case> cases = {
        {"bad kind byte x", v3() + "x", hdr + 1, "Bad message kind byte"},
        {"header not a dict", v3("l1:xe") + S("l5:helloe") + "e", kV3Marker.size() + 4 + 5, "not a dict"},
        {"header unsorted", v3("d1:b1:11:a1:2e") + S("l5:helloe") + "e", kV3Marker.size() + 4 + 14, "not bencoded"},
        {"header not bencoded", v3("dx") + "e", kV3Marker.size() + 4 + 2, "not bencoded"},
        {"args not bencoded", v3() + S("not bencode") + "e", hdr + 5 + 11, "not bencoded"},
        {"args trailing bytes", v3() + S("l5:helloe1:x") + "e", hdr + 5 + 12, "not bencoded"},
        {"args not a list", v3() + S("3:get") + "e", hdr + 5 + 5, "list"},
        {"args a dict", v3() + S("d3:get0:e") + "e", hdr + 5 + 9, "list"},
        {"args empty list", v3() + S("le") + "e", hdr + 5 + 2, "list"},
        {"verb not a string", v3() + S("li1ee") + "e", hdr + 5 + 5, "list"},
        {"empty structure", v3() + S("") + "e", hdr + 5, "not bencoded"},
        {"body before args", v3() + B("data") + S("l5:helloe") + "e", hdr + 5 + 4, "body before args", true},
        {"empty body before args", v3() + B("") + S("l5:helloe") + "e", hdr + 5, "body before args"},
        {"e before args", v3() + "e", hdr + 1, "without args"},
        {"status before args", v3() + "oS" + S("l5:helloe") + "e", hdr + 2, "status"},
        {"oS after args", v3() + S("l5:helloe") + "oS" + "e", hdr + 14 + 2, "status"},
        {"second structure", v3() + S("l5:helloe") + S("le") + "e", hdr + 14 + 7, "structure"},
        {"body after abort", v3() + S("l3:put2:/f0:e") + "oE" + S("l5:errore") + B("x") + "e",
         hdr + 18 + 2 + 14 + 5 + 1, "abort", true},
        // An abort must carry its error structure and nothing more
        // (docs/protocol/framing.md#abort): without it the request would look
        // complete and be executed.
        {"abort without error args", v3() + S("l3:put2:/f0:e") + B("partial") + "oE" + "e",
         hdr + 18 + 5 + 7 + 2 + 1, "abort"},
        {"two abort structures", v3() + S("l3:put2:/f0:e") + "oE" + S("l5:errore") + S("l5:errore") + "e",
         hdr + 18 + 2 + 14 + 14, "structure"},
        {"header length 0xffffffff", v3().substr(0, kV3Marker.size()) + "\xff\xff\xff\xff"s, kV3Marker.size() + 4,
         "too long"},
        {"structure length 0xffffffff", v3() + "s\xff\xff\xff\xff"s, hdr + 5, "too long"},
        {"structure length over 1 MiB", v3() + "s" + u32(1024 * 1024 + 1), hdr + 5, "too long"},
        {"body part length 0xffffffff", v3() + S("l3:put2:/f0:e") + "b\xff\xff\xff\xff"s, hdr + 18 + 5, "too large"},
    };
    for (const auto& c : cases) {
        const std::string what = std::string(c.name);
        CAPTURE(what);
        Rec e = first_error(c.data, {}, !c.split_moves_error);  // also fed byte by byte
        CHECK(e.kind == Ev::Error);
        CHECK(e.version == 3);
        CHECK(e.offset == c.at);
        CHECK_MESSAGE(e.error.find(c.says) != std::string::npos, e.error);
    }
}

TEST_CASE("RequestDecoder: huge declared lengths fail before the bytes arrive") {
    // Only the 4 length bytes are sent: the error must not wait for (or
    // buffer) the announced 4 GiB.
    for (std::string data : {v3().substr(0, kV3Marker.size()) + "\xff\xff\xff\xff"s,
                             v3() + "s\xff\xff\xff\xff"s, v3() + S("l3:put2:/f0:e") + "b\xff\xff\xff\xff"s,
                             "put\x01/f\x01\n99999999999999999999\n"s, "put\x01/f\x01\n18446744073709551615\n"s,
                             "put\x01/f\x01\n9999999999999999999\n"s, "bzr request 2\nput\x01/f\x01\n4294967296\n"s}) {
        CAPTURE(data);
        RequestDecoder d;
        std::string_view in = data;
        Event ev;
        do ev = d.next(in);
        while (ev.kind != Ev::Error && ev.kind != Ev::NeedMore);
        CHECK(ev.kind == Ev::Error);
        CHECK(in.empty());
    }
}

TEST_CASE("RequestDecoder: body caps") {
    DecoderLimits lim;
    lim.max_body = 10;
    // v3: the total over all parts counts, checked on each part's length.
    check_requests(v3() + S("l3:put2:/f0:e") + B("12345") + B("67890") + "e",
                   "args v3 S ('put', '/f', '')\nbody '1234567890'\nend v3\n", lim);
    std::string over = v3() + S("l3:put2:/f0:e") + B("123456") + B("78901") + "e";
    Rec e = first_error(over, lim);
    CHECK(e.kind == Ev::Error);
    CHECK(e.offset == over.size() - 1 - 5);  // right after the second part's length
    CHECK(e.error.find("too large") != std::string::npos);
    // v1/v2: the declared length is checked before any body byte.
    check_requests("put\x01/f\x01\n10\n1234567890done\n"s, "args v1 S ('put', '/f', '')\nbody '1234567890'\nend v1\n",
                   lim);
    e = first_error("put\x01/f\x01\n11\n12345678901done\n"s, lim);
    CHECK(e.kind == Ev::Error);
    CHECK(e.offset == 11);  // right after the length line
    CHECK(e.error.find("too large") != std::string::npos);
    e = first_error("bzr request 2\nput\x01/f\x01\n11\n"s, lim);
    CHECK(e.version == 2);
    CHECK(e.error.find("too large") != std::string::npos);
}

TEST_CASE("RequestDecoder: v1/v2 line length cap") {
    DecoderLimits lim;
    lim.max_line = 16;
    check_requests("get\x01/0123456789\n"s, "args v1 S ('get', '/0123456789')\nend v1\n", lim);  // 16 with \n
    Rec e = first_error("get\x01/0123456789a\n"s, lim, false);
    CHECK(e.kind == Ev::Error);
    CHECK(e.error.find("too long") != std::string::npos);
    // No newline at all: fails once the cap is passed, without waiting.
    std::string endless(1000, 'a');
    e = first_error(endless, lim, false);
    CHECK(e.kind == Ev::Error);
    CHECK(e.offset <= 16);
    e = first_error("bzr request 2\n" + endless, lim, false);
    CHECK(e.kind == Ev::Error);
    CHECK(e.error.find("too long") != std::string::npos);
    // Default cap: 64 KiB.
    e = first_error(std::string(64 * 1024 + 1, 'a') + "\n", {}, false);
    CHECK(e.kind == Ev::Error);
}

TEST_CASE("RequestDecoder: v1/v2 malformed bodies") {
    struct Case {
        std::string data;
        const char* says;
    };
    const std::vector<Case> cases = {
        {"readv\x01/p\n8\n0,3\n10,4dune\n"s, "done"},
        {"readv\x01/p\n8\n0,3\n10,4DONE\n"s, "done"},
        {"readv\x01/p\n8\n0,3\n10,4done\r\n"s, "done"},
        {"readv\x01/p\n8\n0,3\n10,4\nreadv\x01/p\n"s, "done"},  // body one byte longer than declared
        {"bzr request 2\nreadv\x01/p\n8\n0,3\n10,4donx"s, "done"},
        {"readv\x01/p\nabc\n"s, "length"},
        {"readv\x01/p\n-1\n"s, "length"},
        {"readv\x01/p\n\n"s, "length"},
        {"readv\x01/p\n+8\n"s, "length"},
        {"readv\x01/p\n" + std::string(40, '1') + "\n", "length"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.data);
        auto recs = decode_requests(c.data, Feed::Whole);
        REQUIRE(!recs.empty());
        CHECK(recs.front().kind == Ev::ArgsReady);
        CHECK(recs.back().kind == Ev::Error);
        CHECK_MESSAGE(recs.back().error.find(c.says) != std::string::npos, recs.back().error);
        CHECK(render(decode_requests(c.data, Feed::Bytewise), false) == render(recs, false));
    }
    // The body is delivered before the bad trailer is noticed.
    auto recs = decode_requests("readv\x01/p\n8\n0,3\n10,4dune\n"s, Feed::Whole);
    REQUIRE(recs.size() == 3);
    CHECK(recs[1].body == "0,3\n10,4");
    CHECK(recs[2].kind == Ev::Error);
    CHECK(recs[2].offset <= 9 + 2 + 8 + 5);
}

TEST_CASE("RequestDecoder: after Error it stays failed until reset()") {
    RequestDecoder d;
    std::string bad = v3() + "x";
    std::string_view in = bad;
    Event ev;
    do ev = d.next(in);
    while (ev.kind != Ev::Error && ev.kind != Ev::NeedMore);
    REQUIRE(ev.kind == Ev::Error);
    std::string_view more = kV3Hello;
    CHECK(d.next(more).kind == Ev::Error);
    d.reset();
    CHECK(d.idle());
    std::string_view again = kV1Hello;
    ev = d.next(again);
    CHECK(ev.kind == Ev::ArgsReady);
    CHECK(ev.version == 1);
    CHECK(d.next(again).kind == Ev::End);
}

TEST_CASE("RequestDecoder: moved and copied decoders keep working after the original is gone") {
    DecoderLimits lim;
    lim.max_structure = 64;
    auto original = std::make_unique<RequestDecoder>(lim);
    std::string part1 = v3() + S("l3:put2:/f0:e");
    std::string_view in = part1;
    REQUIRE(original->next(in).kind == Ev::ArgsReady);
    RequestDecoder moved = std::move(*original);
    RequestDecoder copied = moved;
    original.reset();
    for (RequestDecoder* d : {&moved, &copied}) {
        CAPTURE(d == &moved);
        std::string rest = B("abc") + "e" + v3() + "s" + u32(65);
        std::string_view r = rest;
        Event ev = d->next(r);
        CHECK(ev.kind == Ev::BodyChunk);
        CHECK(std::string(ev.chunk) == "abc");
        CHECK(d->next(r).kind == Ev::End);
        ev = d->next(r);
        CHECK(ev.kind == Ev::Error);  // the copied limit (64) still applies
        CHECK(ev.error.find("too long") != std::string::npos);
    }
}

// -------------------------------------------------------- ResponseDecoder --

TEST_CASE("ResponseDecoder: moved and copied decoders keep working after the original is gone") {
    DecoderLimits lim;
    lim.max_body = 4;
    auto original = std::make_unique<ResponseDecoder>(3, false, lim);
    std::string part1 = v3() + "oS" + S("le");
    std::string_view in = part1;
    REQUIRE(original->next(in).kind == Ev::ArgsReady);
    ResponseDecoder moved = std::move(*original);
    ResponseDecoder copied = moved;
    original.reset();
    for (ResponseDecoder* d : {&moved, &copied}) {
        CAPTURE(d == &moved);
        std::string rest = B("abc") + B("de");
        std::string_view r = rest;
        Event ev = d->next(r);
        CHECK(ev.kind == Ev::BodyChunk);
        ev = d->next(r);
        CHECK(ev.kind == Ev::Error);  // the copied limit (4) still applies
        CHECK(ev.error.find("too large") != std::string::npos);
    }
}

TEST_CASE("ResponseDecoder: v3 success, failure, body") {
    std::string pre = v3(kBreezyHeader);
    check_response(pre + "oS" + S("l2:ok1:2e") + "e", 3, false, "args v3 S ('ok', '2')\nend v3\n");
    // Observed bytes (docs/protocol/framing.md#examples).
    check_response("bzr message 3 (bzr 1.6)\n\x00\x00\x00\x1c" "d16:Software version5:3.3.2e"
                   "oEs\x00\x00\x00\x1f" "l13:UnknownMethod10:frobnicateee"s,
                   3, false, "args v3 E ('UnknownMethod', 'frobnicate')\nend v3\n");
    check_response(pre + "oS" + S("l2:oke") + B(kAlphabet) + "e", 3, false,
                   "args v3 S ('ok')\nbody '" + kAlphabet + "'\nend v3\n");
    // Empty args, a body in several parts, a zero-length part, empty header.
    check_response(v3() + "oS" + S("le") + B("ab") + B("") + B("cd") + "e", 3, true,
                   "args v3 S ()\nbody 'abcd'\nend v3\n");
    // A failure may carry a body; the client reads it.
    check_response(pre + "oE" + S("l14:nosuchrevisione") + B("") + "e", 3, false,
                   "args v3 E ('nosuchrevision')\nend v3\n");
}

TEST_CASE("ResponseDecoder: v3 error in the middle of a streamed body (docs/protocol/framing.md#error-in-a-streamed-body)") {
    std::string tail = "oS" "s\x00\x00\x00\x08l4:argse" "b\x00\x00\x00\x03" "aaa" "b\x00\x00\x00\x03" "bbb"
                       "oE" "s\x00\x00\x00\x1b" "l5:error9:Exception5:Boom!e" "e"s;
    check_response(v3(kBreezyHeader) + tail, 3, true,
                   "args v3 S ('args')\nbody 'aaabbb'\nstream-error v3 ('error', 'Exception', 'Boom!')\nend v3\n");
    // Each part arrives as its own chunk when fed whole.
    std::string data = v3(kBreezyHeader) + tail;
    ResponseDecoder d(3, true);
    std::string_view in = data;
    std::vector<std::string> chunks;
    Event ev;
    do {
        ev = d.next(in);
        if (ev.kind == Ev::BodyChunk) chunks.emplace_back(ev.chunk);
        if (ev.kind == Ev::StreamError) CHECK_FALSE(ev.success);
    } while (ev.kind != Ev::End && ev.kind != Ev::Error && ev.kind != Ev::NeedMore);
    CHECK(ev.kind == Ev::End);
    CHECK(chunks == std::vector<std::string>{"aaa", "bbb"});
    CHECK(in.empty());
}

TEST_CASE("ResponseDecoder: v1") {
    check_response("ok\x01" "2\n"s, 1, false, "args v1 S ('ok', '2')\nend v1\n");
    check_response("ok\n36\n" + kAlphabet + "done\n", 1, true, "args v1 S ('ok')\nbody '" + kAlphabet + "'\nend v1\n");
    check_response("readv\n7\n012abcddone\n"s, 1, true, "args v1 S ('readv')\nbody '012abcd'\nend v1\n");
    check_response("ok\n0\ndone\n"s, 1, true, "args v1 S ('ok')\nend v1\n");
    check_response("error\x01Generic bzr smart protocol error: bad request 'frobnicate'\n"s, 1, false,
                   "args v1 E ('error', 'Generic bzr smart protocol error: bad request \\'frobnicate\\'')\nend v1\n");
    // Bytes after the response belong to the next one: not consumed.
    std::string two = "ok\x01" "2\nok\x01" "2\n"s;
    ResponseDecoder d(1, false);
    std::string_view in = two;
    CHECK(d.next(in).kind == Ev::ArgsReady);
    CHECK(d.next(in).kind == Ev::End);
    CHECK(std::string(in) == "ok\x01" "2\n"s);
}

TEST_CASE("ResponseDecoder: v1 failure words never take a body (docs/protocol/errors.md#v1-failure-words)") {
    const char* words[] = {"norepository", "NoSuchFile", "FileExists", "DirectoryNotEmpty", "ShortReadvError",
                           "UnicodeEncodeError", "UnicodeDecodeError", "ReadOnlyError", "nobranch",
                           "NoSuchRevision", "nosuchrevision", "LockContention", "UnlockableTransport",
                           "LockFailed", "TokenMismatch", "ReadError", "PermissionDenied", "error"};
    for (const char* w : words) {
        const std::string what = std::string(w);
        CAPTURE(what);
        std::string line = std::string(w) + "\x01/tmp/bzrlab/srv/vfsdemo/missing\n";
        check_response(line, 1, true,
                       "args v1 E ('" + std::string(w) + "', '/tmp/bzrlab/srv/vfsdemo/missing')\nend v1\n");
    }
    // A success word with expect_body waits for the body.
    auto recs = decode_response("ok\n", 1, true, Feed::Whole);
    REQUIRE(recs.size() == 1);
    CHECK(recs[0].success);
    // Case matters: 'nosuchfile' is not a failure word.
    recs = decode_response("nosuchfile\n", 1, false, Feed::Whole);
    REQUIRE(recs.size() == 2);
    CHECK(recs[0].success);
}

TEST_CASE("ResponseDecoder: v2") {
    check_response("bzr response 2\nsuccess\nok\x01" "2\n"s, 2, false, "args v2 S ('ok', '2')\nend v2\n");
    check_response("bzr response 2\nsuccess\nok\n36\n" + kAlphabet + "done\n", 2, true,
                   "args v2 S ('ok')\nbody '" + kAlphabet + "'\nend v2\n");
    check_response("bzr response 2\nfailed\nNoSuchFile\x01/tmp/x\n"s, 2, true,
                   "args v2 E ('NoSuchFile', '/tmp/x')\nend v2\n");
    // v2 has a status line: any word may be a success or a failure.
    check_response("bzr response 2\nfailed\nok\n"s, 2, true, "args v2 E ('ok')\nend v2\n");
    check_response("bzr response 2\nsuccess\nNoSuchFile\n3\nabcdone\n"s, 2, true,
                   "args v2 S ('NoSuchFile')\nbody 'abc'\nend v2\n");
    check_response("bzr response 2\nfailed\nerror\x01Generic bzr smart protocol error: bad request 'frobnicate'\n"s, 2,
                   false,
                   "args v2 E ('error', 'Generic bzr smart protocol error: bad request \\'frobnicate\\'')\nend v2\n");
}

TEST_CASE("ResponseDecoder: malformed responses") {
    struct Case {
        const char* name;
        std::string data;
        int version;
        bool body;
    };
    const std::vector<Case> cases = {
        {"v3 bad marker", "bzr message 4 (bzr 1.6)\n" + u32(2) + "de" + "oS" + S("le") + "e", 3, false},
        {"v3 v2 reply to v3", "bzr response 2\nsuccess\nok\n", 3, false},
        {"v3 bad status byte", v3() + "oX" + S("le") + "e", 3, false},
        {"v3 structure before status", v3() + S("le") + "e", 3, false},
        {"v3 body before args", v3() + "oS" + B("x") + S("le") + "e", 3, false},
        {"v3 end before args", v3() + "oS" + "e", 3, false},
        {"v3 args not a list", v3() + "oS" + S("2:ok") + "e", 3, false},
        {"v3 second status", v3() + "oS" + "oS" + S("le") + "e", 3, false},
        {"v3 second structure", v3() + "oS" + S("le") + S("le") + "e", 3, false},
        // A stream error must carry its error args: otherwise a truncated
        // body would look like a complete success.
        {"v3 stream error without args", v3() + "oS" + S("l2:oke") + B("trunc") + "oE" + "e", 3, false},
        {"v3 two stream error structures", v3() + "oS" + S("le") + "oE" + S("l1:xe") + S("l1:ye") + "e", 3, false},
        {"v3 body after stream error", v3() + "oS" + S("le") + "oE" + S("l1:xe") + B("x") + "e", 3, false},
        {"v3 bad kind", v3() + "oS" + S("le") + "z", 3, false},
        {"v3 header not a dict", v3("le") + "oS" + S("le") + "e", 3, false},
        {"v3 header too long", std::string(kV3Marker) + "\xff\xff\xff\xff"s, 3, false},
        {"v2 bad marker", "bzr response 3\nsuccess\nok\n", 2, false},
        {"v2 bad status", "bzr response 2\nsucces\nok\n", 2, false},
        {"v1 bad trailer", "ok\n3\nabcdune\n", 1, true},
        {"v1 bad length", "ok\nthree\nabcdone\n", 1, true},
        {"v2 chunked body is not a length", "bzr response 2\nsuccess\nok\nx\n", 2, true},
    };
    for (const auto& c : cases) {
        const std::string what = std::string(c.name);
        CAPTURE(what);
        auto recs = decode_response(c.data, c.version, c.body, Feed::Whole);
        REQUIRE(!recs.empty());
        CHECK(recs.back().kind == Ev::Error);
        CHECK(render(decode_response(c.data, c.version, c.body, Feed::Bytewise), false) == render(recs, false));
    }
    DecoderLimits lim;
    lim.max_body = 4;
    auto recs = decode_response(v3() + "oS" + S("le") + B("abc") + B("de") + "e", 3, false, Feed::Whole, 0, lim);
    CHECK(recs.back().kind == Ev::Error);
    recs = decode_response("ok\n5\nabcdedone\n", 1, true, Feed::Whole, 0, lim);
    CHECK(recs.back().kind == Ev::Error);
    lim.max_line = 8;
    recs = decode_response("ok\x01" "0123456789\n"s, 1, false, Feed::Whole, 0, lim);
    CHECK(recs.back().kind == Ev::Error);
}

TEST_CASE("ResponseDecoder: reading past the end is an error") {
    ResponseDecoder d(3, false);
    std::string data = v3() + "oS" + S("le") + "e" + "extra";
    std::string_view in = data;
    CHECK(d.next(in).kind == Ev::ArgsReady);
    CHECK_FALSE(d.done());
    CHECK(d.next(in).kind == Ev::End);
    CHECK(d.done());
    CHECK(std::string(in) == "extra");
    CHECK(d.next(in).kind == Ev::Error);
}

// --------------------------------------------------------------- encoders --

TEST_CASE("response::encode v3 matches the observed bytes after the header (docs/protocol/framing.md#examples)") {
    std::string out;
    response::encode(3, true, {Value("ok"), Value("2")}, nullptr, out);
    CHECK(after_v3_header(out) == "oSs\x00\x00\x00\tl2:ok1:2ee"s);
    // souk names itself in the header.
    Value hdr = split_v3(out).first;
    REQUIRE(hdr.dict.size() == 1);
    CHECK(hdr.dict[0].first == "Software version");
    CHECK(hdr.dict[0].second.bytes.rfind("souk ", 0) == 0);

    out.clear();
    std::string body = kAlphabet;
    response::encode(3, true, {Value("ok")}, &body, out);
    CHECK(after_v3_header(out) == "oSs\x00\x00\x00\x06l2:okeb\x00\x00\x00\x24"s + kAlphabet + "e");

    out.clear();
    body = "012abcduvwxyz";
    response::encode(3, true, {Value("readv")}, &body, out);
    CHECK(after_v3_header(out) == "oSs\x00\x00\x00\x09l5:readveb\x00\x00\x00\x0d" "012abcduvwxyze"s);

    out.clear();
    response::encode(3, false, error_args(Err::NoSuchFile, "/tmp/bzrlab/srv/vfsdemo/does-not-exist"), nullptr, out);
    CHECK(after_v3_header(out) == "oEs\x00\x00\x00\x38l10:NoSuchFile38:/tmp/bzrlab/srv/vfsdemo/does-not-existee"s);

    out.clear();
    response::encode(3, false, error_args(Err::UnknownMethod, "frobnicate"), nullptr, out);
    CHECK(after_v3_header(out) == "oEs\x00\x00\x00\x1fl13:UnknownMethod10:frobnicateee"s);

    out.clear();
    response::encode(3, true, {}, nullptr, out);
    CHECK(after_v3_header(out) == "oSs\x00\x00\x00\x02lee"s);

    // An empty body is still a (zero-length) part.
    out.clear();
    body.clear();
    response::encode(3, true, {Value("ok")}, &body, out);
    CHECK(after_v3_header(out) == "oSs\x00\x00\x00\x06l2:okeb\x00\x00\x00\x00" "e"s);
}

TEST_CASE("response:: streaming v3 with an error mid-body matches docs/protocol/framing.md#error-in-a-streamed-body") {
    std::string out;
    response::begin(3, true, {Value("args")}, out);
    response::body_chunk(3, "aaa", out);
    response::body_chunk_header(3, 3, out);
    out += "bbb";
    response::stream_error(3, {Value("error"), Value("Exception"), Value("Boom!")}, out);
    response::end(3, out);
    CHECK(after_v3_header(out) == "oSs\x00\x00\x00\x08l4:argseb\x00\x00\x00\x03" "aaab\x00\x00\x00\x03"
                                  "bbboEs\x00\x00\x00\x1bl5:error9:Exception5:Boom!ee"s);
    // body_begin/body_end add nothing in v3.
    std::string v3extra;
    response::body_begin(3, 123, v3extra);
    response::body_end(3, v3extra);
    CHECK(v3extra.empty());
}

TEST_CASE("response::encode v1 and v2 match the observed bytes (docs/protocol/framing.md#v1-and-v2-responses)") {
    std::string body = kAlphabet;
    struct Case {
        int version;
        bool success;
        Args args;
        const std::string* body;
        std::string expect;
    };
    const std::vector<Case> cases = {
        {1, true, {Value("ok"), Value("2")}, nullptr, "ok\x01" "2\n"s},
        {2, true, {Value("ok"), Value("2")}, nullptr, "bzr response 2\nsuccess\nok\x01" "2\n"s},
        {1, true, {Value("ok")}, &body, "ok\n36\n" + kAlphabet + "done\n"},
        {2, true, {Value("ok")}, &body, "bzr response 2\nsuccess\nok\n36\n" + kAlphabet + "done\n"},
        {1, false, error_args(Err::NoSuchFile, "/tmp/bzrlab/srv/vfsdemo/missing"), nullptr,
         "NoSuchFile\x01/tmp/bzrlab/srv/vfsdemo/missing\n"s},
        {2, false, error_args(Err::NoSuchFile, "/tmp/x/missing"), nullptr,
         "bzr response 2\nfailed\nNoSuchFile\x01/tmp/x/missing\n"s},
        {1, false, v12_unknown_verb_args("frobnicate"), nullptr,
         "error\x01Generic bzr smart protocol error: bad request 'frobnicate'\n"s},
        {2, false, v12_unknown_verb_args("frobnicate"), nullptr,
         "bzr response 2\nfailed\nerror\x01Generic bzr smart protocol error: bad request 'frobnicate'\n"s},
    };
    for (const auto& c : cases) {
        CAPTURE(c.expect);
        std::string out;
        response::encode(c.version, c.success, c.args, c.body, out);
        CHECK(out == c.expect);
    }
    std::string readv = "012abcd", out;
    response::encode(1, true, {Value("readv")}, &readv, out);
    CHECK(out == "readv\n7\n012abcddone\n");
}

TEST_CASE("response:: streaming v1/v2 equals the whole-message encoder") {
    for (int version : {1, 2}) {
        CAPTURE(version);
        std::string whole, streamed;
        std::string body = kAlphabet;
        response::encode(version, true, {Value("ok")}, &body, whole);
        response::begin(version, true, {Value("ok")}, streamed);
        response::body_begin(version, body.size(), streamed);
        response::body_chunk(version, std::string_view(body).substr(0, 10), streamed);
        std::string hdr;
        response::body_chunk_header(version, 26, hdr);
        CHECK(hdr.empty());
        streamed += body.substr(10);
        response::body_end(version, streamed);
        response::end(version, streamed);
        CHECK(streamed == whole);
    }
}

TEST_CASE("response:: encodings decode back (all versions)") {
    std::string body = "line1\nline2\x00\x01done\n"s;
    for (int version : {1, 2, 3}) {
        for (bool with_body : {false, true}) {
            CAPTURE(version);
            CAPTURE(with_body);
            Args args = {Value("ok"), Value("x y"), Value("")};
            std::string out;
            response::encode(version, true, args, with_body ? &body : nullptr, out);
            auto recs = decode_response(out, version, with_body, Feed::Bytewise);
            std::string expect = "args v" + std::to_string(version) + " S ('ok', 'x y', '')\n";
            if (with_body) expect += "body " + to_display(Value(body)) + "\n";
            expect += "end v" + std::to_string(version) + "\n";
            CHECK(render(recs) == expect);
            CHECK(recs.back().offset == out.size());
        }
    }
    // v3 nested and integer args survive; v3 failures carry the flag.
    std::string out;
    Args nested = {Value("Bazaar-NG meta directory, format 1\n"), Value::of_list({Value("branch"), Value::of_int(7)})};
    response::encode(3, false, nested, nullptr, out);
    auto recs = decode_response(out, 3, false, Feed::Whole);
    REQUIRE(recs.size() == 2);
    CHECK_FALSE(recs[0].success);
    CHECK(recs[0].args == nested);
}

TEST_CASE("request:: encoders") {
    std::string out;
    request::encode(3, {Value("hello")}, nullptr, out);
    CHECK(after_v3_header(out) == "s\x00\x00\x00\tl5:helloee"s);
    out.clear();
    request::encode(3, {Value("get"), Value("/vfsdemo/data.txt")}, nullptr, out);
    CHECK(after_v3_header(out) == "s\x00\x00\x00\x1bl3:get17:/vfsdemo/data.txtee"s);
    out.clear();
    std::string ranges = "0,3\n10,4\n30,6";
    request::encode(3, {Value("readv"), Value("/vfsdemo/data.txt")}, &ranges, out);
    CHECK(after_v3_header(out) ==
          "s\x00\x00\x00\x1dl5:readv17:/vfsdemo/data.txteb\x00\x00\x00\x0d" "0,3\n10,4\n30,6e"s);

    // Abort bytes, docs/protocol/framing.md#abort.
    out.clear();
    request::begin_v3({Value("put"), Value("/f"), Value("")}, out);
    request::chunk_v3("some data", out);
    size_t before = out.size();
    request::abort_v3(out);
    CHECK(out.substr(before) == "oEs\x00\x00\x00\x09l5:errore" "e"s);

    // v1/v2 lines and bodies (docs/protocol/framing.md#v1-and-v2-bodies).
    out.clear();
    std::string eight = "0,3\n10,4";
    request::encode(1, {Value("readv"), Value("/vfsdemo/data.txt")}, &eight, out);
    CHECK(out == "readv\x01/vfsdemo/data.txt\n8\n0,3\n10,4done\n"s);
    out.clear();
    request::encode(2, {Value("hello")}, nullptr, out);
    CHECK(out == "bzr request 2\nhello\n");
    out.clear();
    request::encode(1, {Value("hello")}, nullptr, out);
    CHECK(out == "hello\n");
}

TEST_CASE("request:: encodings decode back through RequestDecoder") {
    std::string stream;
    std::string body = "abc\ndone\n";
    request::encode(1, {Value("put"), Value("/a"), Value("")}, &body, stream);
    request::encode(2, {Value("append"), Value("/a"), Value("")}, &body, stream);
    request::encode(3, {Value("put"), Value("/a"), Value::of_int(420)}, &body, stream);
    request::begin_v3({Value("Repository.insert_stream_1.19"), Value("b/"), Value("")}, stream);
    request::chunk_v3("one", stream);
    request::chunk_v3("", stream);
    request::chunk_v3("two", stream);
    request::end_v3(stream);
    request::begin_v3({Value("put"), Value("/b"), Value("")}, stream);
    request::chunk_v3("partial", stream);
    request::abort_v3(stream);
    request::encode(3, {Value("get"), Value("/a")}, nullptr, stream);
    check_requests(stream,
                   "args v1 S ('put', '/a', '')\nbody 'abc\\ndone\\n'\nend v1\n"
                   "args v2 S ('append', '/a', '')\nbody 'abc\\ndone\\n'\nend v2\n"
                   "args v3 S ('put', '/a', 420)\nbody 'abc\\ndone\\n'\nend v3\n"
                   "args v3 S ('Repository.insert_stream_1.19', 'b/', '')\nbody 'onetwo'\nend v3\n"
                   "args v3 S ('put', '/b', '')\nbody 'partial'\nabort v3 ('error')\nend v3\n"
                   "args v3 S ('get', '/a')\nend v3\n");
}

TEST_CASE("split_line / join_line") {
    CHECK(split_line("") == Args{Value("")});
    CHECK(split_line("a\x01\x01" "b"s) == Args{Value("a"), Value(""), Value("b")});
    std::string out;
    CHECK(join_line({Value("ok"), Value::of_int(-7), Value("")}, out));
    CHECK(out == "ok\x01-7\x01\n"s);
    out.clear();
    CHECK_FALSE(join_line({Value("a\nb")}, out));
    CHECK(out.find('\n') == out.size() - 1);  // never breaks the framing
    out.clear();
    CHECK_FALSE(join_line({Value("a\x01" "b"s)}, out));
    CHECK(split_line(std::string_view(out).substr(0, out.size() - 1)).size() == 1);
    out.clear();
    CHECK_FALSE(join_line({Value::of_list({Value("x")})}, out));
    Args args = {Value("readv"), Value("/a b"), Value("")};
    out.clear();
    REQUIRE(join_line(args, out));
    CHECK(split_line(std::string_view(out).substr(0, out.size() - 1)) == args);
}
