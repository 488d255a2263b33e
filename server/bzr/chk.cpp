// CHK map pages, search keys and walks (docs/formats/chk-inventory.md).
#include "server/bzr/chk.hpp"
#include "server/base/strings.hpp"

#include <string.h>  // memrchr
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <unordered_map>

namespace souk::server::bzr::chk {

Result<std::string_view> PageSource::page_view(std::string_view key) {
    auto bytes = page(key);
    if (!bytes) return bytes.err();
    held_ = std::move(*bytes);
    return std::string_view(held_);
}

namespace {

constexpr std::string_view kLeaf = "chkleaf:";
constexpr std::string_view kInternal = "chknode:";
constexpr std::string_view kPagePrefix = "sha1:";

uint32_t crc(std::string_view s) {
    return static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size())));
}

// Page keys hash by two words of their hex digits (already uniform), not
// all 45 bytes; other strings by std::hash.
uint64_t hash_key(std::string_view s) {
    if (s.size() != kPagePrefix.size() + 40) return std::hash<std::string_view>{}(s);
    uint64_t a, b;
    std::memcpy(&a, s.data() + kPagePrefix.size(), sizeof a);
    std::memcpy(&b, s.data() + kPagePrefix.size() + 8, sizeof b);
    uint64_t h = (a * 0x9E3779B97F4A7C15ull) ^ (b * 0xC2B2AE3D27D4EB4Full);
    return h ^ (h >> 31);
}

// For the Reader's map of kept pages.
struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return static_cast<size_t>(hash_key(s)); }
};

// The walks' sets (pages seen, pages known to be old, items sent): open
// addressing in a power-of-two table kept at most half full, the strings
// end to end in one buffer. A walk asks about every child of every page
// it reads, tens of thousands for a history's roots, so a question costs
// a hash of two words and, mostly, one probe: no node, no division.
class KeySet {
public:
    bool empty() const { return size_ == 0; }
    bool contains(std::string_view key) const { return !slots_.empty() && slots_[find(key, hash_key(key))].used; }
    // Add `key`: false when it was there already.
    bool insert(std::string_view key) {
        if (2 * (size_ + 1) > slots_.size()) grow();
        const uint64_t h = hash_key(key);
        Slot& s = slots_[find(key, h)];
        if (s.used) return false;
        s = Slot{h, arena_.size(), key.size(), true};
        arena_.append(key);
        ++size_;
        return true;
    }

private:
    struct Slot {
        uint64_t hash = 0;
        size_t offset = 0, length = 0;  // in arena_
        bool used = false;
    };
    static_assert(sizeof(Slot) <= 32, "a set entry stays small: the table is twice the set");
    // The slot holding `key`, or the empty one where it would go.
    size_t find(std::string_view key, uint64_t h) const {
        const size_t mask = slots_.size() - 1;
        for (size_t i = h & mask;; i = (i + 1) & mask) {  // bounded: the table is at most half full
            const Slot& s = slots_[i];
            if (!s.used || (s.hash == h && std::string_view(arena_).substr(s.offset, s.length) == key)) return i;
        }
    }
    void grow() {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(std::max<size_t>(64, 2 * old.size()), Slot{});
        const size_t mask = slots_.size() - 1;
        for (const Slot& s : old) {  // bounded: the old table
            if (!s.used) continue;
            size_t i = s.hash & mask;
            while (slots_[i].used) i = (i + 1) & mask;  // bounded: the new table is at most half full
            slots_[i] = s;
        }
    }

    std::vector<Slot> slots_;
    std::string arena_;
    size_t size_ = 0;
};

// A page parsed in place: every view points into the page's bytes (valid
// as long as they are). Parsing allocates nothing once the two vectors
// have grown, so a walk reuses one PageView for every page it reads.
struct Item {
    std::string_view key_rest;  // the key (elements joined by \0) is prefix + key_rest
    std::string_view value;
};
struct Child {
    std::string_view prefix_rest;  // the child's search prefix is prefix + prefix_rest
    std::string_view key;          // its page key
};
static_assert(sizeof(Item) <= 32 && sizeof(Child) <= 32, "two views per item or child, nothing owned");
struct PageView {
    bool leaf = false;
    uint64_t maximum_size = 0, width = 0, length = 0;
    std::string_view prefix;      // leaf: common to the keys; internal: the common search prefix
    std::vector<Item> items;      // leaf, in page order
    std::vector<Child> children;  // internal, in page order
};

// The lines of a page that ends with "\n", one at a time.
class Lines {
public:
    explicit Lines(std::string_view s) : s_(s) {}
    bool next(std::string_view& line) {
        if (pos_ >= s_.size()) return false;
        size_t nl = s_.find('\n', pos_);  // there is one: the page ends with "\n"
        line = s_.substr(pos_, nl - pos_);
        pos_ = nl + 1;
        return true;
    }
    size_t pos() const { return pos_; }
    std::string_view span(size_t from, size_t to) const { return s_.substr(from, to - from); }

private:
    std::string_view s_;
    size_t pos_ = 0;
};

// The four header fields every page has after its first line.
Status parse_header(Lines& in, const Limits& limits, PageView& out) {
    std::string_view f[4];
    for (auto& line : f)  // bounded: four lines
        if (!in.next(line)) return corrupt("CHK page header is truncated");
    if (!parse_u64(f[0], out.maximum_size) || !parse_u64(f[1], out.width) || !parse_u64(f[2], out.length))
        return corrupt("bad number in CHK page header");
    if (out.width == 0 || out.width > limits.max_key_width) return corrupt("bad CHK key width");
    out.prefix = f[3];
    return Ok{};
}

// Where the last \0 of `s` is (npos: none). memrchr, not rfind's loop a
// byte at a time: every child line ends with a 45-byte key.
size_t last_nul(std::string_view s) {
    const void* p = s.empty() ? nullptr : ::memrchr(s.data(), '\0', s.size());
    return p ? static_cast<size_t>(static_cast<const char*>(p) - s.data()) : std::string_view::npos;
}

// Whether the sorted views hold one twice (pages out of order only:
// Breezy writes items and children sorted, which proves them distinct).
bool has_duplicate(std::vector<std::string_view> v) {
    std::sort(v.begin(), v.end());
    return std::adjacent_find(v.begin(), v.end()) != v.end();
}

// The checks of Breezy's _deserialise_leaf_node: per item a line "<key
// minus the prefix>\0<n>" and n value lines; the full key has key_width
// elements; as many distinct keys as the header says. The \0 before n is
// always in the line itself, as Breezy writes it (its prefix is common to
// the keys alone): a page whose prefix swallows it is refused.
Status parse_leaf(Lines& in, const Limits& limits, PageView& out) {
    if (out.length > limits.max_items) return limit_exceeded("CHK leaf has too many items");
    const auto prefix_nuls = static_cast<uint64_t>(std::count(out.prefix.begin(), out.prefix.end(), '\0'));
    bool ascending = true;
    std::string_view line;
    while (in.next(line)) {  // bounded: each pass consumes at least one line of the page
        size_t z = last_nul(line);
        const auto nuls = static_cast<uint64_t>(std::count(line.begin(), line.end(), '\0'));
        if (z == std::string_view::npos || prefix_nuls + nuls != out.width)
            return corrupt("CHK leaf item has the wrong number of key elements");
        uint64_t nvalue = 0;
        if (!parse_u64(line.substr(z + 1), nvalue)) return corrupt("bad value line count in CHK leaf");
        size_t start = in.pos(), end = start;
        std::string_view v;
        for (uint64_t i = 0; i < nvalue; ++i) {  // bounded: one line of the page per pass
            if (!in.next(v)) return corrupt("CHK leaf value runs past the end of the page");
            end = in.pos() - 1;  // the value lines joined by "\n" are the page's bytes
        }
        if (out.items.size() >= out.length) return corrupt("CHK leaf holds more items than its header says");
        Item item{line.substr(0, z), in.span(start, end)};
        if (!out.items.empty() && !(out.items.back().key_rest < item.key_rest)) ascending = false;
        out.items.push_back(item);
    }
    if (!ascending) {
        std::vector<std::string_view> keys;
        for (const auto& item : out.items) keys.push_back(item.key_rest);  // bounded: the leaf's items
        if (has_duplicate(std::move(keys))) return corrupt("CHK leaf holds a key twice");
    }
    if (out.items.size() != out.length) return corrupt("CHK leaf item count does not match its header");
    return Ok{};
}

// The checks of Breezy's _deserialise_internal_node: per child a line
// "<search prefix minus the common one>\0<page key>", prefixes distinct;
// with check_keys, child keys that are page keys (the walks check a key
// when they read its page instead: a root's children are mostly the
// previous root's, and a history has many roots).
Status parse_internal(Lines& in, const Limits& limits, PageView& out, bool check_keys) {
    bool ascending = true;
    std::string_view line;
    while (in.next(line)) {  // bounded: one line of the page per pass
        if (out.children.size() >= limits.max_items) return limit_exceeded("CHK internal node has too many children");
        size_t z = last_nul(line);
        if (z == std::string_view::npos) return corrupt("CHK internal node line has no child key");
        Child child{line.substr(0, z), line.substr(z + 1)};
        if (check_keys && !valid_page_key(child.key)) return corrupt("CHK internal node child is not a page key");
        if (!out.children.empty() && !(out.children.back().prefix_rest < child.prefix_rest)) ascending = false;
        out.children.push_back(child);
    }
    if (!ascending) {
        std::vector<std::string_view> prefixes;
        for (const auto& c : out.children) prefixes.push_back(c.prefix_rest);  // bounded: the node's children
        if (has_duplicate(std::move(prefixes))) return corrupt("CHK internal node lists a prefix twice");
    }
    if (out.children.empty()) return corrupt("CHK internal node has no children");
    return Ok{};
}

Status parse_page(std::string_view bytes, const Limits& limits, PageView& out, bool check_keys = true) {
    out.items.clear();
    out.children.clear();
    if (bytes.size() > limits.max_page)
        return limit_exceeded("CHK page of " + std::to_string(bytes.size()) + " bytes exceeds the limit");
    if (bytes.empty() || bytes.back() != '\n') return corrupt("CHK page does not end with a newline");
    Lines in(bytes);
    std::string_view first;
    in.next(first);
    if (first != kLeaf && first != kInternal) return corrupt("not a CHK page (no chkleaf:/chknode: header)");
    out.leaf = first == kLeaf;
    if (Status st = parse_header(in, limits, out); !st) return st;
    return out.leaf ? parse_leaf(in, limits, out) : parse_internal(in, limits, out, check_keys);
}

// The elements of a joined key.
Key split_key(std::string_view joined) {
    Key key;
    for (;;) {  // bounded: one element consumed per pass
        size_t z = joined.find('\0');
        key.emplace_back(joined.substr(0, z));
        if (z == std::string_view::npos) return key;
        joined.remove_prefix(z + 1);
    }
}

// One element's part of a search key.
void append_search_element(SearchKeyKind kind, std::string_view element, std::string& out) {
    static const char hex[] = "0123456789ABCDEF";
    if (kind == SearchKeyKind::Plain) {
        out += element;
        return;
    }
    uint32_t c = crc(element);
    if (kind == SearchKeyKind::Hash16) {
        for (int shift = 28; shift >= 0; shift -= 4) out += hex[(c >> shift) & 15];  // bounded: 8 digits
        return;
    }
    for (int shift = 24; shift >= 0; shift -= 8) {  // bounded: 4 bytes
        char b = static_cast<char>((c >> shift) & 0xff);
        out += b == '\n' ? '_' : b;
    }
}

// search_key of a joined key, into `out`.
void search_key_of(SearchKeyKind kind, std::string_view joined, std::string& out) {
    out.clear();
    if (kind == SearchKeyKind::Plain) {
        out.assign(joined);
        return;
    }
    for (bool first = true;; first = false) {  // bounded: one element consumed per pass
        size_t z = joined.find('\0');
        if (!first) out += '\0';
        append_search_element(kind, joined.substr(0, z), out);
        if (z == std::string_view::npos) return;
        joined.remove_prefix(z + 1);
    }
}

// Whether a + b (unjoined) is `s`, and whether it starts `s`.
bool equals2(std::string_view s, std::string_view a, std::string_view b) {
    return s.size() == a.size() + b.size() && s.starts_with(a) && s.substr(a.size()) == b;
}
bool starts_with2(std::string_view s, std::string_view a, std::string_view b) {
    return s.size() >= a.size() + b.size() && s.starts_with(a) && s.substr(a.size()).starts_with(b);
}

Node to_node(const PageView& v) {
    if (v.leaf) {
        LeafNode leaf;
        leaf.maximum_size = v.maximum_size;
        leaf.key_width = static_cast<size_t>(v.width);
        leaf.common_prefix = std::string(v.prefix);
        std::string joined;
        for (const auto& item : v.items) {  // bounded: the leaf's items
            joined.assign(v.prefix);
            joined += item.key_rest;
            leaf.items.push_back(LeafItem{split_key(joined), std::string(item.value)});
        }
        return leaf;
    }
    InternalNode node;
    node.maximum_size = v.maximum_size;
    node.key_width = static_cast<size_t>(v.width);
    node.length = v.length;
    node.search_prefix = std::string(v.prefix);
    for (const auto& c : v.children)  // bounded: the node's children
        node.children.push_back(InternalChild{std::string(v.prefix) + std::string(c.prefix_rest), std::string(c.key)});
    return node;
}

// The longest search prefix shared by everything below a page: an internal
// node's common search prefix, a leaf's common prefix of its items' search
// keys ("" when empty).
std::string intrinsic_prefix(const PageView& v, SearchKeyKind kind) {
    if (!v.leaf) return std::string(v.prefix);
    std::string p, joined, skey;
    for (size_t i = 0; i < v.items.size(); ++i) {  // bounded: the leaf's items
        joined.assign(v.prefix);
        joined += v.items[i].key_rest;
        search_key_of(kind, joined, i ? skey : p);
        if (i == 0) continue;
        size_t n = 0, m = std::min(p.size(), skey.size());
        while (n < m && p[n] == skey[n]) ++n;  // bounded: m
        p.resize(n);
        if (p.empty()) break;
    }
    return p;
}

// A page kept for a whole walk: its bytes and their parse.
struct HeldPage {
    std::string bytes;
    PageView view;
};

// Reads and parses pages, counting them against max_pages; keeps the
// pages of the old side (they are looked up again for items). Every key
// read must be a page key; child keys are checked when they are read.
class Reader {
public:
    Reader(PageSource& src, const Limits& limits) : src_(src), limits_(limits) {}
    // Read and parse `key` into `out`. Its views point into the source's
    // bytes (valid until the next read), or into *keep when given: a copy
    // that survives reads of other pages.
    Status read(std::string_view key, PageView& out, std::string* keep = nullptr) {
        auto bytes = fetch(key);
        if (!bytes) return bytes.err();
        std::string_view b = *bytes;
        if (keep) {
            keep->assign(b);
            b = *keep;
        }
        return parse(key, b, out);
    }
    // The page `key`, read once and kept until the walk ends.
    Result<const PageView*> cached(std::string_view key) {
        auto it = cache_.find(key);
        if (it != cache_.end()) return &it->second->view;
        auto held = std::make_unique<HeldPage>();
        if (Status st = read(key, held->view, &held->bytes); !st) return st.err();
        return &cache_.emplace(std::string(key), std::move(held)).first->second->view;
    }

private:
    Result<std::string_view> fetch(std::string_view key) {
        if (!valid_page_key(key)) return corrupt("not a CHK page key");
        if (++reads_ > limits_.max_pages)
            return limit_exceeded("CHK walk read more than " + std::to_string(limits_.max_pages) + " pages");
        auto bytes = src_.page_view(key);
        if (!bytes) return bytes.err();
        if (bytes->size() > limits_.max_page)
            return limit_exceeded("CHK page of " + std::to_string(bytes->size()) + " bytes exceeds the limit");
        return bytes;
    }
    Status parse(std::string_view key, std::string_view bytes, PageView& out) {
        Status st = parse_page(bytes, limits_, out, false);
        if (!st) {
            Error e = st.err();
            e.detail = "CHK page " + std::string(key.substr(0, 45)) + ": " + e.detail;
            return e;
        }
        return Ok{};
    }

    PageSource& src_;
    const Limits& limits_;
    size_t reads_ = 0;
    std::unordered_map<std::string, std::unique_ptr<HeldPage>, StringHash, std::equal_to<>> cache_;
};

// The value of the item with the joined key `key` (search key `skey`) in
// the map at `root`: a view into a page the reader keeps, or nullopt.
Result<std::optional<std::string_view>> lookup_in(Reader& r, std::string_view root, std::string_view key,
                                                  std::string_view skey) {
    std::string_view cur = root;
    // bounded: each step goes to a child with a longer search prefix (a
    // repeated prefix is corrupt), and Reader caps the pages read.
    for (size_t depth = 0;; ++depth) {
        auto node = r.cached(cur);
        if (!node) return node.err();
        const PageView& v = **node;
        if (v.leaf) {
            for (const auto& item : v.items)  // bounded: the leaf's items
                if (equals2(key, v.prefix, item.key_rest)) return std::optional<std::string_view>(item.value);
            return std::optional<std::string_view>();
        }
        if (depth > skey.size()) return corrupt("CHK map is deeper than its search keys");
        const Child* next = nullptr;
        for (const auto& c : v.children)  // bounded: the node's children
            if (starts_with2(skey, v.prefix, c.prefix_rest) &&
                (!next || c.prefix_rest.size() > next->prefix_rest.size()))
                next = &c;
        if (!next) return std::optional<std::string_view>();
        cur = next->key;  // a view into a kept page
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
    for (size_t i = 0; i < key.size(); ++i) {  // bounded: the key's elements
        if (i) out += '\0';
        append_search_element(kind, key[i], out);
    }
    return out;
}

bool valid_page_key(std::string_view key) {
    if (key.size() != kPagePrefix.size() + 40 || key.substr(0, kPagePrefix.size()) != kPagePrefix) return false;
    // Every child of every internal page is checked: eight digits at a
    // time. In between(w, lo, hi) a byte's top bit is set when lo < byte <
    // hi: on its low 7 bits, 127 + hi - b has the top bit iff b < hi, and
    // b + 127 - lo iff b > lo, neither carrying into the next byte; ~w
    // clears bytes of 0x80 and above.
    constexpr uint64_t k01 = 0x0101010101010101ull, k7f = 0x7f * k01, k80 = 0x80 * k01;
    auto between = [&](uint64_t w, uint64_t lo, uint64_t hi) {
        return ((k01 * (127 + hi) - (w & k7f)) & ~w & ((w & k7f) + k01 * (127 - lo))) & k80;
    };
    const char* d = key.data() + kPagePrefix.size();
    for (size_t i = 0; i < 40; i += 8) {  // bounded: 40 digits
        uint64_t w;
        std::memcpy(&w, d + i, sizeof w);
        if ((between(w, '0' - 1, '9' + 1) | between(w, 'a' - 1, 'f' + 1)) != k80) return false;
    }
    return true;
}

Result<Node> parse_node(std::string_view bytes, const Limits& limits) {
    PageView v;
    if (Status st = parse_page(bytes, limits, v); !st) return st.err();
    return to_node(v);
}

Result<std::vector<std::string>> reachable_pages(PageSource& src, std::span<const std::string> roots,
                                                 const Limits& limits) {
    Reader r(src, limits);
    std::vector<std::string> out;
    KeySet seen;
    for (const auto& k : roots)  // bounded: the caller's roots
        if (seen.insert(k)) out.push_back(k);
    PageView v;
    // bounded: every page enters `out` once; Reader caps the pages read.
    for (size_t i = 0, level_end = 0; i < out.size(); ++i) {
        if (i == level_end) {  // a new level: the source may locate its pages together
            if (Status st = src.prefetch(std::span<const std::string>(out).subspan(i)); !st) return st.err();
            level_end = out.size();
        }
        if (Status st = r.read(out[i], v); !st) return st.err();
        for (const auto& c : v.children)  // bounded: the node's children
            if (seen.insert(c.key)) out.emplace_back(c.key);
    }
    return out;
}

Result<std::vector<LeafItem>> map_items(PageSource& src, std::string_view root, const Limits& limits) {
    Reader r(src, limits);
    std::vector<LeafItem> items;
    std::vector<std::string> stack{std::string(root)};
    KeySet seen;
    seen.insert(root);
    PageView v;
    std::string joined;
    // bounded: every page is visited once; Reader caps the pages read.
    while (!stack.empty()) {
        std::string key = std::move(stack.back());
        stack.pop_back();
        if (Status st = r.read(key, v); !st) return st.err();
        for (const auto& item : v.items) {  // bounded: the leaf's items
            joined.assign(v.prefix);
            joined += item.key_rest;
            items.push_back(LeafItem{split_key(joined), std::string(item.value)});
        }
        for (auto it = v.children.rbegin(); it != v.children.rend(); ++it)  // bounded: the node's children
            if (seen.insert(it->key)) stack.emplace_back(it->key);
    }
    return items;
}

Result<std::optional<std::string>> lookup(PageSource& src, SearchKeyKind kind, std::string_view root, const Key& key,
                                          const Limits& limits) {
    std::string joined;
    for (size_t i = 0; i < key.size(); ++i) {  // bounded: the key's elements
        if (key[i].find('\0') != std::string::npos) return std::optional<std::string>();  // no page holds it
        if (i) joined += '\0';
        joined += key[i];
    }
    Reader r(src, limits);
    auto v = lookup_in(r, root, joined, search_key(kind, key));
    if (!v) return v.err();
    if (!*v) return std::optional<std::string>();
    return std::optional<std::string>(std::string(**v));
}

Result<Difference> difference(PageSource& src, SearchKeyKind kind, std::span<const std::string> new_roots,
                              std::span<const std::string> old_roots, const Limits& limits, bool want_items) {
    if (!want_items) return difference(src, kind, new_roots, old_roots, limits, ItemFn());
    Difference items;
    auto keep = [&](std::string_view key, std::string_view value) -> Status {
        items.new_items.push_back(LeafItem{split_key(key), std::string(value)});
        return Ok{};
    };
    auto out = difference(src, kind, new_roots, old_roots, limits, keep);
    if (out) out->new_items = std::move(items.new_items);
    return out;
}

Result<Difference> difference(PageSource& src, SearchKeyKind kind, std::span<const std::string> new_roots,
                              std::span<const std::string> old_roots, const Limits& limits, const ItemFn& on_item) {
    const bool want_items = static_cast<bool>(on_item);
    Reader r(src, limits);
    Difference out;
    KeySet old_known, old_expanded;
    for (const auto& k : old_roots) old_known.insert(k);  // bounded: the caller's roots
    // Old pages not yet read, by the search prefix they were referenced at.
    std::map<std::string, std::vector<std::string>, std::less<>> old_pending;
    for (const auto& k : old_roots) old_pending[""].push_back(k);  // bounded: the caller's roots

    // Read every old page referenced at a prefix of c (shortest first, so
    // children found on the way are read in the same pass).
    auto expand_old_towards = [&](std::string_view c) -> Status {
        for (size_t len = 0; len <= c.size() && !old_pending.empty(); ++len) {  // bounded: the prefixes of c
            auto it = old_pending.find(c.substr(0, len));
            if (it == old_pending.end()) continue;
            std::vector<std::string> keys = std::move(it->second);
            old_pending.erase(it);
            for (const auto& k : keys) {  // bounded: pages pending at this prefix
                if (!old_expanded.insert(k)) continue;
                auto node = r.cached(k);
                if (!node) return node.err();
                const PageView& v = **node;
                for (const auto& child : v.children) {  // bounded: the node's children
                    old_known.insert(child.key);
                    if (!old_expanded.contains(child.key)) {
                        std::string prefix(v.prefix);
                        prefix += child.prefix_rest;
                        old_pending[prefix].emplace_back(child.key);
                    }
                }
            }
        }
        return Ok{};
    };
    if (Status st = expand_old_towards(""); !st) return st.err();

    // With old maps, reading them (pending pages, item lookups) reuses the
    // source between a new page's read and its last use: keep a copy.
    const bool keep = !old_roots.empty();
    std::string kept, joined, skey;
    // Each new page is queued once (seen_new): maps of many revisions
    // share most pages, so a level names the same child many times.
    std::vector<std::string> frontier, next;
    KeySet seen_new;
    for (const auto& k : new_roots)  // bounded: the caller's roots
        if (seen_new.insert(k)) frontier.push_back(k);
    KeySet reported;  // new items: key, "\n", value
    PageView v;
    // bounded: every new page is queued once (seen_new); Reader caps the reads.
    while (!frontier.empty()) {
        if (Status st = src.prefetch(frontier); !st) return st.err();
        next.clear();
        for (auto& key : frontier) {  // bounded: this level's pages
            if (old_known.contains(key)) continue;
            if (Status st = r.read(key, v, keep ? &kept : nullptr); !st) return st.err();
            if (!old_pending.empty()) {
                if (Status st = expand_old_towards(intrinsic_prefix(v, kind)); !st) return st.err();
                if (old_known.contains(key)) continue;  // the same page sits in an old map
            }
            out.pages.push_back(std::move(key));  // (frontier is done with it)
            for (const auto& c : v.children)  // bounded: the node's children
                if (!old_known.contains(c.key) && seen_new.insert(c.key)) next.emplace_back(c.key);
            if (!want_items) continue;
            for (const auto& item : v.items) {  // bounded: the leaf's items
                joined.assign(v.prefix);
                joined += item.key_rest;
                const size_t key_len = joined.size();
                joined += '\n';
                joined += item.value;
                if (reported.contains(joined)) continue;
                std::string_view item_key = std::string_view(joined).substr(0, key_len);
                bool old = false;
                if (!old_roots.empty()) search_key_of(kind, item_key, skey);
                for (const auto& root : old_roots) {  // bounded: the caller's roots
                    auto found = lookup_in(r, root, item_key, skey);
                    if (!found) return found.err();
                    if (*found && **found == item.value) {
                        old = true;
                        break;
                    }
                }
                if (old) continue;
                if (Status st = on_item(item_key, item.value); !st) return st.err();
                reported.insert(joined);
            }
        }
        frontier.swap(next);
    }
    // A page proved old after its children were queued: drop it (its
    // children, then reachable from the old maps too, are harmless extras).
    if (!old_known.empty()) std::erase_if(out.pages, [&](const std::string& k) { return old_known.contains(k); });
    return out;
}

}  // namespace souk::server::bzr::chk
