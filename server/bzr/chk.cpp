// CHK map pages, search keys and walks (docs/formats/chk-inventory.md).
#include "server/bzr/chk.hpp"
#include "server/base/strings.hpp"

#include <zlib.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace souk::server::bzr::chk {
namespace {

constexpr std::string_view kLeaf = "chkleaf:\n";
constexpr std::string_view kInternal = "chknode:\n";
constexpr std::string_view kPagePrefix = "sha1:";

uint32_t crc(std::string_view s) {
    return static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size())));
}

// Split `s` (which must end in "\n") into its lines, without the "\n"s.
Result<std::vector<std::string_view>> split_lines(std::string_view s, size_t max_lines) {
    if (s.empty() || s.back() != '\n') return corrupt("CHK page does not end with a newline");
    std::vector<std::string_view> lines;
    size_t pos = 0;
    while (pos < s.size()) {  // bounded: pos advances past one "\n" per pass
        if (lines.size() >= max_lines) return limit_exceeded("CHK page has too many lines");
        size_t nl = s.find('\n', pos);
        lines.push_back(s.substr(pos, nl - pos));
        pos = nl + 1;
    }
    return lines;
}

// The four header fields every page has after its first line.
struct Header {
    uint64_t maximum_size = 0, width = 0, length = 0;
    std::string_view prefix;
};
Result<Header> parse_header(const std::vector<std::string_view>& lines, const Limits& limits) {
    Header h;
    if (lines.size() < 5) return corrupt("CHK page header is truncated");
    if (!parse_u64(lines[1], h.maximum_size) || !parse_u64(lines[2], h.width) || !parse_u64(lines[3], h.length))
        return corrupt("bad number in CHK page header");
    if (h.width == 0 || h.width > limits.max_key_width) return corrupt("bad CHK key width");
    h.prefix = lines[4];
    return h;
}

Result<Node> parse_leaf(const std::vector<std::string_view>& lines, const Limits& limits) {
    auto h = parse_header(lines, limits);
    if (!h) return h.err();
    LeafNode leaf;
    leaf.maximum_size = h->maximum_size;
    leaf.key_width = static_cast<size_t>(h->width);
    leaf.common_prefix = std::string(h->prefix);
    if (h->length > limits.max_items) return limit_exceeded("CHK leaf has too many items");
    std::set<Key> seen;
    std::string line;
    for (size_t pos = 5; pos < lines.size();) {  // bounded: pos advances at least one line per pass
        line.assign(h->prefix);
        line += lines[pos++];
        Key key;
        size_t start = 0;
        for (;;) {  // bounded: one element per pass, key_width + 1 passes
            size_t z = line.find('\0', start);
            if (key.size() == leaf.key_width) {  // the value line count comes last
                if (z != std::string::npos) return corrupt("CHK leaf item has the wrong number of key elements");
                key.emplace_back(line.substr(start));
                break;
            }
            if (z == std::string::npos) return corrupt("CHK leaf item has the wrong number of key elements");
            key.emplace_back(line.substr(start, z - start));
            start = z + 1;
        }
        uint64_t nvalue = 0;
        if (!parse_u64(key.back(), nvalue)) return corrupt("bad value line count in CHK leaf");
        key.pop_back();
        if (nvalue > lines.size() - pos) return corrupt("CHK leaf value runs past the end of the page");
        std::string value;
        for (uint64_t i = 0; i < nvalue; ++i) {  // bounded: nvalue <= lines left
            if (i) value += '\n';
            value += lines[pos++];
        }
        if (leaf.items.size() >= h->length) return corrupt("CHK leaf holds more items than its header says");
        if (!seen.insert(key).second) return corrupt("CHK leaf holds a key twice");
        leaf.items.push_back({std::move(key), std::move(value)});
    }
    if (leaf.items.size() != h->length) return corrupt("CHK leaf item count does not match its header");
    return Node{std::move(leaf)};
}

Result<Node> parse_internal(const std::vector<std::string_view>& lines, const Limits& limits) {
    auto h = parse_header(lines, limits);
    if (!h) return h.err();
    InternalNode node;
    node.maximum_size = h->maximum_size;
    node.key_width = static_cast<size_t>(h->width);
    node.length = h->length;
    node.search_prefix = std::string(h->prefix);
    if (lines.size() - 5 > limits.max_items) return limit_exceeded("CHK internal node has too many children");
    std::set<std::string, std::less<>> prefixes;
    for (size_t i = 5; i < lines.size(); ++i) {  // bounded: the page's lines
        std::string line(h->prefix);
        line += lines[i];
        size_t z = line.rfind('\0');
        if (z == std::string::npos) return corrupt("CHK internal node line has no child key");
        InternalChild child{line.substr(0, z), line.substr(z + 1)};
        if (!valid_page_key(child.key)) return corrupt("CHK internal node child is not a page key");
        if (!prefixes.insert(child.prefix).second) return corrupt("CHK internal node lists a prefix twice");
        node.children.push_back(std::move(child));
    }
    if (node.children.empty()) return corrupt("CHK internal node has no children");
    return Node{std::move(node)};
}

std::string common_prefix(std::string_view a, std::string_view b) {
    size_t n = 0;
    size_t m = std::min(a.size(), b.size());
    while (n < m && a[n] == b[n]) ++n;  // bounded: m
    return std::string(a.substr(0, n));
}

// The longest search prefix shared by everything below a page: an internal
// node's common search prefix, a leaf's common prefix of its items' search
// keys ("" when empty).
std::string intrinsic_prefix(const Node& node, SearchKeyKind kind) {
    if (auto* in = std::get_if<InternalNode>(&node)) return in->search_prefix;
    const auto& leaf = std::get<LeafNode>(node);
    if (leaf.items.empty()) return {};
    std::string p = search_key(kind, leaf.items.front().key);
    for (size_t i = 1; i < leaf.items.size() && !p.empty(); ++i)  // bounded: the leaf's items
        p = common_prefix(p, search_key(kind, leaf.items[i].key));
    return p;
}

// Reads and parses pages, counting them against max_pages, caching the
// parsed nodes of the old side (they are looked up again for items).
class Reader {
public:
    Reader(PageSource& src, const Limits& limits) : src_(src), limits_(limits) {}
    Result<Node> read(std::string_view key) {
        if (++reads_ > limits_.max_pages)
            return limit_exceeded("CHK walk read more than " + std::to_string(limits_.max_pages) + " pages");
        auto bytes = src_.page(key);
        if (!bytes) return bytes.err();
        if (bytes->size() > limits_.max_page)
            return limit_exceeded("CHK page of " + std::to_string(bytes->size()) + " bytes exceeds the limit");
        auto node = parse_node(*bytes, limits_);
        if (!node) {
            Error e = node.err();
            e.detail = "CHK page " + std::string(key.substr(0, 45)) + ": " + e.detail;
            return e;
        }
        return node;
    }
    Result<const Node*> cached(const std::string& key) {
        auto it = cache_.find(key);
        if (it != cache_.end()) return &it->second;
        auto node = read(key);
        if (!node) return node.err();
        return &cache_.emplace(key, std::move(*node)).first->second;
    }

private:
    PageSource& src_;
    const Limits& limits_;
    size_t reads_ = 0;
    std::unordered_map<std::string, Node> cache_;
};

Result<std::optional<std::string>> lookup_in(Reader& r, const std::string& root, const Key& key,
                                             const std::string& skey) {
    std::string cur = root;
    // bounded: each step goes to a child with a longer search prefix (a
    // repeated prefix is corrupt), and Reader caps the pages read.
    for (size_t depth = 0;; ++depth) {
        auto node = r.cached(cur);
        if (!node) return node.err();
        if (auto* leaf = std::get_if<LeafNode>(*node)) {
            for (const auto& item : leaf->items)  // bounded: the leaf's items
                if (item.key == key) return std::optional<std::string>(item.value);
            return std::optional<std::string>();
        }
        const auto& in = std::get<InternalNode>(**node);
        if (depth > skey.size()) return corrupt("CHK map is deeper than its search keys");
        const InternalChild* next = nullptr;
        for (const auto& c : in.children)  // bounded: the node's children
            if (skey.compare(0, c.prefix.size(), c.prefix) == 0 && (!next || c.prefix.size() > next->prefix.size()))
                next = &c;
        if (!next) return std::optional<std::string>();
        cur = next->key;
    }
}

}  // namespace

Result<SearchKeyKind> search_key_kind(std::string_view name) {
    if (name == "plain") return SearchKeyKind::Plain;
    if (name == "hash-16-way") return SearchKeyKind::Hash16;
    if (name == "hash-255-way") return SearchKeyKind::Hash255;
    return Error{Errc::Unsupported, 0, "unknown CHK search key function"};
}

std::string_view search_key_name(SearchKeyKind kind) {
    switch (kind) {
    case SearchKeyKind::Plain: return "plain";
    case SearchKeyKind::Hash16: return "hash-16-way";
    default: return "hash-255-way";
    }
}

std::string search_key(SearchKeyKind kind, std::span<const std::string> key) {
    std::string out;
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < key.size(); ++i) {  // bounded: the key's elements
        if (i) out += '\0';
        if (kind == SearchKeyKind::Plain) {
            out += key[i];
            continue;
        }
        uint32_t c = crc(key[i]);
        if (kind == SearchKeyKind::Hash16) {
            for (int shift = 28; shift >= 0; shift -= 4) out += hex[(c >> shift) & 15];  // bounded: 8 digits
        } else {
            for (int shift = 24; shift >= 0; shift -= 8) {  // bounded: 4 bytes
                char b = static_cast<char>((c >> shift) & 0xff);
                out += b == '\n' ? '_' : b;
            }
        }
    }
    return out;
}

bool valid_page_key(std::string_view key) {
    if (key.size() != kPagePrefix.size() + 40 || key.substr(0, kPagePrefix.size()) != kPagePrefix) return false;
    for (char c : key.substr(kPagePrefix.size()))  // bounded: 40 digits
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

Result<Node> parse_node(std::string_view bytes, const Limits& limits) {
    if (bytes.size() > limits.max_page)
        return limit_exceeded("CHK page of " + std::to_string(bytes.size()) + " bytes exceeds the limit");
    // A page has at most 5 header lines plus one line per child, or per item
    // and value line; max_items bounds children and items, not value lines,
    // so allow the lines a max_page page can hold.
    auto lines = split_lines(bytes, bytes.size() + 1);
    if (!lines) return lines.err();
    if (bytes.substr(0, kLeaf.size()) == kLeaf) return parse_leaf(*lines, limits);
    if (bytes.substr(0, kInternal.size()) == kInternal) return parse_internal(*lines, limits);
    return corrupt("not a CHK page (no chkleaf:/chknode: header)");
}

Result<std::vector<std::string>> reachable_pages(PageSource& src, std::span<const std::string> roots,
                                                 const Limits& limits) {
    Reader r(src, limits);
    std::vector<std::string> out;
    std::unordered_set<std::string> seen;
    for (const auto& k : roots)  // bounded: the caller's roots
        if (seen.insert(k).second) out.push_back(k);
    // bounded: every page enters `out` once; Reader caps the pages read.
    for (size_t i = 0; i < out.size(); ++i) {
        if (!valid_page_key(out[i])) return corrupt("not a CHK page key");
        auto node = r.read(out[i]);
        if (!node) return node.err();
        if (auto* in = std::get_if<InternalNode>(&*node))
            for (const auto& c : in->children)  // bounded: the node's children
                if (seen.insert(c.key).second) out.push_back(c.key);
    }
    return out;
}

Result<std::vector<LeafItem>> map_items(PageSource& src, std::string_view root, const Limits& limits) {
    Reader r(src, limits);
    std::vector<LeafItem> items;
    std::vector<std::string> stack{std::string(root)};
    std::unordered_set<std::string> seen{std::string(root)};
    // bounded: every page is visited once; Reader caps the pages read.
    while (!stack.empty()) {
        std::string key = std::move(stack.back());
        stack.pop_back();
        auto node = r.read(key);
        if (!node) return node.err();
        if (auto* leaf = std::get_if<LeafNode>(&*node)) {
            for (auto& item : leaf->items) items.push_back(std::move(item));  // bounded: the leaf's items
            continue;
        }
        auto& in = std::get<InternalNode>(*node);
        for (auto it = in.children.rbegin(); it != in.children.rend(); ++it)  // bounded: the node's children
            if (seen.insert(it->key).second) stack.push_back(it->key);
    }
    return items;
}

Result<std::optional<std::string>> lookup(PageSource& src, SearchKeyKind kind, std::string_view root, const Key& key,
                                          const Limits& limits) {
    Reader r(src, limits);
    return lookup_in(r, std::string(root), key, search_key(kind, key));
}

Result<Difference> difference(PageSource& src, SearchKeyKind kind, std::span<const std::string> new_roots,
                              std::span<const std::string> old_roots, const Limits& limits, bool want_items) {
    Reader r(src, limits);
    Difference out;
    std::unordered_set<std::string> old_known(old_roots.begin(), old_roots.end());
    std::unordered_set<std::string> old_expanded;
    // Old pages not yet read, by the search prefix they were referenced at.
    std::map<std::string, std::vector<std::string>, std::less<>> old_pending;
    for (const auto& k : old_roots) old_pending[""].push_back(k);  // bounded: the caller's roots

    // Read every old page referenced at a prefix of c (shortest first, so
    // children found on the way are read in the same pass).
    auto expand_old_towards = [&](std::string_view c) -> Status {
        for (size_t len = 0; len <= c.size(); ++len) {  // bounded: the prefixes of c
            auto it = old_pending.find(c.substr(0, len));
            if (it == old_pending.end()) continue;
            std::vector<std::string> keys = std::move(it->second);
            old_pending.erase(it);
            for (const auto& k : keys) {  // bounded: pages pending at this prefix
                if (!old_expanded.insert(k).second) continue;
                auto node = r.cached(k);
                if (!node) return node.err();
                if (auto* in = std::get_if<InternalNode>(*node))
                    for (const auto& child : in->children) {  // bounded: the node's children
                        old_known.insert(child.key);
                        if (!old_expanded.count(child.key)) old_pending[child.prefix].push_back(child.key);
                    }
            }
        }
        return Ok{};
    };
    if (Status st = expand_old_towards(""); !st) return st.err();

    std::vector<std::string> frontier(new_roots.begin(), new_roots.end()), next;
    std::unordered_set<std::string> seen_new;
    std::vector<LeafNode> new_leaves;
    // bounded: every new page is read once (seen_new); Reader caps the reads.
    while (!frontier.empty()) {
        next.clear();
        for (const auto& key : frontier) {  // bounded: this level's pages
            if (old_known.count(key) || !seen_new.insert(key).second) continue;
            if (!valid_page_key(key)) return corrupt("not a CHK page key");
            auto node = r.read(key);
            if (!node) return node.err();
            if (Status st = expand_old_towards(intrinsic_prefix(*node, kind)); !st) return st.err();
            if (old_known.count(key)) continue;  // the same page sits in an old map
            out.pages.push_back(key);
            if (auto* in = std::get_if<InternalNode>(&*node)) {
                for (const auto& child : in->children)  // bounded: the node's children
                    if (!old_known.count(child.key)) next.push_back(child.key);
            } else if (want_items) {
                new_leaves.push_back(std::move(std::get<LeafNode>(*node)));
            }
        }
        frontier.swap(next);
    }
    // A page proved old after its children were queued: drop it (its
    // children, then reachable from the old maps too, are harmless extras).
    std::erase_if(out.pages, [&](const std::string& k) { return old_known.count(k) != 0; });
    if (!want_items) return out;

    std::set<std::pair<Key, std::string>> reported;
    for (auto& leaf : new_leaves) {     // bounded: the new leaves read above
        for (auto& item : leaf.items) {  // bounded: the leaf's items
            if (reported.count({item.key, item.value})) continue;
            std::string skey = search_key(kind, item.key);
            bool old = false;
            for (const auto& root : old_roots) {  // bounded: the caller's roots
                auto v = lookup_in(r, root, item.key, skey);
                if (!v) return v.err();
                if (*v && **v == item.value) {
                    old = true;
                    break;
                }
            }
            if (old) continue;
            reported.insert({item.key, item.value});
            out.new_items.push_back(std::move(item));
        }
    }
    return out;
}

}  // namespace souk::server::bzr::chk
