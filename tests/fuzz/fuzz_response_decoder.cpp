// The client's response decoder (protocol/message.hpp, ResponseDecoder) for
// each protocol version, with and without an expected body. The input is
// decoded whole and in pieces of varying sizes: the same response and the
// same number of bytes consumed. A complete response, encoded again by the
// server's encoder, decodes to itself.
#include "fuzz.hpp"
#include "protocol/message.hpp"

using namespace souk;
using proto::Args;
using proto::Ev;

namespace {

struct Response {
    bool have_args = false, success = true;
    Args args;
    std::string body;
    bool stream_error = false;
    Args error_args;
    bool ended = false, error = false;
    size_t consumed = 0;
    friend bool operator==(const Response&, const Response&) = default;
};

Response decode(std::string_view in, int version, bool expect_body, const proto::DecoderLimits& limits,
                std::minstd_rand* rng) {
    proto::ResponseDecoder d(version, expect_body, limits);
    Response r;
    r.consumed = fuzz::feed_in_pieces(in, rng, 61, [&](std::string_view& piece) {
        for (;;) {  // bounded: each event consumes input, or NeedMore ends the piece
            proto::Event ev = d.next(piece);
            if (ev.kind == Ev::NeedMore) return true;
            FUZZ_CHECK(ev.version == version);
            switch (ev.kind) {
            case Ev::Error:
                FUZZ_CHECK(!ev.error.empty());
                r.error = true;
                return false;
            case Ev::ArgsReady:
                FUZZ_CHECK(!r.have_args);
                r.have_args = true;
                r.success = ev.success;
                r.args = ev.args;
                break;
            case Ev::BodyChunk:
                FUZZ_CHECK(r.have_args && !r.stream_error && !ev.chunk.empty());
                r.body.append(ev.chunk);
                FUZZ_CHECK(r.body.size() <= limits.max_body);
                break;
            case Ev::StreamError:
                FUZZ_CHECK(r.have_args && version == 3 && !r.stream_error);
                r.stream_error = true;
                r.error_args = ev.args;
                break;
            case Ev::End:
                FUZZ_CHECK(r.have_args && d.done());
                r.ended = true;
                return false;
            default:
                FUZZ_CHECK(false);  // Abort is a request event
            }
        }
    });
    if (r.error) r.consumed = 0;  // where a decoder gives up is not part of its contract
    return r;
}

void round_trip(const Response& r, int version, bool expect_body, const proto::DecoderLimits& limits) {
    if (!r.ended) return;
    std::string wire;
    if (version != 3) {
        std::string line;
        if (!proto::join_line(r.args, line)) return;
        const bool body = expect_body && r.success;
        proto::response::encode(version, r.success, r.args, body ? &r.body : nullptr, wire);
    } else {
        proto::response::begin(3, r.success, r.args, wire);
        if (!r.body.empty()) proto::response::body_chunk(3, r.body, wire);
        if (r.stream_error) proto::response::stream_error(3, r.error_args, wire);
        proto::response::end(3, wire);
    }
    Response again = decode(wire, version, expect_body, limits, nullptr);
    FUZZ_CHECK(again.ended && again.consumed == wire.size());
    again.consumed = r.consumed;
    FUZZ_CHECK(again == r);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t knobs = data[0];
    const std::string_view in = fuzz::view(data + 1, size - 1);
    const int version = 1 + (knobs & 3) % 3;
    const bool expect_body = knobs & 4;
    proto::DecoderLimits limits;
    if (knobs & 8) {
        limits.max_line = 200;
        limits.max_structure = 300;
        limits.max_body = 1000;
        limits.bencode.max_depth = 4;
        limits.bencode.max_items = 40;
    }
    const Response whole = decode(in, version, expect_body, limits, nullptr);
    std::minstd_rand rng(knobs);
    const Response pieces = decode(in, version, expect_body, limits, &rng);
    FUZZ_CHECK(whole == pieces);
    round_trip(whole, version, expect_body, limits);
    return 0;
}
