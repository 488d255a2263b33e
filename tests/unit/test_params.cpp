// soukd's parameter values: sizes and durations with suffixes, ranges,
// and the round trip through format_quantity (server/base/params.hpp).
#include <doctest/doctest.h>

#include <string>

#include "server/base/params.hpp"

using souk::server::format_quantity;
using souk::server::ParamKind;
using souk::server::Params;
using souk::server::parse_quantity;
using souk::server::set_param;

namespace {
double value(ParamKind k, std::string_view text) {
    double v = -1;
    const std::string why = parse_quantity(k, text, v);
    REQUIRE_MESSAGE(why.empty(), (std::string(text) + ": " + why));
    return v;
}
std::string refused(ParamKind k, std::string_view text) {
    double v = -1;
    const std::string why = parse_quantity(k, text, v);
    CHECK_MESSAGE(!why.empty(), (std::string(text) + " was accepted"));
    CHECK(v == -1);
    return why;
}
}  // namespace

TEST_CASE("params: sizes take K M G T in either case, binary multiples") {
    CHECK(value(ParamKind::Bytes, "0") == 0);
    CHECK(value(ParamKind::Bytes, "4096") == 4096);
    CHECK(value(ParamKind::Bytes, "1K") == 1024);
    CHECK(value(ParamKind::Bytes, "1k") == 1024);
    CHECK(value(ParamKind::Bytes, "64M") == 64.0 * 1024 * 1024);
    CHECK(value(ParamKind::Bytes, "64m") == 64.0 * 1024 * 1024);
    CHECK(value(ParamKind::Bytes, "3G") == 3.0 * (1ull << 30));
    CHECK(value(ParamKind::Bytes, "2T") == 2.0 * (1ull << 40));
    CHECK(value(ParamKind::Bytes, "0K") == 0);
    CHECK(value(ParamKind::Bytes, "8192T") == static_cast<double>(1ull << 53));  // the largest whole value
}

TEST_CASE("params: bad sizes are refused with a reason") {
    CHECK(refused(ParamKind::Bytes, "") == "empty value");
    CHECK(refused(ParamKind::Bytes, "64X") == "not a size");
    CHECK(refused(ParamKind::Bytes, "1.5M").find("no fractions") != std::string::npos);
    CHECK(refused(ParamKind::Bytes, "8193T") == "too large");                  // shift overflows the cap
    CHECK(refused(ParamKind::Bytes, "99999999999999999999999") == "too large");  // digits overflow
    CHECK(refused(ParamKind::Bytes, "18446744073709551616") == "too large");
    refused(ParamKind::Bytes, "-1");
    refused(ParamKind::Bytes, "+1");
    refused(ParamKind::Bytes, " 1");
    refused(ParamKind::Bytes, "1 ");
    refused(ParamKind::Bytes, "1KB");
    refused(ParamKind::Bytes, "1KiB");
    refused(ParamKind::Bytes, "1P");
    refused(ParamKind::Bytes, "K");
    refused(ParamKind::Bytes, "1e6");
    refused(ParamKind::Bytes, "0x10");
    refused(ParamKind::Count, "1K");  // counts take no suffix
    refused(ParamKind::Count, "2.0");
}

TEST_CASE("params: durations take ms s m h d, a bare number is seconds") {
    CHECK(value(ParamKind::Seconds, "0") == 0);
    CHECK(value(ParamKind::Seconds, "30") == 30);
    CHECK(value(ParamKind::Seconds, "30s") == 30);
    CHECK(value(ParamKind::Seconds, "0.25") == 0.25);
    CHECK(value(ParamKind::Seconds, "250ms") == 0.25);
    CHECK(value(ParamKind::Seconds, "50ms") == 0.05);
    CHECK(value(ParamKind::Seconds, "1.5ms") == 0.0015);
    CHECK(value(ParamKind::Seconds, "5m") == 300);
    CHECK(value(ParamKind::Seconds, "1.5h") == 5400);
    CHECK(value(ParamKind::Seconds, "30d") == 30 * 86400);
    refused(ParamKind::Seconds, "");
    refused(ParamKind::Seconds, "5M");  // upper case: months? minutes? refused
    refused(ParamKind::Seconds, "5S");
    refused(ParamKind::Seconds, "1h30m");
    refused(ParamKind::Seconds, ".5");
    refused(ParamKind::Seconds, "5.");
    refused(ParamKind::Seconds, "inf");
    refused(ParamKind::Seconds, "nan");
    refused(ParamKind::Seconds, "1e3");
    refused(ParamKind::Seconds, "-1");
    CHECK(refused(ParamKind::Seconds, std::string(400, '9')) == "too large");
}

TEST_CASE("params: format_quantity picks the largest suffix and reads back") {
    CHECK(format_quantity(ParamKind::Bytes, 0) == "0");
    CHECK(format_quantity(ParamKind::Bytes, 1000) == "1000");
    CHECK(format_quantity(ParamKind::Bytes, 65536) == "64K");
    CHECK(format_quantity(ParamKind::Bytes, 64.0 * 1024 * 1024) == "64M");
    CHECK(format_quantity(ParamKind::Bytes, static_cast<double>(1ull << 50)) == "1024T");
    CHECK(format_quantity(ParamKind::Count, 4096) == "4096");
    CHECK(format_quantity(ParamKind::Seconds, 300) == "5m");
    CHECK(format_quantity(ParamKind::Seconds, 90) == "90s");
    CHECK(format_quantity(ParamKind::Seconds, 0.05) == "50ms");
    CHECK(format_quantity(ParamKind::Seconds, 86400 * 30) == "30d");
    CHECK(format_quantity(ParamKind::Seconds, 0) == "0");
    for (double s : {0.001, 0.01, 0.05, 0.1, 0.25, 1.5, 15.0, 3600.0, 0.0005, 1e-7}) {
        CAPTURE(s);
        CHECK(value(ParamKind::Seconds, format_quantity(ParamKind::Seconds, s)) == s);
    }
}

TEST_CASE("params: set_param checks the range and names the option") {
    Params p;
    CHECK(set_param(p, "cache-size", "128M").empty());
    CHECK(p.cache_size == 128.0 * 1024 * 1024);
    CHECK(set_param(p, "idle-timeout", "10m").empty());
    CHECK(p.idle_timeout == 600);
    CHECK(set_param(p, "max-upload", "0").empty());  // the minimum
    CHECK(set_param(p, "max-upload", "1024T").empty());  // the maximum
    const std::string over = set_param(p, "max-upload", "1025T");
    CHECK(over.rfind("--max-upload=1025T: out of range", 0) == 0);
    CHECK(over.find("from 0 to 1024T") != std::string::npos);
    CHECK(p.max_upload == static_cast<double>(1ull << 50));  // unchanged by the refusal
    CHECK(set_param(p, "cache-size", "64X").rfind("--cache-size=64X: not a size (expected a size in bytes", 0) == 0);
    CHECK(set_param(p, "idle-timeout", "").rfind("--idle-timeout=: empty value", 0) == 0);
    CHECK(set_param(p, "no-such", "1") == "--no-such=1: unknown option");
}
