// B+Tree graph indices (docs/formats/btree-index.md): the reader, which
// bisects pages through the Store, and the writer, whose bytes equal
// Breezy's BTreeBuilder for the same keys.
//
// Keys are handled in their joined form: the key elements joined by '\0'
// (elements never hold '\0' or whitespace, so comparing joined keys bytewise
// orders them exactly as Breezy orders key tuples).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "server/bzr/error.hpp"
#include "server/store/store.hpp"

namespace souk::server::bzr {

inline constexpr size_t kBTreePageSize = 4096;
inline constexpr std::string_view kBTreeSignature = "B+Tree Graph Index 2\n";

// Every bound the reader applies to what it finds on disk (hostile input).
struct BTreeLimits {
    size_t max_page_inflated = 4 * 1024 * 1024;  // inflated bytes of one page (zip-bomb guard)
    size_t max_keys_per_page = 200 * 1000;       // leaf entries or separator keys of one page
    size_t max_ref_lists = 8;                    // node_ref_lists of the header
    size_t max_refs_per_key = 100 * 1000;        // references in all lists of one entry
    size_t max_key_elements = 16;                // key_elements of the header
    uint64_t max_file_size = 4ull << 30;         // bytes of one index file
    size_t max_depth = 16;                       // rows of the tree
    size_t max_cached_pages = 256;               // parsed pages one reader keeps (LRU)
    size_t max_cached_bytes = 8 * 1024 * 1024;   // and their inflated text and entry tables, in bytes
    uint64_t whole_file_bytes = 64 * 1024;       // an index up to this size is read whole when opened
};

// One entry of an index; views into a page the reader holds, valid only
// during the callback that receives it.
struct BTreeEntry {
    std::string_view key;    // elements joined by '\0'
    std::string_view refs;   // lists joined by '\t', references by '\r'
    std::string_view value;
    // The i-th reference list ("" when there is none).
    std::string_view ref_list(size_t i) const;
};

// Call f(ref) for each reference (a joined key) of one reference list.
template <typename F>
void for_each_ref(std::string_view list, F&& f) {
    size_t i = 0;
    while (i < list.size()) {  // bounded: each pass consumes one '\r'-terminated piece
        size_t j = list.find('\r', i);
        if (j == std::string_view::npos) j = list.size();
        if (j > i) f(list.substr(i, j - i));
        i = j + 1;
    }
}

using BTreeEntryFn = std::function<void(const BTreeEntry&)>;

// What one reader did, for tests, benchmarks and logs.
struct BTreeReadStats {
    uint64_t pages_read = 0;   // pages fetched from the Store
    uint64_t bytes_read = 0;   // bytes pread from the Store
    uint64_t cache_hits = 0;   // pages served by the reader's own cache
};

// A read-only view of one index file. Opening reads only page 0 (header and
// root), or the whole file when it is small (limits.whole_file_bytes: one
// read instead of one per page); lookups bisect the internal pages down to
// the leaves, so a lookup costs O(depth) page reads, and a batch of
// lookups reads each page once.
// The Store must outlive the reader. Not thread-safe (one per request).
class BTreeReader {
public:
    BTreeReader() = default;
    BTreeReader(BTreeReader&&) noexcept = default;
    BTreeReader& operator=(BTreeReader&&) noexcept = default;
    ~BTreeReader();

    // Open `path` (root-relative) and parse its header and root. Errors:
    // NotFound/Io from the Store (sys_errno set), Corrupt, LimitExceeded.
    static Result<BTreeReader> open(Store& store, const std::string& path, const BTreeLimits& limits = {});
    // The same for an index held in memory; `bytes` must outlive the reader.
    static Result<BTreeReader> from_bytes(std::string_view bytes, const BTreeLimits& limits = {});

    uint64_t key_count() const { return key_count_; }
    // Whether the whole index is its root page (a leaf, or no keys at
    // all): a small pack's index, read whole when opened.
    bool single_page() const { return key_count_ == 0 || row_lengths_.size() == 1; }
    // The entries of a single-page index, in key order; views valid as
    // long as the reader lives. Empty for other indices.
    std::span<const BTreeEntry> root_entries() const;
    size_t ref_lists() const { return ref_lists_; }
    size_t key_elements() const { return key_elements_; }
    const std::vector<uint64_t>& row_lengths() const { return row_lengths_; }
    const BTreeReadStats& stats() const { return stats_; }

    // Call fn for each of `keys` (joined; any order, duplicates allowed)
    // present in the index, once per distinct key, in key order.
    Status lookup(std::span<const std::string_view> keys, const BTreeEntryFn& fn);
    // As lookup, but call fn for every entry of every leaf page a key of
    // `keys` would live on (the keys present among them included), in key
    // order: nearby keys at no extra I/O, as Breezy's _find_ancestors uses.
    Status lookup_pages(std::span<const std::string_view> keys, const BTreeEntryFn& fn);
    // Every entry, in key order (reads each leaf once, bypassing the cache).
    Status iter_all(const BTreeEntryFn& fn);
    // Entries whose first elements are `prefix` (joined, 1..key_elements
    // elements), in key order: Breezy's iter_entries_prefix for one prefix.
    Status iter_prefix(std::string_view prefix, const BTreeEntryFn& fn);

    struct Page;  // a parsed node (btree.cpp)

private:
    Result<std::shared_ptr<const Page>> page(uint64_t index, bool use_cache = true);
    Result<std::shared_ptr<const Page>> read_page(uint64_t index);
    // Descend to the leaf whose key range holds each of the sorted unique
    // `keys`; calls leaf(page, first, last) per leaf with keys[first, last).
    Status descend(std::span<const std::string_view> keys,
                   const std::function<Status(uint64_t, const Page&, size_t, size_t)>& leaf);
    Status parse_header(std::string_view page0);

    Store* store_ = nullptr;  // null: the index is mem_
    OpenFile file_;
    std::string_view mem_;
    std::vector<char> whole_;  // a small index file read whole (mem_ views it)
    BTreeLimits limits_;
    uint64_t size_ = 0;
    uint64_t key_count_ = 0;
    size_t ref_lists_ = 0, key_elements_ = 1;
    size_t header_len_ = 0;
    std::vector<uint64_t> row_lengths_;
    std::vector<uint64_t> row_offsets_;  // first page of each row; back() = total pages
    std::shared_ptr<const Page> root_;
    struct Cached {
        std::shared_ptr<const Page> page;
        uint64_t used = 0;
    };
    std::unordered_map<uint64_t, Cached> cache_;
    size_t cached_bytes_ = 0;
    uint64_t tick_ = 0;
    BTreeReadStats stats_;
};

// ---- writer -----------------------------------------------------------------

// One node to write: a joined key, `ref_lists` lists of joined keys, a value.
struct BTreeNode {
    std::string key;
    std::vector<std::vector<std::string>> refs;
    std::string value;
};

struct BTreeWriterOptions {
    size_t ref_lists = 0;     // 0, 1 or 2 in Bazaar's indices
    size_t key_elements = 1;  // 1, or 2 for .tix
    // Breezy's set_optimize(for_size=True), which every index a 2a
    // repository writes for a pack uses; pack-names uses the default (false).
    bool optimize_for_size = false;
};

// The index Breezy's BTreeBuilder writes for `nodes` (any order; sorted
// here). Errors: Corrupt for a key or value Breezy rejects (whitespace or
// NUL in a key element, wrong element count, newline or NUL in a value,
// wrong number of reference lists, a duplicate key, a line too big for a
// page).
Result<std::string> write_btree(const BTreeWriterOptions& options, std::vector<BTreeNode> nodes);

// ---- whole-file form ----------------------------------------------------------

// One entry of a B+Tree graph index: key elements, reference lists (each a
// list of keys) and the value.
struct IndexEntry {
    std::vector<std::string_view> key;
    std::vector<std::vector<std::vector<std::string_view>>> refs;
    std::string_view value;
};
// Parse a whole index held in memory (tests and tools; the server reads
// indices with BTreeReader) and call `fn` for every leaf entry; the views
// are valid only during the call. Pages inflate to at most max_node bytes.
// Returns "" or a message describing the first problem.
std::string parse_btree(std::string_view file, const std::function<void(const IndexEntry&)>& fn,
                        size_t max_node = 4 * 1024 * 1024);

}  // namespace souk::server::bzr
