// The server's smart request decoder (protocol/message.hpp,
// RequestDecoder), every protocol version it accepts (v1, v2, v3) on one
// stream. The input is decoded twice: whole, building Values, and in
// pieces of varying sizes into the pooled handler's reused args storage
// (the allocation-free path); both must see the same requests, bodies,
// aborts and errors. Every complete request, encoded again by the client's
// encoder, decodes to the same request.
#include "fuzz.hpp"
#include "protocol/message.hpp"
#include "protocol/verbs.hpp"

using namespace souk;
using proto::Args;
using proto::Ev;

namespace {

struct Message {
    int version = 0;
    Args args;
    std::string body;
    bool aborted = false;
    Args abort_args;
    bool ended = false;
    friend bool operator==(const Message&, const Message&) = default;
};

struct Trace {
    std::vector<Message> messages;
    bool error = false;
    friend bool operator==(const Trace&, const Trace&) = default;
};

// Decode `in` fed in pieces (sizes from `rng`, or all at once when null).
Trace decode(std::string_view in, const proto::DecoderLimits& limits, bool storage_mode, std::minstd_rand* rng) {
    proto::RequestDecoder d(limits);
    Args storage;
    if (storage_mode) d.set_args_storage(&storage);
    Trace t;
    Message cur;
    bool in_message = false;
    fuzz::feed_in_pieces(in, rng, 97, [&](std::string_view& piece) {
        for (;;) {  // bounded: each event consumes input, or NeedMore ends the piece
            proto::Event ev = d.next(piece);
            if (ev.kind == Ev::NeedMore) return true;
            if (ev.kind == Ev::Error) {
                FUZZ_CHECK(!ev.error.empty());
                t.error = true;
                return false;
            }
            FUZZ_CHECK(ev.version >= 1 && ev.version <= 3);
            switch (ev.kind) {
            case Ev::ArgsReady:
                FUZZ_CHECK(!in_message);
                in_message = true;
                cur = Message{};
                cur.version = ev.version;
                if (storage_mode) {
                    FUZZ_CHECK(ev.argc >= 1 && ev.argc <= storage.size());
                    cur.args.assign(storage.begin(), storage.begin() + static_cast<ptrdiff_t>(ev.argc));
                } else {
                    cur.args = ev.args;
                }
                FUZZ_CHECK(!cur.args.empty() && cur.args[0].is_bytes());
                break;
            case Ev::BodyChunk:
                FUZZ_CHECK(in_message && !cur.aborted);
                FUZZ_CHECK(!ev.chunk.empty());
                cur.body.append(ev.chunk);
                FUZZ_CHECK(cur.body.size() <= limits.max_body);
                break;
            case Ev::Abort:
                FUZZ_CHECK(in_message && ev.version == 3);
                cur.aborted = true;
                cur.abort_args = ev.args;
                break;
            case Ev::End:
                FUZZ_CHECK(in_message);
                FUZZ_CHECK(d.idle());
                cur.ended = true;
                t.messages.push_back(cur);
                in_message = false;
                break;
            default:
                FUZZ_CHECK(false);  // StreamError is a response event
            }
        }
    });
    if (in_message) t.messages.push_back(cur);
    return t;
}

// A complete request, encoded again, decodes to itself.
void round_trip(const Message& m, const proto::DecoderLimits& limits) {
    if (!m.ended || m.aborted) return;
    std::string wire;
    const proto::VerbInfo* verb = proto::find_verb(m.args[0].bytes);
    const bool has_body = m.version == 3 ? !m.body.empty() : verb && verb->request_body();
    if (m.version != 3) {
        std::string line;
        if (!proto::join_line(m.args, line)) return;
    }
    proto::request::encode(m.version, m.args, has_body ? &m.body : nullptr, wire);
    Trace t = decode(wire, limits, false, nullptr);
    FUZZ_CHECK(!t.error);
    FUZZ_CHECK(t.messages.size() == 1);
    FUZZ_CHECK(t.messages[0] == m);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t knobs = data[0];
    const std::string_view in = fuzz::view(data + 1, size - 1);
    proto::DecoderLimits limits;
    if (knobs & 1) {  // tight limits, so that every one of them is reached
        limits.max_line = 200;
        limits.max_structure = 300;
        limits.max_body = 1000;
        limits.bencode.max_depth = 4;
        limits.bencode.max_items = 40;
    }
    const Trace whole = decode(in, limits, false, nullptr);
    std::minstd_rand rng(knobs);
    const Trace pieces = decode(in, limits, true, &rng);
    FUZZ_CHECK(whole == pieces);
    for (const auto& m : whole.messages) round_trip(m, limits);
    return 0;
}
