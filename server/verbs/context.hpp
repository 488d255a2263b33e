// What a verb handler sees and produces (docs/layout.md: server/verbs):
// the server's shared context and the reply with its body kinds.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <string>
#include <utility>
#include <vector>

#include "protocol/value.hpp"
#include "server/base/params.hpp"
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

// The request body of a streamed verb (BodyKind::Streamed), taken chunk by
// chunk as it arrives and never held whole. Destroying a sink before
// finish() applies nothing (the client aborted or went away).
class BodySink {
public:
    virtual ~BodySink() = default;
    // The next chunk. After a failure the sink ignores the rest and
    // finish() answers the failure.
    virtual void write(std::string_view chunk) = 0;
    // The body is complete: apply it and prepare the reply.
    virtual void finish(Reply& out) = 0;
};

}  // namespace souk::server
