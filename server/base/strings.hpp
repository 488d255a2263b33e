// Small string helpers, each written once (docs/layout.md: server/base).
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace souk::server {

// The pieces of `s` between separators (an empty `s` gives one empty piece).
inline std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    size_t i = 0;
    for (;;) {  // bounded: each pass consumes up to the next separator
        size_t j = s.find(sep, i);
        out.push_back(s.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
        if (j == std::string_view::npos) return out;
        i = j + 1;
    }
}

// Strict decimal: ASCII digits only (no sign, no space), no overflow.
inline bool parse_u64(std::string_view s, uint64_t& v) {
    if (s.empty() || s.size() > 20) return false;
    for (char c : s)  // bounded: at most 20 characters
        if (c < '0' || c > '9') return false;
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// A printable rendering of untrusted bytes for messages and logs: ASCII
// printables kept, other bytes as \xNN, cut after `max` bytes with "...".
inline std::string printable(std::string_view s, size_t max = 200) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s.substr(0, max)) {  // bounded: max bytes
        if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    if (s.size() > max) out += "...";
    return out;
}

}  // namespace souk::server
