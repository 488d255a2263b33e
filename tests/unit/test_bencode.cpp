// Strict bencode (docs/protocol/framing.md#bencode): round trips, canonical forms, caps, overflow.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/bencode.hpp"

using namespace souk::proto;
using namespace std::string_literals;

namespace {

std::string nested_lists(size_t n) { return std::string(n, 'l') + std::string(n, 'e'); }

bool decodes(std::string_view in, const BencodeLimits& limits = {}) { return bdecode(in, limits).ok(); }

}  // namespace

TEST_CASE("bencode: canonical inputs decode and re-encode to the same bytes") {
    const std::vector<std::string> inputs = {
        "0:",
        "3:get",
        "16:Software version",
        "i0e",
        "i42e",
        "i-3e",
        "i1795238047e",
        "le",
        "de",
        "l3:get4:/a/be",
        "d16:Software version5:3.3.2e",
        "l3:out0:i1795238047ee",                                   // int in args (docs/protocol/framing.md#bencode)
        "l31:Repository.get_rev_id_for_revno2:p/i5eli3e3:revee",   // nested list in args
        "d0:0:1:a1:b2:aali1eee",                                   // empty key sorts first
        "l5:error9:Exception5:Boom!e",
        "4:\x00\x01\xff\n"s,                                       // raw bytes, NUL included
    };
    for (const auto& in : inputs) {
        CAPTURE(in);
        auto v = bdecode(in);
        if (!v.ok()) FAIL_CHECK(v.error());
        REQUIRE(v.ok());
        CHECK(bencode(*v) == in);
    }
}

TEST_CASE("bencode: decoded values have the right kinds and contents") {
    auto v = bdecode("l3:getli7e0:ed1:ki-1eee");
    REQUIRE(v.ok());
    REQUIRE(v->is_list());
    REQUIRE(v->list.size() == 3);
    CHECK(v->list[0] == Value("get"));
    REQUIRE(v->list[1].is_list());
    CHECK(v->list[1].list == std::vector<Value>{Value::of_int(7), Value("")});
    REQUIRE(v->list[2].is_dict());
    REQUIRE(v->list[2].dict.size() == 1);
    CHECK(v->list[2].dict[0].first == "k");
    CHECK(v->list[2].dict[0].second == Value::of_int(-1));

    auto bin = bdecode("3:\x00:e"s);
    REQUIRE(bin.ok());
    CHECK(bin->bytes == "\x00:e"s);
}

TEST_CASE("bencode: values built in memory round trip through encode and decode") {
    Value v = Value::of_list({
        Value("hello"),
        Value(""),
        Value("\x00\xff\x01\n"s),
        Value::of_int(0),
        Value::of_int(-42),
        Value::of_int(std::numeric_limits<int64_t>::max()),
        Value::of_int(std::numeric_limits<int64_t>::min()),
        Value::of_list({}),
        Value::of_list({Value::of_list({Value("deep")})}),
        Value::of_dict({{"a", Value("1")}, {"b", Value::of_list({Value::of_int(2)})}}),
    });
    std::string enc = bencode(v);
    auto back = bdecode(enc);
    REQUIRE(back.ok());
    CHECK(*back == v);
    std::string appended = "prefix";
    bencode(v, appended);
    CHECK(appended == "prefix" + enc);
}

TEST_CASE("bencode: non-canonical and malformed inputs are rejected") {
    const std::vector<std::string> bad = {
        "",                        // empty input
        "i03e",                    // leading zero
        "i00e",
        "i-01e",
        "i-0e",                    // negative zero
        "i-e",                     // sign without digits
        "ie",                      // no digits
        "i+1e",
        "i 1e",
        "i1.5e",
        "i12",                     // unterminated integer
        "03:abc",                  // length with leading zero
        "00:",
        "-1:a",
        "3abc",                    // no colon
        "1a:b",
        "5:abc",                   // string overruns input
        "9223372036854775807:a",   // huge length overruns input
        "99999999999999999999:a",  // length does not fit int64
        "3:abcX",                  // trailing bytes
        "i1ei2e",
        "lee",
        "l",                       // unterminated list
        "l3:abc",
        "d",                       // unterminated dict
        "d1:a",                    // key without value
        "d1:ae",
        "d1:b1:11:a1:2e",          // unsorted keys (docs/protocol/framing.md#bencode)
        "d1:a1:11:a1:2e",          // duplicate keys
        "d1:b0:1:a0:1:c0:e",
        "di1e1:ae",                // non-string dict keys
        "dle1:ae",
        "dde1:ae",
        "x",                       // unknown type byte
        "e",
    };
    for (const auto& in : bad) {
        CAPTURE(in);
        auto v = bdecode(in);
        CHECK_FALSE(v.ok());
        if (!v.ok()) CHECK_FALSE(v.error().empty());
    }
}

TEST_CASE("bencode: dict keys compare as unsigned bytes") {
    // 0x7f < 0x80 only if bytes are compared unsigned (char is signed here).
    CHECK(decodes("d1:\x7f" "0:1:\x80" "0:e"));
    CHECK_FALSE(decodes("d1:\x80" "0:1:\x7f" "0:e"));
    // A key that is a prefix of the next sorts first.
    CHECK(decodes("d1:a0:2:aa0:e"));
    CHECK_FALSE(decodes("d2:aa0:1:a0:e"));
}

TEST_CASE("bencode: nesting depth is capped") {
    // max_depth counts the containers around a value: 32 around the
    // innermost list is allowed, 33 is not.
    BencodeLimits def;
    REQUIRE(def.max_depth == 32);
    CHECK(decodes(nested_lists(33)));
    CHECK_FALSE(decodes(nested_lists(34)));
    auto deep = bdecode(nested_lists(100000));   // must fail, not overflow the stack
    REQUIRE_FALSE(deep.ok());
    CHECK(deep.error().find("deep") != std::string::npos);
    // Unterminated deep nesting, as an attacker would send it.
    CHECK_FALSE(decodes(std::string(100000, 'l')));

    BencodeLimits two;
    two.max_depth = 2;
    CHECK(decodes("llleee", two));
    CHECK_FALSE(decodes("lllleeee", two));
    CHECK(decodes("ll0:ee", two));
    CHECK_FALSE(decodes("lll0:eee", two));            // a scalar counts as one level
    CHECK(decodes("d1:ad1:aleee", two));
    CHECK_FALSE(decodes("d1:ad1:ad1:a0:eee", two));
}

TEST_CASE("bencode: total item count is capped") {
    BencodeLimits three;
    three.max_items = 3;
    CHECK(decodes("li1ei2ee", three));                 // list + 2 ints
    CHECK_FALSE(decodes("li1ei2ei3ee", three));
    CHECK(decodes("d1:ai1ee", three));                 // dict + key + value
    CHECK_FALSE(decodes("d1:ai1e1:bi2ee", three));
    auto r = bdecode("l0:0:0:0:e", three);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().find("many") != std::string::npos);
}

TEST_CASE("bencode: int64 limits") {
    auto mx = bdecode("i9223372036854775807e");
    REQUIRE(mx.ok());
    CHECK(mx->integer == std::numeric_limits<int64_t>::max());
    auto mn = bdecode("i-9223372036854775808e");
    REQUIRE(mn.ok());
    CHECK(mn->integer == std::numeric_limits<int64_t>::min());
    CHECK(bencode(*mn) == "i-9223372036854775808e");
    CHECK_FALSE(decodes("i9223372036854775808e"));
    CHECK_FALSE(decodes("i-9223372036854775809e"));
    CHECK_FALSE(decodes("i18446744073709551616e"));
    CHECK_FALSE(decodes("i99999999999999999999999999999e"));
}

TEST_CASE("bencode: encode sorts dict keys") {
    Value d = Value::of_dict({{"b", Value("1")}, {"a", Value("2")}, {"\x80", Value("3")}, {"", Value("4")}});
    std::string enc = bencode(d);
    CHECK(enc == "d0:1:41:a1:21:b1:11:\x80" "1:3e");
    auto back = bdecode(enc);
    REQUIRE(back.ok());
    REQUIRE(back->dict.size() == 4);
    CHECK(back->dict[0].first == "");
    CHECK(back->dict[1].first == "a");
    CHECK(back->dict[2].first == "b");
    CHECK(back->dict[3].first == "\x80");
    // The observed rejected header, built in the wrong order, comes out sorted.
    CHECK(bencode(Value::of_dict({{"b", Value("1")}, {"a", Value("2")}})) == "d1:a1:21:b1:1e");
    // Nested dicts are sorted too.
    CHECK(bencode(Value::of_list({Value::of_dict({{"z", Value::of_int(1)}, {"y", Value::of_int(2)}})})) ==
          "ld1:yi2e1:zi1eee");
}

TEST_CASE("bencode: to_display renders args like Python tuples") {
    Args a = {Value("get"), Value::of_int(-5), Value::of_list({Value("x"), Value("y")}), Value("it's\n\x01"s)};
    CHECK(to_display(a) == "('get', -5, ('x', 'y'), 'it\\'s\\n\\x01')");
    CHECK(to_display(Value::of_dict({{"k", Value("v")}})) == "{'k': 'v'}");
}
