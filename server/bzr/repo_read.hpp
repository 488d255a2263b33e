// The read verbs that let log, cat and annotate avoid reading packs over
// VFS (docs/protocol/streams.md#the-read-verbs): revision texts, file texts
// and inventory deltas, each produced piece by piece for a reply body.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "server/bzr/stream_source.hpp"

namespace souk::server::bzr {

// Repository.iter_revisions: one complete zlib stream of the revision
// text per revision of `revids` the repository has (absent ones left out),
// in pack order.
std::unique_ptr<PieceSource> revision_texts(std::unique_ptr<PackReader> reader, std::vector<std::string> revids,
                                            const StreamLimits& limits = {});

// Repository.iter_files_bytes: for each (file_id, revision) key, by its
// index in the request, "ok\0<idx>\n" and one zlib stream of the text, or
// "absent\0<file_id>\0<revision>\0<idx>\n". A key asked twice answers for
// its last index, as Breezy does.
struct TextRequest {
    std::string file_id, revision;
};
std::unique_ptr<PieceSource> file_texts(std::unique_ptr<PackReader> reader, std::vector<TextRequest> keys,
                                        const StreamLimits& limits = {});

// VersionedFileRepository.get_inventories: a container of one
// "inventory-deltas" substream, one fulltext record per inventory found,
// parents before children, each an inventory delta against the one before
// (the first against null:). `format` is the first record.
std::unique_ptr<PieceSource> inventory_deltas(std::unique_ptr<PackReader> reader, std::string format,
                                              std::vector<std::string> revids, const StreamLimits& limits = {});

}  // namespace souk::server::bzr
