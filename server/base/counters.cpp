#include "server/base/counters.hpp"

#include <array>
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

namespace {

constexpr Family family_of(const proto::VerbInfo& v) {
    const std::string_view n = v.name;
    if (n.substr(0, 7) == "Branch.") return Family::branch;
    if (n.find("stream") != std::string_view::npos || n == "VersionedFileRepository.get_inventories" ||
        n == "Repository.iter_files_bytes" || n == "Repository.iter_revisions")
        return Family::stream;
    // The VFS verbs are the ones without a dot, hello aside.
    if (n.find('.') == std::string_view::npos && n != "hello") return v.mutating ? Family::vfs_write : Family::vfs_read;
    return Family::other;
}

constexpr auto kVerbFamily = [] {
    std::array<Family, proto::kVerbCount> t{};
    for (size_t i = 0; i < proto::kVerbCount; ++i) t[i] = family_of(proto::kVerbs[i]);
    return t;
}();
static_assert(kVerbFamily[static_cast<size_t>(proto::Verb::readv)] == Family::vfs_read);
static_assert(kVerbFamily[static_cast<size_t>(proto::Verb::put_non_atomic)] == Family::vfs_write);
static_assert(kVerbFamily[static_cast<size_t>(proto::Verb::insert_stream_locked)] == Family::stream);
static_assert(kVerbFamily[static_cast<size_t>(proto::Verb::set_last_revision_info)] == Family::branch);
static_assert(kVerbFamily[static_cast<size_t>(proto::Verb::hello)] == Family::other);

// Microseconds as decimal seconds, trailing zeros dropped: 50 -> "0.00005".
std::string seconds(uint64_t us) {
    std::string out = std::to_string(us / 1000000);
    uint64_t frac = us % 1000000;
    if (!frac) return out;
    char digits[7];
    for (int i = 5; i >= 0; --i) {  // six digits
        digits[i] = static_cast<char>('0' + frac % 10);
        frac /= 10;
    }
    size_t n = 6;
    while (digits[n - 1] == '0') --n;  // bounded: frac != 0
    return out + "." + std::string(digits, n);
}

// A counter whose help text says "(gauge)" is a level, not a running total.
constexpr bool is_gauge(std::string_view help) { return help.find("(gauge)") != std::string_view::npos; }
constexpr bool ends_with(std::string_view s, std::string_view tail) {
    return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

}  // namespace

Family verb_family(const proto::VerbInfo* v) {
    return v ? kVerbFamily[static_cast<size_t>(v->id)] : Family::other;
}

void count_latency(Counters& c, Family f, uint64_t us) {
    size_t b = 0;
    while (b + 1 < kLatencyBuckets && us > kLatencyBoundsUs[b]) ++b;  // bounded: kLatencyBuckets
    const size_t i = static_cast<size_t>(f);
    count(c.latency[i][b]);
    count(c.latency_us[i], us);
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
    // Per family: bucket counts (not cumulative) keyed by their upper bound
    // in microseconds ("inf" last), and the sum.
    out += "}, \"request_latency_us\": {";
    for (size_t f = 0; f < kFamilies; ++f) {
        if (f) out += ", ";
        out += json_key(kFamilyNames[f]) + ": {";
        for (size_t b = 0; b < kLatencyBuckets; ++b) {
            out += json_key(b + 1 < kLatencyBuckets ? std::to_string(kLatencyBoundsUs[b]) : "inf") + ": " +
                   std::to_string(c.latency[f][b].load(std::memory_order_relaxed)) + ", ";
        }
        out += "\"sum\": " + std::to_string(c.latency_us[f].load(std::memory_order_relaxed)) + "}";
    }
    return out + "}}";
}

std::string prometheus_label(std::string_view v) {
    std::string out;
    for (char ch : v) {
        if (ch == '\\') out += "\\\\";
        else if (ch == '"') out += "\\\"";
        else if (ch == '\n') out += "\\n";
        else out += ch;
    }
    return out;
}

std::string prometheus_sample(std::string_view name, std::string_view root, std::string_view extra_labels,
                              std::string_view value) {
    std::string out(name);
    out += "{root=\"";
    out += prometheus_label(root);
    out += '"';
    if (!extra_labels.empty()) {
        out += ',';
        out += extra_labels;
    }
    out += "} ";
    out += value;
    out += '\n';
    return out;
}

std::string counters_prometheus(const Counters& c, std::string_view root) {
    std::string out;
    header(out, "soukd_build_info", "gauge", "soukd's version and shared-segment layout (value 1)");
    out += prometheus_sample("soukd_build_info", root, "version=\"" SOUK_VERSION "\"", "1");
    // Counters end in _total; those counted in microseconds (_us) are
    // exposed in seconds (_seconds_total); gauges keep their name.
    auto counter = [&](std::string_view name, std::string_view help, uint64_t v) {
        std::string n = "soukd_";
        std::string value;
        std::string_view type = "counter";
        if (is_gauge(help)) {
            n += name;
            type = "gauge";
            value = std::to_string(v);
        } else if (ends_with(name, "_us")) {
            n += name.substr(0, name.size() - 3);
            n += "_seconds_total";
            value = seconds(v);
        } else {
            n += name;
            n += "_total";
            value = std::to_string(v);
        }
        header(out, n, type, help);
        out += prometheus_sample(n, root, {}, value);
    };
#define SOUK_X(name, help) counter(#name, help, c.name.load(std::memory_order_relaxed));
    SOUK_COUNTERS(SOUK_X)
#undef SOUK_X
    header(out, "soukd_verb_requests_total", "counter", "requests answered, per verb");
    for (size_t i = 0; i < proto::kVerbCount; ++i)
        out += prometheus_sample("soukd_verb_requests_total", root,
                                 "verb=\"" + std::string(proto::kVerbs[i].name) + "\"",
                                 std::to_string(c.verb_requests[i].load(std::memory_order_relaxed)));
    header(out, "soukd_request_duration_seconds", "histogram",
           "time from a request's first byte to its reply written, per verb family");
    for (size_t f = 0; f < kFamilies; ++f) {
        const std::string fam = std::string("family=\"") + kFamilyNames[f] + "\"";
        uint64_t cumulative = 0;
        for (size_t b = 0; b < kLatencyBuckets; ++b) {
            cumulative += c.latency[f][b].load(std::memory_order_relaxed);
            out += prometheus_sample(
                "soukd_request_duration_seconds_bucket", root,
                fam + ",le=\"" + (b + 1 < kLatencyBuckets ? seconds(kLatencyBoundsUs[b]) : std::string("+Inf")) + "\"",
                std::to_string(cumulative));
        }
        out += prometheus_sample("soukd_request_duration_seconds_sum", root, fam,
                                 seconds(c.latency_us[f].load(std::memory_order_relaxed)));
        out += prometheus_sample("soukd_request_duration_seconds_count", root, fam, std::to_string(cumulative));
    }
    return out;
}

}  // namespace souk::server
