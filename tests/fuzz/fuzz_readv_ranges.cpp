// readv range lists. Server (server/verbs/dispatch.hpp, parse_readv_ranges):
// every accepted list respects --max-readv-ranges and --max-readv-bytes and
// re-encodes (as the client writes it) to a body that parses to the same
// ranges. Client (client/readv.hpp): the plan for those ranges is within its
// limits, its wire bodies parse on the server side to its wire ranges, and
// the assembler hands every caller range its exact bytes, once, in order.
#include "client/readv.hpp"
#include "fuzz.hpp"
#include "server/base/params.hpp"
#include "server/verbs/dispatch.hpp"

using namespace souk;

namespace {

// The byte at `offset` of the imaginary file every reply is cut from.
char file_byte(uint64_t offset) { return static_cast<char>((offset * 131 + (offset >> 8)) & 0xff); }

void client_plan(const std::vector<client::Range>& ranges, uint8_t knobs) {
    client::ReadvLimits limits;
    limits.max_request_bytes = 1 + (knobs & 3) * 300;
    limits.max_request_ranges = 1 + (knobs >> 2 & 3) * 3;
    limits.merge_gap = knobs & 0x10 ? 50 : 0;
    limits.max_total_bytes = 1 << 20;
    auto plan = client::plan_readv(ranges, limits);
    uint64_t want = 0;
    bool fits = true;
    for (const auto& r : ranges) {
        want += r.length;
        fits = fits && r.offset <= client::kMaxFileOffset - r.length;
    }
    if (!plan) {
        FUZZ_CHECK(!fits || want > limits.max_total_bytes || ranges.size() > limits.max_ranges);
        return;
    }
    FUZZ_CHECK(plan->total_bytes == want);
    server::Params params;
    for (const auto& req : plan->requests) {
        FUZZ_CHECK(!req.empty() && req.size() <= limits.max_request_ranges);
        FUZZ_CHECK(client::wire_bytes(req) <= limits.max_request_bytes);
        for (size_t i = 0; i < req.size(); ++i) {
            FUZZ_CHECK(req[i].length > 0);
            if (i > 0) FUZZ_CHECK(req[i - 1].offset + req[i - 1].length <= req[i].offset);  // ascending, disjoint
        }
        std::vector<std::pair<uint64_t, uint64_t>> parsed;
        FUZZ_CHECK(server::parse_readv_ranges(client::encode_readv_body(req), params, parsed).empty());
        FUZZ_CHECK(parsed.size() == req.size());
        for (size_t i = 0; i < req.size(); ++i)
            FUZZ_CHECK(parsed[i].first == req[i].offset && parsed[i].second == req[i].length);
    }
    // Feed replies cut from the imaginary file; each caller range gets its bytes.
    std::vector<bool> seen(ranges.size(), false);
    size_t next = 0;
    client::ReadvAssembler a(ranges, *plan, [&](size_t index, std::string_view data) {
        FUZZ_CHECK(index == next++);
        FUZZ_CHECK(index < ranges.size() && !seen[index]);
        seen[index] = true;
        FUZZ_CHECK(data.size() == ranges[index].length);
        for (size_t i = 0; i < data.size(); ++i) FUZZ_CHECK(data[i] == file_byte(ranges[index].offset + i));
        return true;
    });
    for (size_t i = 0; i < plan->requests.size(); ++i) {
        std::string body;
        for (const auto& r : plan->requests[i])
            for (uint64_t k = 0; k < r.length; ++k) body += file_byte(r.offset + k);
        FUZZ_CHECK(a.add_reply(i, body).ok());
    }
    FUZZ_CHECK(a.finish().ok());
    FUZZ_CHECK(next == ranges.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    const uint8_t knobs = in.ConsumeIntegral<uint8_t>();
    server::Params params;
    params.max_readv_ranges = 1 + in.ConsumeIntegralInRange<int64_t>(0, 64);
    params.max_readv_bytes = 1 + in.ConsumeIntegralInRange<int64_t>(0, 1 << 16);
    const std::string body = in.ConsumeRemainingBytesAsString();

    std::vector<std::pair<uint64_t, uint64_t>> ranges = {{1, 1}};
    const std::string why = server::parse_readv_ranges(body, params, ranges);
    if (!why.empty()) {
        FUZZ_CHECK(why.size() < 200);  // a short message, not the body echoed
        return 0;
    }
    FUZZ_CHECK(ranges.size() <= static_cast<uint64_t>(params.max_readv_ranges));
    uint64_t total = 0;
    for (const auto& [off, len] : ranges) {
        FUZZ_CHECK(off <= (1ull << 62) && len <= (1ull << 62));
        total += len;
    }
    FUZZ_CHECK(total <= static_cast<uint64_t>(params.max_readv_bytes));
    std::vector<client::Range> wire;
    for (const auto& [off, len] : ranges) wire.push_back({off, len});
    std::vector<std::pair<uint64_t, uint64_t>> again;
    FUZZ_CHECK(server::parse_readv_ranges(client::encode_readv_body(wire), params, again).empty());
    FUZZ_CHECK(again == ranges);
    // Small files only: the assembler check builds every reply.
    if (total <= 4096) client_plan(wire, knobs);
    return 0;
}
