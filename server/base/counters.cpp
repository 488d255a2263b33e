#include "server/base/counters.hpp"

#include <string_view>

namespace souk::server {
namespace {
Counters g_local;
std::atomic<Counters*> g_current{&g_local};

std::string json_key(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}
}  // namespace

Counters& counters() { return *g_current.load(std::memory_order_acquire); }
void set_counters(Counters* c) { g_current.store(c ? c : &g_local, std::memory_order_release); }

void count_latency(Counters& c, uint64_t us) {
    size_t b = 0;
    while (b + 1 < kLatencyBuckets && us > kLatencyBoundsUs[b]) ++b;  // bounded: kLatencyBuckets
    count(c.request_latency[b]);
    count(c.request_us, us);
}

std::string counters_json(const Counters& c) {
    std::string out = "{";
#define SOUK_X(name, help) \
    out += json_key(#name) + ": " + std::to_string(c.name.load(std::memory_order_relaxed)) + ", ";
    SOUK_COUNTERS(SOUK_X)
#undef SOUK_X
    out += "\"verbs\": {";
    bool first = true;
    for (size_t i = 0; i < proto::kVerbCount; ++i) {
        uint64_t n = c.verb_requests[i].load(std::memory_order_relaxed);
        if (!n) continue;
        if (!first) out += ", ";
        first = false;
        out += json_key(proto::kVerbs[i].name) + ": " + std::to_string(n);
    }
    // Latency buckets keyed by their upper bound in microseconds ("inf" last).
    out += "}, \"request_latency_us\": {";
    for (size_t b = 0; b < kLatencyBuckets; ++b) {
        if (b) out += ", ";
        out += json_key(b + 1 < kLatencyBuckets ? std::to_string(kLatencyBoundsUs[b]) : "inf") + ": " +
               std::to_string(c.request_latency[b].load(std::memory_order_relaxed));
    }
    return out + "}}";
}

// A counter whose help text says "(gauge)" is a level, not a running total.
constexpr const char* prometheus_type(std::string_view help) {
    return help.find("(gauge)") == std::string_view::npos ? " counter\n" : " gauge\n";
}

std::string counters_prometheus(const Counters& c) {
    std::string out;
#define SOUK_X(name, help)                                                                          \
    out += std::string("# HELP soukd_" #name " " help "\n# TYPE soukd_" #name) + prometheus_type(help) + \
           "soukd_" #name " " + std::to_string(c.name.load(std::memory_order_relaxed)) + "\n";
    SOUK_COUNTERS(SOUK_X)
#undef SOUK_X
    out += "# HELP soukd_verb_requests requests per verb\n# TYPE soukd_verb_requests counter\n";
    for (size_t i = 0; i < proto::kVerbCount; ++i)
        out += "soukd_verb_requests{verb=\"" + std::string(proto::kVerbs[i].name) + "\"} " +
               std::to_string(c.verb_requests[i].load(std::memory_order_relaxed)) + "\n";
    out += "# HELP soukd_request_latency_us requests by time from first byte to reply written\n"
           "# TYPE soukd_request_latency_us histogram\n";
    uint64_t cumulative = 0;
    for (size_t b = 0; b < kLatencyBuckets; ++b) {
        cumulative += c.request_latency[b].load(std::memory_order_relaxed);
        out += "soukd_request_latency_us_bucket{le=\"" +
               (b + 1 < kLatencyBuckets ? std::to_string(kLatencyBoundsUs[b]) : std::string("+Inf")) + "\"} " +
               std::to_string(cumulative) + "\n";
    }
    out += "soukd_request_latency_us_sum " + std::to_string(c.request_us.load(std::memory_order_relaxed)) +
           "\nsoukd_request_latency_us_count " + std::to_string(cumulative) + "\n";
    return out;
}

}  // namespace souk::server
