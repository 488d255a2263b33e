// The reply writer: one reply, in the request's protocol version, to any
// carrier's Sink, with file bodies streamed (sendfile where the Sink and the
// store chain allow it). Used by the request pipeline only.
#pragma once

#include <string>

#include "server/verbs/context.hpp"
#include "transport/sink.hpp"

namespace souk::server {

// Write `reply` for a request of protocol `version` (1, 2 or 3) to `out`,
// streaming file bodies; `buf` is scratch. Returns false if the connection
// must be closed (write failure, or a file that shrank under a v1/v2
// length-prefixed body; v3 ends such a body with an error part instead).
bool write_reply(const ServerContext& ctx, io::Sink& out, int version, Reply& reply, std::string& buf,
                 const std::string& client_path);

}  // namespace souk::server
