// readv planning, as pure functions so they are testable without a server.
//
// A caller asks for any number of (offset, length) ranges, in any order,
// possibly overlapping or repeated. Like Breezy's RemoteTransport._readv,
// the client sorts them, merges touching/overlapping ones (and, if asked,
// ones separated by a small gap), caps each request at 5 MiB of data and at
// the server's range limit, then slices the replies back into the caller's
// ranges and hands them out in the caller's order. Unlike Breezy, overlap
// is allowed (the wire never carries overlapping ranges: Breezy's server
// rejects them) and a single range bigger than the cap is split over
// several requests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "client/error.hpp"

namespace souk::client {

struct Range {
    uint64_t offset = 0;
    uint64_t length = 0;
    friend bool operator==(const Range&, const Range&) = default;
};

struct ReadvLimits {
    uint64_t max_request_bytes = 5 * 1024 * 1024;  // data per request (Breezy's _max_readv_bytes)
    size_t max_request_ranges = 4096;             // wire ranges per request (soukd's default cap)
    uint64_t merge_gap = 0;                       // also merge ranges this close (the gap is read and dropped)
    uint64_t max_total_bytes = 1ull << 30;        // what one readv call may ask for in total
    size_t max_ranges = 1u << 20;                 // caller ranges per call
};

// The largest offset + length accepted (the server parses int64).
inline constexpr uint64_t kMaxFileOffset = static_cast<uint64_t>(INT64_MAX);

struct ReadvPlan {
    // One entry per request: its wire ranges, ascending, disjoint, none
    // empty, at most max_request_ranges of them, at most max_request_bytes
    // of data. Zero-length caller ranges need no request.
    std::vector<std::vector<Range>> requests;
    uint64_t total_bytes = 0;  // sum of the caller's lengths
};

// Plan the requests for `ranges`. Fails with InvalidArgument when a range
// overflows (offset + length > kMaxFileOffset) or a limit is exceeded.
Result<ReadvPlan> plan_readv(std::span<const Range> ranges, const ReadvLimits& limits = {});

// The readv request body: "offset,length" lines joined by '\n', no
// trailing newline (docs/protocol/vfs.md#readv-ranges).
std::string encode_readv_body(std::span<const Range> wire);

// Sum of the lengths of `wire`: the exact size of a good reply body.
uint64_t wire_bytes(std::span<const Range> wire);

// Slices request replies back into the caller's ranges and delivers each
// range exactly once, in the caller's order, as soon as it and all ranges
// before it are complete. Buffers only ranges that are complete but not yet
// deliverable, or partially received. `ranges` and `plan` must outlive it.
class ReadvAssembler {
public:
    // deliver(index into ranges, data); return false to stop (Cancelled).
    using Deliver = std::function<bool(size_t index, std::string_view data)>;
    ReadvAssembler(std::span<const Range> ranges, const ReadvPlan& plan, Deliver deliver);

    // Feed the whole reply body of plan.requests[request]; requests must be
    // fed in order. Fails with ShortReadv if the body is shorter than the
    // request asked for, Protocol if longer or out of order, Cancelled if
    // deliver returned false.
    Status add_reply(size_t request, std::string_view body);
    // After the last reply (or at once for a plan without requests):
    // delivers what is left; fails if some range was never completed.
    Status finish();

private:
    Status flush();

    std::span<const Range> ranges_;
    const ReadvPlan& plan_;
    Deliver deliver_;
    std::vector<size_t> order_;       // caller indices sorted by offset
    std::vector<std::string> bufs_;
    std::vector<uint64_t> filled_;
    std::vector<bool> complete_;
    size_t lo_ = 0;                   // order_ position: all before it are complete
    size_t next_deliver_ = 0;         // caller index to deliver next
    size_t next_request_ = 0;
};

// Parse a CLI range "START:LENGTH" (decimal, no sign, no spaces). Fails with
// InvalidArgument and a message saying what is wrong ("5:", "a:b", "-1:2",
// overflow past kMaxFileOffset).
Result<Range> parse_range_spec(std::string_view spec);

}  // namespace souk::client
