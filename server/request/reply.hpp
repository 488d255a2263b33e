// The reply writer: one reply, in the request's protocol version, to any
// carrier's Sink, with file bodies streamed (sendfile where the Sink and the
// store chain allow it). Used by the request pipeline only.
#pragma once

#include <cstdint>
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

// The bytes write_reply writes for a File reply (a smart reply's framing
// around its file ranges) to a sink whose direct() is `direct`, when the
// file does not change under it: known before anything is sent, so that a
// web carrier can answer with a Content-Length and send the file with
// sendfile. UINT64_MAX for other bodies.
uint64_t file_reply_length(const ServerContext& ctx, int version, const Reply& reply, bool direct);

// Pull a generated body (Reply::Body::Stream) into memory while it stays
// within `limit` bytes, so that a short one has a known size before
// anything is sent. The reply stays generated and writes the same bytes,
// piece by piece as the source made them. Returns the body's size, or
// UINT64_MAX while it is still unknown: a longer body goes on streaming
// after what was pulled, its next file range unread (sent with sendfile).
// Other bodies: their size.
uint64_t settle_generated(const ServerContext& ctx, Reply& reply, uint64_t limit);

}  // namespace souk::server
