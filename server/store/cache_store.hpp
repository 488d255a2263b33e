// The range-cache layer (docs/store-chain.md#the-range-cache): serves client reads from the
// shared segment's blocks (range_cache.hpp) and fills misses from the layer
// below, one lower read per run of missing blocks.
//
// Never stale: every read fstat()s the open file and looks blocks up under
// its current identity (device, inode, size, mtime, ctime), so a file
// changed by soukd (append, put, rename, delete) or by any other program is
// a different key at once. Blocks are inserted only when the identity is the
// same before and after the lower read, and only for files whose timestamps
// are older than --cache-settle: a file changed within one timestamp tick
// of the read could otherwise change again without changing its identity.
#pragma once

#include "server/store/layers.hpp"
#include "server/store/range_cache.hpp"

namespace souk::server {

// The current identity of an open file; false if fstat fails.
bool file_key(int fd, FileKey& out);
// Whether a file with this identity changed too recently to be cached.
bool unsettled(const FileKey& k, int64_t settle_ns);

class CacheStore final : public StoreLayer {
public:
    // `cache` must outlive this layer.
    CacheStore(Store& next, RangeCache& cache, double settle_seconds)
        : StoreLayer(next), cache_(cache), settle_ns_(static_cast<int64_t>(settle_seconds * 1e9)) {}

    // Serves what it can from the cache, reads runs of missing blocks from
    // below in one call each, caches them, and tells the layer below of the
    // whole client read (note_read) so readahead sees hits too.
    ssize_t pread(OpenFile& f, char* buf, size_t n, uint64_t offset) override;

private:
    RangeCache& cache_;
    int64_t settle_ns_;
};

}  // namespace souk::server
