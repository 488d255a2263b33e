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
#include "server/base/params.hpp"
#include "server/store/paths.hpp"
#include "server/store/store.hpp"

namespace souk::server {

// What every request of one server shares; read-only after start-up.
struct ServerContext {
    Params params;
    bool allow_writes = false;
    Store* store = nullptr;
    std::string root_realpath;
};

// A response. The body is either in memory or a list of ranges of an open
// file, which the carrier streams (sendfile where it can).
struct Reply {
    enum class Body : uint8_t { None, Bytes, File };
    bool success = true;
    proto::Args args;
    Body body_kind = Body::None;
    std::string body;
    OpenFile file;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;  // (offset, length)
    uint64_t body_size() const;
    void fail(proto::Args error);
    // Back to an empty success, closing the file at once but keeping the
    // containers' capacity (a pooled handler reuses its Reply without
    // touching the heap; oversized buffers are released).
    void reset();
};

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
