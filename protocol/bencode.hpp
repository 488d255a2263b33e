// Strict bencode (docs/protocol/framing.md#bencode): canonical integers and lengths, dict keys in
// strictly ascending byte order on both encode and decode, the whole input
// consumed by exactly one value, depth and length caps checked before any
// allocation.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "protocol/result.hpp"
#include "protocol/value.hpp"

namespace souk::proto {

struct BencodeLimits {
    size_t max_depth = 32;          // nesting of lists/dicts
    size_t max_items = 1 << 20;     // total values in one structure
};

// Decode exactly one value occupying all of `in`. Error text is short and
// safe to put in a protocol error reply.
Result<Value> bdecode(std::string_view in, const BencodeLimits& limits = {});

// The hot path of a server's request decoder (no heap allocation once
// `out` has grown to the usual shapes): decode `in` if it is exactly a
// list of byte strings (what requests carry), assigning item i into
// out[i] in place (out grows as needed and never shrinks, so its strings
// keep their capacity) and setting n to the item count. Returns false for
// any other shape or malformed input; callers then use bdecode, which
// also gives the error text. Same strictness and limits as bdecode.
bool bdecode_flat_list(std::string_view in, std::vector<Value>& out, size_t& n, const BencodeLimits& limits = {});

// Whether `in` is exactly one well-formed value (same rules as bdecode),
// without building it; *is_dict says whether it is a dict.
bool bvalidate(std::string_view in, const BencodeLimits& limits, bool* is_dict);

// Append the encoding of a list of `items` (no temporary Value).
void bencode_list(const Value* items, size_t count, std::string& out);

// Append the encoding of `v` to `out`. Dict keys must already be sorted and
// unique (Value::of_dict callers keep them so); encode sorts defensively.
void bencode(const Value& v, std::string& out);
std::string bencode(const Value& v);

}  // namespace souk::proto
