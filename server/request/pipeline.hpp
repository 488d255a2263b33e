// The request pipeline: the one place a request is served, whatever
// carried it. Bytes in -> decode (protocol/) -> verb lookup -> policy ->
// dispatch (server/verbs/) -> reply writer -> bytes out, with a pooled
// handler per request (server/request/handler.hpp).
#pragma once

#include "server/verbs/dispatch.hpp"
#include "transport/stream.hpp"

namespace souk::server {

// Why a session ended (for logs and tests).
// Parked: the TCP waiter's mode only (server/handler.hpp): between requests
// with no bytes waiting, handed back to the waiter.
enum class SessionEnd { Eof, IdleTimeout, RequestTimeout, Truncated, ProtocolError, WriteFailed, ReadFailed, Parked };
const char* to_string(SessionEnd e);

// Serve one connection. Returns when the peer is done or must be dropped;
// the caller closes the stream. Never throws.
SessionEnd serve_stream(const ServerContext& ctx, io::Stream& stream, const std::string& peer);

enum class ServeMode {
    Blocking,  // wait for the next request on the stream (stdio): until EOF or the idle timeout
    Park,      // return Parked as soon as the connection is between requests with nothing to read (TCP waiter)
};

// Serve requests from `stream`: one handler per request, the response in
// the request's version. Returns why it stopped (Parked in Park mode when
// no bytes are waiting between requests). Never throws.
SessionEnd serve_requests(const ServerContext& ctx, io::Stream& stream, const char* peer, ServeMode mode);

}  // namespace souk::server
