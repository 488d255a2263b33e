#include "server/carriers/stream.hpp"

#include "server/request/handler.hpp"

namespace souk::server {

SessionEnd serve_stream(const ServerContext& shared_ctx, io::Stream& stream, const log::Origin& origin) {
    // This connection's store chain (its own readahead thread, joined when
    // the session returns), sharing the root's filesystem and cache.
    std::unique_ptr<Store> conn_store = shared_ctx.store ? shared_ctx.store->for_connection() : nullptr;
    ServerContext conn_ctx;
    if (conn_store) {
        conn_ctx = shared_ctx;
        conn_ctx.store = conn_store.get();
    }
    const ServerContext& ctx = conn_store ? conn_ctx : shared_ctx;
    // The request loop with pooled handlers (server/request/pipeline.cpp); between
    // requests the session holds no handler and no buffer.
    configure_pools(ctx.params);
    return serve_requests(ctx, stream, origin);
}

}  // namespace souk::server
