#include "server/store/shm_stats.hpp"

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>

#include "server/base/counters.hpp"
#include "server/store/shm.hpp"
#include "server/store/range_cache.hpp"

namespace souk::server {
namespace {

const char kStatsUsage[] =
    "usage: soukd stats --directory=DIR [--prometheus] [--user=USER]\n"
    "\n"
    "Print the counters of every soukd process that has served DIR since the\n"
    "segment was created (daemon, SSH sessions and CGI processes alike: they\n"
    "add to the same shared segment), and the range cache's figures: entries,\n"
    "bytes, fragmentation, hit rate. JSON by default; --prometheus gives the\n"
    "text exposition format (docs/metrics.md: soukd_ prefix, counters ending in\n"
    "_total, times in seconds, a root label, latency histograms per verb family).\n"
    "--user: the user soukd runs as, when it is not yours (each user's soukd\n"
    "processes have their own segment). soukd's user reads everything; a user\n"
    "in soukd's group reads the counters (the segment is mode 0640), not the\n"
    "cache figures.\n";

std::string quoted(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        if (static_cast<unsigned char>(c) < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", c);
            out += b;
            continue;
        }
        out += c;
    }
    return out + "\"";
}

std::string num(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.6g", v);
    return b;
}

}  // namespace

std::string stats_report(const std::string& root, bool prometheus, std::string* note) {
    return stats_report(root, prometheus, static_cast<unsigned>(::geteuid()), note);
}

std::string stats_report(const std::string& root, bool prometheus, unsigned uid, std::string* note) {
    std::string why;
    std::unique_ptr<shm::Segment> seg = shm::Segment::attach_existing(root, uid, &why);
    Counters zero;
    const Counters& c = seg ? seg->counters() : zero;
    RangeCache::Figures fig;
    bool have_fig = false;
    if (seg && seg->read_only()) {
        *note = "read-only access to " + seg->name() + " (not soukd's user): counters only, no cache figures";
    } else if (seg) {
        RangeCache cache(*seg, 1.0);
        have_fig = cache.figures(fig);
    } else {
        *note = why + "; reporting zeros";
    }
    uint64_t hits = c.cache_hits.load(), misses = c.cache_misses.load();
    double hit_rate = hits + misses ? static_cast<double>(hits) / static_cast<double>(hits + misses) : 0.0;
    if (prometheus) {
        std::string out = counters_prometheus(c, root);
        auto gauge = [&](const char* name, const char* help, double v) {
            out += std::string("# HELP soukd_") + name + " " + help + "\n# TYPE soukd_" + name + " gauge\n" +
                   prometheus_sample(std::string("soukd_") + name, root, {}, num(v));
        };
        gauge("cache_entries", "blocks in the range cache", static_cast<double>(fig.entries));
        gauge("cache_capacity_bytes", "range cache size (--cache-size of its creator)", static_cast<double>(fig.capacity));
        gauge("cache_reserved_bytes", "shared memory reserved for the cache so far", static_cast<double>(fig.reserved));
        gauge("cache_used_bytes", "bytes of the cache holding blocks (headers included)", static_cast<double>(fig.used));
        gauge("cache_free_bytes", "free bytes of the cache", static_cast<double>(fig.free));
        gauge("cache_free_chunks", "free pieces of the cache's heap", static_cast<double>(fig.free_chunks));
        gauge("cache_fragmentation", "1 - largest free piece / free bytes", fig.fragmentation);
        gauge("cache_hit_ratio", "cache_hits / (cache_hits + cache_misses)", hit_rate);
        return out;
    }
    std::string out = "{\"directory\": " + quoted(root) + ", \"segment\": ";
    if (seg) {
        const shm::Header& h = seg->header();
        out += "{\"name\": " + quoted(seg->name()) + ", \"bytes\": " + std::to_string(seg->size()) +
               ", \"layout_version\": " + std::to_string(h.layout_version) +
               ", \"created_unix_ns\": " + std::to_string(h.created_unix_ns) +
               ", \"creator_pid\": " + std::to_string(h.creator_pid) +
               ", \"lock_offset\": " + std::to_string(offsetof(shm::Header, lock)) + "}";
    } else {
        out += "null";
    }
    out += ", \"cache\": ";
    if (have_fig) {
        out += "{\"entries\": " + std::to_string(fig.entries) + ", \"block_bytes\": " + std::to_string(fig.block) +
               ", \"capacity_bytes\": " + std::to_string(fig.capacity) +
               ", \"reserved_bytes\": " + std::to_string(fig.reserved) +
               ", \"used_bytes\": " + std::to_string(fig.used) + ", \"free_bytes\": " + std::to_string(fig.free) +
               ", \"free_chunks\": " + std::to_string(fig.free_chunks) +
               ", \"largest_free_bytes\": " + std::to_string(fig.largest_free) +
               ", \"fragmentation\": " + num(fig.fragmentation) + ", \"hit_rate\": " + num(hit_rate) +
               ", \"wipes\": " + std::to_string(fig.wipes) + "}";
    } else {
        out += "null";
    }
    out += ", \"counters\": " + counters_json(c) + "}\n";
    return out;
}

int stats_main(int argc, char** argv) {
    std::string dir;
    bool prometheus = false;
    unsigned uid = static_cast<unsigned>(::geteuid());
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::printf("%s", kStatsUsage);
            return 0;
        } else if (a == "--prometheus") {
            prometheus = true;
        } else if (a == "--json") {
            prometheus = false;
        } else if (a.rfind("--user=", 0) == 0 || (a == "--user" && i + 1 < argc)) {
            const std::string u = a == "--user" ? argv[++i] : a.substr(7);
            const struct passwd* pw = ::getpwnam(u.c_str());
            char* end = nullptr;
            const unsigned long n = std::strtoul(u.c_str(), &end, 10);
            if (pw) uid = static_cast<unsigned>(pw->pw_uid);
            else if (!u.empty() && end && !*end) uid = static_cast<unsigned>(n);
            else {
                std::fprintf(stderr, "soukd stats: no such user %s\n", u.c_str());
                return 2;
            }
        } else if (a.rfind("--directory=", 0) == 0) {
            dir = a.substr(12);
        } else if (a == "--directory" && i + 1 < argc) {
            dir = argv[++i];
        } else {
            std::fprintf(stderr, "soukd stats: unknown option %s\n%s", a.c_str(), kStatsUsage);
            return 2;
        }
    }
    if (dir.empty()) {
        std::fprintf(stderr, "soukd stats: --directory=DIR is required\n%s", kStatsUsage);
        return 2;
    }
    std::unique_ptr<char, decltype(&::free)> real(::realpath(dir.c_str(), nullptr), &::free);
    if (!real) {
        std::fprintf(stderr, "soukd stats: %s: %s\n", dir.c_str(), std::strerror(errno));
        return 1;
    }
    std::string note;
    std::string out = stats_report(real.get(), prometheus, uid, &note);
    if (!note.empty()) std::fprintf(stderr, "soukd stats: %s\n", note.c_str());
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

}  // namespace souk::server
