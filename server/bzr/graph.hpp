// The revision graph of a repository (docs/protocol/repository.md):
// Repository.get_parent_map's search (the client's recipe, then fleshing out
// the ancestry of the asked revisions, as Breezy's _expand_requested_revs)
// and Repository.get_revision_graph, over the packs' .rix indices. Only the
// index pages a walk needs are read.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "server/bzr/error.hpp"
#include "server/bzr/pack_collection.hpp"

namespace souk::server::bzr {

struct GraphLimits {
    // How far get_parent_map fleshes out the ancestry beyond the asked
    // revisions, in uncompressed reply bytes (Breezy aims at ~64 KiB of
    // zlib-compressed text, about this much uncompressed).
    size_t extra_bytes = 192 * 1024;
    // Revisions one call may visit (recipe walk, expansion or graph walk);
    // beyond it the call fails with LimitExceeded.
    size_t max_visited = 8 * 1000 * 1000;
};

// Repository.get_parent_map. `asked`: the revision ids the client named
// (without "include-missing:"); `recipe`: the request body, "start ids\n
// exclude ids\ncount" (the revisions it reaches are ones the client already
// has, so they are not sent again unless asked). Returns the reply text
// before compression: sorted lines "revid parent..." and, with
// include_missing, "missing:revid" for absent ones.
Result<std::string> parent_map_text(PackCollection& packs, std::span<const std::string> asked, bool include_missing,
                                    std::string_view recipe, const GraphLimits& limits = {});

// Repository.get_revision_graph: "revid parent..." lines (ghosts and
// null: left out) for every revision (revid empty, in revid order) or for
// the ancestry of revid (depth-first from it). Errc::NoSuchRevision when
// revid is given and absent.
Result<std::string> revision_graph_text(PackCollection& packs, std::string_view revid,
                                        const GraphLimits& limits = {});

}  // namespace souk::server::bzr
