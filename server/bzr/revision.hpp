// Revision texts of 2a repositories (docs/formats/revisions.md): the
// bencoded list of (key, value) pairs of Breezy's
// BEncodeRevisionSerializer1 (chk_serializer), format 10.
//
//   l l6:format i10e e  l9:committer <utf-8> e  [l8:timezone i<sec> e]
//     l10:properties d<utf-8 name> <bytes>...e e  l9:timestamp <"%.3f"> e
//     l11:revision-id <id> e  l10:parent-ids l<id>...e e
//     l14:inventory-sha1 <hex> e  l7:message <utf-8> e  e
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/bzr/error.hpp"

namespace souk::server::bzr {

// Most bytes of a revision text parse_revision accepts (Breezy has no
// limit; real ones are a few KiB, a long commit message a few MiB).
inline constexpr size_t kMaxRevisionText = 64 * 1024 * 1024;

struct Revision {
    std::string revision_id;
    std::vector<std::string> parent_ids;
    std::string committer;       // UTF-8 (validated)
    std::string message;         // UTF-8 (validated)
    std::string inventory_sha1;
    std::string timestamp_text;  // as stored ("%.3f")
    double timestamp = 0;        // Python float() of timestamp_text
    int64_t timezone = 0;        // seconds east of UTC; 0 when absent
    bool has_timezone = false;   // Breezy: timezone None when false
    std::vector<std::pair<std::string, std::string>> properties;  // sorted by name (bencode dict order)
};

// Parse a revision text with the checks of Breezy's
// read_revision_from_string: a list of (key, value) pairs, every key known
// and of the right type, format 10, every key but timezone present,
// strict UTF-8 where Breezy decodes (committer, message, property names),
// property values byte strings, parent ids byte strings. Corrupt on any
// failure, LimitExceeded above max_text bytes.
Result<Revision> parse_revision(std::string_view text, size_t max_text = kMaxRevisionText);

// The text Breezy's write_revision_to_string produces for `rev` (key
// order: format, committer, timezone when present, properties, timestamp,
// revision-id, parent-ids, inventory-sha1, message). timestamp_text is
// written as is.
std::string serialise_revision(const Revision& rev);

// Python's strict UTF-8 decoder: no overlongs, surrogates or > U+10FFFF.
bool valid_utf8(std::string_view s);

}  // namespace souk::server::bzr
