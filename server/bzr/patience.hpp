// Patience diff's matching blocks, the line matcher Breezy's annotate uses
// (docs/protocol/streams.md#annotating-a-file). The answer must equal, block
// for block, what Breezy gets from patiencediff's C extension: a different
// but equally valid diff would attribute lines to other revisions.
//
// The method: match the lines that occur exactly once in each range and
// keep the longest increasing run of those pairs (patience sorting); recurse
// into the gaps between them; where a range has no such line, match its
// common leading lines, else its common trailing lines, and recurse into
// the rest. The recursion stops silently 10 levels down (the C extension
// does; the pure-Python one raises instead), leaving the deepest gaps
// unmatched. Pure: no I/O, no allocation beyond the arrays of the inputs'
// size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace souk::server::bzr::patience {

// a[a .. a+len) equals b[b .. b+len).
struct Block {
    size_t a = 0, b = 0, len = 0;
    bool operator==(const Block&) const = default;
};

// PatienceSequenceMatcher(None, a, b).get_matching_blocks(): blocks
// increasing in both a and b, adjacent matches merged, ending with the
// sentinel {a.size(), b.size(), 0}. Lines compare by their bytes.
std::vector<Block> matching_blocks(std::span<const std::string_view> a, std::span<const std::string_view> b);

// The same over line ids: equal ids are equal lines; every id is below
// `id_count`.
std::vector<Block> matching_blocks_ids(std::span<const uint32_t> a, std::span<const uint32_t> b, size_t id_count);

}  // namespace souk::server::bzr::patience
