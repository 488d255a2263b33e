#include "server/bzr/write_group.hpp"

#include <errno.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "server/base/strings.hpp"
#include "server/bzr/btree.hpp"
#include "server/bzr/inventory.hpp"
#include "server/bzr/lockdir.hpp"
#include "server/bzr/pack.hpp"
#include "server/store/paths.hpp"

namespace souk::server::bzr {
namespace {

// Bytes of the new pack held before they are appended to its upload/
// file (one append each; small enough to stay in the store's memory spool).
constexpr size_t kFlushBytes = 256 * 1024;
// Bytes read at once when copying a record between packs.
constexpr size_t kCopyChunk = 256 * 1024;
// Blocks whose inflated content the checks keep (most recently used).
constexpr size_t kBlockCache = 16;

constexpr std::string_view kExts[5] = {".rix", ".iix", ".tix", ".six", ".cix"};

bool has_refs(Substream k) { return k == Substream::Revisions || k == Substream::Inventories || k == Substream::Texts; }

bool is_token(std::string_view t) {
    if (t.size() != 32) return false;
    for (char c : t)  // bounded: 32 characters
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

// "offset length start end", as 2a indices store them.
bool parse_value(std::string_view v, GroupEntry& e) {
    auto parts = split(v, ' ');
    return parts.size() == 4 && parse_u64(parts[0], e.offset) && parse_u64(parts[1], e.length) &&
           parse_u64(parts[2], e.start) && parse_u64(parts[3], e.end);
}

std::string value_of(const GroupEntry& e) {
    return std::to_string(e.offset) + " " + std::to_string(e.length) + " " + std::to_string(e.start) + " " +
           std::to_string(e.end);
}

std::vector<std::string> refs_of(const BTreeEntry& be) {
    std::vector<std::string> out;
    for_each_ref(be.ref_list(0), [&](std::string_view r) { out.emplace_back(r); });
    return out;
}

Error with_detail(Error e, const std::string& what) {
    e.detail = what + (e.detail.empty() ? "" : ": " + e.detail);
    return e;
}

int64_t now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Remove upload/ files older than the bound, except the packs of `keep`.
void clean_upload(Store& store, const std::string& upload, std::span<const std::string> keep, double stale) {
    std::vector<std::string> names;
    if (store.list_dir(upload, names)) return;
    const int64_t limit = now_ns() - static_cast<int64_t>(stale * 1e9);
    for (const std::string& n : names) {  // bounded: the directory's entries
        bool kept = false;
        for (const std::string& k : keep)  // bounded: the resume tokens
            if (n.rfind(k, 0) == 0) kept = true;
        FileInfo fi;
        if (kept || store.stat(join(upload, n), fi) || (fi.mode & 0170000) != 0100000) continue;
        if (fi.mtime_ns < limit) store.unlink(join(upload, n));
    }
}

// Remove files in packs/ and indices/ that pack-names does not list
// (`listed`), named like a pack (32 hex digits and a pack or index
// extension) and unchanged for `stale` seconds by their ctime, which a
// rename renews: what a process killed between moving its files into
// place and rewriting pack-names left. Run under the repository lock;
// the age keeps a publisher that moved its files and waits for the lock.
void sweep_unlisted(Store& store, const std::string& repo, const std::set<std::string>& listed, double stale) {
    const int64_t limit = now_ns() - static_cast<int64_t>(stale * 1e9);
    for (const char* dir : {"packs", "indices"}) {  // bounded: two directories
        std::vector<std::string> names;
        if (store.list_dir(join(repo, dir), names)) continue;
        for (const std::string& n : names) {  // bounded: the directory's entries
            const size_t dot = n.find('.');
            if (dot == std::string::npos || !is_token(n.substr(0, dot)) || listed.count(n.substr(0, dot))) continue;
            const std::string_view ext = std::string_view(n).substr(dot);
            if (ext != ".pack" && std::find(std::begin(kExts), std::end(kExts), ext) == std::end(kExts)) continue;
            FileInfo fi;
            const std::string path = join(join(repo, dir), n);
            if (store.stat(path, fi) || (fi.mode & 0170000) != 0100000 || fi.ctime_ns >= limit) continue;
            store.unlink(path);
        }
    }
}

}  // namespace

// ---------------------------------------------------------------- Impl ----

// What the checks read: the repository's packs as they were when first
// needed, open pack files and recently inflated blocks.
struct WriteGroup::Impl {
    bool loaded = false;
    PackCollection packs;
    std::map<std::string, OpenFile> files;
    std::vector<std::pair<std::string, std::string>> blocks;  // (path@offset, content), most recent last

    struct Hit {
        size_t pack = 0;
        std::string refs;
        GroupEntry entry;
    };

    Status load(Store& store, const std::string& repo) {
        if (loaded) return Status(Ok{});
        auto pc = PackCollection::open(store, repo);
        if (pc) packs = std::move(pc).value();
        else if (pc.err().code != Errc::NotFound) return with_detail(pc.err(), "cannot read pack-names");
        loaded = true;
        return Status(Ok{});
    }

    // For each of `keys` present in an existing pack, the first pack's entry.
    Status lookup(Store& store, const std::string& repo, Substream kind, const std::vector<std::string>& keys,
                  std::map<std::string, Hit, std::less<>>& out) {
        if (Status st = load(store, repo); !st) return st;
        std::vector<std::string_view> left(keys.begin(), keys.end());
        for (size_t p = 0; p < packs.packs().size() && !left.empty(); ++p) {  // bounded: the packs
            auto idx = packs.index(p, kind);
            if (!idx) return idx.err();
            Status bad(Ok{});
            Status st = (*idx)->lookup(left, [&](const BTreeEntry& be) {
                Hit h;
                h.pack = p;
                h.refs = std::string(be.ref_list(0));
                if (!parse_value(be.value, h.entry) && bad) bad = corrupt("bad index value in pack " + packs.packs()[p].name);
                out.emplace(std::string(be.key), std::move(h));
            });
            if (!st) return st;
            if (!bad) return bad;
            std::erase_if(left, [&](std::string_view k) { return out.find(k) != out.end(); });
        }
        return Status(Ok{});
    }

    Result<std::string> read(Store& store, const std::string& path, const GroupEntry& e, const gc::Limits& limits) {
        if (e.start == 0 && e.end == 0) return std::string();
        std::string id = path + "@" + std::to_string(e.offset);
        const std::string* content = nullptr;
        for (auto& b : blocks)  // bounded: kBlockCache entries
            if (b.first == id && b.second.size() >= e.end) content = &b.second;
        if (!content) {
            auto f = files.find(path);
            if (f == files.end()) {
                OpenFile of;
                if (int err = store.open_read(path, of)) return io_error(err, "cannot open a pack");
                f = files.emplace(path, std::move(of)).first;
            }
            auto c = gc::read_block_prefix(store, f->second, e.offset, e.length, static_cast<size_t>(e.end), limits);
            if (!c) return c.err();
            std::erase_if(blocks, [&](const auto& b) { return b.first == id; });
            if (blocks.size() >= kBlockCache) blocks.erase(blocks.begin());
            blocks.emplace_back(id, std::move(c).value());
            content = &blocks.back().second;
        }
        return gc::extract_text(*content, e.start, e.end, limits);
    }
};

// ----------------------------------------------------------- lifecycle ----

WriteGroup::WriteGroup(Store& store, std::string repo, const WriteGroupLimits& limits)
    : store_(store), repo_(std::move(repo)), limits_(limits), impl_(std::make_unique<Impl>()) {}

WriteGroup::~WriteGroup() {
    if (!done_ && !upload_name_.empty()) store_.unlink(join(repo_, upload_name_));
}

Result<std::unique_ptr<WriteGroup>> WriteGroup::start(Store& store, std::string repo,
                                                      std::span<const std::string> resume_tokens,
                                                      const WriteGroupLimits& limits) {
    std::unique_ptr<WriteGroup> g(new WriteGroup(store, std::move(repo), limits));
    const std::string upload = join(g->repo_, "upload");
    if (int e = store.mkdir(upload, -1); e && e != EEXIST) return io_error(e, "cannot create upload/");
    clean_upload(store, upload, resume_tokens, limits.stale_upload);
    for (const std::string& tok : resume_tokens) {  // bounded: the client's tokens
        if (!is_token(tok)) return Error{Errc::NotFound, 0, "Malformed write group token"};
        if (std::find(g->resumed_.begin(), g->resumed_.end(), tok) != g->resumed_.end()) continue;
        FileInfo fi;
        if (store.stat(join(upload, tok + ".pack"), fi))
            return Error{Errc::NotFound, 0, "missing suspended pack upload/" + tok + ".pack"};
        g->resumed_.push_back(tok);
        const uint32_t slot = static_cast<uint32_t>(g->resumed_.size());
        for (size_t k = 0; k < 5; ++k) {  // bounded: five indices
            const std::string path = join(upload, tok + std::string(kExts[k]));
            auto r = BTreeReader::open(store, path);
            if (!r) return Error{Errc::NotFound, 0, "cannot read upload/" + tok + std::string(kExts[k])};
            Status bad(Ok{});
            Status st = r->iter_all([&](const BTreeEntry& be) {
                GroupEntry e;
                e.slot = slot;
                if (has_refs(Substream(k))) e.parents = refs_of(be);
                if (!parse_value(be.value, e)) bad = corrupt("bad index value");
                if (g->entries_[k].emplace(std::string(be.key), std::move(e)).second) ++g->total_keys_;
            });
            if (!st || !bad) return Error{Errc::NotFound, 0, "cannot read upload/" + tok + std::string(kExts[k])};
            if (g->total_keys_ > limits.max_keys) return limit_exceeded("too many keys in the resumed write group");
        }
    }
    return g;
}

// ------------------------------------------------------------ the pack ----

Status WriteGroup::flush() {
    if (buffer_.empty()) return Status(Ok{});
    uint64_t old = 0;
    const uint64_t expect = written_ - buffer_.size();
    if (int e = store_.append(join(repo_, upload_name_), buffer_, -1, &old))
        return io_error(e, "cannot write the new pack");
    if (old != expect) return io_error(EIO, "the new pack changed under the write group");
    buffer_.clear();
    return Status(Ok{});
}

Status WriteGroup::begin_raw_record(uint64_t size, uint64_t& offset) {
    if (in_record_ || finished_) return corrupt("write group: record out of order");
    if (upload_name_.empty()) {
        upload_name_ = "upload/" + random_token() + ".pack";
        buffer_.assign(kContainerMagic);
        md5_.update(kContainerMagic);
        written_ = kContainerMagic.size();
    }
    if (size > limits_.max_pack_bytes || written_ + size > limits_.max_pack_bytes)
        return limit_exceeded("the new pack would exceed " + std::to_string(limits_.max_pack_bytes) + " bytes");
    offset = written_;
    record_left_ = size;
    in_record_ = true;
    if (size == 0) in_record_ = false;
    return Status(Ok{});
}

Status WriteGroup::begin_record(uint64_t length, uint64_t& offset, uint64_t& size) {
    auto header = record_header(length, {});
    if (!header) return header.err();
    size = header->size() + length;
    if (Status st = begin_raw_record(size, offset); !st) return st;
    return record_data(*header);
}

Status WriteGroup::record_data(std::string_view data) {
    if (!in_record_ || data.size() > record_left_) return corrupt("write group: more record bytes than announced");
    record_left_ -= data.size();
    md5_.update(data);
    written_ += data.size();
    buffer_.append(data);
    if (record_left_ == 0) in_record_ = false;
    if (buffer_.size() >= kFlushBytes) return flush();
    return Status(Ok{});
}

Status WriteGroup::end_record() {
    if (in_record_ || record_left_) return corrupt("write group: record shorter than announced");
    return Status(Ok{});
}

Status WriteGroup::add_entry(Substream kind, std::string key, GroupEntry entry) {
    auto& m = entries_[static_cast<size_t>(kind)];
    if (m.find(key) != m.end()) return Status(Ok{});
    if (total_keys_ >= limits_.max_keys)
        return limit_exceeded("more than " + std::to_string(limits_.max_keys) + " keys in one write group");
    if (!has_refs(kind)) entry.parents.clear();
    m.emplace(std::move(key), std::move(entry));
    ++total_keys_;
    return Status(Ok{});
}

bool WriteGroup::has_data() const { return total_keys_ > 0; }

Status WriteGroup::finish_data() {
    if (finished_) return Status(Ok{});
    if (in_record_) return corrupt("write group: the last record is incomplete");
    finished_ = true;
    if (upload_name_.empty()) return Status(Ok{});
    buffer_ += "E";
    md5_.update("E");
    written_ += 1;
    if (Status st = flush(); !st) return st;
    md5_hex_ = md5_.hex_digest();
    return Status(Ok{});
}

// ------------------------------------------------------------- reading ----

Result<std::string> WriteGroup::text(Substream kind, const std::string& key) {
    const auto& m = entries_[static_cast<size_t>(kind)];
    if (auto it = m.find(key); it != m.end()) {
        const GroupEntry& e = it->second;
        std::string path = e.slot == 0 ? join(repo_, upload_name_) : join(repo_, "upload/" + resumed_[e.slot - 1] + ".pack");
        return impl_->read(store_, path, e, limits_.gc);
    }
    std::map<std::string, Impl::Hit, std::less<>> hits;
    if (Status st = impl_->lookup(store_, repo_, kind, {key}, hits); !st) return st.err();
    auto h = hits.find(key);
    if (h == hits.end()) return Error{Errc::NotFound, 0, key};
    return impl_->read(store_, join(repo_, "packs/" + impl_->packs.packs()[h->second.pack].name + ".pack"),
                       h->second.entry, limits_.gc);
}

namespace {

// Pages of the group and the repository, for the CHK walks.
class GroupPages final : public chk::PageSource {
public:
    explicit GroupPages(std::function<Result<std::string>(const std::string&)> f) : f_(std::move(f)) {}
    Result<std::string> page(std::string_view key) override { return f_(std::string(key)); }

private:
    std::function<Result<std::string>(const std::string&)> f_;
};

std::string list_text(const std::set<std::string>& keys) {
    std::string out = "[";
    size_t n = 0;
    for (const auto& k : keys) {  // bounded: at most 20 shown
        if (n++ == 20) {
            out += ", ...";
            break;
        }
        if (n > 1) out += ", ";
        std::string shown = k;
        std::replace(shown.begin(), shown.end(), '\0', '/');
        out += "'" + printable(shown, 120) + "'";
    }
    return out + "]";
}

}  // namespace

// Keys of `keys` absent from the group and from the repository.
static Result<std::set<std::string>> absent_keys(WriteGroup::Impl& impl, Store& store, const std::string& repo,
                                                 const std::map<std::string, GroupEntry, std::less<>>& group,
                                                 Substream kind, const std::set<std::string>& keys) {
    std::vector<std::string> ask;
    for (const auto& k : keys)  // bounded: the keys asked
        if (group.find(k) == group.end()) ask.push_back(k);
    std::map<std::string, WriteGroup::Impl::Hit, std::less<>> hits;
    if (!ask.empty())
        if (Status st = impl.lookup(store, repo, kind, ask, hits); !st) return st.err();
    std::set<std::string> out;
    for (const auto& k : ask)  // bounded: the keys asked
        if (hits.find(k) == hits.end()) out.insert(k);
    return out;
}

Result<MissingKeys> WriteGroup::missing_basis(bool check_texts) {
    const auto& revs = entries_[size_t(Substream::Revisions)];
    std::set<std::string> parents;
    for (const auto& [rev, e] : revs)  // bounded: the group's revisions
        for (const auto& p : e.parents)
            if (p != "null:" && revs.find(p) == revs.end()) parents.insert(p);
    if (parents.empty()) return MissingKeys{};
    auto not_revs = absent_keys(*impl_, store_, repo_, revs, Substream::Revisions, parents);
    if (!not_revs) return not_revs.err();
    auto missing = absent_keys(*impl_, store_, repo_, entries_[size_t(Substream::Inventories)], Substream::Inventories,
                               *not_revs);
    if (!missing) return missing.err();
    if (missing->empty()) return MissingKeys{};
    if (check_texts) {
        // The texts the revisions referring to them introduce.
        std::set<std::string> texts;
        for (const auto& [rev, e] : revs) {  // bounded: the group's revisions
            bool refers = false;
            for (const auto& p : e.parents) refers = refers || missing->count(p);
            if (!refers) continue;
            auto inv_text = text(Substream::Inventories, rev);
            if (!inv_text) continue;  // the commit checks report it
            auto inv = parse_inventory(*inv_text);
            if (!inv) return inv.err();
            GroupPages src([this](const std::string& k) { return text(Substream::Chk, k); });
            auto items = chk::map_items(src, inv->id_to_entry, limits_.chk);
            if (!items) return items.err();
            for (const auto& item : *items) {  // bounded: the map's items (chk limits)
                auto tk = entry_text_key(item.value);
                if (tk && tk->second == rev) texts.insert(tk->first + '\0' + tk->second);
            }
        }
        auto absent = absent_keys(*impl_, store_, repo_, entries_[size_t(Substream::Texts)], Substream::Texts, texts);
        if (!absent) return absent.err();
        if (absent->empty()) return MissingKeys{};
    }
    MissingKeys out;
    for (const auto& p : *missing) out.emplace_back("inventories", p);  // bounded: the missing set
    return out;
}

// Breezy's _check_new_inventories.
Status WriteGroup::check_commit() {
    const auto& revs = entries_[size_t(Substream::Revisions)];
    const auto& invs = entries_[size_t(Substream::Inventories)];
    if (revs.empty()) return Status(Ok{});
    std::set<std::string> new_revs;
    for (const auto& [r, e] : revs) new_revs.insert(r);  // bounded: the group's revisions
    auto no_inv = absent_keys(*impl_, store_, repo_, invs, Substream::Inventories, new_revs);
    if (!no_inv) return no_inv.err();
    if (!no_inv->empty()) return corrupt("inventories missing for revisions " + list_text(*no_inv));
    // The inventories' parents (from the inventory index).
    std::set<std::string> all = new_revs;
    std::vector<std::string> outside;
    for (const auto& r : new_revs) {  // bounded: the group's revisions
        if (auto it = invs.find(r); it != invs.end()) all.insert(it->second.parents.begin(), it->second.parents.end());
        else outside.push_back(r);
    }
    if (!outside.empty()) {
        std::map<std::string, Impl::Hit, std::less<>> hits;
        if (Status st = impl_->lookup(store_, repo_, Substream::Inventories, outside, hits); !st) return st;
        for (const auto& [k, h] : hits)  // bounded: the hits
            for_each_ref(h.refs, [&](std::string_view p) { all.emplace(p); });
    }
    all.erase("null:");
    auto ghosts = absent_keys(*impl_, store_, repo_, invs, Substream::Inventories, all);
    if (!ghosts) return ghosts.err();
    for (const auto& g : *ghosts) all.erase(g);  // bounded: the ghosts
    std::set<std::string> new_id, new_pid, old_id, old_pid;
    std::optional<chk::SearchKeyKind> kind;
    for (const auto& r : all) {  // bounded: the inventories involved
        auto t = text(Substream::Inventories, r);
        if (!t) return with_detail(t.err(), "cannot read the inventory of " + printable(r));
        auto inv = parse_inventory(*t);
        if (!inv) return with_detail(inv.err(), "inventory of " + printable(r));
        if (!kind) {
            auto k = inventory_search_key(*inv);
            if (!k) return k.err();
            kind = *k;
        }
        bool is_new = new_revs.count(r) > 0;
        (is_new ? new_id : old_id).insert(inv->id_to_entry);
        if (!inv->parent_id_basename_to_file_id.empty())
            (is_new ? new_pid : old_pid).insert(inv->parent_id_basename_to_file_id);
    }
    std::set<std::string> roots = new_id;
    roots.insert(new_pid.begin(), new_pid.end());
    roots.insert(old_id.begin(), old_id.end());
    roots.insert(old_pid.begin(), old_pid.end());
    auto no_root = absent_keys(*impl_, store_, repo_, entries_[size_t(Substream::Chk)], Substream::Chk, roots);
    if (!no_root) return no_root.err();
    if (!no_root->empty())
        return corrupt("missing referenced chk root keys: " + list_text(*no_root) +
                       ". Run 'brz reconcile --canonicalize-chks' on the affected repository.");
    for (const auto& k : old_id) new_id.erase(k);  // bounded: the old roots
    for (const auto& k : old_pid) new_pid.erase(k);
    GroupPages src([this](const std::string& k) { return text(Substream::Chk, k); });
    std::vector<std::string> ni(new_id.begin(), new_id.end()), oi(old_id.begin(), old_id.end());
    std::vector<std::string> np(new_pid.begin(), new_pid.end()), op(old_pid.begin(), old_pid.end());
    std::set<std::string> text_keys;
    std::vector<std::string> problems;
    if (!ni.empty()) {
        auto d = chk::difference(src, *kind, ni, oi, limits_.chk, true);
        if (!d && d.err().code == Errc::NotFound) problems.push_back("missing chk node(s) for id_to_entry maps");
        else if (!d) return d.err();
        else
            for (const auto& item : d->new_items) {  // bounded: the new items (chk limits)
                auto tk = entry_text_key(item.value);
                if (!tk) return with_detail(tk.err(), "bad inventory entry");
                text_keys.insert(tk->first + '\0' + tk->second);
            }
    }
    if (!np.empty()) {
        auto d = chk::difference(src, *kind, np, op, limits_.chk, false);
        if (!d && d.err().code == Errc::NotFound)
            problems.push_back("missing chk node(s) for parent_id_basename_to_file_id maps");
        else if (!d) return d.err();
    }
    auto no_text = absent_keys(*impl_, store_, repo_, entries_[size_t(Substream::Texts)], Substream::Texts, text_keys);
    if (!no_text) return no_text.err();
    if (!no_text->empty()) problems.push_back("missing text keys: " + list_text(*no_text));
    if (problems.empty()) return Status(Ok{});
    std::string msg;
    for (const auto& p : problems) msg += (msg.empty() ? "" : "\n") + p;  // bounded: at most three
    return corrupt(msg);
}

// ---------------------------------------------------------- publishing ----

// Drop the new pack's keys the repository already has (Breezy's index
// skips them too); their bytes stay, unreferenced.
Status WriteGroup::prune_existing() {
    for (size_t k = 0; k < 5; ++k) {  // bounded: five indices
        std::vector<std::string> mine;
        for (const auto& [key, e] : entries_[k])  // bounded: the group's keys
            if (e.slot == 0) mine.push_back(key);
        if (mine.empty()) continue;
        std::map<std::string, Impl::Hit, std::less<>> hits;
        if (Status st = impl_->lookup(store_, repo_, Substream(k), mine, hits); !st) return st;
        for (const auto& [key, h] : hits) {  // bounded: the hits
            auto it = entries_[k].find(key);
            if (it != entries_[k].end() && it->second.slot == 0) {
                entries_[k].erase(it);
                --total_keys_;
            }
        }
    }
    return Status(Ok{});
}

Status WriteGroup::write_indices(const std::string& dir, const std::string& name, std::array<uint64_t, 5>& sizes) {
    for (size_t k = 0; k < 5; ++k) {  // bounded: five indices
        BTreeWriterOptions opt;
        opt.ref_lists = has_refs(Substream(k)) ? 1 : 0;
        opt.key_elements = Substream(k) == Substream::Texts ? 2 : 1;
        opt.optimize_for_size = true;
        std::vector<BTreeNode> nodes;
        for (const auto& [key, e] : entries_[k]) {  // bounded: the group's keys
            if (e.slot != 0) continue;
            BTreeNode n;
            n.key = key;
            if (opt.ref_lists) n.refs.push_back(e.parents);
            n.value = value_of(e);
            nodes.push_back(std::move(n));
        }
        auto bytes = write_btree(opt, std::move(nodes));
        if (!bytes) return with_detail(bytes.err(), "cannot build index " + std::string(kExts[k]));
        sizes[k] = bytes->size();
        if (int e = store_.put(join(repo_, dir + "/" + name + std::string(kExts[k])), *bytes, -1))
            return io_error(e, "cannot write index " + name + std::string(kExts[k]));
    }
    return Status(Ok{});
}

Result<std::vector<std::string>> WriteGroup::suspend() {
    if (Status st = finish_data(); !st) return st.err();
    std::vector<std::string> tokens = resumed_;
    bool mine = false;
    for (const auto& m : entries_)  // bounded: five maps
        for (const auto& [k, e] : m) mine = mine || e.slot == 0;
    if (mine) {
        std::array<uint64_t, 5> sizes{};
        if (Status st = write_indices("upload", md5_hex_, sizes); !st) return st.err();
        if (int e = store_.rename(join(repo_, upload_name_), join(repo_, "upload/" + md5_hex_ + ".pack")))
            return io_error(e, "cannot suspend the new pack");
        if (std::find(tokens.begin(), tokens.end(), md5_hex_) == tokens.end()) tokens.push_back(md5_hex_);
    } else if (!upload_name_.empty()) {
        store_.unlink(join(repo_, upload_name_));
    }
    done_ = true;
    return tokens;
}

Status WriteGroup::commit(std::string_view lock_token) {
    phase_ = GroupPhase::Data;
    if (Status st = finish_data(); !st) return st;
    phase_ = GroupPhase::Check;
    if (Status st = check_commit(); !st) return st;
    phase_ = GroupPhase::Publish;
    if (Status st = prune_existing(); !st) return st;
    return publish(lock_token, {});
}

Status WriteGroup::publish(std::string_view lock_token, const std::vector<std::string>& removed) {
    std::vector<std::pair<std::string, std::array<uint64_t, 5>>> added;
    bool mine = false;
    for (const auto& m : entries_)  // bounded: five maps
        for (const auto& [k, e] : m) mine = mine || e.slot == 0;
    if (mine) {
        // Indices first, then the pack: a reader only finds either through
        // pack-names, which changes last.
        std::array<uint64_t, 5> sizes{};
        if (Status st = write_indices("indices", md5_hex_, sizes); !st) return st;
        if (int e = store_.rename(join(repo_, upload_name_), join(repo_, "packs/" + md5_hex_ + ".pack")))
            return io_error(e, "cannot move the new pack into packs/");
        upload_name_.clear();
        added.emplace_back(md5_hex_, sizes);
    }
    for (const std::string& tok : resumed_) {  // bounded: the resumed packs
        std::array<uint64_t, 5> sizes{};
        for (size_t k = 0; k < 5; ++k) {  // bounded: five indices
            const std::string ext(kExts[k]);
            FileInfo fi;
            if (int e = store_.stat(join(repo_, "upload/" + tok + ext), fi)) return io_error(e, "suspended index gone");
            sizes[k] = fi.size;
            if (int e = store_.rename(join(repo_, "upload/" + tok + ext), join(repo_, "indices/" + tok + ext)))
                return io_error(e, "cannot move a resumed index");
        }
        if (int e = store_.rename(join(repo_, "upload/" + tok + ".pack"), join(repo_, "packs/" + tok + ".pack")))
            return io_error(e, "cannot move a resumed pack");
        added.emplace_back(tok, sizes);
    }
    if (!upload_name_.empty()) {  // nothing new after all: no empty pack
        store_.unlink(join(repo_, upload_name_));
        upload_name_.clear();
    }
    done_ = true;
    if (added.empty() && removed.empty()) return Status(Ok{});
    if (Status st = update_pack_names(store_, repo_, added, removed, lock_token, limits_); !st) return st;
    if (!added.empty()) published_ = added.front().first;
    return Status(Ok{});
}

Status update_pack_names(Store& store, const std::string& repo,
                         const std::vector<std::pair<std::string, std::array<uint64_t, 5>>>& added,
                         const std::vector<std::string>& removed, std::string_view lock_token,
                         const WriteGroupLimits& limits) {
    const std::string lock = join(repo, "lock");
    int err = 0;
    std::string nonce;
    bool ours = !lock_token.empty() && lock_check(store, lock, lock_token, &err) == LockResult::Ok;
    if (!ours) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limits.lock_wait);
        for (;;) {  // bounded: until the deadline
            LockResult r = lock_acquire(store, lock, "", &nonce, &err);
            if (r == LockResult::Ok) break;
            if (r != LockResult::Contended) return io_error(err ? err : EIO, "cannot take the repository lock");
            if (std::chrono::steady_clock::now() >= deadline)
                return Error{Errc::LockContended, 0, "the repository lock is held by someone else"};
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    auto release = [&] {
        if (!ours) lock_release(store, lock, nonce, &err);
    };
    std::vector<BTreeNode> nodes;
    std::set<std::string> names;
    const std::string path = join(repo, "pack-names");
    auto reader = BTreeReader::open(store, path);
    if (reader) {
        Status st = reader->iter_all([&](const BTreeEntry& be) {
            if (std::find(removed.begin(), removed.end(), be.key) != removed.end()) {
                names.emplace(be.key);
                return;
            }
            names.emplace(be.key);
            nodes.push_back(BTreeNode{std::string(be.key), {}, std::string(be.value)});
        });
        if (!st) {
            release();
            return with_detail(st.err(), "cannot read pack-names");
        }
    } else if (reader.err().code != Errc::NotFound) {
        release();
        return with_detail(reader.err(), "cannot read pack-names");
    }
    for (const auto& r : removed) {  // bounded: the packs removed
        if (!names.count(r)) {
            release();
            return Error{Errc::NotFound, 0, "pack " + r + " is no longer in pack-names"};
        }
    }
    for (const auto& [name, sizes] : added) {  // bounded: the packs added
        if (names.count(name)) continue;
        std::string v;
        for (size_t k = 0; k < 5; ++k) v += (k ? " " : "") + std::to_string(sizes[k]);  // bounded: five sizes
        nodes.push_back(BTreeNode{name, {}, v});
        names.insert(name);
    }
    BTreeWriterOptions opt;
    auto bytes = write_btree(opt, std::move(nodes));
    if (!bytes) {
        release();
        return with_detail(bytes.err(), "cannot build pack-names");
    }
    int e = store.put(path, *bytes, -1);
    if (!e) sweep_unlisted(store, repo, names, limits.stale_upload);
    release();
    if (e) return io_error(e, "cannot write pack-names");
    return Status(Ok{});
}

// ------------------------------------------------------------- autopack ----

size_t max_pack_count(uint64_t total_revisions) {
    if (total_revisions == 0) return 1;
    size_t sum = 0;
    for (char c : std::to_string(total_revisions)) sum += static_cast<size_t>(c - '0');  // bounded: <= 20 digits
    return sum;
}

std::vector<uint64_t> pack_distribution(uint64_t total_revisions) {
    if (total_revisions == 0) return {0};
    std::string digits = std::to_string(total_revisions);
    std::vector<uint64_t> out;
    uint64_t size = 1;
    for (size_t i = 0; i < digits.size(); ++i) size *= 10;  // bounded: <= 20 digits
    for (char c : digits) {                                  // bounded: <= 20 digits
        size /= 10;
        for (int n = 0; n < c - '0'; ++n) out.push_back(size);  // bounded: <= 9 per digit
    }
    return out;
}

std::vector<size_t> plan_autopack(const std::vector<uint64_t>& revision_counts, std::vector<uint64_t> dist) {
    std::vector<std::pair<uint64_t, size_t>> existing;
    for (size_t i = 0; i < revision_counts.size(); ++i)  // bounded: the packs
        if (revision_counts[i] > 0) existing.emplace_back(revision_counts[i], i);
    if (existing.size() <= dist.size()) return {};
    std::sort(existing.begin(), existing.end(), std::greater<>());
    std::vector<std::pair<uint64_t, std::vector<size_t>>> ops(1);
    for (const auto& [count, idx] : existing) {  // bounded: the packs
        if (dist.empty()) dist.push_back(1);     // cannot happen with Breezy's distribution; stay safe
        if (count >= dist.front()) {
            int64_t left = static_cast<int64_t>(count);
            while (left > 0 && !dist.empty()) {  // bounded: removes a bucket or ends
                left -= static_cast<int64_t>(dist.front());
                if (left >= 0) dist.erase(dist.begin());
                else dist.front() = static_cast<uint64_t>(-left);
            }
        } else {
            ops.back().first += count;
            ops.back().second.push_back(idx);
            if (ops.back().first >= dist.front()) {
                dist.erase(dist.begin());
                ops.emplace_back();
            }
        }
    }
    std::vector<size_t> out;
    for (const auto& op : ops) out.insert(out.end(), op.second.begin(), op.second.end());  // bounded: the ops
    if (out.size() < 2) return {};
    return out;
}

Result<bool> autopack(Store& store, const std::string& repo, const WriteGroupLimits& limits) {
    auto pc = PackCollection::open(store, repo);
    if (!pc) return pc.err().code == Errc::NotFound ? Result<bool>(false) : Result<bool>(pc.err());
    const auto& packs = pc->packs();
    std::vector<uint64_t> counts;
    uint64_t total = 0;
    for (size_t p = 0; p < packs.size(); ++p) {  // bounded: the packs
        auto idx = pc->index(p, IndexKind::Revisions);
        if (!idx) return idx.err();
        counts.push_back((*idx)->key_count());
        total += counts.back();
    }
    if (max_pack_count(total) >= packs.size()) return false;
    std::vector<size_t> plan = plan_autopack(counts, pack_distribution(total));
    if (plan.empty()) return false;
    auto started = WriteGroup::start(store, repo, {}, limits);
    if (!started) return started.err();
    WriteGroup& g = **started;
    std::vector<std::string> removed;
    std::string buf;
    for (size_t p : plan) {  // bounded: the planned packs
        removed.push_back(packs[p].name);
        // Every entry of the pack's five indices, and the records they use.
        std::array<std::vector<std::pair<std::string, GroupEntry>>, 5> rows;
        std::map<uint64_t, uint64_t> records;  // offset -> length
        for (size_t k = 0; k < 5; ++k) {        // bounded: five indices
            auto idx = pc->index(p, IndexKind(k));
            if (!idx) return idx.err();
            Status bad(Ok{});
            Status st = (*idx)->iter_all([&](const BTreeEntry& be) {
                GroupEntry e;
                if (has_refs(Substream(k))) e.parents = refs_of(be);
                if (!parse_value(be.value, e)) bad = corrupt("bad index value in pack " + packs[p].name);
                records.emplace(e.offset, e.length);
                rows[k].emplace_back(std::string(be.key), std::move(e));
            });
            if (!st) return st.err();
            if (!bad) return bad.err();
        }
        OpenFile f;
        if (int e = store.open_read(join(repo, "packs/" + packs[p].name + ".pack"), f))
            return io_error(e, "cannot open pack " + packs[p].name);
        std::map<uint64_t, uint64_t> moved;  // old offset -> new
        for (const auto& [off, len] : records) {  // bounded: the pack's records
            if (len == 0 || off > f.info.size || len > f.info.size - off)
                return corrupt("index entry beyond the end of pack " + packs[p].name);
            uint64_t at = 0;
            if (Status st = g.begin_raw_record(len, at); !st) return st.err();
            moved[off] = at;
            uint64_t done = 0;
            while (done < len) {  // bounded: advances by >= 1 byte per pass
                buf.resize(static_cast<size_t>(std::min<uint64_t>(kCopyChunk, len - done)));
                ssize_t r = store.pread(f, buf.data(), buf.size(), off + done);
                if (r < 0) return io_error(static_cast<int>(-r), "cannot read pack " + packs[p].name);
                if (r == 0) return corrupt("pack " + packs[p].name + " is truncated");
                if (Status st = g.record_data(std::string_view(buf.data(), static_cast<size_t>(r))); !st)
                    return st.err();
                done += static_cast<uint64_t>(r);
            }
        }
        for (size_t k = 0; k < 5; ++k)  // bounded: five indices
            for (auto& [key, e] : rows[k]) {
                e.offset = moved[e.offset];
                e.slot = 0;
                if (Status st = g.add_entry(Substream(k), key, std::move(e)); !st) return st.err();
            }
    }
    if (Status st = g.finish_data(); !st) return st.err();
    if (Status st = g.publish("", removed); !st) return st.err();
    // The old packs go to obsolete_packs/ (what was there before is deleted).
    const std::string obs = join(repo, "obsolete_packs");
    if (int e = store.mkdir(obs, -1); e && e != EEXIST) return true;
    std::vector<std::string> old;
    if (store.list_dir(obs, old) == 0)
        for (const auto& n : old) store.unlink(join(obs, n));  // bounded: the directory's entries
    for (const auto& n : removed) {                            // bounded: the packs combined
        store.rename(join(repo, "packs/" + n + ".pack"), join(obs, n + ".pack"));
        for (auto ext : kExts) store.rename(join(repo, "indices/" + n + std::string(ext)), join(obs, n + std::string(ext)));
    }
    return true;
}

}  // namespace souk::server::bzr
