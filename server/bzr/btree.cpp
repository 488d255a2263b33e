// The B+Tree index reader (docs/formats/btree-index.md). Every length,
// count and offset in the file is checked against BTreeLimits and the file
// size before use: corrupt input gives a bzr::Error in bounded time.
#include "server/bzr/btree.hpp"

#include "server/base/strings.hpp"

#include <errno.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <functional>

namespace souk::server::bzr {
namespace {

constexpr std::string_view kLeafFlag = "type=leaf\n";
constexpr std::string_view kInternalFlag = "type=internal\n";
constexpr std::string_view kOffsetPrefix = "offset=";

// Most bytes of inflate buffer a thread keeps between pages.
constexpr size_t kKeptInflateBytes = 1 << 20;

// One inflate state per thread, reset between pages: inflateInit and
// inflateEnd for every page cost two allocations (state and window) each.
struct PageInflater {
    z_stream zs{};
    bool ready = false;
    ~PageInflater() {
        if (ready) inflateEnd(&zs);
    }
};

// Inflate one zlib stream (trailing bytes, the page's zero padding, are
// ignored). Corrupt if the stream is damaged or ends early, LimitExceeded
// past `max` inflated bytes.
Status inflate_page(std::string_view in, std::string& page, size_t max) {
    // Into a buffer that stays with the thread (no zeroing as it grows
    // page after page), then once into the page at its exact size.
    thread_local std::string out;
    page.clear();
    thread_local PageInflater inf;
    z_stream& zs = inf.zs;
    if (!inf.ready) {
        if (inflateInit(&zs) != Z_OK) return Error{Errc::Io, ENOMEM, "inflateInit failed"};
        inf.ready = true;
    } else if (inflateReset(&zs) != Z_OK) {
        return corrupt("zlib reset failed");
    }
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs.avail_in = static_cast<uInt>(in.size());
    if (out.size() < std::min(max, 4 * in.size() + 256)) out.resize(std::min(max, 4 * in.size() + 256));
    size_t have = 0;
    int rc = Z_OK;
    bool too_big = false;
    // bounded: each pass consumes input or fills output; output is capped at
    // max and input is at most one page, and a pass with neither ends it.
    for (;;) {
        if (have == out.size() && out.size() < max) out.resize(std::min(max, 2 * out.size() + 1));
        char spill;  // at max: one more byte out means too much
        const size_t room = std::min(out.size(), max) - have;
        zs.next_out = reinterpret_cast<Bytef*>(room ? out.data() + have : &spill);
        zs.avail_out = static_cast<uInt>(room ? room : 1);
        const uInt before = zs.avail_out;
        rc = inflate(&zs, Z_NO_FLUSH);
        size_t got = before - zs.avail_out;
        if (!room && got) {
            too_big = true;
            break;
        }
        if (room) have += got;
        if (rc != Z_OK) break;
        if (got == 0 && zs.avail_in == 0) break;  // input ended inside the stream
    }
    if (!too_big && rc == Z_STREAM_END) page.assign(out.data(), have);
    if (out.size() > kKeptInflateBytes) out = std::string();  // a huge page's buffer does not stay
    if (too_big) return limit_exceeded("B+Tree page inflates beyond " + std::to_string(max) + " bytes");
    if (rc != Z_STREAM_END) return corrupt("B+Tree page is not a complete zlib stream");
    return charge_inflated(have);
}

}  // namespace

std::string_view BTreeEntry::ref_list(size_t i) const {
    size_t start = 0;
    for (size_t n = 0; n < i; ++n) {  // bounded: i tab-separated lists at most
        size_t t = refs.find('\t', start);
        if (t == std::string_view::npos) return {};
        start = t + 1;
    }
    size_t end = refs.find('\t', start);
    return refs.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
}

struct BTreeReader::Page {
    std::string text;                    // the inflated node; every view below points into it
    bool leaf = false;
    uint64_t offset = 0;                 // internal: first child's index within the next row
    std::vector<std::string_view> keys;  // internal: separator keys, ascending
    std::vector<BTreeEntry> entries;     // leaf: entries, ascending by key
};

namespace {

// What a parsed page holds in memory (the reader's cache is bounded by it).
size_t page_bytes(const BTreeReader::Page& p) {
    return sizeof p + p.text.capacity() + p.keys.capacity() * sizeof(std::string_view) +
           p.entries.capacity() * sizeof(BTreeEntry);
}

}  // namespace

namespace {

// Parse an inflated leaf: "type=leaf\n" then "key\0refs\0value\n" lines.
Status parse_leaf(BTreeReader::Page& p, size_t key_elements, size_t ref_lists, const BTreeLimits& lim) {
    std::string_view body = std::string_view(p.text).substr(kLeafFlag.size());
    size_t pos = 0;
    while (pos < body.size()) {  // bounded: each pass consumes one line of the page
        size_t nl = body.find('\n', pos);
        if (nl == std::string_view::npos) nl = body.size();
        std::string_view line = body.substr(pos, nl - pos);
        pos = nl + 1;
        if (line.empty()) break;  // Breezy stops at the first empty line
        if (p.entries.size() >= lim.max_keys_per_page)
            return limit_exceeded("B+Tree leaf holds more than " + std::to_string(lim.max_keys_per_page) + " keys");
        size_t k = 0;
        for (size_t e = 0; e < key_elements; ++e) {  // bounded: key_elements <= max_key_elements
            size_t z = line.find('\0', k);
            if (z == std::string_view::npos) return corrupt("B+Tree leaf line has too few key elements");
            k = z + 1;
        }
        BTreeEntry entry;
        entry.key = line.substr(0, k - 1);
        std::string_view rest = line.substr(k);
        size_t z = rest.rfind('\0');
        if (z == std::string_view::npos) return corrupt("B+Tree leaf line has no value field");
        entry.refs = rest.substr(0, z);
        entry.value = rest.substr(z + 1);
        if (ref_lists) {
            size_t tabs = static_cast<size_t>(std::count(entry.refs.begin(), entry.refs.end(), '\t'));
            if (tabs + 1 != ref_lists) return corrupt("B+Tree leaf line has the wrong number of reference lists");
            size_t refs = static_cast<size_t>(std::count(entry.refs.begin(), entry.refs.end(), '\r')) + ref_lists;
            if (refs > lim.max_refs_per_key)
                return limit_exceeded("B+Tree entry has more than " + std::to_string(lim.max_refs_per_key) +
                                      " references");
        }
        if (!p.entries.empty() && !(p.entries.back().key < entry.key))
            return corrupt("B+Tree leaf keys are not in ascending order");
        p.entries.push_back(entry);
    }
    return Ok{};
}

// Parse an inflated internal node: "type=internal\noffset=N\n" then keys.
Status parse_internal(BTreeReader::Page& p, const BTreeLimits& lim) {
    std::string_view body = std::string_view(p.text).substr(kInternalFlag.size());
    size_t nl = body.find('\n');
    if (nl == std::string_view::npos || body.substr(0, kOffsetPrefix.size()) != kOffsetPrefix ||
        !parse_u64(body.substr(kOffsetPrefix.size(), nl - kOffsetPrefix.size()), p.offset))
        return corrupt("B+Tree internal node has no valid offset line");
    size_t pos = nl + 1;
    while (pos < body.size()) {  // bounded: each pass consumes one line of the page
        size_t end = body.find('\n', pos);
        if (end == std::string_view::npos) end = body.size();
        std::string_view key = body.substr(pos, end - pos);
        pos = end + 1;
        if (key.empty()) break;
        if (p.keys.size() >= lim.max_keys_per_page)
            return limit_exceeded("B+Tree internal node holds more than " + std::to_string(lim.max_keys_per_page) +
                                  " keys");
        if (!p.keys.empty() && !(p.keys.back() < key))
            return corrupt("B+Tree internal keys are not in ascending order");
        p.keys.push_back(key);
    }
    return Ok{};
}

}  // namespace

BTreeReader::~BTreeReader() = default;

std::span<const BTreeEntry> BTreeReader::root_entries() const {
    if (!single_page() || !root_) return {};
    return root_->entries;
}

Status BTreeReader::parse_header(std::string_view p0) {
    if (p0.substr(0, kBTreeSignature.size()) != kBTreeSignature) return corrupt("not a B+Tree index (bad signature)");
    size_t pos = kBTreeSignature.size();
    auto field = [&](std::string_view name, std::string_view& value) -> bool {
        size_t nl = p0.find('\n', pos);
        if (nl == std::string_view::npos) return false;
        std::string_view line = p0.substr(pos, nl - pos);
        pos = nl + 1;
        if (line.substr(0, name.size()) != name) return false;
        value = line.substr(name.size());
        return true;
    };
    std::string_view refs, keys, len, rows;
    uint64_t r = 0, k = 0;
    if (!field("node_ref_lists=", refs) || !field("key_elements=", keys) || !field("len=", len) ||
        !field("row_lengths=", rows) || !parse_u64(refs, r) || !parse_u64(keys, k) || !parse_u64(len, key_count_))
        return corrupt("bad B+Tree index header");
    header_len_ = pos;
    if (r > limits_.max_ref_lists) return limit_exceeded("B+Tree index has too many reference lists");
    if (k == 0) return corrupt("B+Tree index has zero key elements");
    if (k > limits_.max_key_elements) return limit_exceeded("B+Tree index keys have too many elements");
    ref_lists_ = static_cast<size_t>(r);
    key_elements_ = static_cast<size_t>(k);
    const uint64_t max_pages = limits_.max_file_size / kBTreePageSize + 1;
    size_t at = 0;
    while (at < rows.size()) {  // bounded: each pass consumes one comma-separated number
        size_t comma = rows.find(',', at);
        if (comma == std::string_view::npos) comma = rows.size();
        uint64_t n = 0;
        if (comma == at) {  // Breezy skips empty pieces ("1," reads as "1")
            at = comma + 1;
            continue;
        }
        if (!parse_u64(rows.substr(at, comma - at), n)) return corrupt("bad B+Tree row_lengths");
        if (row_lengths_.size() >= limits_.max_depth) return limit_exceeded("B+Tree index is too deep");
        if (n == 0 || n > max_pages) return corrupt("impossible B+Tree row length");
        row_lengths_.push_back(n);
        at = comma + 1;
    }
    if (key_count_ == 0) {  // Breezy answers nothing for an empty index, whatever the rows say
        row_lengths_.clear();
        row_offsets_ = {0};
        return Ok{};
    }
    if (row_lengths_.empty() || row_lengths_[0] != 1) return corrupt("B+Tree index has no single root");
    uint64_t total = 0;
    for (size_t i = 0; i < row_lengths_.size(); ++i) {  // bounded: at most max_depth rows
        if (i && row_lengths_[i] < row_lengths_[i - 1]) return corrupt("impossible B+Tree row lengths");
        row_offsets_.push_back(total);
        total += row_lengths_[i];  // no overflow: each row <= max_pages, rows <= max_depth
    }
    row_offsets_.push_back(total);
    if (size_ <= (total - 1) * kBTreePageSize || size_ > total * kBTreePageSize)
        return corrupt("B+Tree index size " + std::to_string(size_) + " does not match its " + std::to_string(total) +
                       " pages (truncated?)");
    uint64_t leaves = row_lengths_.back();
    if (key_count_ / leaves > limits_.max_keys_per_page) return corrupt("impossible B+Tree key count");
    if (header_len_ >= std::min<uint64_t>(size_, kBTreePageSize)) return corrupt("B+Tree index has no root node");
    return Ok{};
}

Result<BTreeReader> BTreeReader::open(Store& store, const std::string& path, const BTreeLimits& limits) {
    BTreeReader r;
    r.store_ = &store;
    r.limits_ = limits;
    if (int e = store.open_read(path, r.file_)) return Error{e == ENOENT ? Errc::NotFound : Errc::Io, e, path};
    r.size_ = r.file_.info.size;
    if (r.size_ > limits.max_file_size) return limit_exceeded("B+Tree index is larger than the limit");
    if (r.size_ <= limits.whole_file_bytes) {
        r.whole_.resize(static_cast<size_t>(r.size_));
        const ssize_t n = store.read_full(r.file_, r.whole_.data(), r.whole_.size(), 0);
        if (n < 0) return io_error(static_cast<int>(-n), "B+Tree index read failed");
        if (static_cast<uint64_t>(n) < r.size_) return corrupt("B+Tree index shrank while reading");
        r.mem_ = std::string_view(r.whole_.data(), r.whole_.size());
        r.store_ = nullptr;
        r.file_ = OpenFile{};
    }
    auto root = r.page(0);
    if (!root) return root.err();
    return r;
}

Result<BTreeReader> BTreeReader::from_bytes(std::string_view bytes, const BTreeLimits& limits) {
    BTreeReader r;
    r.mem_ = bytes;
    r.limits_ = limits;
    r.size_ = bytes.size();
    if (r.size_ > limits.max_file_size) return limit_exceeded("B+Tree index is larger than the limit");
    auto root = r.page(0);
    if (!root) return root.err();
    return r;
}

Result<std::shared_ptr<const BTreeReader::Page>> BTreeReader::read_page(uint64_t index) {
    uint64_t offset = index * kBTreePageSize;
    if (offset >= size_) return corrupt("B+Tree page beyond the end of the index");
    size_t len = static_cast<size_t>(std::min<uint64_t>(kBTreePageSize, size_ - offset));
    std::string raw;
    std::string_view data;
    if (store_) {
        raw.resize(len);
        const ssize_t n = store_->read_full(file_, raw.data(), len, offset);
        if (n < 0) return io_error(static_cast<int>(-n), "B+Tree index read failed");
        if (static_cast<size_t>(n) < len) return corrupt("B+Tree index shrank while reading");
        data = raw;
    } else {
        data = mem_.substr(static_cast<size_t>(offset), len);
    }
    ++stats_.pages_read;
    stats_.bytes_read += len;
    if (index == 0) {
        if (row_offsets_.empty())
            if (auto st = parse_header(data); !st) return st.err();
        if (key_count_ == 0) return std::shared_ptr<const Page>();
        data.remove_prefix(header_len_);
    }
    auto p = std::make_shared<Page>();
    if (auto st = inflate_page(data, p->text, limits_.max_page_inflated); !st) return st.err();
    bool leaf_row = index >= row_offsets_[row_offsets_.size() - 2];
    std::string_view text = p->text;
    if (leaf_row) {
        if (text.substr(0, kLeafFlag.size()) != kLeafFlag) return corrupt("B+Tree leaf row holds a non-leaf page");
        p->leaf = true;
        if (auto st = parse_leaf(*p, key_elements_, ref_lists_, limits_); !st) return st.err();
    } else {
        if (text.substr(0, kInternalFlag.size()) != kInternalFlag)
            return corrupt("B+Tree internal row holds a non-internal page");
        if (auto st = parse_internal(*p, limits_); !st) return st.err();
    }
    return std::shared_ptr<const Page>(std::move(p));
}

Result<std::shared_ptr<const BTreeReader::Page>> BTreeReader::page(uint64_t index, bool use_cache) {
    if (index == 0) {
        if (root_ || (key_count_ == 0 && !row_offsets_.empty())) return root_;
        auto r = read_page(0);
        if (r) root_ = *r;
        return r;
    }
    if (index >= row_offsets_.back()) return corrupt("B+Tree page index beyond the tree");
    if (auto it = cache_.find(index); it != cache_.end()) {
        ++stats_.cache_hits;
        it->second.used = ++tick_;
        return it->second.page;
    }
    auto r = read_page(index);
    if (!r || !use_cache || limits_.max_cached_pages == 0) return r;
    const size_t cost = page_bytes(**r);
    if (cost > limits_.max_cached_bytes) return r;
    // bounded: each pass evicts one of at most max_cached_pages entries
    while (!cache_.empty() &&
           (cache_.size() >= limits_.max_cached_pages || cached_bytes_ + cost > limits_.max_cached_bytes)) {
        auto victim = cache_.begin();
        for (auto it = cache_.begin(); it != cache_.end(); ++it)  // bounded: max_cached_pages entries
            if (it->second.used < victim->second.used) victim = it;
        cached_bytes_ -= page_bytes(*victim->second.page);
        cache_.erase(victim);
    }
    cache_[index] = Cached{*r, ++tick_};
    cached_bytes_ += cost;
    return r;
}

Status BTreeReader::descend(std::span<const std::string_view> keys,
                            const std::function<Status(uint64_t, const Page&, size_t, size_t)>& leaf) {
    if (key_count_ == 0 || keys.empty()) return Ok{};
    struct Item {
        uint64_t node;
        size_t first, last;
    };
    std::vector<Item> level{{0, 0, keys.size()}}, next;
    const size_t rows = row_lengths_.size();
    for (size_t row = 0; row + 1 < rows; ++row) {  // bounded: rows <= max_depth
        next.clear();
        for (const Item& item : level) {  // bounded: at most one item per key
            auto pr = page(item.node);
            if (!pr) return pr.err();
            const Page& p = **pr;
            if (p.offset >= row_lengths_[row + 1]) return corrupt("B+Tree child pointer outside its row");
            const uint64_t base = row_offsets_[row + 1] + p.offset, end = row_offsets_[row + 2];
            size_t i = item.first;
            while (i < item.last) {  // bounded: i grows by at least one per pass
                size_t pos = static_cast<size_t>(std::upper_bound(p.keys.begin(), p.keys.end(), keys[i]) - p.keys.begin());
                size_t j = item.last;
                if (pos < p.keys.size())
                    j = static_cast<size_t>(std::lower_bound(keys.begin() + static_cast<long>(i) + 1,
                                                             keys.begin() + static_cast<long>(item.last), p.keys[pos]) -
                                            keys.begin());
                if (base + pos >= end) return corrupt("B+Tree child pointer outside its row");
                next.push_back({base + pos, i, j});
                i = j;
            }
        }
        level.swap(next);
    }
    for (const Item& item : level) {  // bounded: at most one item per key
        auto pr = page(item.node);
        if (!pr) return pr.err();
        if (!(*pr)->leaf) return corrupt("B+Tree internal page where a leaf should be");
        if (auto st = leaf(item.node, **pr, item.first, item.last); !st) return st;
    }
    return Ok{};
}

namespace {
std::vector<std::string_view> sorted_unique(std::span<const std::string_view> keys) {
    std::vector<std::string_view> v(keys.begin(), keys.end());
    if (std::adjacent_find(v.begin(), v.end(), std::greater_equal<>()) == v.end()) return v;  // batched callers sort
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
}
bool entry_less(const BTreeEntry& e, std::string_view k) { return e.key < k; }
}  // namespace

Status BTreeReader::lookup(std::span<const std::string_view> keys, const BTreeEntryFn& fn) {
    std::vector<std::string_view> v = sorted_unique(keys);
    return descend(v, [&](uint64_t, const Page& p, size_t first, size_t last) -> Status {
        auto it = p.entries.begin();
        for (size_t i = first; i < last; ++i) {  // bounded: last - first keys
            it = std::lower_bound(it, p.entries.end(), v[i], entry_less);  // v is ascending
            if (it == p.entries.end()) break;
            if (it->key == v[i]) fn(*it);
        }
        return Ok{};
    });
}

Status BTreeReader::lookup_pages(std::span<const std::string_view> keys, const BTreeEntryFn& fn) {
    std::vector<std::string_view> v = sorted_unique(keys);
    return descend(v, [&](uint64_t, const Page& p, size_t, size_t) -> Status {
        for (const BTreeEntry& e : p.entries) fn(e);  // bounded: one page's entries
        return Ok{};
    });
}

Status BTreeReader::iter_all(const BTreeEntryFn& fn) {
    if (key_count_ == 0) return Ok{};
    const uint64_t first = row_offsets_[row_offsets_.size() - 2], end = row_offsets_.back();
    std::string last_key;
    for (uint64_t i = first; i < end; ++i) {  // bounded: the leaf row's pages
        auto pr = page(i, false);
        if (!pr) return pr.err();
        const Page& p = **pr;
        if (!p.entries.empty()) {
            if (i != first && !(last_key < p.entries.front().key))
                return corrupt("B+Tree leaves are not in ascending key order");
            last_key.assign(p.entries.back().key);
        }
        for (const BTreeEntry& e : p.entries) fn(e);  // bounded: one page's entries
    }
    return Ok{};
}

Status BTreeReader::iter_prefix(std::string_view prefix, const BTreeEntryFn& fn) {
    size_t elements = static_cast<size_t>(std::count(prefix.begin(), prefix.end(), '\0')) + 1;
    if (elements > key_elements_) return corrupt("key prefix has more elements than the index's keys");
    if (elements == key_elements_) return lookup(std::span<const std::string_view>(&prefix, 1), fn);
    if (key_count_ == 0) return Ok{};
    std::string lo(prefix);
    lo += '\0';
    std::string_view lo_view = lo;
    uint64_t start = 0;
    if (auto st = descend(std::span<const std::string_view>(&lo_view, 1),
                          [&](uint64_t node, const Page&, size_t, size_t) -> Status {
                              start = node;
                              return Ok{};
                          });
        !st)
        return st;
    const uint64_t end = row_offsets_.back();
    for (uint64_t i = start; i < end; ++i) {  // bounded: the leaf row's pages, stopping past the prefix
        auto pr = page(i);
        if (!pr) return pr.err();
        const Page& p = **pr;
        for (auto it = std::lower_bound(p.entries.begin(), p.entries.end(), lo_view, entry_less);
             it != p.entries.end(); ++it) {  // bounded: one page's entries
            if (it->key.substr(0, lo.size()) != lo_view) return Ok{};
            fn(*it);
        }
    }
    return Ok{};
}

std::string parse_btree(std::string_view file, const std::function<void(const IndexEntry&)>& fn, size_t max_node) {
    BTreeLimits lim;
    lim.max_page_inflated = max_node;
    auto r = BTreeReader::from_bytes(file, lim);
    if (!r) return r.err().detail;
    const size_t k = r->key_elements(), lists = r->ref_lists();
    auto st = r->iter_all([&](const BTreeEntry& e) {
        IndexEntry out;
        size_t at = 0;
        for (size_t i = 0; i < k; ++i) {  // bounded: key_elements pieces
            size_t z = i + 1 == k ? e.key.size() : e.key.find('\0', at);
            out.key.push_back(e.key.substr(at, z - at));
            at = z + 1;
        }
        out.value = e.value;
        for (size_t l = 0; l < lists; ++l) {  // bounded: ref_lists lists
            auto& keys = out.refs.emplace_back();
            for_each_ref(e.ref_list(l), [&](std::string_view ref) {
                auto& elems = keys.emplace_back();
                size_t a = 0;
                for (;;) {  // bounded: each pass consumes one '\0'-separated element
                    size_t z = ref.find('\0', a);
                    elems.push_back(ref.substr(a, z == std::string_view::npos ? std::string_view::npos : z - a));
                    if (z == std::string_view::npos) break;
                    a = z + 1;
                }
            });
        }
        fn(out);
    });
    return st ? std::string() : st.err().detail;
}

}  // namespace souk::server::bzr
