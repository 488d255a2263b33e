#include "server/carriers/stream.hpp"

#include "server/request/access.hpp"
#include "server/request/handler.hpp"

namespace souk::server {

SessionEnd serve_stream(const ServerContext& shared_ctx, io::Stream& stream, const log::Origin& origin) {
    // This connection's store chain of each root (its own readahead
    // thread, joined when the session returns), sharing the root's
    // filesystem and cache.
    std::vector<std::unique_ptr<Store>> conn_stores;
    const ServerContext ctx = connection_context(shared_ctx, conn_stores);
    // The request loop with pooled handlers (server/request/pipeline.cpp); between
    // requests the session holds no handler and no buffer.
    configure_pools(ctx.params);
    return serve_requests(ctx, stream, origin);
}

}  // namespace souk::server
