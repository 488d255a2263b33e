// Small string helpers, each written once (docs/layout.md: server/base).
#pragma once

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

}  // namespace souk::server
