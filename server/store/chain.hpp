// The store chain (docs/store-chain.md), built from the parameters:
//
//   stats -> range cache -> readahead -> delay -> jailed filesystem
//   (--store-stats) (--cache)  (--readahead) (--slow-read-delay)
//
// StoreChain is itself a Store (the top layer's face), so main() uses it
// where it used FsStore. Building it attaches (or creates) the shared
// segment of the root and points soukd's counters into it, so `soukd stats`
// sees this process. Each layer checks its preconditions here and logs how
// to fix what stops it from helping (docs/conventions.md#start-up-explains-itself).
//
// for_connection() gives each worker of the waiter (bzr://, HTTP,
// FastCGI) and each --inet connection its own chain (its own readahead
// thread) sharing the filesystem, the segment and the cache. The root
// chain serves CGI (posix_fadvise hints; no thread outlives the request);
// in a daemon it has a readahead thread of its own only if something
// reads through it outside a connection (tests do).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "server/base/params.hpp"
#include "server/store/shm.hpp"
#include "server/store/fs_store.hpp"
#include "server/store/layers.hpp"
#include "server/store/range_cache.hpp"
#include "server/store/readahead.hpp"

namespace souk::server {

enum class ChainMode {
    Daemon,  // carriers with connections: per-connection (per-worker) readahead
    Cgi,     // one request per process: no threads, fadvise hints
};

// What every chain of one root shares.
struct ChainShared {
    ChainShared(const Params& p, const std::string& root, ChainMode m);
    ~ChainShared();
    Params params;
    ChainMode mode;
    FsStore fs;
    std::unique_ptr<shm::Segment> segment;  // nullptr if the system refused one
    std::unique_ptr<RangeCache> cache;      // nullptr when --cache=0 or no segment
};

// The layers of one chain instance (base-from-member for StoreChain).
struct ChainParts {
    std::shared_ptr<ChainShared> shared;
    std::unique_ptr<Prefetcher> prefetcher;  // nullptr when --readahead=0
    std::vector<std::unique_ptr<Store>> layers;  // bottom first
    Store* top = nullptr;
    ChainParts(std::shared_ptr<ChainShared> s, Prefetcher::Mode ra_mode);
    // Quits the prefetcher (joining its threads) before the layers it reads
    // from go away.
    ~ChainParts();
    ChainParts(const ChainParts&) = delete;
    ChainParts& operator=(const ChainParts&) = delete;
};

class StoreChain final : private ChainParts, public StoreLayer {
public:
    // The root chain for `root` (check valid()).
    StoreChain(const Params& params, const std::string& root, ChainMode mode = ChainMode::Daemon);
    ~StoreChain() override;

    bool valid() const { return shared->fs.valid(); }
    const std::string& error() const { return shared->fs.error(); }
    const std::string& root_realpath() const { return shared->fs.root_realpath(); }
    // The jailed filesystem at the bottom (repairs and sweeps of temporary files).
    FsStore& fs() const { return shared->fs; }
    // When any process last swept the root (in the shared segment), or
    // nullptr without a segment.
    std::atomic<int64_t>* sweep_clock() const {
        return shared->segment ? &shared->segment->header().last_sweep_ns : nullptr;
    }

    std::unique_ptr<Store> for_connection() override;

    // For tests, benchmarks and `soukd stats`.
    RangeCache* cache() const { return shared->cache.get(); }
    shm::Segment* segment() const { return shared->segment.get(); }
    Prefetcher* prefetcher() const { return ChainParts::prefetcher.get(); }

private:
    StoreChain(std::shared_ptr<ChainShared> s, Prefetcher::Mode mode);
};

// The one-line replacement for `FsStore store(directory)` in main.
inline std::unique_ptr<StoreChain> make_store_chain(const Params& params, const std::string& root, ChainMode mode) {
    return std::make_unique<StoreChain>(params, root, mode);
}

}  // namespace souk::server
