// HTTP/1.1 framing (protocol/http1.hpp), what soukd's own HTTP carrier
// reads first (and libsouk's client reads in responses). A head found in a buffer is found the same in any
// longer buffer and in no shorter one; a parsed head has views inside it and
// one body framing at most; the chunked decoder gives the same body and
// stops at the same byte whether fed whole or in pieces, and re-chunked its
// body decodes the same; a whole request's length is a fixed point.
#include "fuzz.hpp"
#include "protocol/http1.hpp"

using namespace souk;
using namespace souk::proto::http1;

namespace {

bool inside(std::string_view part, std::string_view whole) {
    return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

struct Decoded {
    ChunkedDecoder::Status status = ChunkedDecoder::Status::More;
    std::string body;
    size_t used = 0;
    friend bool operator==(const Decoded&, const Decoded&) = default;
};

Decoded dechunk(std::string_view in, std::minstd_rand* rng) {
    ChunkedDecoder dec;
    Decoded d;
    d.used = fuzz::feed_in_pieces(in, rng, 37, [&](std::string_view& piece) {
        while (!piece.empty()) {  // bounded: feed consumes the piece or ends the body
            std::vector<std::string_view> out;
            d.status = dec.feed(piece, out);
            for (auto s : out) d.body.append(s);
            if (d.status != ChunkedDecoder::Status::More) return false;
        }
        return true;
    });
    FUZZ_CHECK(dec.decoded() == d.body.size());
    if (d.status == ChunkedDecoder::Status::Bad) d.used = 0;  // where it gives up is not its contract
    return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const std::string_view buf = fuzz::view(data + 1, size - 1);
    std::minstd_rand rng(data[0]);

    const size_t hl = head_length(buf);
    FUZZ_CHECK(hl <= buf.size());
    if (hl > 0) {
        FUZZ_CHECK(head_length(buf.substr(0, hl)) == hl);
        FUZZ_CHECK(head_length(buf.substr(0, hl - 1)) == 0);
        FUZZ_CHECK(buf[hl - 1] == '\n');
        const std::string_view head_bytes = buf.substr(0, hl);
        Head head;
        const char* why = nullptr;
        const int st = parse_head(head_bytes, head, &why);
        FUZZ_CHECK(st == 0 || st == 400 || st == 501 || st == 505);
        if (st != 0) {
            FUZZ_CHECK(why != nullptr && *why != '\0');
        } else {
            FUZZ_CHECK(!head.method.empty() && inside(head.method, head_bytes) && inside(head.target, head_bytes));
            FUZZ_CHECK(head.minor == 0 || head.minor == 1);
            FUZZ_CHECK(!(head.chunked && head.has_length));
            FUZZ_CHECK(head.has_length || head.content_length == 0);
            for (const auto& [name, value] : head.headers) {
                FUZZ_CHECK(!name.empty() && inside(name, head_bytes) && inside(value, head_bytes));
                FUZZ_CHECK(name.find_first_of(" \t:\r\n") == std::string_view::npos);
                FUZZ_CHECK(value.find_first_of("\r\n") == std::string_view::npos);
            }
            size_t hosts = 0;
            for (const auto& h : head.headers) hosts += h.first.size() == 4 && (h.first[0] | 0x20) == 'h' &&
                                                        (h.first[1] | 0x20) == 'o' && (h.first[2] | 0x20) == 's' &&
                                                        (h.first[3] | 0x20) == 't';
            FUZZ_CHECK(hosts <= 1 && (head.minor == 0 || hosts == 1));
        }
    }

    // The same head read as a response (libsouk's client): a status and one
    // body framing at most, or a reason.
    if (hl > 0) {
        ResponseHead resp;
        const char* why = nullptr;
        if (parse_response_head(buf.substr(0, hl), resp, &why)) {
            FUZZ_CHECK(resp.status >= 100 && resp.status <= 999);
            FUZZ_CHECK(resp.minor == 0 || resp.minor == 1);
            FUZZ_CHECK(!(resp.chunked && resp.has_length));
            for (const auto& [name, value] : resp.headers)
                FUZZ_CHECK(!name.empty() && inside(name, buf) && inside(value, buf));
        } else {
            FUZZ_CHECK(why != nullptr && *why != '\0');
        }
    }

    // The bytes after the head (or all of them) as a chunked body.
    const std::string_view body = buf.substr(hl);
    const Decoded whole = dechunk(body, nullptr);
    const Decoded pieces = dechunk(body, &rng);
    FUZZ_CHECK(whole == pieces);
    if (whole.status == ChunkedDecoder::Status::Done) {
        std::string again;
        for (size_t i = 0; i < whole.body.size(); i += 100) {
            const size_t n = std::min<size_t>(100, whole.body.size() - i);
            char size_line[16];
            ::snprintf(size_line, sizeof size_line, "%zx\r\n", n);
            again += size_line;
            again.append(whole.body, i, n);
            again += "\r\n";
        }
        again += "0\r\n\r\n";
        const Decoded back = dechunk(again, nullptr);
        FUZZ_CHECK(back.status == ChunkedDecoder::Status::Done && back.body == whole.body && back.used == again.size());
    }

    bool expect = false;
    const size_t len = request_length(buf, &expect);
    if (len != 0 && len != SIZE_MAX) {
        FUZZ_CHECK(len <= buf.size() && len >= hl && hl > 0);
        bool e2 = false;
        FUZZ_CHECK(request_length(buf.substr(0, len), &e2) == len);
    }
    if (expect) FUZZ_CHECK(len == 0);
    return 0;
}
