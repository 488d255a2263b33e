// The dispatcher: one handler per entry of the verb table (protocol/verbs.hpp),
// shared by every carrier. The request pipeline (server/request/) decodes a
// request, calls dispatch(), and writes the Reply in the request's version.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/value.hpp"
#include "protocol/verbs.hpp"
#include "server/verbs/context.hpp"

namespace souk::server {

// Execute one request. `base` is the root-relative directory relative
// client paths start from ("" except over HTTP). `scratch`, if given, is a
// string the hot verbs (get, readv, stat, has) resolve paths into, so a
// pooled handler serves them without heap allocation. `out` is reset first.
// Streamed verbs (BodyKind::Streamed) given `sink` leave their BodySink
// there, before the body arrives (or fail in `out`); without `sink` they
// apply `body` at once. Policy (read-only) is the pipeline's, not this
// function's. Never throws.
void dispatch(const ServerContext& ctx, const proto::VerbInfo& verb, std::span<const proto::Value> args,
              std::string_view body, std::string_view base, Reply& out, std::string* scratch = nullptr,
              std::unique_ptr<BodySink>* sink = nullptr);

// Parse a readv body ("start,length" lines,
// docs/protocol/vfs.md#readv-ranges), checking every bound before any I/O.
// Returns "" or the reason it is refused.
std::string parse_readv_ranges(std::string_view body, const Params& params,
                               std::vector<std::pair<uint64_t, uint64_t>>& ranges);

}  // namespace souk::server
