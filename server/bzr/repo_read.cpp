// The read verbs' bodies (docs/protocol/streams.md#the-read-verbs).
#include "server/bzr/repo_read.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "server/bzr/inventory.hpp"
#include "server/bzr/pack.hpp"

namespace souk::server::bzr {
namespace {

struct Found {
    std::string key;
    std::string parents;
    RecordPos pos;
};

bool io_less(const Found& a, const Found& b) {
    return std::tie(a.pos.pack, a.pos.offset, a.pos.start, a.key) < std::tie(b.pos.pack, b.pos.offset, b.pos.start, b.key);
}

Result<std::vector<Found>> find_all(PackReader& r, IndexKind kind, const std::vector<std::string>& keys,
                                    const StreamLimits& limits) {
    if (keys.size() > limits.max_keys) return limit_exceeded("too many keys in one request");
    std::vector<std::string_view> k(keys.begin(), keys.end());
    std::vector<Found> out;
    Status st = r.lookup(kind, k, [&](std::string_view key, std::string_view parents, bool, const RecordPos& p) {
        out.push_back(Found{std::string(key), std::string(parents), p});
    });
    if (!st) return st.err();
    std::sort(out.begin(), out.end(), io_less);
    return out;
}

class RevisionTexts final : public PieceSource {
public:
    RevisionTexts(std::unique_ptr<PackReader> r, std::vector<std::string> revids, const StreamLimits& limits)
        : r_(std::move(r)), revids_(std::move(revids)), limits_(limits) {}
    Result<bool> next(StreamPiece& out) override {
        if (!ready_) {
            auto f = find_all(*r_, IndexKind::Revisions, revids_, limits_);
            if (!f) return f.err();
            found_ = std::move(*f);
            ready_ = true;
        }
        if (at_ == found_.size()) return false;
        auto text = r_->text(found_[at_++].pos);
        if (!text) return text.err();
        auto z = zlib_compress(*text);
        if (!z) return z.err();
        buf_ = std::move(*z);
        out = StreamPiece{buf_, nullptr, 0, 0};
        return true;
    }

private:
    std::unique_ptr<PackReader> r_;
    std::vector<std::string> revids_;
    StreamLimits limits_;
    bool ready_ = false;
    std::vector<Found> found_;
    size_t at_ = 0;
    std::string buf_;
};

class FileTexts final : public PieceSource {
public:
    FileTexts(std::unique_ptr<PackReader> r, std::vector<TextRequest> keys, const StreamLimits& limits)
        : r_(std::move(r)), limits_(limits) {
        for (size_t i = 0; i < keys.size(); ++i)  // bounded: the request's keys
            index_[keys[i].file_id + '\0' + keys[i].revision] = i;
    }
    Result<bool> next(StreamPiece& out) override {
        if (!ready_) {
            std::vector<std::string> keys;
            for (const auto& [k, i] : index_) keys.push_back(k);  // bounded: the request's keys
            auto f = find_all(*r_, IndexKind::Texts, keys, limits_);
            if (!f) return f.err();
            found_ = std::move(*f);
            std::unordered_set<std::string> have;
            for (const auto& e : found_) have.insert(e.key);  // bounded: the keys found
            for (const auto& [k, i] : index_)                 // bounded: the request's keys
                if (!have.count(k)) absent_.emplace_back(k, i);
            std::sort(absent_.begin(), absent_.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
            ready_ = true;
        }
        if (absent_at_ < absent_.size()) {
            const auto& [k, i] = absent_[absent_at_++];
            buf_ = std::string("absent") + '\0' + k + '\0' + std::to_string(i) + "\n";
            out = StreamPiece{buf_, nullptr, 0, 0};
            return true;
        }
        if (at_ == found_.size()) return false;
        const Found& e = found_[at_++];
        auto text = r_->text(e.pos);
        if (!text) return text.err();
        auto z = zlib_compress(*text);
        if (!z) return z.err();
        buf_ = "ok";
        buf_ += '\0';
        buf_ += std::to_string(index_[e.key]) + "\n";
        buf_ += *z;
        out = StreamPiece{buf_, nullptr, 0, 0};
        return true;
    }

private:
    std::unique_ptr<PackReader> r_;
    StreamLimits limits_;
    std::map<std::string, size_t> index_;
    bool ready_ = false;
    std::vector<Found> found_;
    std::vector<std::pair<std::string, size_t>> absent_;
    size_t at_ = 0, absent_at_ = 0;
    std::string buf_;
};

// One inventory, by file id: its entries and their id_to_entry values.
struct Inv {
    std::string revision_id;
    std::unordered_map<std::string, std::string> values;
    std::unordered_map<std::string, InventoryEntry> entries;
    std::unordered_map<std::string, std::string> paths;  // memo

    // The entry's path ("" for the root), walking up its parents.
    Result<std::string> path(const std::string& fid, size_t max_depth) {
        auto m = paths.find(fid);
        if (m != paths.end()) return m->second;
        std::vector<const std::string*> names;
        std::string cur = fid;
        for (size_t depth = 0;; ++depth) {  // bounded: max_depth steps
            if (depth > max_depth) return corrupt("inventory directories nest too deep (or form a cycle)");
            auto it = entries.find(cur);
            if (it == entries.end()) return corrupt("inventory entry with a missing parent directory");
            if (it->second.parent_id.empty()) break;
            names.push_back(&it->second.name);
            cur = it->second.parent_id;
        }
        std::string p;
        for (auto n = names.rbegin(); n != names.rend(); ++n) {  // bounded: the names found
            if (!p.empty()) p += '/';
            p += **n;
        }
        paths.emplace(fid, p);
        return p;
    }
};

std::string content_of(const InventoryEntry& e) {
    switch (e.kind) {
    case EntryKind::Directory: return "dir";
    case EntryKind::File:
        return std::string("file") + '\0' + std::to_string(e.text_size) + '\0' + (e.executable ? "Y" : "") + '\0' +
               e.text_sha1;
    case EntryKind::Symlink: return std::string("link") + '\0' + e.symlink_target;
    default: return std::string("tree") + '\0' + e.reference_revision;
    }
}

class InventoryDeltas final : public PieceSource {
public:
    InventoryDeltas(std::unique_ptr<PackReader> r, std::string format, std::vector<std::string> revids,
                    const StreamLimits& limits)
        : r_(std::move(r)), format_(std::move(format)), revids_(std::move(revids)), limits_(limits) {
        prev_.revision_id = "null:";
    }
    Result<bool> next(StreamPiece& out) override {
        switch (state_) {
        case 0:
            state_ = 1;
            out = StreamPiece{kContainerMagic, nullptr, 0, 0};
            return true;
        case 1: {
            state_ = 2;
            buf_ = "B" + std::to_string(format_.size()) + "\n\n" + format_;
            out = StreamPiece{buf_, nullptr, 0, 0};
            if (Status st = plan(); !st) return st.err();
            return true;
        }
        case 2:
            if (at_ < order_.size()) {
                if (Status st = emit(order_[at_++]); !st) return st.err();
                out = StreamPiece{buf_, nullptr, 0, 0};
                return true;
            }
            state_ = 3;
            out = StreamPiece{"E", nullptr, 0, 0};
            return true;
        default: return false;
        }
    }

private:
    // The inventories found, parents before children (request order otherwise).
    Status plan() {
        auto invs = find_all(*r_, IndexKind::Inventories, revids_, limits_);
        if (!invs) return invs.err();
        for (auto& f : *invs) pos_.emplace(f.key, f.pos);  // bounded: the inventories found
        std::vector<std::string> present;
        for (const auto& r : revids_)  // bounded: the request's revisions
            if (pos_.count(r)) present.push_back(r);
        auto revs = find_all(*r_, IndexKind::Revisions, present, limits_);
        if (!revs) return revs.err();
        std::unordered_map<std::string, std::vector<std::string>> parents;
        for (const auto& f : *revs) {  // bounded: the revisions found
            auto& ps = parents[f.key];
            for_each_ref(f.parents, [&](std::string_view p) { ps.emplace_back(p); });
        }
        std::unordered_set<std::string> done, queued;
        for (const auto& root : present) {  // bounded: the present revisions
            if (done.count(root)) continue;
            // Iterative depth-first walk: emit a revision after its parents
            // in the set. bounded: every revision is pushed at most twice.
            std::vector<std::pair<std::string, bool>> stack{{root, false}};
            while (!stack.empty()) {
                auto [rev, expanded] = stack.back();
                stack.pop_back();
                if (done.count(rev)) continue;
                if (expanded) {
                    done.insert(rev);
                    order_.push_back(rev);
                    continue;
                }
                stack.emplace_back(rev, true);
                for (const auto& p : parents[rev])  // bounded: the revision's parents
                    if (pos_.count(p) && !done.count(p) && queued.insert(p + "\n" + rev).second)
                        stack.emplace_back(p, false);
            }
        }
        return Ok{};
    }

    Status load(const std::string& revid, Inv& inv) {
        auto text = r_->text(pos_.at(revid));
        if (!text) return text.err();
        auto ci = parse_inventory(*text);
        if (!ci) return ci.err();
        PackPages src(*r_, page_pos_);
        auto items = chk::map_items(src, ci->id_to_entry, limits_.chk);
        if (!items) return items.err();
        inv = Inv{};
        inv.revision_id = revid;
        for (auto& item : *items) {  // bounded: the map's items
            if (item.key.size() != 1) return corrupt("id_to_entry key is not one file id");
            auto e = parse_entry(item.value);
            if (!e) return e.err();
            inv.entries.emplace(item.key[0], std::move(*e));
            inv.values.emplace(item.key[0], std::move(item.value));
        }
        return Ok{};
    }

    Status emit(const std::string& revid) {
        Inv cur;
        if (Status st = load(revid, cur); !st) return st;
        const size_t depth = inv_depth_limit;
        std::vector<std::string> lines;
        for (const auto& [fid, value] : prev_.values) {  // bounded: the previous inventory's entries
            if (cur.values.count(fid)) continue;
            auto op = prev_.path(fid, depth);
            if (!op) return op.err();
            lines.push_back("/" + *op + '\0' + "None" + '\0' + fid + '\0' + '\0' + "null:" + '\0' + "deleted" + '\0' +
                            '\0' + "\n");
        }
        for (const auto& [fid, value] : cur.values) {  // bounded: this inventory's entries
            auto old = prev_.values.find(fid);
            if (old != prev_.values.end() && old->second == value) continue;
            std::string oldpath = "None";
            if (old != prev_.values.end()) {
                auto op = prev_.path(fid, depth);
                if (!op) return op.err();
                oldpath = "/" + *op;
            }
            auto np = cur.path(fid, depth);
            if (!np) return np.err();
            const InventoryEntry& e = cur.entries.at(fid);
            lines.push_back(oldpath + '\0' + "/" + *np + '\0' + fid + '\0' + e.parent_id + '\0' + e.revision + '\0' +
                            content_of(e) + "\n");
        }
        std::sort(lines.begin(), lines.end());
        std::string text = "format: bzr inventory delta v1 (bzr 1.14)\nparent: " + prev_.revision_id +
                           "\nversion: " + revid + "\nversioned_root: true\ntree_references: true\n";
        for (const auto& l : lines) text += l;  // bounded: the delta's lines
        std::string meta = "l" + std::to_string(revid.size()) + ":" + revid + "3:nile";
        std::string rec = "fulltext\n";
        uint32_t n = static_cast<uint32_t>(meta.size());
        for (int shift = 24; shift >= 0; shift -= 8) rec += static_cast<char>((n >> shift) & 0xff);  // bounded: 4 bytes
        rec += meta;
        rec += text;
        buf_ = "B" + std::to_string(rec.size()) + "\ninventory-deltas\n\n" + rec;
        prev_ = std::move(cur);
        return Ok{};
    }

    static constexpr size_t inv_depth_limit = 4096;  // directory nesting of one inventory
    std::unique_ptr<PackReader> r_;
    std::string format_;
    std::vector<std::string> revids_;
    StreamLimits limits_;
    int state_ = 0;
    std::unordered_map<std::string, RecordPos> pos_, page_pos_;
    std::vector<std::string> order_;
    size_t at_ = 0;
    Inv prev_;
    std::string buf_;
};

}  // namespace

std::unique_ptr<PieceSource> revision_texts(std::unique_ptr<PackReader> reader, std::vector<std::string> revids,
                                            const StreamLimits& limits) {
    return std::make_unique<RevisionTexts>(std::move(reader), std::move(revids), limits);
}

std::unique_ptr<PieceSource> file_texts(std::unique_ptr<PackReader> reader, std::vector<TextRequest> keys,
                                        const StreamLimits& limits) {
    return std::make_unique<FileTexts>(std::move(reader), std::move(keys), limits);
}

std::unique_ptr<PieceSource> inventory_deltas(std::unique_ptr<PackReader> reader, std::string format,
                                              std::vector<std::string> revids, const StreamLimits& limits) {
    return std::make_unique<InventoryDeltas>(std::move(reader), std::move(format), std::move(revids), limits);
}

}  // namespace souk::server::bzr
