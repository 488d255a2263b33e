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
    return out;
}

}  // namespace souk::server
