#include "server/bzr/revisions.hpp"
#include "server/base/strings.hpp"

#include <errno.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <set>
#include <tuple>
#include <unordered_set>
#include <utility>

#include "protocol/bencode.hpp"
#include "server/bzr/btree.hpp"
#include "server/bzr/control.hpp"
#include "server/bzr/format.hpp"
#include "server/bzr/groupcompress.hpp"
#include "server/bzr/pack_collection.hpp"
#include "server/bzr/revision.hpp"
#include "server/store/paths.hpp"

namespace souk::server::bzr {
namespace {

constexpr std::string_view kNullRevision = "null:";
constexpr uint64_t kMaxIndexFile = 1ull << 30;
// A concurrent repack may delete packs between reading pack-names and
// reading the packs; like Breezy (RetryWithNewPacks) reload and retry.
constexpr int kAttempts = 3;

int fail(std::string* why, std::string msg, int err = EINVAL) {
    if (why) *why = std::move(msg);
    return err;
}

// A format-library error as this file's errno and message.
int fail(std::string* why, const Error& e) {
    int err = EINVAL;
    if (e.code == Errc::Io) err = e.sys_errno ? e.sys_errno : EIO;
    else if (e.code == Errc::Unsupported) err = ENOTSUP;
    return fail(why, e.detail, err);
}

// Block reading bounds: kMaxBlockContent for the content and every text.
gc::Limits block_limits() {
    gc::Limits limits;
    limits.max_content = limits.max_text = kMaxBlockContent;
    return limits;
}

// b'%.3f' % value, as Python formats it.
std::string format_fixed3(double v) {
    if (std::isnan(v)) return "nan";
    char buf[400];
    auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 3);
    if (r.ec != std::errc()) return "nan";
    return std::string(buf, r.ptr);
}

// Where a revision's text lives.
struct Position {
    size_t pack = 0;
    uint64_t block_start = 0, block_length = 0, start = 0, end = 0;
    bool ok = false;  // the index value parsed
};

bool parse_position(std::string_view value, size_t pack, Position& p) {
    p = Position{};
    p.pack = pack;
    uint64_t* fields[] = {&p.block_start, &p.block_length, &p.start, &p.end};
    for (size_t i = 0; i < 4; ++i) {
        size_t sp = value.find(' ');
        if ((sp == std::string_view::npos) != (i == 3)) return false;
        if (!parse_u64(value.substr(0, sp), *fields[i])) return false;
        value = i == 3 ? std::string_view() : value.substr(sp + 1);
    }
    p.ok = true;
    return true;
}

bool valid_pack_name(std::string_view n) {
    return !n.empty() && n.size() <= 255 && n.front() != '.' && n.find('/') == std::string_view::npos &&
           n.find('\0') == std::string_view::npos;
}

// Only groupcompress/CHK formats (the format table's chk flag) store
// revision texts souk reads.
int check_format(Store& store, const std::string& repo, std::string* why) {
    std::string data;
    if (int e = read_file(store, join(repo, "format"), data, 64 * 1024)) return e;
    const RepositoryFormat* f = find_repository_format(data);
    if (f && f->chk) return 0;
    std::string_view first = format_first_line(data);
    if (!first.empty() && first.back() == '\n') first.remove_suffix(1);
    return fail(why, "revision texts of repository format '" + printable(first) + "' are not supported", ENOTSUP);
}

struct IndexEntryData {
    std::vector<std::string> parents;
    Position pos;
};

// The revision indices of every live pack, read once.
struct RevisionIndex {
    std::vector<std::string> packs;
    std::map<std::string, IndexEntryData, std::less<>> entries;
};

// Load the .rix of every pack in pack-names, through the pack collection's
// index readers. With `only`, look up just those keys (and no parents).
// *retry is set when a listed index has vanished.
int load_index(Store& store, const std::string& repo, const std::set<std::string, std::less<>>* only,
               RevisionIndex& idx, std::string* why, bool* retry) {
    idx = RevisionIndex{};
    BTreeLimits limits;
    limits.max_file_size = kMaxIndexFile;
    auto pc = PackCollection::open(store, repo, limits);
    if (!pc) {
        const Error& e = pc.err();
        if (e.code == Errc::NotFound || e.code == Errc::Io) return e.sys_errno ? e.sys_errno : EIO;
        return fail(why, e.detail);
    }
    for (const auto& p : pc->packs()) {  // bounded: the packs
        if (!valid_pack_name(p.name)) return fail(why, "pack-names: bad pack name '" + printable(p.name) + "'");
        idx.packs.push_back(p.name);
    }
    auto add = [&](std::string_view key, std::string_view parents, std::string_view value, size_t pack) {
        auto [it, fresh] = idx.entries.try_emplace(std::string(key));
        if (!fresh) return;  // the first pack listing a key serves it
        parse_position(value, pack, it->second.pos);
        if (!only) it->second.parents = split_parents(parents);
    };
    Status st = Ok{};
    if (only) {
        std::vector<std::string_view> keys(only->begin(), only->end());
        st = pc->lookup_revisions(keys, add);
    } else {
        st = pc->iter_revisions(add);
    }
    if (!st) {
        const Error& e = st.err();
        if (e.code == Errc::NotFound) *retry = true;
        bool io = e.code == Errc::NotFound || e.code == Errc::Io;
        return fail(why, e.detail, io ? (e.sys_errno ? e.sys_errno : EIO) : EINVAL);
    }
    return 0;
}

// Extract the text of the record at [start, end) of a block's content.
int extract_record(std::string_view content, uint64_t start, uint64_t end, std::string& text, ReadStats& stats,
                   std::string* why) {
    gc::EntryKind kind = gc::EntryKind::Empty;
    auto r = gc::extract_text(content, start, end, block_limits(), &kind);
    if (kind == gc::EntryKind::Fulltext) ++stats.fulltexts;
    if (kind == gc::EntryKind::Delta) ++stats.deltas;
    if (!r) return fail(why, r.err());
    text = std::move(*r);
    return 0;
}

struct Wanted {
    std::string_view revid;
    Position pos;
};

using RevisionFn = std::function<void(std::string_view revid, RevisionInfo&& info)>;

// Read the wanted revisions block by block, calling fn for each. *retry is
// set when a pack has vanished.
int read_blocks(Store& store, const std::string& repo, const std::vector<std::string>& packs,
                std::vector<Wanted>& wanted, const RevisionFn& fn, ReadStats& stats, std::string* why, bool* retry) {
    for (const auto& w : wanted)
        if (!w.pos.ok) return fail(why, "bad index entry for revision " + printable(w.revid));
    std::sort(wanted.begin(), wanted.end(), [](const Wanted& a, const Wanted& b) {
        return std::tie(a.pos.pack, a.pos.block_start, a.pos.block_length, a.pos.start) <
               std::tie(b.pos.pack, b.pos.block_start, b.pos.block_length, b.pos.start);
    });
    OpenFile f;
    size_t open_pack = static_cast<size_t>(-1);
    std::string content, text;
    for (size_t i = 0; i < wanted.size();) {
        const Position& p = wanted[i].pos;
        size_t j = i;
        uint64_t needed = 0;
        for (; j < wanted.size() && wanted[j].pos.pack == p.pack && wanted[j].pos.block_start == p.block_start &&
               wanted[j].pos.block_length == p.block_length;
             ++j)
            needed = std::max(needed, wanted[j].pos.end);
        const std::string& name = packs[p.pack];
        std::string where = " (pack " + name + ", block at " + std::to_string(p.block_start) + ")";
        if (open_pack != p.pack) {
            f = OpenFile{};
            open_pack = static_cast<size_t>(-1);
            if (int e = store.open_read(join(repo, "packs/" + name + ".pack"), f)) {
                if (e == ENOENT) *retry = true;
                return fail(why, "cannot open pack " + name, e);
            }
            open_pack = p.pack;
        }
        if (p.block_length == 0 || p.block_start > f.info.size || p.block_length > f.info.size - p.block_start)
            return fail(why, "index entry points beyond the end of the pack" + where);
        if (needed > kMaxBlockContent)
            return fail(why, "groupcompress block content exceeds " + std::to_string(kMaxBlockContent) + " bytes" +
                                 where);
        auto block = gc::read_block_prefix(store, f, p.block_start, p.block_length, static_cast<size_t>(needed),
                                           block_limits());
        if (!block) {
            int e = fail(why, block.err());
            if (why) *why += where;
            return e;
        }
        content = std::move(*block);
        ++stats.blocks;
        for (; i < j; ++i) {
            const Wanted& w = wanted[i];
            RevisionInfo info;
            if (int e = extract_record(content, w.pos.start, w.pos.end, text, stats, why)) {
                if (why) *why = "revision " + printable(w.revid) + ": " + *why + where;
                return e;
            }
            if (int e = parse_revision(text, info, why)) {
                if (why) *why = "revision " + printable(w.revid) + ": " + *why;
                return e;
            }
            fn(w.revid, std::move(info));
        }
    }
    return 0;
}

}  // namespace

int parse_revision(std::string_view text, RevisionInfo& out, std::string* why) {
    out = RevisionInfo{};
    out.has_timezone = false;
    auto rev = parse_revision(text);
    if (!rev) return fail(why, rev.err());
    out.committer = std::move(rev->committer);
    out.timestamp = rev->timestamp;
    out.timezone = rev->timezone;
    out.has_timezone = rev->has_timezone;
    return 0;
}

int apply_delta(std::string_view source, std::string_view delta, std::string& out, std::string* why) {
    Status st = gc::apply_delta(source, delta, out, kMaxBlockContent);
    return st ? 0 : fail(why, st.err());
}

int read_revisions(Store& store, const std::string& repo, const std::vector<std::string>& revids,
                   std::map<std::string, RevisionInfo>& out, std::string* why, ReadStats* stats) {
    std::set<std::string, std::less<>> only(revids.begin(), revids.end());
    ReadStats local;
    int rc = 0;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        bool retry = false;
        local = ReadStats{};
        std::map<std::string, RevisionInfo> got;
        RevisionIndex idx;
        rc = check_format(store, repo, why);
        if (rc == 0) rc = load_index(store, repo, &only, idx, why, &retry);
        if (rc == 0) {
            std::vector<Wanted> wanted;
            wanted.reserve(idx.entries.size());
            for (const auto& [revid, entry] : idx.entries) wanted.push_back({revid, entry.pos});
            rc = read_blocks(
                store, repo, idx.packs, wanted,
                [&](std::string_view revid, RevisionInfo&& info) { got[std::string(revid)] = std::move(info); },
                local, why, &retry);
        }
        if (rc == 0) {
            for (auto& [revid, info] : got) out[revid] = std::move(info);
            break;
        }
        if (!retry) break;
    }
    if (stats) *stats = local;
    return rc;
}

namespace {

int gather_once(Store& store, const std::string& repo, std::string_view revid, bool committers, std::string& body,
                std::string* why, bool* retry) {
    if (int e = check_format(store, repo, why)) return e;
    RevisionIndex idx;
    if (int e = load_index(store, repo, nullptr, idx, why, retry)) return e;
    const auto& entries = idx.entries;
    body.clear();
    if (!revid.empty() && committers && revid == kNullRevision) body += "committers: 0\n";
    if (!revid.empty() && revid != kNullRevision) {
        // graph.iter_ancestry([revid]): generation by generation, each
        // generation's present revisions then its ghosts; "null:" is the
        // parent of parentless revisions and is left out of the list.
        auto root = entries.find(revid);
        if (root == entries.end()) return kNoSuchRevision;
        std::vector<std::string_view> all;       // every non-null revision listed
        std::vector<std::string_view> deepest;   // present ones of the last generation listing any
        bool any_ghost = false, deepest_ghost = false;
        std::unordered_set<std::string_view> processed{revid};
        std::vector<std::string_view> layer{root->first}, next;
        while (!layer.empty()) {
            next.clear();
            std::vector<std::string_view> present;
            bool ghost = false, listed = false;
            for (std::string_view k : layer) {
                if (k == kNullRevision) continue;
                listed = true;
                auto it = entries.find(k);
                if (it == entries.end()) {
                    ghost = any_ghost = true;
                    continue;
                }
                present.push_back(it->first);
                if (it->second.parents.empty()) {
                    if (processed.insert(kNullRevision).second) next.push_back(kNullRevision);
                }
                for (const auto& p : it->second.parents)
                    if (processed.insert(p).second) next.push_back(p);
            }
            if (listed) {
                deepest = present;
                deepest_ghost = ghost;
            }
            all.insert(all.end(), present.begin(), present.end());
            layer.swap(next);
        }
        // Breezy fetches every listed revision (committers) or the first and
        // last; a ghost among them raises NoSuchRevision. Ghosts come last in
        // their generation, so a ghost in the deepest one is the last.
        if (deepest_ghost || (committers && any_ghost)) return kNoSuchRevision;
        std::vector<Wanted> wanted;
        const std::vector<std::string_view>& fetch = committers ? all : deepest;
        for (std::string_view r : fetch) wanted.push_back({r, entries.find(r)->second.pos});
        std::set<std::string_view> candidates(deepest.begin(), deepest.end());
        if (!committers && !candidates.count(root->first)) wanted.push_back({root->first, root->second.pos});
        std::set<std::string> who;
        std::map<std::string_view, RevisionInfo> info;
        size_t seen = 0;
        ReadStats stats;
        if (int e = read_blocks(
                store, repo, idx.packs, wanted,
                [&](std::string_view r, RevisionInfo&& ri) {
                    ++seen;
                    if (committers) who.insert(ri.committer);
                    if (r == revid || candidates.count(r)) info[r] = std::move(ri);
                },
                stats, why, retry))
            return e;
        if (seen != wanted.size()) return fail(why, "revision texts missing from the packs");
        const RevisionInfo& latest = info.at(root->first);
        std::string_view first_id = deepest.front();
        for (std::string_view c : deepest) {
            const RevisionInfo& a = info.at(c);
            const RevisionInfo& b = info.at(first_id);
            if (a.timestamp < b.timestamp || (a.timestamp == b.timestamp && c < first_id)) first_id = c;
        }
        const RevisionInfo& first = info.at(first_id);
        if (!first.has_timezone || !latest.has_timezone)
            return fail(why, "revision " + printable(first.has_timezone ? revid : first_id) + " has no timezone");
        if (committers) body += "committers: " + std::to_string(who.size()) + "\n";
        body += "firstrev: " + format_fixed3(first.timestamp) + " " + std::to_string(first.timezone) + "\n";
        body += "latestrev: " + format_fixed3(latest.timestamp) + " " + std::to_string(latest.timezone) + "\n";
    }
    body += "revisions: " + std::to_string(entries.size()) + "\n";
    return 0;
}

}  // namespace

int gather_stats(Store& store, const std::string& repo, std::string_view revid, bool committers, std::string& body,
                 std::string* why) {
    int rc = 0;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        bool retry = false;
        rc = gather_once(store, repo, revid, committers, body, why, &retry);
        if (rc == 0 || !retry) break;
    }
    if (rc != 0) body.clear();
    return rc;
}

}  // namespace souk::server::bzr
