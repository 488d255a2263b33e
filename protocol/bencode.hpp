// Strict bencode (spec 3.1): canonical integers and lengths, dict keys in
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

// Append the encoding of `v` to `out`. Dict keys must already be sorted and
// unique (Value::of_dict callers keep them so); encode sorts defensively.
void bencode(const Value& v, std::string& out);
std::string bencode(const Value& v);

}  // namespace souk::proto
