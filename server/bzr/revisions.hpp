// Revision texts of a 2a repository, read without Breezy (docs/formats/revisions.md):
// each pack's .rix B+Tree index maps a revision id to
// "block_start block_length start end"; [block_start, +block_length) of
// packs/<name>.pack is a container Bytes record holding a groupcompress
// block ("gcb1z\n<z_len>\n<len>\n<zlib>"), and [start, end) of the block's
// inflated content is 'f' <base128 len> <fulltext> or 'd' <base128 len>
// <delta against the content before it>. The text itself is the bencoded
// list of (key, value) pairs of chk_serializer's BEncodeRevisionSerializer1.
//
// Everything is bounded: a read inflates only the prefix of a block that
// the wanted records need, never more than kMaxBlockContent, and corrupt
// input of any kind yields EINVAL and a message, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "server/store/store.hpp"

namespace souk::server::bzr {

// Most inflated bytes of one groupcompress block (and so of one revision
// text) a read will hold; a record ending beyond this is refused (EINVAL).
inline constexpr size_t kMaxBlockContent = 64 * 1024 * 1024;

// gather_stats' answer when Breezy would raise NoSuchRevision: the revision
// is not in the repository, or a ghost is among the revisions Breezy would
// fetch. The caller replies ('nosuchrevision', revid). Never an errno.
inline constexpr int kNoSuchRevision = -1;

struct RevisionInfo {
    std::string committer;   // raw UTF-8 bytes (validated)
    double timestamp = 0;
    int64_t timezone = 0;
    bool has_timezone = true;  // false when the text has none (Breezy: None)
};

// Counters of one read_revisions call, for tests and logs.
struct ReadStats {
    size_t blocks = 0;     // groupcompress blocks read (each at most once)
    size_t fulltexts = 0;  // 'f' records extracted
    size_t deltas = 0;     // 'd' records extracted
};

// Read the revisions `revids` from the repository at `repo` (root-relative
// .bzr/repository directory) into `out` (keyed by revision id). Revisions
// the repository does not have are simply absent from `out`, as Breezy's
// iter_revisions yields (revid, None) for them. Each block is read and
// inflated at most once. Returns 0 or an errno (EINVAL for corrupt data,
// ENOTSUP for lzma blocks and for repositories whose format is not 2a or
// its subtree variant) with *why describing it. `out` is only added to on
// success.
int read_revisions(Store& store, const std::string& repo, const std::vector<std::string>& revids,
                   std::map<std::string, RevisionInfo>& out, std::string* why, ReadStats* stats = nullptr);

// The body of Breezy's Repository.gather_stats answer (SmartServerRepository
// GatherStats over VersionedFileRepository.gather_stats):
//   committers: N          when revid is non-empty and committers
//   firstrev: %.3f %d      the last revision of graph.iter_ancestry([revid])
//   latestrev: %.3f %d     revid itself           (both only for a real revid)
//   revisions: N           distinct revision ids in all packs' .rix
// Breezy never sends 'size' for a 2a repository. An empty revid means no
// revision-specific stats, "null:" gives "committers: 0" (when asked) only.
// Returns 0, kNoSuchRevision, or an errno: as read_revisions, and whatever
// reading format, pack-names and the .rix indices fails with (*why is left
// empty for a plain I/O errno of those files).
//
// Where Breezy's answer depends on Python's (hash-randomised) set order —
// several revisions in the deepest generation of the ancestry — firstrev is
// the oldest of them (smallest timestamp, then smallest revision id), one of
// the answers Breezy itself can give.
int gather_stats(Store& store, const std::string& repo, std::string_view revid, bool committers,
                 std::string& body, std::string* why);

// Building blocks, exposed for tests.

// Parse a revision text into the fields read_revisions keeps: the
// Result-returning parse_revision of server/bzr/revision.hpp, as 0 or EINVAL.
int parse_revision(std::string_view text, RevisionInfo& out, std::string* why);

// Apply a groupcompress delta (<base128 target length> then copy/insert
// instructions) to `source`: gc::apply_delta (server/bzr/groupcompress.hpp)
// as 0 or EINVAL; the output never exceeds kMaxBlockContent. (Revision
// texts are parsed by parse_revision, server/bzr/revision.hpp.)
int apply_delta(std::string_view source, std::string_view delta, std::string& out, std::string* why);

}  // namespace souk::server::bzr
