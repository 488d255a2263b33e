// Sending a large range of an open file to a carrier's Sink through the
// store chain: sendfile straight from the descriptor when every layer
// allows it (Store::direct_ok), telling the chain of the read afterwards
// (note_read, so readahead sees it); otherwise through pread, so slow
// storage's delay, the range cache and readahead all see the bytes.
#pragma once

#include <cstdint>

#include "server/store/store.hpp"
#include "transport/sink.hpp"

namespace souk::server {

// Ranges up to this size are copied into the carrier's output buffer (through
// the store chain: the range cache serves them without a system call), so
// many small ranges leave in one write; larger ones go out with send_range.
constexpr uint64_t kCopyRange = 128 * 1024;

// Send n bytes of f from offset. Returns the bytes sent (fewer than n: the
// file ended early) or -1 with errno (the peer went away, the deadline).
int64_t send_range(Store& store, io::Sink& out, OpenFile& f, uint64_t offset, uint64_t n);

}  // namespace souk::server
