// B+Tree graph indices (docs/formats/btree-index.md).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "server/store/store.hpp"

namespace souk::server::bzr {

// One entry of a B+Tree graph index: key elements, reference lists (each a
// list of keys) and the value.
struct IndexEntry {
    std::vector<std::string_view> key;
    std::vector<std::vector<std::vector<std::string_view>>> refs;
    std::string_view value;
};
// Parse a "B+Tree Graph Index 2" file and call `fn` for
// every leaf entry; the views are valid only during the call. Each node
// inflates to at most max_node bytes (zip-bomb guard). Returns "" or a
// message describing the first problem.
std::string parse_btree(std::string_view file, const std::function<void(const IndexEntry&)>& fn,
                        size_t max_node = 4 * 1024 * 1024);

}  // namespace souk::server::bzr
