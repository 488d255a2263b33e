#include "server/bzr/graph.hpp"

#include <functional>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace souk::server::bzr {
namespace {

constexpr std::string_view kNullRevision = "null:";

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Parents looked up so far, with the revisions on the same index pages,
// and the revisions known to be absent from every pack.
class ParentSource {
public:
    ParentSource(PackCollection& packs, const GraphLimits& limits) : packs_(packs), limits_(limits) {}

    // Make every key of `keys` known (present or absent).
    Status fetch(std::span<const std::string_view> keys) {
        visited_ += keys.size();
        if (visited_ > limits_.max_visited)
            return limit_exceeded("revision graph walk visits more than " + std::to_string(limits_.max_visited) +
                                  " revisions");
        std::vector<std::string_view> need;
        for (std::string_view k : keys)  // bounded: the caller's keys
            if (!known_.count(k) && !absent_.count(k)) need.push_back(k);
        if (need.empty()) return Ok{};
        auto st = packs_.lookup_revisions_nearby(need, [&](std::string_view revid, std::string_view parents, bool) {
            if (known_.find(revid) == known_.end()) known_.emplace(std::string(revid), split_parents(parents));
        });
        if (!st) return st;
        for (std::string_view k : need)  // bounded: the keys looked up
            if (!known_.count(k)) absent_.emplace(k);
        return Ok{};
    }
    Status fetch_one(std::string_view key) { return fetch(std::span<const std::string_view>(&key, 1)); }
    // Parents of a fetched key; nullptr when it is absent.
    const std::vector<std::string>* parents(std::string_view key) const {
        auto it = known_.find(key);
        return it == known_.end() ? nullptr : &it->second;
    }

private:
    PackCollection& packs_;
    const GraphLimits& limits_;
    std::unordered_map<std::string, std::vector<std::string>, StringHash, std::equal_to<>> known_;
    std::unordered_set<std::string, StringHash, std::equal_to<>> absent_;
    size_t visited_ = 0;
};

using StringSet = std::set<std::string, std::less<>>;

// The space-separated words of one recipe line.
void words(std::string_view s, StringSet& into) {
    size_t k = 0;
    while (k < s.size()) {  // bounded: each pass consumes one word
        size_t e = s.find(' ', k);
        if (e == std::string_view::npos) e = s.size();
        if (e > k) into.emplace(s.substr(k, e - k));
        k = e + 1;
    }
}

// The revisions the client's recipe reaches: from its start ids through
// parents, not entering its exclude ids (Breezy's
// recreate_search_from_recipe; the count line is not checked).
Status recipe_keys(ParentSource& src, std::string_view body, StringSet& seen) {
    std::vector<std::string_view> lines;
    size_t i = 0;
    while (i <= body.size() && lines.size() < 3) {  // bounded: three lines
        size_t j = body.find('\n', i);
        if (j == std::string_view::npos) j = body.size();
        lines.push_back(body.substr(i, j - i));
        i = j + 1;
    }
    if (lines.size() < 2) return Ok{};
    StringSet start, exclude;
    words(lines[0], start);
    words(lines[1], exclude);
    std::vector<std::string_view> level, next;
    for (const auto& s : start)  // bounded: the recipe's start ids
        if (!exclude.count(s) && seen.insert(s).second) level.push_back(*seen.find(s));
    while (!level.empty()) {  // bounded: each revision enters a level once (seen)
        if (auto st = src.fetch(level); !st) return st;
        next.clear();
        for (std::string_view r : level) {  // bounded: one level
            const auto* parents = src.parents(r);
            if (!parents) continue;
            for (const auto& p : *parents) {  // bounded: one revision's parents
                if (exclude.count(p)) continue;
                auto [it, fresh] = seen.insert(p);
                if (fresh) next.push_back(*it);
            }
        }
        level.swap(next);
    }
    return Ok{};
}

}  // namespace

Result<std::string> parent_map_text(PackCollection& packs, std::span<const std::string> asked_ids, bool include_missing,
                                    std::string_view recipe, const GraphLimits& limits) {
    ParentSource src(packs, limits);
    StringSet asked(asked_ids.begin(), asked_ids.end());
    StringSet seen;  // what the client already has
    if (auto st = recipe_keys(src, recipe, seen); !st) return st.err();
    for (const auto& a : asked) seen.erase(a);  // bounded: the asked ids

    // Breadth-first from the asked ids, one generation at a time, until the
    // budget is spent (always answering the asked ids themselves).
    std::map<std::string, std::string, std::less<>> result;  // sorted lines compress well
    size_t bytes = 0;
    StringSet queried;
    std::vector<std::string> level(asked.begin(), asked.end()), next;
    std::vector<std::string_view> views;
    for (bool first = true; !level.empty(); first = false) {  // bounded: each revision is queried once
        if (!first && bytes > limits.extra_bytes) break;
        views.assign(level.begin(), level.end());
        if (auto st = src.fetch(views); !st) return st.err();
        next.clear();
        for (const auto& r : level) {  // bounded: one generation
            if (!queried.insert(r).second) continue;
            const auto* parents = src.parents(r);
            bool missing = parents == nullptr;
            if (seen.count(r) || (missing && !include_missing)) {
                if (!missing)
                    for (const auto& p : *parents) next.push_back(p);  // bounded: one revision's parents
                continue;
            }
            std::string key = missing ? "missing:" + r : r;
            std::string line = key;
            if (!missing)
                for (const auto& p : *parents) {  // bounded: one revision's parents
                    if (p == kNullRevision) continue;
                    line += ' ';
                    line += p;
                    next.push_back(p);
                }
            bytes += line.size() + 1;
            result.emplace(std::move(key), std::move(line));
        }
        level.swap(next);
    }
    std::string text;
    for (const auto& [key, line] : result) {  // bounded: the result
        if (!text.empty()) text += '\n';
        text += line;
    }
    return text;
}

Result<std::string> revision_graph_text(PackCollection& packs, std::string_view revid, const GraphLimits& limits) {
    std::string text;
    auto append = [&](std::string_view r, const std::vector<std::string>& parents, auto&& present) {
        if (!text.empty()) text += '\n';
        text += r;
        for (const auto& p : parents) {  // bounded: one revision's parents
            if (p == kNullRevision || !present(p)) continue;  // ghosts stripped, as Breezy does
            text += ' ';
            text += p;
        }
    };
    if (revid.empty()) {
        ParentMap graph;
        size_t n = 0;
        bool too_many = false;
        auto st = packs.iter_revisions([&](std::string_view r, std::string_view parents, std::string_view, size_t) {
            if (++n > limits.max_visited) {
                too_many = true;
                return;
            }
            graph.try_emplace(std::string(r), split_parents(parents));  // the first pack's entry wins
        });
        if (!st) return st.err();
        if (too_many) return limit_exceeded("repository has more than " + std::to_string(limits.max_visited) + " revisions");
        for (const auto& [r, parents] : graph)  // bounded: the graph
            append(r, parents, [&](std::string_view p) { return graph.count(p) != 0; });
        return text;
    }
    ParentSource src(packs, limits);
    if (auto st = src.fetch_one(revid); !st) return st.err();
    if (!src.parents(revid)) return Error{Errc::NoSuchRevision, 0, std::string(revid)};
    std::unordered_set<std::string_view> done;
    std::vector<std::string_view> keep, todo{revid};
    while (!todo.empty()) {  // bounded: each present revision is kept once (done); max_visited caps fetches
        std::string_view r = todo.back();
        todo.pop_back();
        if (auto st = src.fetch_one(r); !st) return st.err();
        const auto* parents = src.parents(r);
        if (!parents || !done.insert(r).second) continue;
        keep.push_back(r);
        for (const auto& p : *parents) todo.push_back(p);  // bounded: one revision's parents
    }
    for (std::string_view r : keep)  // bounded: the kept revisions
        append(r, *src.parents(r), [&](std::string_view p) { return src.parents(p) != nullptr; });
    return text;
}

}  // namespace souk::server::bzr
