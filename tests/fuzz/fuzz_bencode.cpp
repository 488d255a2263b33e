// bencode (protocol/bencode.hpp). Strict bencode has one spelling per value,
// so whatever bdecode accepts re-encodes to exactly the input; the
// building decoder, the validator and the flat-list fast path agree on
// every input, under the default limits and under tight ones.
#include "fuzz.hpp"
#include "protocol/bencode.hpp"

using namespace souk;
using proto::Value;

namespace {

void check(std::string_view in, const proto::BencodeLimits& limits) {
    auto v = proto::bdecode(in, limits);
    bool is_dict = false;
    const bool valid = proto::bvalidate(in, limits, &is_dict);
    FUZZ_CHECK(valid == v.ok());
    std::vector<Value> flat;
    size_t n = 0;
    const bool flat_ok = proto::bdecode_flat_list(in, flat, n, limits);
    if (!v.ok()) {
        FUZZ_CHECK(!v.error().empty());
        FUZZ_CHECK(!flat_ok);
        return;
    }
    FUZZ_CHECK(is_dict == v->is_dict());
    FUZZ_CHECK(proto::bencode(*v) == in);
    bool all_bytes = v->is_list();
    if (all_bytes)
        for (const auto& item : v->list) all_bytes = all_bytes && item.is_bytes();
    FUZZ_CHECK(flat_ok == all_bytes);
    if (flat_ok) {
        FUZZ_CHECK(n == v->list.size());
        FUZZ_CHECK(flat.size() >= n);
        for (size_t i = 0; i < n; ++i) FUZZ_CHECK(flat[i] == v->list[i]);
        std::string again;
        proto::bencode_list(flat.data(), n, again);
        FUZZ_CHECK(again == in);
    }
    // Decoding the display form is not defined; it must merely not fail.
    FUZZ_CHECK(!proto::to_display(*v).empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in = fuzz::view(data, size);
    check(in, proto::BencodeLimits{});
    check(in, proto::BencodeLimits{3, 20});
    return 0;
}
