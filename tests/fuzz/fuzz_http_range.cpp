// HTTP Range headers (server/carriers/web.hpp, parse_range_header): for any
// value, file size and cap the answer is 0 (whole file), 1 with satisfiable
// ranges inside the file and no more than the cap, or 416 with none; and
// the ranges it returns, written back as a header, parse to themselves.
#include "fuzz.hpp"
#include "server/carriers/web.hpp"

using namespace souk;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    const uint64_t file_size = in.ConsumeBool() ? in.ConsumeIntegralInRange<uint64_t>(0, 300)
                                                : in.ConsumeIntegral<uint64_t>();
    const size_t max_ranges = in.ConsumeIntegralInRange<size_t>(1, 40);
    const std::string value = in.ConsumeRemainingBytesAsString();

    std::vector<std::pair<uint64_t, uint64_t>> out = {{7, 7}};
    const int r = server::parse_range_header(value, file_size, max_ranges, out);
    FUZZ_CHECK(r == 0 || r == 1 || r == 416);
    if (r != 1) {
        FUZZ_CHECK(out.empty());
        return 0;
    }
    FUZZ_CHECK(!out.empty() && out.size() <= max_ranges);
    std::string header = "bytes=";
    for (const auto& [off, len] : out) {
        FUZZ_CHECK(len > 0 && off < file_size && len <= file_size - off);
        if (header.size() > 6) header += ',';
        header += std::to_string(off) + "-" + std::to_string(off + len - 1);
    }
    std::vector<std::pair<uint64_t, uint64_t>> again;
    FUZZ_CHECK(server::parse_range_header(header, file_size, max_ranges, again) == 1);
    FUZZ_CHECK(again == out);
    return 0;
}
