// The FastCGI record codec (protocol/fastcgi.hpp): records out of any
// bytes, PARAMS blocks split anywhere across records, name-value pairs,
// the GET_VALUES answer and the waiter's measure of a request
// (measure_request). Every view lies inside the input, what is decoded
// re-encodes to something that decodes to the same, and the answer to a
// management query is one well-formed record.
#include <set>

#include "fuzz.hpp"
#include "protocol/fastcgi.hpp"

using namespace souk::proto::fcgi;
using Pairs = std::vector<std::pair<std::string_view, std::string_view>>;

namespace {

bool inside(std::string_view part, std::string_view whole) {
    return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

// Pairs re-encoded with append_pair decode to themselves.
void check_pairs_round_trip(const Pairs& pairs) {
    std::string block;
    for (const auto& [n, v] : pairs) append_pair(block, n, v);
    Pairs again;
    FUZZ_CHECK(decode_pairs(block, pairs.size() + 1, again).empty());
    FUZZ_CHECK(again == pairs);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view buf = souk::fuzz::view(data, size);
    ParamsBlock params(PairLimits{4096, 64});
    size_t at = 0;
    for (int i = 0; i < 10000 && at <= buf.size(); ++i) {  // bounded: count
        Record r;
        size_t used = 99;
        const Parse p = parse_record(buf.substr(at), r, used);
        if (p == Parse::NeedMore) {
            FUZZ_CHECK(used == 0);
            FUZZ_CHECK(buf.size() - at < kMaxRecord);
            break;
        }
        if (p == Parse::Bad) break;
        FUZZ_CHECK(used >= kHeaderSize + r.content.size() && used <= kMaxRecord);
        FUZZ_CHECK(at + used <= buf.size());
        FUZZ_CHECK(inside(r.content, buf.substr(at, used)));
        // The same record, written by the encoder, parses back to itself.
        std::string again;
        append_records(again, r.type, r.request_id, r.content);
        Record r2;
        size_t used2 = 0;
        FUZZ_CHECK(parse_record(again, r2, used2) == Parse::Ok);
        FUZZ_CHECK(r2.type == r.type && r2.request_id == r.request_id && r2.content == r.content);
        FUZZ_CHECK(used2 % 8 == 0);
        at += used;

        if (r.type == BeginRequest) {
            uint16_t role = 0;
            uint8_t flags = 0;
            if (parse_begin(r.content, role, flags)) {
                std::string b;
                append_begin_request(b, r.request_id, role, flags);
                Record rb;
                size_t ub = 0;
                FUZZ_CHECK(parse_record(b, rb, ub) == Parse::Ok);
                FUZZ_CHECK(rb.content.substr(0, 3) == r.content.substr(0, 3));
            } else {
                FUZZ_CHECK(r.content.size() != 8);
            }
        } else if (r.type == Params && !params.done()) {
            if (r.content.empty()) {
                if (params.finish().empty()) {
                    FUZZ_CHECK(params.done());
                    size_t total = 0;
                    for (const auto& [n, v] : params.pairs()) total += n.size() + v.size();
                    FUZZ_CHECK(total <= params.bytes());
                    FUZZ_CHECK(params.pairs().size() <= 64);
                    for (const auto& [n, v] : params.pairs()) {
                        FUZZ_CHECK(params.has(n));
                        (void)v;
                    }
                    check_pairs_round_trip(params.pairs());
                }
            } else if (!params.add(r.content).empty()) {
                FUZZ_CHECK(params.bytes() + r.content.size() > 4096);  // refused only over the limit
                params.reset();
            } else {
                FUZZ_CHECK(params.bytes() <= 4096);
            }
        } else if (r.type == GetValues) {
            std::string out;
            if (answer_get_values(r.content, PairLimits{4096, 64}, 100, 7, out).empty()) {
                Record ans;
                size_t ua = 0;
                FUZZ_CHECK(parse_record(out, ans, ua) == Parse::Ok);
                FUZZ_CHECK(ua == out.size());
                FUZZ_CHECK(ans.type == GetValuesResult && ans.request_id == 0);
                Pairs got;
                FUZZ_CHECK(decode_pairs(ans.content, 64, got).empty());
                static const std::set<std::string_view> known = {"FCGI_MAX_CONNS", "FCGI_MAX_REQS",
                                                                 "FCGI_MPXS_CONNS"};
                for (const auto& [n, v] : got) {
                    FUZZ_CHECK(known.count(n) == 1);
                    FUZZ_CHECK(!v.empty());
                }
            }
        }
    }
    // The waiter's measure (measure_request): never past the input; a
    // request whole in these bytes is whole, the same length, in its own.
    ParamsBlock scratch(PairLimits{4096, 64});
    const Arrival a = measure_request(buf, scratch);
    FUZZ_CHECK(a.bytes <= buf.size());
    if (a.kind == Arrival::Whole) {
        FUZZ_CHECK(a.bytes > 0);
        const Arrival b = measure_request(buf.substr(0, a.bytes), scratch);
        FUZZ_CHECK(b.kind == Arrival::Whole && b.bytes == a.bytes);
    }
    // The pair decoder straight on the input: views inside it, and what it
    // decodes re-encodes to the same pairs.
    Pairs out;
    if (decode_pairs(buf, 64, out).empty()) check_pairs_round_trip(out);
    for (const auto& [n, v] : out) FUZZ_CHECK(inside(n, buf) && inside(v, buf));
    FUZZ_CHECK(out.size() <= 64);
    return 0;
}
