// Repository streams, the fetch side (docs/protocol/streams.md#get_stream).
#include "server/bzr/stream_source.hpp"

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <set>
#include <tuple>
#include <unordered_set>

#include "server/base/strings.hpp"
#include "server/bzr/inventory.hpp"
#include "server/bzr/pack.hpp"

namespace souk::server::bzr {
namespace {

constexpr std::string_view kNull = "null:";

// Most bytes of scratch buffer a thread keeps between records.
constexpr size_t kKeptScratchBytes = 1 << 20;

// Sets and maps of strings that answer string_view lookups without a copy.
struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

Error not_found_revision(std::string_view revid) {
    return Error{Errc::NoSuchRevision, 0, std::string(revid)};
}

}  // namespace

Result<std::string> zlib_compress(std::string_view in, int level) {
    if (level == Z_NO_COMPRESSION) {
        // The zlib format around stored deflate blocks, written directly:
        // deflate's fixed cost per call (resetting its tables, building
        // Huffman trees) is what level 0 would spend on a small input.
        std::string out = {'\x78', '\x01'};  // 32 KiB window, no dictionary, "fastest"
        out.reserve(2 + in.size() + 5 * (in.size() / 65535 + 1) + 4);
        size_t at = 0;
        do {  // bounded: at advances by up to 65535 bytes per pass (one empty block for empty input)
            const size_t n = std::min<size_t>(in.size() - at, 65535);
            out += static_cast<char>(at + n == in.size() ? 1 : 0);  // BFINAL, BTYPE 00
            const char len[4] = {static_cast<char>(n & 0xff), static_cast<char>(n >> 8),
                                 static_cast<char>(~n & 0xff), static_cast<char>((~n >> 8) & 0xff)};
            out.append(len, sizeof len);
            out.append(in.substr(at, n));
            at += n;
        } while (at < in.size());
        const auto a = static_cast<uint32_t>(adler32(adler32(0, nullptr, 0), reinterpret_cast<const Bytef*>(in.data()),
                                                     static_cast<uInt>(in.size())));
        for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((a >> shift) & 0xff);  // bounded: 4 bytes
        return out;
    }
    // One deflate state per thread, reset between calls: a fresh one per
    // record costs ~256 KiB of allocation (mmap, zeroing, munmap) each time.
    struct Deflater {
        z_stream zs{};
        bool ready = false;
        int level = Z_DEFAULT_COMPRESSION;
        ~Deflater() {
            if (ready) deflateEnd(&zs);
        }
    };
    thread_local Deflater d;
    if (!d.ready) {
        if (deflateInit(&d.zs, level) != Z_OK) return Error{Errc::Io, 12, "zlib initialisation failed"};
        d.ready = true;
        d.level = level;
    } else if (deflateReset(&d.zs) != Z_OK) {
        return corrupt("zlib reset failed");
    }
    z_stream& zs = d.zs;
    if (level != d.level) {  // right after a reset this only sets the level
        if (deflateParams(&zs, level, Z_DEFAULT_STRATEGY) != Z_OK) return corrupt("zlib level change failed");
        d.level = level;
    }
    // Into a buffer the thread keeps (a fresh one per call is zeroed, and
    // at this size mapped and faulted in), then once at the size produced.
    thread_local std::unique_ptr<char[]> scratch;
    thread_local size_t scratch_size = 0;
    const size_t bound = deflateBound(&zs, static_cast<uLong>(in.size()));
    if (scratch_size < bound) {
        scratch.reset(new char[bound]);
        scratch_size = bound;
    }
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs.avail_in = static_cast<uInt>(in.size());
    zs.next_out = reinterpret_cast<Bytef*>(scratch.get());
    zs.avail_out = static_cast<uInt>(bound);
    int rc = deflate(&zs, Z_FINISH);
    std::string out(scratch.get(), bound - zs.avail_out);
    if (scratch_size > kKeptScratchBytes) {  // one huge input's buffer does not stay
        scratch.reset();
        scratch_size = 0;
    }
    if (rc != Z_STREAM_END) return corrupt("zlib compression failed");
    return out;
}

namespace {

// `v` in decimal and a newline, onto `out`.
void append_line(std::string& out, uint64_t v) {
    char num[24];
    auto res = std::to_chars(num, num + sizeof num, v);
    out.append(num, static_cast<size_t>(res.ptr - num));
    out += '\n';
}

// "gcb1z\n<Z>\n<N>\n" + zlib(content) at zlib level `level`.
Result<std::string> make_block(std::string_view content, int level) {
    auto z = zlib_compress(content, level);
    if (!z) return z.err();
    std::string out = "gcb1z\n" + std::to_string(z->size()) + "\n" + std::to_string(content.size()) + "\n";
    out += *z;
    return out;
}

}  // namespace

// ---- the search -------------------------------------------------------------

Result<SearchSpec> parse_search(std::string_view body) {
    SearchSpec s;
    if (body == "everything") return s;
    auto lines = split(body, '\n');
    Error bad{Errc::Unsupported, 0, "bad search"};
    if (lines.empty()) return bad;
    if (lines[0] == "ancestry-of") {
        s.kind = SearchKind::AncestryOf;
        for (size_t i = 1; i < lines.size(); ++i) s.heads.emplace_back(lines[i]);  // bounded: the body's lines
        return s;
    }
    if (lines[0] != "search" || lines.size() < 4) return bad;
    s.kind = SearchKind::Search;
    for (auto k : split(lines[1], ' ')) s.heads.emplace_back(k);    // bounded: the line's words
    for (auto k : split(lines[2], ' ')) s.exclude.emplace_back(k);  // bounded: the line's words
    if (!parse_u64(lines[3], s.count)) return bad;
    return s;
}

bool parse_record_pos(std::string_view value, uint32_t pack, RecordPos& out) {
    out.pack = pack;
    uint64_t* fields[] = {&out.offset, &out.length, &out.start, &out.end};
    size_t at = 0;
    for (size_t i = 0; i < 4; ++i) {  // bounded: four fields
        if (i > 0 && (at >= value.size() || value[at++] != ' ')) return false;
        uint64_t v = 0;
        const size_t first = at;
        // bounded: at advances per digit; overflow is refused
        for (; at < value.size() && value[at] >= '0' && value[at] <= '9'; ++at) {
            const auto digit = static_cast<uint64_t>(value[at] - '0');
            if (__builtin_mul_overflow(v, 10u, &v) || __builtin_add_overflow(v, digit, &v)) return false;
        }
        if (at == first) return false;
        *fields[i] = v;
    }
    return at == value.size() && out.start <= out.end;
}

Result<std::vector<std::string>> search_revisions(PackCollection& packs, const SearchSpec& spec,
                                                  const StreamLimits& limits) {
    std::vector<std::string> out;
    if (spec.kind == SearchKind::Everything) {
        std::unordered_set<std::string> seen;
        bool over = false;
        Status st = packs.iter_revisions([&](std::string_view revid, std::string_view, std::string_view, size_t) {
            if (over || !seen.emplace(revid).second) return;
            if (out.size() >= limits.max_revisions) over = true;
            else out.emplace_back(revid);
        });
        if (!st) return st.err();
        if (over) return limit_exceeded("the repository holds more revisions than one stream may send");
        return out;
    }
    std::unordered_set<std::string_view> exclude(spec.exclude.begin(), spec.exclude.end());
    // The present revisions and their parents.
    std::unordered_map<std::string, std::vector<std::string>, StringHash, std::equal_to<>> parents;
    std::unordered_set<std::string, StringHash, std::equal_to<>> absent, seen;
    std::vector<std::string> frontier, next;
    for (const auto& h : spec.heads)  // bounded: the request's heads
        if (!h.empty() && seen.insert(h).second) frontier.push_back(h);
    // bounded: each revision enters a frontier once (seen), and seen is
    // capped by max_revisions.
    while (!frontier.empty()) {
        std::vector<std::string_view> need;
        for (const auto& q : frontier)  // bounded: this level
            if (q != kNull && !exclude.count(q) && !parents.count(q) && !absent.count(q)) need.push_back(q);
        if (!need.empty()) {
            // Nearby entries too (the rest of each leaf page read): an
            // ancestry walk finds most parents there without another descent.
            Status st = packs.find(
                IndexKind::Revisions, need,
                [&](const BTreeEntry& e, size_t, bool) {
                    if (parents.size() < limits.max_revisions * 2 && !parents.count(e.key))
                        parents.emplace(std::string(e.key), split_parents(e.ref_list(0)));
                },
                true);
            if (!st) return st.err();
            for (auto n : need)  // bounded: this level
                if (!parents.count(n)) absent.emplace(n);
        }
        next.clear();
        for (const auto& q : frontier) {  // bounded: this level
            if (q == kNull || exclude.count(q)) continue;
            auto it = parents.find(q);
            if (it == parents.end()) continue;  // a ghost
            out.push_back(q);
            for (const auto& p : it->second)  // bounded: the revision's parents
                if (seen.insert(p).second) next.push_back(p);
        }
        if (seen.size() > limits.max_revisions)
            return limit_exceeded("the search visits more than " + std::to_string(limits.max_revisions) + " revisions");
        frontier.swap(next);
    }
    return out;
}

// ---- reading records ---------------------------------------------------------

PackReader::PackReader(Store& store, std::string repo, PackCollection packs, const StreamLimits& limits)
    : store_(store), repo_(std::move(repo)), packs_(std::move(packs)), limits_(limits) {
    files_.resize(packs_.packs().size());
}

Status PackReader::lookup(IndexKind kind, std::span<const std::string_view> keys, const FoundFn& fn) {
    Error bad{};
    bool failed = false;
    Status st = packs_.find(kind, keys, [&](const BTreeEntry& e, size_t pack, bool) {
        if (failed) return;
        RecordPos pos;
        auto idx = packs_.index(pack, kind);  // open already: find read it
        if (!idx || !parse_record_pos(e.value, static_cast<uint32_t>(pack), pos)) {
            failed = true;
            bad = corrupt("bad index entry in pack " + packs_.packs()[pack].name + std::string(index_suffix(kind)));
            return;
        }
        bool has_parents = (*idx)->ref_lists() > 0;
        fn(e.key, has_parents ? e.ref_list(0) : std::string_view(), has_parents, pos);
    });
    if (!st) return st;
    if (failed) return bad;
    return Ok{};
}

Status PackReader::lookup_all(IndexKind kind, const FoundFn& fn) {
    std::unordered_set<std::string> seen;  // only with several packs
    const bool several = packs_.packs().size() > 1;
    for (size_t pack = 0; pack < packs_.packs().size(); ++pack) {  // bounded: the packs
        auto idx = packs_.index(pack, kind);
        if (!idx) return idx.err();
        const bool has_parents = (*idx)->ref_lists() > 0;
        bool failed = false;
        Status st = (*idx)->iter_all([&](const BTreeEntry& e) {
            if (failed || (several && !seen.emplace(e.key).second)) return;
            RecordPos pos;
            if (!parse_record_pos(e.value, static_cast<uint32_t>(pack), pos)) {
                failed = true;
                return;
            }
            fn(e.key, has_parents ? e.ref_list(0) : std::string_view(), has_parents, pos);
        });
        if (!st) return st;
        if (failed) return corrupt("bad index entry in pack " + packs_.packs()[pack].name + std::string(index_suffix(kind)));
    }
    return Ok{};
}

Result<uint64_t> PackReader::key_count(IndexKind kind) {
    uint64_t n = 0;
    for (size_t pack = 0; pack < packs_.packs().size(); ++pack) {  // bounded: the packs
        auto idx = packs_.index(pack, kind);
        if (!idx) return idx.err();
        n += (*idx)->key_count();
    }
    return n;
}

Result<PackReader::Pack*> PackReader::pack(uint32_t pack) {
    if (pack >= files_.size()) return corrupt("no such pack");
    Pack& p = files_[pack];
    if (p.file) return &p;
    auto f = std::make_unique<OpenFile>();
    std::string path = repo_ + "/packs/" + packs_.packs()[pack].name + ".pack";
    if (int e = store_.open_read(path, *f)) return io_error(e, "cannot open pack " + packs_.packs()[pack].name);
    const uint64_t size = f->info.size;
    const uint64_t room = limits_.resident_pack_bytes - std::min(limits_.resident_pack_bytes, whole_bytes_);
    if (size <= limits_.whole_pack_bytes && size <= room) {
        // One read now instead of one per record later.
        p.bytes.reset(new char[static_cast<size_t>(size)]);
        ssize_t got = store_.read_full(*f, p.bytes.get(), static_cast<size_t>(size), 0);
        if (got < 0) return io_error(static_cast<int>(-got), "cannot read pack");
        if (static_cast<uint64_t>(got) != size)
            return corrupt("pack " + packs_.packs()[pack].name + " shrank while reading");
        p.whole = true;
        whole_bytes_ += size;
    }
    p.file = std::move(f);
    return &p;
}

Result<OpenFile*> PackReader::pack_file(uint32_t pack) {
    auto p = this->pack(pack);
    if (!p) return p.err();
    return (*p)->file.get();
}

Result<PackReader::BlockFrame> PackReader::frame(const RecordPos& pos) {
    auto pk = pack(pos.pack);
    if (!pk) return pk.err();
    Pack& p = **pk;
    uint64_t size = p.file->info.size;
    if (pos.length == 0 || pos.offset > size || pos.length > size - pos.offset)
        return corrupt("index entry points beyond the end of pack " + packs_.packs()[pos.pack].name);
    std::string_view head;
    if (p.whole) {
        head = std::string_view(p.bytes.get() + pos.offset, static_cast<size_t>(pos.length));
    } else {
        head_.resize(static_cast<size_t>(std::min<uint64_t>(pos.length, limits_.max_record_header)));
        ssize_t got = store_.read_full(*p.file, head_.data(), head_.size(), pos.offset);
        if (got < 0) return io_error(static_cast<int>(-got), "cannot read pack");
        if (static_cast<size_t>(got) < head_.size()) return corrupt("pack is truncated");
        head = head_;
    }
    auto rec = parse_record_header(head);
    if (!rec) return rec.err();
    if (!rec->names.empty() || rec->length != pos.length - rec->header_size)
        return corrupt("pack record does not match its index entry");
    auto h = gc::parse_block_header(head.substr(rec->header_size));
    if (!h) return h.err();
    if (h->z_length != rec->length - h->header_size) return corrupt("groupcompress block length mismatch");
    std::string_view stored = head.size() == pos.length ? head.substr(rec->header_size) : std::string_view();
    return BlockFrame{rec->header_size, *h, stored};
}

Result<std::string_view> PackReader::content(const RecordPos& pos, uint64_t want) {
    const BlockId id{pos.pack, pos.offset};
    auto it = cache_.find(id);
    if (it != cache_.end()) {
        it->second.used = ++tick_;
        if (want > it->second.content.size()) return corrupt("record lies beyond the end of its groupcompress block");
        return std::string_view(it->second.content);
    }
    auto fr = frame(pos);
    if (!fr) return fr.err();
    uint64_t n = fr->block.content_length;
    if (want > n) return corrupt("record lies beyond the end of its groupcompress block");
    bool cache = n <= limits_.block_cache_bytes / 4 && n <= limits_.gc.max_content;
    const size_t take = static_cast<size_t>(cache ? n : want);
    auto c = !fr->stored.empty()
                 ? gc::block_content(fr->stored, take, limits_.gc)
                 : gc::read_block_prefix(store_, *files_[pos.pack].file, pos.offset, pos.length, take, limits_.gc);
    if (!c) return c.err();
    ++inflated_;
    if (!cache) {
        scratch_ = std::move(*c);
        return std::string_view(scratch_);
    }
    // bounded: each pass evicts one entry; the new one is not yet inserted.
    while (cache_bytes_ + c->size() > limits_.block_cache_bytes && !cache_.empty()) {
        auto old = std::min_element(cache_.begin(), cache_.end(),
                                    [](const auto& a, const auto& b) { return a.second.used < b.second.used; });
        cache_bytes_ -= old->second.content.size();
        cache_.erase(old);
    }
    cache_bytes_ += c->size();
    auto& slot = cache_[id];
    slot.content = std::move(*c);
    slot.used = ++tick_;
    return std::string_view(slot.content);
}

Result<std::string_view> PackReader::text_view(const RecordPos& pos, std::string& scratch) {
    if (pos.start == 0 && pos.end == 0) return std::string_view();
    auto c = content(pos, pos.end);
    if (!c) return c.err();
    return gc::extract_text_view(*c, pos.start, pos.end, scratch, limits_.gc);
}

Result<std::string> PackReader::text(const RecordPos& pos) {
    std::string out;
    auto v = text_view(pos, out);
    if (!v) return v.err();
    if (v->data() != out.data()) out.assign(*v);
    return out;
}

// ---- the stream --------------------------------------------------------------

Result<RecordPos> PackPages::locate(std::string_view key) {
    key_.assign(key);
    auto it = where_.find(key_);
    if (it != where_.end()) return it->second;
    RecordPos found;
    bool ok = false;
    Status st = r_.lookup(IndexKind::Chk, std::span<const std::string_view>(&key, 1),
                          [&](std::string_view, std::string_view, bool, const RecordPos& p) {
                              found = p;
                              ok = true;
                          });
    if (!st) return st.err();
    if (!ok) return Error{Errc::NotFound, 0, "CHK page " + std::string(key) + " is missing"};
    where_.emplace(key_, found);
    return found;
}

Status PackPages::prefetch(std::span<const std::string> keys) {
    std::vector<std::string_view> missing;
    for (const auto& k : keys)  // bounded: the caller's keys
        if (!where_.count(k)) missing.push_back(k);
    if (missing.size() < 2) return Ok{};  // page_view looks a single page up itself
    return r_.lookup(IndexKind::Chk, missing, [&](std::string_view key, std::string_view, bool, const RecordPos& p) {
        where_.emplace(std::string(key), p);
    });
}

Result<std::string_view> PackPages::page_view(std::string_view key) {
    auto pos = locate(key);
    if (!pos) return pos.err();
    return r_.text_view(*pos, scratch_);
}

Result<std::string> PackPages::page(std::string_view key) {
    auto v = page_view(key);
    if (!v) return v.err();
    return std::string(*v);
}

namespace {

// One key of a substream and where its record lives.
struct Entry {
    std::string key;      // elements joined by \0
    std::string parents;  // block-header form: keys joined by \t, or "None:"
    RecordPos pos;
};

enum class Phase : uint8_t { Magic, Format, Signatures, Revisions, Inventories, ChkId, ChkPid, Texts, End, Done };

}  // namespace

struct StreamSource::State {
    std::unique_ptr<PackReader> r;
    std::string format;
    std::vector<std::string> revisions;
    bool missing_keys = false;  // get_stream_for_missing_keys
    // The revisions are every revision the repository holds: every
    // inventory, CHK page and text it holds goes, read from the indices
    // instead of found by walking the inventories (docs/protocol/streams.md#whole-repository-fetches).
    bool whole = false;
    StreamLimits limits;
    Phase phase = Phase::Magic;
    bool prepared = false;
    std::vector<Entry> entries;
    size_t at = 0;
    std::string buf;             // the bytes of the current piece
    bool pending = false;        // a second piece (the stored block) follows
    StreamPiece pending_piece;
    // Gathered on the way.
    std::vector<std::string> rev_parents;  // parents of the revisions sent (revision ids)
    std::vector<std::string> id_roots, pid_roots, old_id_roots, old_pid_roots;
    chk::SearchKeyKind search_kind = chk::SearchKeyKind::Plain;
    std::vector<std::string> text_keys;
    std::unordered_map<std::string, RecordPos> page_pos;
    StreamStats stats;
    std::string kind_;  // reused by emit_group
    std::vector<std::pair<uint64_t, uint64_t>> offsets_;

    Status prepare();
    Status collect(IndexKind kind, std::span<const std::string_view> keys, bool require);
    Status collect_all(IndexKind kind);
    PackReader::FoundFn found_fn();
    void sort_entries();
    Status read_roots(std::span<const Entry> invs, std::vector<std::string>& id, std::vector<std::string>& pid);
    Status chk_phase(bool id_map);
    Result<bool> emit_group(StreamPiece& out);
    std::string_view substream() const;
};

std::string_view StreamSource::State::substream() const {
    switch (phase) {
    case Phase::Signatures: return "signatures";
    case Phase::Revisions: return "revisions";
    case Phase::Inventories: return "inventories";
    case Phase::ChkId:
    case Phase::ChkPid: return "chk_bytes";
    default: return "texts";
    }
}

namespace {
size_t distinct(std::span<const std::string_view> keys) {
    std::vector<std::string_view> v(keys.begin(), keys.end());
    std::sort(v.begin(), v.end());
    return static_cast<size_t>(std::unique(v.begin(), v.end()) - v.begin());
}
}  // namespace

Status StreamSource::State::collect(IndexKind kind, std::span<const std::string_view> keys, bool require) {
    entries.clear();
    at = 0;
    if (keys.size() > limits.max_keys) return limit_exceeded("a substream would hold too many keys");
    Status st = r->lookup(kind, keys, found_fn());
    if (!st) return st;
    if (require && entries.size() != keys.size() && entries.size() != distinct(keys)) {
        std::unordered_set<std::string_view> have;
        for (const auto& e : entries) have.insert(e.key);  // bounded: the entries found
        for (auto k : keys)                                // bounded: the keys asked
            if (!have.count(k)) {
                if (kind == IndexKind::Texts)
                    return corrupt("text " + printable(k) + " named by an inventory is not in the repository");
                return not_found_revision(k);
            }
    }
    sort_entries();
    return Ok{};
}

Status StreamSource::State::collect_all(IndexKind kind) {
    entries.clear();
    at = 0;
    Status st = r->lookup_all(kind, found_fn());
    if (!st) return st;
    if (entries.size() > limits.max_keys) return limit_exceeded("a substream would hold too many keys");
    sort_entries();
    return Ok{};
}

// Each key found becomes an entry, its parents in block-header form.
PackReader::FoundFn StreamSource::State::found_fn() {
    return [this](std::string_view key, std::string_view parents, bool has, const RecordPos& p) {
        Entry e{std::string(key), has ? std::string(parents) : std::string("None:"), p};
        if (has) std::replace(e.parents.begin(), e.parents.end(), '\r', '\t');
        entries.push_back(std::move(e));
    };
}

// I/O order: each stored block is read and sent once.
void StreamSource::State::sort_entries() {
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
        return std::tie(a.pos.pack, a.pos.offset, a.pos.start, a.key) <
               std::tie(b.pos.pack, b.pos.offset, b.pos.start, b.key);
    });
}

Status StreamSource::State::read_roots(std::span<const Entry> invs, std::vector<std::string>& id,
                                       std::vector<std::string>& pid) {
    std::unordered_set<std::string> seen_id, seen_pid;
    for (const auto& e : invs) {  // bounded: the inventories found
        auto text = r->text(e.pos);
        if (!text) return text.err();
        auto inv = parse_inventory(*text);
        if (!inv) {
            Error err = inv.err();
            err.detail = "inventory " + printable(e.key) + ": " + err.detail;
            return err;
        }
        auto kind = inventory_search_key(*inv);
        if (!kind) return kind.err();
        search_kind = *kind;
        if (seen_id.insert(inv->id_to_entry).second) id.push_back(inv->id_to_entry);
        if (!inv->parent_id_basename_to_file_id.empty() && seen_pid.insert(inv->parent_id_basename_to_file_id).second)
            pid.push_back(inv->parent_id_basename_to_file_id);
    }
    return Ok{};
}

Status StreamSource::State::chk_phase(bool id_map) {
    PackPages src(*r, page_pos);
    const auto& roots = id_map ? id_roots : pid_roots;
    const auto& old = id_map ? old_id_roots : old_pid_roots;
    // The texts of the new id_to_entry items: (file id, revision) keys.
    std::unordered_set<std::string, StringHash, std::equal_to<>> seen;
    std::string key;
    chk::ItemFn on_item;
    if (id_map && !missing_keys)
        on_item = [&](std::string_view, std::string_view value) -> Status {
            auto tk = entry_text_key_view(value);
            if (!tk) return tk.err();
            key.assign(tk->first);
            key += '\0';
            key += tk->second;
            if (!seen.count(key)) {
                seen.insert(key);
                text_keys.push_back(key);
            }
            return Ok{};
        };
    auto diff = chk::difference(src, search_kind, roots, old, limits.chk, on_item);
    if (!diff) return diff.err();
    entries.clear();
    at = 0;
    for (auto& k : diff->pages) {  // bounded: the pages of the difference
        auto it = page_pos.find(k);
        if (it == page_pos.end()) return corrupt("CHK page without a position");
        entries.push_back(Entry{std::move(k), "None:", it->second});
    }
    sort_entries();
    return Ok{};
}

Status StreamSource::State::prepare() {
    prepared = true;
    std::vector<std::string_view> keys(revisions.begin(), revisions.end());
    switch (phase) {
    case Phase::Signatures: return collect(IndexKind::Signatures, keys, false);
    case Phase::Revisions: {
        if (Status st = collect(IndexKind::Revisions, keys, true); !st) return st;
        std::unordered_set<std::string_view> in(keys.begin(), keys.end());
        std::set<std::string> ps;
        for (const auto& e : entries) {  // bounded: the revisions
            for (auto p : split(e.parents, '\t'))  // bounded: the revision's parents
                if (!p.empty() && p != kNull && !in.count(p)) ps.emplace(p);
        }
        rev_parents.assign(ps.begin(), ps.end());
        if (!missing_keys && rev_parents.empty() && limits.whole_repository) {
            auto n = r->key_count(IndexKind::Revisions);
            if (!n) return n.err();
            whole = *n == entries.size();
            stats.whole_repository = whole;
        }
        return Ok{};
    }
    case Phase::Inventories: {
        if (Status st = collect(IndexKind::Inventories, keys, !missing_keys); !st) return st;
        if (whole) return Ok{};
        if (Status st = read_roots(entries, id_roots, pid_roots); !st) return st;
        if (missing_keys || rev_parents.empty()) return Ok{};
        // The inventories of the parents outside the set that this
        // repository has: their maps are what the client already holds.
        std::vector<Entry> mine = std::move(entries);
        std::vector<std::string_view> pk(rev_parents.begin(), rev_parents.end());
        if (Status st = collect(IndexKind::Inventories, pk, false); !st) return st;
        std::vector<Entry> parents_inv = std::move(entries);
        entries = std::move(mine);
        at = 0;
        return read_roots(parents_inv, old_id_roots, old_pid_roots);
    }
    case Phase::ChkId: return whole ? collect_all(IndexKind::Chk) : chk_phase(true);
    case Phase::ChkPid: return whole ? Status(Ok{}) : chk_phase(false);
    case Phase::Texts: {
        if (whole) return collect_all(IndexKind::Texts);
        std::vector<std::string_view> tk(text_keys.begin(), text_keys.end());
        return collect(IndexKind::Texts, tk, true);
    }
    default: return Ok{};
    }
}

// The next record: the entries of one stored block, as a
// groupcompress-block network record.
Result<bool> StreamSource::State::emit_group(StreamPiece& out) {
    size_t i = at, j = at;
    const RecordPos& p = entries[i].pos;
    // bounded: j only grows, up to entries.size()
    while (j < entries.size() && entries[j].pos.pack == p.pack && entries[j].pos.offset == p.offset) ++j;
    at = j;
    auto fr = r->frame(p);
    if (!fr) return fr.err();
    uint64_t n = fr->block.content_length;
    uint64_t used = 0, last = 0;
    for (size_t k = i; k < j; ++k) {  // bounded: this block's entries
        const RecordPos& q = entries[k].pos;
        if (q.length != p.length || q.end > n) return corrupt("index entry lies outside its groupcompress block");
        used += q.end - q.start;
        last = std::max(last, q.end);
    }
    std::vector<std::pair<uint64_t, uint64_t>>& offsets = offsets_;
    offsets.clear();
    for (size_t k = i; k < j; ++k) offsets.emplace_back(entries[k].pos.start, entries[k].pos.end);  // bounded: entries
    std::string block;  // empty: send the stored one
    // Stored only when the keys sent use most of the block: a stored block
    // of a pull mostly used by many files' runs would carry every text the
    // client already has (docs/formats/groupcompress.md#blocks-on-the-wire).
    const uint64_t keep = limits.stored_use_percent;
    if (n <= limits.max_rewrite_content && 100 * used < keep * n) {
        auto c = r->content(p, last);  // (frame's stored view is not used on this path)
        if (!c) return c.err();
        std::string_view content = c->substr(0, static_cast<size_t>(last));
        if (100 * used > keep * last) {
            auto b = make_block(content, limits.rewrite_level);  // trim after the last entry sent
            if (!b) return b.err();
            block = std::move(*b);
            ++stats.blocks_trimmed;
        } else {
            gc::BlockWriter w(limits.max_rewrite_content);  // rebuild from the texts sent
            for (size_t k = i; k < j; ++k) {  // bounded: this block's entries
                auto t = gc::extract_text(content, entries[k].pos.start, entries[k].pos.end, limits.gc);
                if (!t) return t.err();
                auto at_ = w.add_text(*t);
                if (!at_) return at_.err();
                offsets[k - i] = *at_;
            }
            auto b = make_block(w.content(), limits.rewrite_level);
            if (!b) return b.err();
            block = std::move(*b);
            ++stats.blocks_rebuilt;
        }
    }
    // The network record's header: per key its name, parents, start, end.
    // Built and deflated within this call: a buffer the thread keeps.
    thread_local std::string header;
    header.clear();
    for (size_t k = i; k < j; ++k) {  // bounded: this block's entries
        header += entries[k].key;
        header += '\n';
        header += entries[k].parents;
        header += '\n';
        append_line(header, offsets[k - i].first);
        append_line(header, offsets[k - i].second);
    }
    // The fastest zlib level: the reader only inflates it, and the header
    // (names and numbers) is a large part of a stream's CPU at the default;
    // a small one is not compressed at all (limits.compress_header_bytes).
    auto zh = zlib_compress(header, header.size() < limits.compress_header_bytes ? Z_NO_COMPRESSION : Z_BEST_SPEED);
    const size_t header_size = header.size();
    if (header.capacity() > kKeptScratchBytes) header = std::string();
    if (!zh) return zh.err();
    uint64_t block_len = block.empty() ? p.length - fr->record_header : block.size();
    std::string& kind = kind_;
    kind.assign("groupcompress-block\n");
    append_line(kind, zh->size());
    append_line(kind, header_size);
    append_line(kind, block_len);
    uint64_t data_len = kind.size() + zh->size() + block_len;
    buf.assign("B");
    append_line(buf, data_len);
    buf += substream();
    buf += "\n\n";
    buf += kind;
    buf += *zh;
    ++stats.records;
    if (!block.empty()) {
        buf += block;
    } else if (!fr->stored.empty()) {
        // In memory already (a small pack read whole): no file read to send it.
        pending = true;
        pending_piece = StreamPiece{fr->stored, nullptr, 0, 0};
        ++stats.blocks_as_stored;
    } else {
        auto f = r->pack_file(p.pack);
        if (!f) return f.err();
        pending = true;
        pending_piece = StreamPiece{{}, *f, p.offset + fr->record_header, block_len};
        ++stats.blocks_as_stored;
    }
    out = StreamPiece{buf, nullptr, 0, 0};
    uint64_t keys = j - i;
    switch (phase) {
    case Phase::Signatures: stats.signatures += keys; break;
    case Phase::Revisions: stats.revisions += keys; break;
    case Phase::Inventories: stats.inventories += keys; break;
    case Phase::ChkId:
    case Phase::ChkPid: stats.chk_pages += keys; break;
    default: stats.texts += keys; break;
    }
    return true;
}

StreamSource::StreamSource(std::unique_ptr<State> s) : s_(std::move(s)) {}
StreamSource::~StreamSource() = default;

std::unique_ptr<StreamSource> StreamSource::for_revisions(std::unique_ptr<PackReader> reader, std::string format,
                                                          std::vector<std::string> revisions,
                                                          const StreamLimits& limits) {
    auto s = std::make_unique<State>();
    s->r = std::move(reader);
    s->format = std::move(format);
    s->revisions = std::move(revisions);
    s->limits = limits;
    return std::unique_ptr<StreamSource>(new StreamSource(std::move(s)));
}

std::unique_ptr<StreamSource> StreamSource::for_inventories(std::unique_ptr<PackReader> reader, std::string format,
                                                            std::vector<std::string> revids,
                                                            const StreamLimits& limits) {
    auto src = for_revisions(std::move(reader), std::move(format), std::move(revids), limits);
    src->s_->missing_keys = true;
    return src;
}

const StreamStats& StreamSource::stats() const { return s_->stats; }

Result<bool> StreamSource::next(StreamPiece& out) {
    State& s = *s_;
    if (s.pending) {
        s.pending = false;
        out = s.pending_piece;
        return true;
    }
    // bounded: each pass either returns or moves to a later phase.
    for (;;) {
        switch (s.phase) {
        case Phase::Magic:
            s.phase = Phase::Format;
            out = StreamPiece{kContainerMagic, nullptr, 0, 0};
            return true;
        case Phase::Format:
            s.buf = "B" + std::to_string(s.format.size()) + "\n\n" + s.format;
            s.phase = s.missing_keys ? Phase::Inventories : Phase::Signatures;
            out = StreamPiece{s.buf, nullptr, 0, 0};
            return true;
        case Phase::End:
            s.phase = Phase::Done;
            out = StreamPiece{"E", nullptr, 0, 0};
            return true;
        case Phase::Done: return false;
        default: break;
        }
        if (!s.prepared) {
            if (Status st = s.prepare(); !st) return st.err();
        }
        if (s.at < s.entries.size()) return s.emit_group(out);
        s.prepared = false;
        s.entries.clear();
        s.at = 0;
        switch (s.phase) {
        case Phase::Signatures: s.phase = Phase::Revisions; break;
        case Phase::Revisions: s.phase = Phase::Inventories; break;
        case Phase::Inventories: s.phase = Phase::ChkId; break;
        case Phase::ChkId: s.phase = Phase::ChkPid; break;
        case Phase::ChkPid: s.phase = s.missing_keys ? Phase::End : Phase::Texts; break;
        default: s.phase = Phase::End; break;
        }
    }
}

}  // namespace souk::server::bzr
