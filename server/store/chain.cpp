#include "server/store/chain.hpp"

#include "server/base/log.hpp"
#include "server/store/cache_store.hpp"

namespace souk::server {
namespace {

uint64_t floor_pow2(uint64_t v) {
    uint64_t p = 1;
    while (p * 2 <= v) p *= 2;
    return p;
}

}  // namespace

ChainShared::ChainShared(const Params& p, const std::string& root, ChainMode m) : params(p), mode(m), fs(root) {
    if (!fs.valid()) return;
    shm::Segment::Options opts;
    opts.cache_bytes = static_cast<uint64_t>(p.cache_size);
    opts.block_bytes = floor_pow2(static_cast<uint64_t>(p.cache_block));
    if (opts.block_bytes != static_cast<uint64_t>(p.cache_block))
        SOUK_LOG(Warn, "--cache-block=%.0f is not a power of two; using %llu", p.cache_block,
                 static_cast<unsigned long long>(opts.block_bytes));
    std::string why;
    segment = shm::Segment::open(fs.root_realpath(), opts, &why);
    if (!segment) {
        SOUK_LOG(Warn,
                 "no shared segment (%s): counters stay in this process (soukd stats will not see it) and the "
                 "range cache is off; check that /dev/shm is mounted, writable and has room, or pass --cache=0",
                 why.c_str());
        return;
    }
    set_counters(&segment->counters());
    if (!segment->created() && segment->header().block_bytes != opts.block_bytes)
        SOUK_LOG(Info, "range cache of %s uses the block size it was created with (%llu), not --cache-block",
                 fs.root_realpath().c_str(), static_cast<unsigned long long>(segment->header().block_bytes));
    if (p.cache != 0) cache = std::make_unique<RangeCache>(*segment, p.cache_lock_timeout);
}

ChainShared::~ChainShared() {
    // Counters must not point into a segment about to be unmapped.
    if (segment && &counters() == &segment->counters()) set_counters(nullptr);
}

ChainParts::ChainParts(std::shared_ptr<ChainShared> s, Prefetcher::Mode ra_mode) : shared(std::move(s)) {
    const Params& p = shared->params;
    Store* cur = &shared->fs;
    auto add = [&](std::unique_ptr<Store> layer) {
        cur = layer.get();
        layers.push_back(std::move(layer));
    };
    add(std::make_unique<DelayStore>(*cur, p.slow_read_delay));
    Store& below = *cur;
    RangeCache* cache = shared->cache.get();
    if (p.readahead != 0) {
        Prefetcher::Config cfg;
        cfg.mode = ra_mode;
        cfg.max_window = static_cast<uint64_t>(p.readahead_max);
        cfg.queue = static_cast<size_t>(p.readahead_queue);
        cfg.settle_seconds = p.cache_settle;
        prefetcher = std::make_unique<Prefetcher>(cfg, below, cache);
        add(std::make_unique<ReadaheadStore>(*cur, *prefetcher, cache == nullptr));
    }
    if (cache) add(std::make_unique<CacheStore>(*cur, *cache, p.cache_settle));
    if (p.store_stats != 0) add(std::make_unique<StatsStore>(*cur));
    top = cur;
}

ChainParts::~ChainParts() { prefetcher.reset(); }

StoreChain::StoreChain(const Params& params, const std::string& root, ChainMode mode)
    : ChainParts(std::make_shared<ChainShared>(params, root, mode),
                 mode == ChainMode::Cgi ? Prefetcher::Mode::Advise : Prefetcher::Mode::Connection),
      StoreLayer(*ChainParts::top) {
    if (!valid()) return;
    const Params& p = shared->params;
    if (p.readahead != 0 && !shared->cache && mode != ChainMode::Cgi)
        SOUK_LOG(Info, "readahead without the range cache can only hint the kernel (posix_fadvise); %s",
                 p.cache == 0 ? "pass --cache=1 so it prefetches into the shared cache"
                              : "it has no shared segment to prefetch into (see above)");
    if (p.slow_read_delay > 0)
        SOUK_LOG(Warn, "slow storage: every filesystem read sleeps %.3f ms (--slow-read-delay; for benchmarks)",
                 p.slow_read_delay * 1e3);
}

StoreChain::StoreChain(std::shared_ptr<ChainShared> s, Prefetcher::Mode mode)
    : ChainParts(std::move(s), mode), StoreLayer(*ChainParts::top) {}

StoreChain::~StoreChain() = default;

std::unique_ptr<Store> StoreChain::for_connection() {
    if (!valid() || shared->params.readahead == 0 || shared->mode == ChainMode::Cgi) return nullptr;
    return std::unique_ptr<Store>(new StoreChain(shared, Prefetcher::Mode::Connection));
}

}  // namespace souk::server
