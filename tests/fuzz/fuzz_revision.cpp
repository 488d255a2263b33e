// Revision texts (server/bzr/revision.hpp). Whatever parse_revision accepts
// serialises to a text it accepts again as the same revision, and that
// text is a fixed point of serialisation. valid_utf8 agrees with a plain
// reference decoder of Python's strict UTF-8.
#include <cstring>

#include "fuzz.hpp"
#include "server/bzr/revision.hpp"

using namespace souk::server::bzr;

namespace {

// Strict UTF-8 (RFC 3629): shortest form, no surrogates, at most U+10FFFF.
bool reference_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {  // bounded: each pass consumes >= 1 byte
        const auto c = static_cast<unsigned char>(s[i]);
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) { ++i; continue; }
        if ((c & 0xe0) == 0xc0) { n = 2; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { n = 3; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { n = 4; cp = c & 0x07; min = 0x10000; }
        else return false;
        if (i + n > s.size()) return false;
        for (size_t k = 1; k < n; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xc0) != 0x80) return false;
            cp = cp << 6 | (cc & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += n;
    }
    return true;
}

bool same(const Revision& a, const Revision& b) {
    const bool ts = std::memcmp(&a.timestamp, &b.timestamp, sizeof a.timestamp) == 0;
    return a.revision_id == b.revision_id && a.parent_ids == b.parent_ids && a.committer == b.committer &&
           a.message == b.message && a.inventory_sha1 == b.inventory_sha1 && a.timestamp_text == b.timestamp_text &&
           ts && a.timezone == b.timezone && a.has_timezone == b.has_timezone && a.properties == b.properties;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text = souk::fuzz::view(data, size);
    FUZZ_CHECK(valid_utf8(text) == reference_utf8(text));
    auto rev = parse_revision(text);
    if (!rev) {
        FUZZ_CHECK(!rev.err().detail.empty());
        return 0;
    }
    FUZZ_CHECK(valid_utf8(rev->committer) && valid_utf8(rev->message));
    for (size_t i = 1; i < rev->properties.size(); ++i)
        FUZZ_CHECK(rev->properties[i - 1].first < rev->properties[i].first);
    const std::string out = serialise_revision(*rev);
    auto again = parse_revision(out);
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(same(*rev, *again));
    FUZZ_CHECK(serialise_revision(*again) == out);
    // One byte over the cap is refused as a limit, not parsed.
    auto capped = parse_revision(text, size - 1);
    FUZZ_CHECK(!capped.ok() && capped.err().code == Errc::LimitExceeded);
    return 0;
}
