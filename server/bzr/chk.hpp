// CHK maps (docs/formats/chk-inventory.md): the content-addressed B-trees
// 2a stores inventories in. A page's key is "sha1:" + the hex SHA-1 of its
// bytes; a page is a leaf or an internal node:
//
//   chkleaf:\n<maximum_size>\n<key_width>\n<items>\n<common key prefix>\n
//     per item: <key minus the prefix, elements joined by \0>\0<n>\n<n value lines>
//   chknode:\n<maximum_size>\n<key_width>\n<items below>\n<common search prefix>\n
//     per child: <search prefix minus the common one>\0<child page key>\n
//
// Items are routed by their search key (plain, hash-16-way, hash-255-way):
// every item below a child starts with that child's search prefix.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "server/bzr/error.hpp"

namespace souk::server::bzr::chk {

// Bounds of parsing and walking; each a hard limit (LimitExceeded).
struct Limits {
    size_t max_page = 1024 * 1024;  // bytes of one page (Breezy writes up to ~64 KiB)
    size_t max_items = 1 << 16;     // items or children of one page
    size_t max_key_width = 16;      // elements of one key
    size_t max_pages = 1 << 22;     // pages one walk may read
};

enum class SearchKeyKind : uint8_t { Plain, Hash16, Hash255 };
// "plain", "hash-16-way", "hash-255-way" (chk_map.search_key_registry);
// Unsupported for others.
Result<SearchKeyKind> search_key_kind(std::string_view name);
std::string_view search_key_name(SearchKeyKind kind);

using Key = std::vector<std::string>;  // a map key: key_width elements

// The search key of `key`: plain joins the elements with \0; hash-16-way
// joins the 8 upper-case hex digits of each element's CRC32; hash-255-way
// joins each CRC32 as 4 big-endian bytes and turns every \n into '_'.
std::string search_key(SearchKeyKind kind, std::span<const std::string> key);

struct LeafItem {
    Key key;
    std::string value;
    bool operator==(const LeafItem&) const = default;
};
struct LeafNode {
    uint64_t maximum_size = 0;
    size_t key_width = 0;
    std::string common_prefix;    // of the serialised keys
    std::vector<LeafItem> items;  // in page order
};
struct InternalChild {
    std::string prefix;  // the child's full search prefix
    std::string key;     // its page key
};
struct InternalNode {
    uint64_t maximum_size = 0;
    size_t key_width = 0;
    uint64_t length = 0;        // items below this node
    std::string search_prefix;  // common to all children
    std::vector<InternalChild> children;
};
using Node = std::variant<LeafNode, InternalNode>;

// Parse a page with the checks of Breezy's _deserialise_leaf_node and
// _deserialise_internal_node, and child keys that are page keys.
Result<Node> parse_node(std::string_view bytes, const Limits& limits = {});

// "sha1:" followed by 40 lower-case hex digits.
bool valid_page_key(std::string_view key);

// Where pages come from (a repository's chk_bytes, a stream, a test map).
class PageSource {
public:
    virtual ~PageSource() = default;
    // The bytes of the page `key`; NotFound when absent.
    virtual Result<std::string> page(std::string_view key) = 0;
    // The same bytes as a view, valid until the next call on this source
    // (what the walks below read pages with). The default copies page()'s
    // answer; a source that holds pages overrides it to copy nothing.
    virtual Result<std::string_view> page_view(std::string_view key);
    // A hint that these pages are read next (a walk's next level), so a
    // source can locate them in one batch. Errors here are the source's own
    // (an unreadable index); a missing page is reported when it is read.
    virtual Status prefetch(std::span<const std::string> keys) {
        (void)keys;
        return Ok{};
    }

private:
    std::string held_;  // the default page_view's copy
};

// Every page reachable from `roots`, each once, breadth first.
Result<std::vector<std::string>> reachable_pages(PageSource& src, std::span<const std::string> roots,
                                                 const Limits& limits = {});

// Every item of the map at `root`, in leaf order.
Result<std::vector<LeafItem>> map_items(PageSource& src, std::string_view root, const Limits& limits = {});

// The value of `key` in the map at `root`, or nullopt.
Result<std::optional<std::string>> lookup(PageSource& src, SearchKeyKind kind, std::string_view root, const Key& key,
                                          const Limits& limits = {});

struct Difference {
    std::vector<std::string> pages;  // reachable from the new roots, not from the old ones (breadth first)
    std::vector<LeafItem> new_items;  // items of those pages' leaves absent (same key and value) from every old map
};
// What get_stream must send of these maps: the pages reachable from
// `new_roots` and not from `old_roots`. The old maps are read only along
// the search prefixes the new pages occupy (a page below an old reference
// q holds only items whose search keys start with q), so an unchanged
// subtree costs nothing. With want_items, also the new leaf items (what
// decides which texts to send), checked by lookups in every old map.
Result<Difference> difference(PageSource& src, SearchKeyKind kind, std::span<const std::string> new_roots,
                              std::span<const std::string> old_roots, const Limits& limits = {},
                              bool want_items = false);
// The same with the new items handed to `on_item` as they are found (the
// key's elements joined by \0, the value; views valid during the call; an
// error stops the walk), not kept in Difference::new_items.
using ItemFn = std::function<Status(std::string_view key, std::string_view value)>;
Result<Difference> difference(PageSource& src, SearchKeyKind kind, std::span<const std::string> new_roots,
                              std::span<const std::string> old_roots, const Limits& limits, const ItemFn& on_item);

}  // namespace souk::server::bzr::chk
