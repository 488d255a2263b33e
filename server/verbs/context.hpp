// What a verb handler sees and produces (docs/layout.md: server/verbs):
// the server's shared context and the reply with its body kinds.
#pragma once

#include <cstdint>
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

}  // namespace souk::server
