// client/readv.hpp: coalescing, splitting and reassembly, without a server.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "client/readv.hpp"

using namespace souk::client;

namespace {

// What a correct server returns for one request: the ranges back to back.
std::string serve(const std::string& file, const std::vector<Range>& wire) {
    std::string out;
    for (const Range& r : wire) out += file.substr(r.offset, r.length);
    return out;
}

// Run a whole readv against `file` through plan + assembler.
std::vector<std::string> run(const std::string& file, const std::vector<Range>& ranges, const ReadvLimits& limits,
                             std::vector<size_t>* delivery_order = nullptr) {
    auto plan = plan_readv(ranges, limits);
    REQUIRE(plan.ok());
    std::vector<std::string> out(ranges.size());
    std::vector<size_t> order;
    ReadvAssembler a(ranges, *plan, [&](size_t i, std::string_view d) {
        out[i] = std::string(d);
        order.push_back(i);
        return true;
    });
    for (size_t i = 0; i < plan->requests.size(); ++i) {
        const auto& wire = plan->requests[i];
        // every request obeys the limits, ascends and never overlaps
        CHECK(wire.size() <= limits.max_request_ranges);
        CHECK(wire_bytes(wire) <= limits.max_request_bytes);
        for (size_t k = 1; k < wire.size(); ++k) CHECK(wire[k - 1].offset + wire[k - 1].length < wire[k].offset + 1);
        for (const Range& r : wire) CHECK(r.length > 0);
        REQUIRE(a.add_reply(i, serve(file, wire)).ok());
    }
    REQUIRE(a.finish().ok());
    if (delivery_order) *delivery_order = order;
    return out;
}

std::string pattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
    return s;
}

}  // namespace

TEST_SUITE("client.readv") {

TEST_CASE("no ranges: no requests") {
    auto plan = plan_readv(std::vector<Range>{});
    REQUIRE(plan.ok());
    CHECK(plan->requests.empty());
    CHECK(plan->total_bytes == 0);
}

TEST_CASE("adjacent and overlapping ranges merge; gaps do not by default") {
    std::vector<Range> r = {{10, 5}, {0, 10}, {30, 5}, {32, 10}, {50, 1}};
    auto plan = plan_readv(r);
    REQUIRE(plan.ok());
    REQUIRE(plan->requests.size() == 1);
    CHECK(plan->requests[0] == std::vector<Range>{{0, 15}, {30, 12}, {50, 1}});
    CHECK(plan->total_bytes == 31);
    CHECK(encode_readv_body(plan->requests[0]) == "0,15\n30,12\n50,1");
}

TEST_CASE("merge_gap merges ranges separated by a small gap") {
    ReadvLimits lim;
    lim.merge_gap = 10;
    auto plan = plan_readv(std::vector<Range>{{0, 5}, {15, 5}, {40, 5}}, lim);
    REQUIRE(plan.ok());
    CHECK(plan->requests[0] == std::vector<Range>{{0, 20}, {40, 5}});
}

TEST_CASE("a gap merge never makes a span larger than one request") {
    ReadvLimits lim;
    lim.merge_gap = 100;
    lim.max_request_bytes = 20;
    auto plan = plan_readv(std::vector<Range>{{0, 10}, {15, 10}}, lim);
    REQUIRE(plan.ok());
    REQUIRE(plan->requests.size() == 1);  // two wire ranges, one request of 20 bytes
    CHECK(plan->requests[0] == std::vector<Range>{{0, 10}, {15, 10}});
}

TEST_CASE("requests are capped at max_request_bytes, big ranges are split") {
    ReadvLimits lim;
    lim.max_request_bytes = 100;
    auto plan = plan_readv(std::vector<Range>{{0, 250}, {1000, 60}, {2000, 60}}, lim);
    REQUIRE(plan.ok());
    REQUIRE(plan->requests.size() == 5);
    CHECK(plan->requests[0] == std::vector<Range>{{0, 100}});
    CHECK(plan->requests[1] == std::vector<Range>{{100, 100}});
    CHECK(plan->requests[2] == std::vector<Range>{{200, 50}});
    CHECK(plan->requests[3] == std::vector<Range>{{1000, 60}});
    CHECK(plan->requests[4] == std::vector<Range>{{2000, 60}});
}

TEST_CASE("the default cap is Breezy's 5 MiB") {
    auto plan = plan_readv(std::vector<Range>{{0, 6u << 20}});
    REQUIRE(plan.ok());
    REQUIRE(plan->requests.size() == 2);
    CHECK(plan->requests[0][0].length == 5u << 20);
    CHECK(plan->requests[1][0] == Range{5u << 20, 1u << 20});
}

TEST_CASE("requests are capped at max_request_ranges") {
    ReadvLimits lim;
    lim.max_request_ranges = 4096;
    std::vector<Range> r;
    for (uint64_t i = 0; i < 10000; ++i) r.push_back({i * 10, 4});
    auto plan = plan_readv(r, lim);
    REQUIRE(plan.ok());
    REQUIRE(plan->requests.size() == 3);
    CHECK(plan->requests[0].size() == 4096);
    CHECK(plan->requests[1].size() == 4096);
    CHECK(plan->requests[2].size() == 10000 - 2 * 4096);
}

TEST_CASE("zero-length ranges need no request but are delivered") {
    std::string file = pattern(100);
    std::vector<Range> r = {{5, 0}, {10, 3}, {99, 0}};
    auto plan = plan_readv(r);
    REQUIRE(plan.ok());
    CHECK(plan->requests == std::vector<std::vector<Range>>{{{10, 3}}});
    auto out = run(file, r, {});
    CHECK(out == std::vector<std::string>{"", file.substr(10, 3), ""});
    auto only_empty = run(file, {{1, 0}, {2, 0}}, {});
    CHECK(only_empty == std::vector<std::string>{"", ""});
}

TEST_CASE("overflowing ranges and limits are rejected before anything is sent") {
    CHECK(plan_readv(std::vector<Range>{{UINT64_MAX, 1}}).error().kind == ErrorKind::InvalidArgument);
    CHECK_FALSE(plan_readv(std::vector<Range>{{kMaxFileOffset, 1}}).ok());
    CHECK(plan_readv(std::vector<Range>{{kMaxFileOffset - 1, 1}}).ok());
    CHECK_FALSE(plan_readv(std::vector<Range>{{1, UINT64_MAX}}).ok());
    ReadvLimits lim;
    lim.max_total_bytes = 100;
    CHECK_FALSE(plan_readv(std::vector<Range>{{0, 60}, {100, 41}}, lim).ok());
    CHECK(plan_readv(std::vector<Range>{{0, 60}, {100, 40}}, lim).ok());
    lim.max_ranges = 2;
    CHECK_FALSE(plan_readv(std::vector<Range>{{0, 1}, {2, 1}, {4, 1}}, lim).ok());
}

TEST_CASE("replies are sliced back into the caller's order") {
    std::string file = pattern(1000);
    std::vector<Range> r = {{900, 10}, {0, 3}, {500, 20}, {3, 7}, {505, 2}, {0, 3}, {100, 0}};
    std::vector<size_t> order;
    auto out = run(file, r, {}, &order);
    for (size_t i = 0; i < r.size(); ++i) CHECK(out[i] == file.substr(r[i].offset, r[i].length));
    CHECK(order == std::vector<size_t>{0, 1, 2, 3, 4, 5, 6});
}

TEST_CASE("randomised: any ranges, any limits, exact bytes in caller order") {
    std::string file = pattern(5000);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    auto next = [&]() {  // xorshift64: deterministic
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        return seed;
    };
    for (int round = 0; round < 300; ++round) {
        ReadvLimits lim;
        lim.max_request_bytes = 1 + next() % 700;
        lim.max_request_ranges = 1 + next() % 6;
        lim.merge_gap = next() % 3 == 0 ? next() % 50 : 0;
        std::vector<Range> r(next() % 40);
        for (auto& x : r) {
            x.offset = next() % 5000;
            x.length = next() % 4 == 0 ? 0 : next() % (5000 - x.offset + 1);
            if (next() % 2) x.length = std::min<uint64_t>(x.length, 30);
        }
        CAPTURE(round);
        std::vector<size_t> order;
        auto out = run(file, r, lim, &order);
        for (size_t i = 0; i < r.size(); ++i) CHECK(out[i] == file.substr(r[i].offset, r[i].length));
        for (size_t i = 0; i < order.size(); ++i) CHECK(order[i] == i);
    }
}

TEST_CASE("a short reply is a ShortReadv error, a long one a Protocol error") {
    std::vector<Range> r = {{0, 10}};
    auto plan = plan_readv(r);
    REQUIRE(plan.ok());
    {
        ReadvAssembler a(r, *plan, [](size_t, std::string_view) { return true; });
        auto st = a.add_reply(0, "short");
        REQUIRE_FALSE(st.ok());
        CHECK(st.error().kind == ErrorKind::ShortReadv);
    }
    {
        ReadvAssembler a(r, *plan, [](size_t, std::string_view) { return true; });
        auto st = a.add_reply(0, "much too long");
        REQUIRE_FALSE(st.ok());
        CHECK(st.error().kind == ErrorKind::Protocol);
    }
    {
        ReadvAssembler a(r, *plan, [](size_t, std::string_view) { return true; });
        CHECK_FALSE(a.finish().ok());  // nothing was fed
    }
}

TEST_CASE("deliver returning false cancels") {
    std::vector<Range> r = {{0, 2}, {2, 2}};
    auto plan = plan_readv(r);
    REQUIRE(plan.ok());
    int calls = 0;
    ReadvAssembler a(r, *plan, [&](size_t, std::string_view) { return ++calls < 1; });
    auto st = a.add_reply(0, "abcd");
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().kind == ErrorKind::Cancelled);
    CHECK(calls == 1);
}

TEST_CASE("CLI range specs") {
    auto r = parse_range_spec("4096:512");
    REQUIRE(r.ok());
    CHECK(*r == Range{4096, 512});
    CHECK(parse_range_spec("0:0").ok());
    CHECK(parse_range_spec("9223372036854775806:1").ok());
    const char* bad[] = {"", "5", "5:", ":5", "a:b", "1:b", "-1:5", "1:-5", "+1:5", " 1:5", "1:5 ", "1:2:3",
                         "99999999999999999999:1", "9223372036854775807:1", "9223372036854775808:0", "0x10:1"};
    for (const char* s : bad) {
        CAPTURE(s);
        auto x = parse_range_spec(s);
        CHECK_FALSE(x.ok());
        if (!x.ok()) {
            CHECK(x.error().kind == ErrorKind::InvalidArgument);
            CHECK(x.error().message.find("bad range") == 0);
        }
    }
}

}  // TEST_SUITE
