// The stream session loop (SSH stdio and TCP): decode requests one at a
// time, dispatch each, write its response in the request's version, until
// EOF, a timeout or a fatal protocol error. One per connection.
#pragma once

#include <string>

#include "server/verbs/dispatch.hpp"
#include "transport/stream.hpp"

namespace souk::server {

// Write `reply` for a request of protocol `version` (1, 2 or 3) to `out`,
// streaming file bodies. Returns false if the connection must be closed
// (write failure, or a file that shrank under a v1/v2 length-prefixed body).
bool write_reply(const ServerContext& ctx, io::Stream& out, int version, Reply& reply, std::string& buf,
                 const std::string& client_path);

// The same response, encoded whole into `out` (file bodies read into
// memory): for the carriers that answer one request per exchange (HTTP,
// CGI). Returns false if the file shrank under a v1/v2 length-prefixed
// body (v3 ends such a body with an error part instead).
bool encode_reply(const ServerContext& ctx, int version, Reply& reply, std::string& out,
                  const std::string& client_path);

}  // namespace souk::server
