// souk-bench-http: time one libsouk operation repeatedly against one URL,
// for scripts/bench_http.py (a benchmark program, not a test).
//   souk-bench-http URL readv N RANGES LEN   # N rounds of RANGES scattered LEN-byte ranges
//   souk-bench-http URL get N                # N whole-file reads
// Prints one JSON object: {"op", "n", "bytes", "us": [per-round microseconds], "requests"}.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "client/client.hpp"

namespace sc = souk::client;

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: souk-bench-http URL readv N RANGES LEN | URL get N\n");
        return 2;
    }
    std::string url = argv[1], op = argv[2];
    int n = std::atoi(argv[3]);
    if (n < 1 || n > 1000000) return 2;
    auto c = sc::connect(url);
    if (!c) {
        std::fprintf(stderr, "souk-bench-http: %s\n", c.error().message.c_str());
        return 3;
    }
    auto st = c->stat("");
    if (!st) {
        std::fprintf(stderr, "souk-bench-http: stat: %s\n", st.error().message.c_str());
        return 3;
    }
    std::vector<sc::Range> ranges;
    if (op == "readv") {
        if (argc < 6) return 2;
        int count = std::atoi(argv[4]);
        uint64_t len = std::strtoull(argv[5], nullptr, 10);
        if (count < 1 || len < 1 || st->size < len * 2 * static_cast<uint64_t>(count)) {
            std::fprintf(stderr, "souk-bench-http: file too small for the ranges\n");
            return 2;
        }
        // Scattered, not adjacent: every other slot of a stride across the file.
        uint64_t stride = st->size / static_cast<uint64_t>(count);
        for (int i = 0; i < count; ++i) ranges.push_back({static_cast<uint64_t>(i) * stride + (i % 7) * 512, len});
        std::reverse(ranges.begin(), ranges.end());
    } else if (op != "get") {
        return 2;
    }
    std::vector<int64_t> us;
    uint64_t bytes = 0;
    for (int i = 0; i < n; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        uint64_t got = 0;
        if (op == "readv") {
            auto r = c->readv("", ranges);
            if (!r) {
                std::fprintf(stderr, "souk-bench-http: readv: %s\n", r.error().message.c_str());
                return 1;
            }
            for (const auto& s : *r) got += s.size();
        } else {
            auto r = c->get("");
            if (!r) {
                std::fprintf(stderr, "souk-bench-http: get: %s\n", r.error().message.c_str());
                return 1;
            }
            got = r->size();
        }
        us.push_back(std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
        bytes = got;
    }
    std::printf("{\"op\": \"%s\", \"n\": %d, \"bytes\": %llu, \"requests\": %llu, \"us\": [", op.c_str(), n,
                static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(c->stats().requests));
    for (size_t i = 0; i < us.size(); ++i) std::printf("%s%lld", i ? ", " : "", static_cast<long long>(us[i]));
    std::printf("]}\n");
    return 0;
}
