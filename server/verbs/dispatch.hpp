// The dispatcher: one handler per entry of the verb table (protocol/verbs.hpp),
// shared by every carrier. A carrier decodes a request, calls handle(), and
// writes the Reply in the request's protocol version.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/value.hpp"
#include "protocol/verbs.hpp"
#include "server/verbs/context.hpp"

namespace souk::server {

// Execute one complete request. `base` is the root-relative directory
// relative client paths start from ("" except over HTTP). `scratch`, if
// given, is a string the hot verbs (get, readv, stat, has) resolve paths
// into, so a pooled handler serves them without heap allocation. `out` is
// reset first. Never throws.
void dispatch(const ServerContext& ctx, const proto::VerbInfo& verb, std::span<const proto::Value> args,
              std::string_view body, std::string_view base, Reply& out, std::string* scratch = nullptr);

// Parse a readv body ("start,length" lines, spec 7), checking every bound
// before any I/O. Returns "" or the reason it is refused.
std::string parse_readv_ranges(std::string_view body, const Params& params,
                               std::vector<std::pair<uint64_t, uint64_t>>& ranges);

}  // namespace souk::server
