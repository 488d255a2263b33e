// The groupcompress block reader (server/bzr/groupcompress.hpp): block
// headers and zlib content, entries addressed by [start, end), deltas; and
// the writer's blocks read back. Whatever is read is within the caps it was
// given; a delta's result has the length it declares; the copying and the
// view extractors agree; a block the writer built gives back every text.
#include "fuzz.hpp"
#include "server/bzr/groupcompress.hpp"

using namespace souk::server::bzr;

namespace {

void check_entries(std::string_view content, FuzzedDataProvider& in, const gc::Limits& limits) {
    for (int i = 0; i < 8 && in.remaining_bytes() > 0; ++i) {
        const uint64_t start = in.ConsumeIntegralInRange<uint64_t>(0, content.size() + 2);
        const uint64_t end = in.ConsumeIntegralInRange<uint64_t>(0, content.size() + 2);
        gc::EntryKind k1{}, k2{};
        auto text = gc::extract_text(content, start, end, limits, &k1);
        std::string scratch;
        auto view = gc::extract_text_view(content, start, end, scratch, limits, &k2);
        FUZZ_CHECK(text.ok() == view.ok());
        if (!text) continue;
        FUZZ_CHECK(*text == *view && k1 == k2);
        FUZZ_CHECK(text->size() <= limits.max_text);
        if (start == 0 && end == 0) FUZZ_CHECK(k1 == gc::EntryKind::Empty && text->empty());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    const uint8_t mode = in.ConsumeIntegral<uint8_t>();
    gc::Limits limits;
    limits.max_content = 1 << 20;
    limits.max_text = 1 << 20;

    if (mode % 3 == 0) {
        // A block: its header, its content (whole and as a prefix).
        const std::string block = in.ConsumeRandomLengthString(1 << 16);
        auto header = gc::parse_block_header(block);
        auto content = gc::block_content(block, std::string_view::npos, limits);
        if (content) {
            FUZZ_CHECK(header.ok());
            FUZZ_CHECK(content->size() == header->content_length && content->size() <= limits.max_content);
            FUZZ_CHECK(header->header_size <= block.size());
            const size_t want = in.ConsumeIntegralInRange<size_t>(0, content->size());
            auto prefix = gc::block_content(block, want, limits);
            FUZZ_CHECK(prefix.ok() && *prefix == content->substr(0, want));
            check_entries(*content, in, limits);
        }
    } else if (mode % 3 == 1) {
        // A delta against a source: the declared length, within max_out.
        const std::string source = in.ConsumeRandomLengthString(4096);
        const size_t max_out = in.ConsumeIntegralInRange<size_t>(0, 1 << 16);
        const std::string delta = in.ConsumeRemainingBytesAsString();
        std::string out = "stale";
        auto st = gc::apply_delta(source, delta, out, max_out);
        if (st) {
            size_t pos = 0;
            uint64_t target = 0;
            FUZZ_CHECK(gc::decode_base128(delta, pos, 10, target));
            FUZZ_CHECK(out.size() == target && out.size() <= max_out);
        }
        // And as the content of a block: entries that are anything at all.
        check_entries(source + delta, in, limits);
    } else {
        // The writer's block gives back every text, as its content says.
        gc::BlockWriter w(1 << 20);
        std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> texts;
        while (in.remaining_bytes() > 0 && texts.size() < 32) {
            const bool full = in.ConsumeBool();
            std::string t = in.ConsumeRandomLengthString(2048);
            auto at = full ? w.add_fulltext(t) : w.add_text(t);
            if (!at) break;
            FUZZ_CHECK(at->first <= at->second && at->second <= w.content_size());
            texts.emplace_back(std::move(t), *at);
        }
        auto block = w.finish();
        FUZZ_CHECK(block.ok());
        auto content = gc::block_content(*block, std::string_view::npos, limits);
        FUZZ_CHECK(content.ok() && *content == w.content());
        for (const auto& [t, at] : texts) {
            auto got = gc::extract_text(*content, at.first, at.second, limits);
            FUZZ_CHECK(got.ok() && *got == t);
        }
    }
    uint64_t v = 0;
    std::string enc;
    gc::encode_base128(size, enc);
    size_t pos = 0;
    FUZZ_CHECK(gc::decode_base128(enc, pos, 10, v) && v == size && pos == enc.size());
    return 0;
}
