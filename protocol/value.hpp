// The values that travel in smart-protocol structures: byte strings,
// integers, lists (args, nested args) and dicts (v3 headers only).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace souk::proto {

struct Value {
    enum class Kind : uint8_t { Bytes, Int, List, Dict };

    Kind kind = Kind::Bytes;
    std::string bytes;                                   // Kind::Bytes
    int64_t integer = 0;                                 // Kind::Int
    std::vector<Value> list;                             // Kind::List
    std::vector<std::pair<std::string, Value>> dict;     // Kind::Dict, keys strictly ascending

    Value() = default;
    Value(std::string s) : bytes(std::move(s)) {}                   // NOLINT: implicit by design
    Value(std::string_view s) : bytes(s) {}                         // NOLINT
    Value(const char* s) : bytes(s) {}                              // NOLINT
    static Value of_int(int64_t i) { Value v; v.kind = Kind::Int; v.integer = i; return v; }
    static Value of_list(std::vector<Value> items) { Value v; v.kind = Kind::List; v.list = std::move(items); return v; }
    static Value of_dict(std::vector<std::pair<std::string, Value>> d) { Value v; v.kind = Kind::Dict; v.dict = std::move(d); return v; }

    bool is_bytes() const { return kind == Kind::Bytes; }
    bool is_int() const { return kind == Kind::Int; }
    bool is_list() const { return kind == Kind::List; }
    bool is_dict() const { return kind == Kind::Dict; }

    bool operator==(const Value&) const = default;
};

// The arguments of a request or response: args[0] is the verb (requests)
// or the status word (responses).
using Args = std::vector<Value>;

// Human-readable rendering (Python-like) for logs, test failures and the CLI.
std::string to_display(const Value& v);
std::string to_display(const Args& args);

}  // namespace souk::proto
