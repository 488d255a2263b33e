#include "server/bzr/pack_collection.hpp"
#include "server/base/strings.hpp"

#include <errno.h>

#include <algorithm>
#include <charconv>
#include <iterator>

#include "server/store/paths.hpp"

namespace souk::server::bzr {
namespace {

// Pack names are plain file names (md5 digests in practice): a '/', a NUL or
// a leading '.' could make later paths point at other files under the root.
bool valid_pack_name(std::string_view n) {
    return !n.empty() && n.size() <= 255 && n.front() != '.' && n.find('/') == std::string_view::npos &&
           n.find('\0') == std::string_view::npos;
}

// "<rix> <iix> <tix> <six> <cix>"; anything else leaves zeros (Breezy would
// fail later, on use; souk reads index sizes from the files themselves).
std::array<uint64_t, 5> parse_sizes(std::string_view v) {
    std::array<uint64_t, 5> out{};
    for (size_t i = 0; i < out.size(); ++i) {  // bounded: five fields
        size_t sp = v.find(' ');
        std::string_view f = v.substr(0, sp);
        auto r = std::from_chars(f.data(), f.data() + f.size(), out[i]);
        if (r.ec != std::errc() || r.ptr != f.data() + f.size()) return {};
        if (sp == std::string_view::npos) return i == out.size() - 1 ? out : std::array<uint64_t, 5>{};
        v.remove_prefix(sp + 1);
    }
    return {};
}

void add(BTreeReadStats& a, const BTreeReadStats& b) {
    a.pages_read += b.pages_read;
    a.bytes_read += b.bytes_read;
    a.cache_hits += b.cache_hits;
}

}  // namespace

std::string_view index_suffix(IndexKind kind) {
    static constexpr std::string_view kSuffix[] = {".rix", ".iix", ".tix", ".six", ".cix"};
    return kSuffix[static_cast<size_t>(kind)];
}

Result<PackCollection> PackCollection::open(Store& store, const std::string& repo, const BTreeLimits& limits) {
    PackCollection pc;
    pc.store_ = &store;
    pc.repo_ = repo;
    pc.limits_ = limits;
    auto names = BTreeReader::open(store, join(repo, "pack-names"), limits);
    if (!names) {
        Error e = names.err();
        if (e.code == Errc::NotFound || e.code == Errc::Io) e.detail.clear();
        else e.detail = "pack-names: " + e.detail;
        return e;
    }
    std::string bad;
    auto st = names->iter_all([&](const BTreeEntry& e) {
        if (!valid_pack_name(e.key)) {
            if (bad.empty()) bad = printable(e.key);
            return;
        }
        pc.packs_.push_back(PackInfo{std::string(e.key), parse_sizes(e.value)});
    });
    add(pc.names_stats_, names->stats());
    if (!st) {
        Error e = st.err();
        e.detail = "pack-names: " + e.detail;
        return e;
    }
    if (!bad.empty()) return corrupt("pack-names: bad pack name '" + bad + "'");
    pc.readers_.resize(pc.packs_.size());
    return pc;
}

Result<BTreeReader*> PackCollection::index(size_t pack, IndexKind kind) {
    if (pack >= packs_.size() || !store_) return Error{Errc::NotFound, ENOENT, "no such pack"};
    auto& slot = readers_[pack][static_cast<size_t>(kind)];
    if (slot) return slot.get();
    std::string file = packs_[pack].name + std::string(index_suffix(kind));
    auto r = BTreeReader::open(*store_, join(repo_, "indices/" + file), limits_);
    if (!r) {
        Error e = r.err();
        if (e.code == Errc::NotFound || e.code == Errc::Io) e.detail = "cannot read index " + file;
        else e.detail = file + ": " + e.detail;
        return e;
    }
    slot = std::make_unique<BTreeReader>(std::move(r).value());
    return slot.get();
}

namespace {
// Error details of a lookup name the index file.
Error name_error(Error e, const PackInfo& p, IndexKind kind) {
    e.detail = p.name + std::string(index_suffix(kind)) + ": " + e.detail;
    return e;
}
}  // namespace

Status PackCollection::combine(IndexKind kind) {
    Combined& c = combined_[static_cast<size_t>(kind)];
    if (c.built) return Ok{};
    c.table.clear();
    c.large.clear();
    for (size_t i = 0; i < packs_.size(); ++i) {  // bounded: the packs
        auto idx = index(i, kind);
        if (!idx) return idx.err();
        if (!(*idx)->single_page()) {
            c.large.push_back(static_cast<uint32_t>(i));
            continue;
        }
        for (const BTreeEntry& e : (*idx)->root_entries())  // bounded: one page's entries
            c.table.try_emplace(e.key, static_cast<uint32_t>(i), &e);  // an earlier pack keeps its key
    }
    c.built = true;
    return Ok{};
}

Status PackCollection::find(IndexKind kind, std::span<const std::string_view> keys, const FindFn& fn, bool nearby) {
    if (Status st = combine(kind); !st) return st;
    const Combined& c = combined_[static_cast<size_t>(kind)];
    if (c.large.empty()) {
        std::vector<std::string_view> want(keys.begin(), keys.end());
        std::sort(want.begin(), want.end());
        want.erase(std::unique(want.begin(), want.end()), want.end());
        for (auto k : want) {  // bounded: the keys asked
            auto it = c.table.find(k);
            if (it != c.table.end()) fn(*it->second.second, it->second.first, true);
        }
        return Ok{};
    }
    // Each key with the pack of its table entry (none: past every pack);
    // a large index before that pack answers for it instead.
    struct Want {
        std::string_view key;
        uint32_t table_pack;
        const BTreeEntry* table_entry;
        bool done;
    };
    const uint32_t none = static_cast<uint32_t>(packs_.size());
    std::vector<Want> want;
    want.reserve(keys.size());
    for (auto k : keys) want.push_back(Want{k, none, nullptr, false});  // bounded: the keys asked
    std::sort(want.begin(), want.end(), [](const Want& a, const Want& b) { return a.key < b.key; });
    want.erase(std::unique(want.begin(), want.end(), [](const Want& a, const Want& b) { return a.key == b.key; }),
               want.end());
    if (!c.table.empty())
        for (auto& w : want) {  // bounded: the keys asked
            auto it = c.table.find(w.key);
            if (it != c.table.end()) w.table_pack = it->second.first, w.table_entry = it->second.second;
        }
    std::vector<std::string_view> probe;
    std::vector<Want*> probed;
    for (uint32_t p : c.large) {  // bounded: the packs
        probe.clear();
        probed.clear();
        for (auto& w : want)  // bounded: the keys asked (ascending, so probe is too)
            if (!w.done && w.table_pack > p) {
                probe.push_back(w.key);
                probed.push_back(&w);
            }
        if (probe.empty()) continue;
        auto idx = index(p, kind);
        if (!idx) return idx.err();
        size_t at = 0;  // entries come in key order: merge them against probe
        auto report = [&](const BTreeEntry& e) {
            // bounded: at only grows, up to probe.size()
            while (at < probe.size() && probe[at] < e.key) ++at;
            bool asked = at < probe.size() && probe[at] == e.key;
            if (asked) probed[at++]->done = true;
            if (asked || nearby) fn(e, p, asked);
        };
        Status st = nearby ? (*idx)->lookup_pages(probe, report) : (*idx)->lookup(probe, report);
        if (!st) return name_error(st.err(), packs_[p], kind);
    }
    for (const auto& w : want)  // bounded: the keys asked
        if (!w.done && w.table_entry) fn(*w.table_entry, w.table_pack, true);
    return Ok{};
}

Status PackCollection::lookup_revisions(std::span<const std::string_view> revids, const RevisionFn& fn) {
    std::vector<std::string_view> want(revids.begin(), revids.end());
    std::sort(want.begin(), want.end());
    want.erase(std::unique(want.begin(), want.end()), want.end());
    std::vector<std::string_view> found;
    for (size_t i = 0; i < packs_.size() && !want.empty(); ++i) {  // bounded: the packs
        auto idx = index(i, IndexKind::Revisions);
        if (!idx) return idx.err();
        found.clear();
        auto st = (*idx)->lookup(want, [&](const BTreeEntry& e) {
            fn(e.key, e.ref_list(0), e.value, i);
            found.push_back(e.key);
        });
        if (!st) return name_error(st.err(), packs_[i], IndexKind::Revisions);
        // found is ascending (lookup reports in key order): drop those keys.
        std::vector<std::string_view> rest;
        std::set_difference(want.begin(), want.end(), found.begin(), found.end(), std::back_inserter(rest));
        want.swap(rest);
    }
    return Ok{};
}

Status PackCollection::lookup_revisions_nearby(std::span<const std::string_view> revids, const NearbyFn& fn) {
    std::vector<std::string_view> want(revids.begin(), revids.end());
    std::sort(want.begin(), want.end());
    want.erase(std::unique(want.begin(), want.end()), want.end());
    std::vector<std::string_view> rest;
    for (size_t i = 0; i < packs_.size() && !want.empty(); ++i) {  // bounded: the packs
        auto idx = index(i, IndexKind::Revisions);
        if (!idx) return idx.err();
        rest.clear();
        size_t w = 0;  // entries come in key order: merge them against want
        auto st = (*idx)->lookup_pages(want, [&](const BTreeEntry& e) {
            // bounded: w only grows, up to want.size()
            while (w < want.size() && want[w] < e.key) rest.push_back(want[w++]);
            bool asked = w < want.size() && want[w] == e.key;
            if (asked) ++w;
            fn(e.key, e.ref_list(0), asked);
        });
        if (!st) return name_error(st.err(), packs_[i], IndexKind::Revisions);
        while (w < want.size()) rest.push_back(want[w++]);  // bounded: want's size
        want.swap(rest);
    }
    return Ok{};
}

Status PackCollection::iter_revisions(const RevisionFn& fn) {
    for (size_t i = 0; i < packs_.size(); ++i) {  // bounded: the packs
        auto idx = index(i, IndexKind::Revisions);
        if (!idx) return idx.err();
        auto st = (*idx)->iter_all([&](const BTreeEntry& e) { fn(e.key, e.ref_list(0), e.value, i); });
        if (!st) return name_error(st.err(), packs_[i], IndexKind::Revisions);
    }
    return Ok{};
}

std::vector<std::string> split_parents(std::string_view list) {
    std::vector<std::string> out;
    for_each_ref(list, [&](std::string_view ref) { out.emplace_back(ref); });
    return out;
}

Status PackCollection::get_parent_map(std::span<const std::string_view> revids, ParentMap& out) {
    return lookup_revisions(revids, [&](std::string_view revid, std::string_view parents, std::string_view, size_t) {
        out.try_emplace(std::string(revid), split_parents(parents));
    });
}

BTreeReadStats PackCollection::stats() const {
    BTreeReadStats s = names_stats_;
    for (const auto& pack : readers_)  // bounded: the packs
        for (const auto& r : pack)     // bounded: five indices
            if (r) add(s, r->stats());
    return s;
}

int pack_names(Store& store, const std::string& repo, std::vector<std::string>& names, std::string* why) {
    auto pc = PackCollection::open(store, repo);
    if (!pc) {
        const Error& e = pc.err();
        if (e.code == Errc::NotFound || e.code == Errc::Io) return e.sys_errno ? e.sys_errno : EIO;
        if (why) *why = e.detail;
        return EINVAL;
    }
    for (const auto& p : pc->packs()) names.push_back(p.name);  // bounded: the packs
    return 0;
}

}  // namespace souk::server::bzr
