// The stream carrier (SSH stdio, `soukd serve --inet`): one connection,
// served by the request pipeline until EOF or a timeout.
#pragma once

#include <string>

#include "server/request/pipeline.hpp"

namespace souk::server {

// Serve one connection. Returns when the peer is done or must be dropped;
// the caller closes the stream. Never throws.
SessionEnd serve_stream(const ServerContext& ctx, io::Stream& stream, const log::Origin& origin);

}  // namespace souk::server
