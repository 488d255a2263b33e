// The Prometheus text of `soukd stats --prometheus` (docs/metrics.md):
// names, _total, seconds, the root label, cumulative histogram buckets with
// _sum and _count, soukd_build_info.
#include <doctest/doctest.h>

#include <memory>
#include <sstream>
#include <string>

#include "server/base/counters.hpp"

using namespace souk::server;
namespace proto = souk::proto;

namespace {

bool has_line(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

}  // namespace

TEST_CASE("prometheus: counters end in _total, times are seconds, every sample has the root") {
    auto c = std::make_unique<Counters>();
    count(c->requests, 7);
    count(c->store_read_us, 1500000);  // 1.5 s
    count(c->tcp_conns_live, 3);
    count(c->verb_requests[static_cast<size_t>(proto::Verb::get)], 5);
    const std::string t = counters_prometheus(*c, "/srv/b\"z\\r");
    const std::string root = "root=\"/srv/b\\\"z\\\\r\"";
    CHECK(has_line(t, "soukd_build_info{" + root + ",version=\"" SOUK_VERSION "\"} 1"));
    CHECK(has_line(t, "# TYPE soukd_requests_total counter"));
    CHECK(has_line(t, "soukd_requests_total{" + root + "} 7"));
    CHECK(has_line(t, "# TYPE soukd_store_read_seconds_total counter"));
    CHECK(has_line(t, "soukd_store_read_seconds_total{" + root + "} 1.5"));
    CHECK(t.find("_us{") == std::string::npos);
    CHECK(t.find("_us ") == std::string::npos);
    CHECK(has_line(t, "# TYPE soukd_tcp_conns_live gauge"));
    CHECK(has_line(t, "soukd_tcp_conns_live{" + root + "} 3"));
    CHECK(has_line(t, "soukd_verb_requests_total{" + root + ",verb=\"get\"} 5"));
    std::istringstream in(t);
    std::string line;
    int samples = 0;
    while (std::getline(in, line)) {  // bounded: the text's lines
        if (line.empty() || line[0] == '#') continue;
        ++samples;
        CHECK_MESSAGE(line.find("{" + root) != std::string::npos, line);
        const std::string name = line.substr(0, line.find('{'));
        const bool counter = t.find("# TYPE " + name + " counter\n") != std::string::npos;
        if (counter) CHECK_MESSAGE(name.size() > 6, name);
        if (counter) CHECK_MESSAGE(name.substr(name.size() - 6) == "_total", name);
    }
    CHECK(samples > 100);
}

TEST_CASE("prometheus: latency histograms per verb family, cumulative, with _sum and _count") {
    CHECK(verb_family(&proto::verb_info(proto::Verb::get)) == Family::vfs_read);
    CHECK(verb_family(&proto::verb_info(proto::Verb::append)) == Family::vfs_write);
    CHECK(verb_family(&proto::verb_info(proto::Verb::get_stream_1_19)) == Family::stream);
    CHECK(verb_family(&proto::verb_info(proto::Verb::last_revision_info)) == Family::branch);
    CHECK(verb_family(&proto::verb_info(proto::Verb::bzrdir_open_2_1)) == Family::other);
    CHECK(verb_family(nullptr) == Family::other);

    auto c = std::make_unique<Counters>();
    count_latency(*c, Family::vfs_read, 40);       // <= 50 us
    count_latency(*c, Family::vfs_read, 50);       // <= 50 us (bounds are inclusive)
    count_latency(*c, Family::vfs_read, 700);      // <= 1 ms
    count_latency(*c, Family::vfs_read, 90000000); // beyond 60 s: +Inf only
    count_latency(*c, Family::stream, 2000000);    // <= 2.5 s
    const std::string t = counters_prometheus(*c, "/r");
    CHECK(has_line(t, "# TYPE soukd_request_duration_seconds histogram"));
    const std::string r = "soukd_request_duration_seconds_bucket{root=\"/r\",family=\"vfs_read\",le=";
    CHECK(has_line(t, r + "\"0.00005\"} 2"));
    CHECK(has_line(t, r + "\"0.0005\"} 2"));
    CHECK(has_line(t, r + "\"0.001\"} 3"));
    CHECK(has_line(t, r + "\"60\"} 3"));
    CHECK(has_line(t, r + "\"+Inf\"} 4"));
    CHECK(has_line(t, "soukd_request_duration_seconds_sum{root=\"/r\",family=\"vfs_read\"} 90.00079"));
    CHECK(has_line(t, "soukd_request_duration_seconds_count{root=\"/r\",family=\"vfs_read\"} 4"));
    CHECK(has_line(t, "soukd_request_duration_seconds_bucket{root=\"/r\",family=\"stream\",le=\"1\"} 0"));
    CHECK(has_line(t, "soukd_request_duration_seconds_bucket{root=\"/r\",family=\"stream\",le=\"2.5\"} 1"));
    CHECK(has_line(t, "soukd_request_duration_seconds_count{root=\"/r\",family=\"branch\"} 0"));
    CHECK(has_line(t, "soukd_request_seconds_total{root=\"/r\"} 92.00079"));
    // Buckets never decrease within a family.
    std::istringstream in(t);
    std::string line, fam;
    uint64_t last = 0;
    while (std::getline(in, line)) {  // bounded: the text's lines
        if (line.rfind("soukd_request_duration_seconds_bucket", 0) != 0) continue;
        const std::string f = line.substr(line.find("family="), line.find(",le=") - line.find("family="));
        const uint64_t v = std::stoull(line.substr(line.rfind(' ') + 1));
        if (f == fam) CHECK(v >= last);
        fam = f;
        last = v;
    }
    // JSON keeps microseconds, per family.
    const std::string j = counters_json(*c);
    CHECK(j.find("\"request_latency_us\": {\"vfs_read\": {\"50\": 2, ") != std::string::npos);
}
