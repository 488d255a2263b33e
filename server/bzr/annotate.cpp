// Annotating a file (docs/protocol/streams.md#annotating-a-file).
#include "server/bzr/annotate.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <unordered_map>

#include "server/bzr/btree.hpp"
#include "server/bzr/inventory.hpp"
#include "server/bzr/patience.hpp"
#include "server/bzr/stream_source.hpp"

namespace souk::server::bzr {

std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < text.size()) {  // bounded: each pass consumes at least one byte
        size_t nl = text.find('\n', i);
        size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
        out.push_back(text.substr(i, end - i));
        i = end;
    }
    return out;
}

namespace {

constexpr uint32_t kNoSet = static_cast<uint32_t>(-1);

// One text of the file's ancestry.
struct Node {
    TextKey key;
    std::vector<uint32_t> parents;  // node indices, in stored order
    uint32_t needed = 0;            // annotations still to be built from this one
    uint64_t gdfo = 0;              // generations from the oldest ancestor (1 for a root)
    uint32_t single = kNoSet;       // the set {this node}
    uint32_t pick = kNoSet;         // (for set ids) the settled source
    // While needed: the text, its lines and each line's set of sources.
    struct Text {
        std::string bytes;
        std::vector<std::string_view> lines;  // views into bytes (which never moves)
        std::vector<uint32_t> sets;
    };
    std::unique_ptr<Text> text;
};

class Annotator {
public:
    Annotator(TextSource& src, const AnnotateLimits& limits) : src_(src), limits_(limits) {}

    Result<Annotation> run(const TextKey& key, TextKey* missing) {
        if (Status st = walk(key, missing); !st) return st.err();
        if (Status st = order(); !st) return st.err();
        for (uint32_t n : topo_)  // bounded: the texts walked
            if (Status st = build(n); !st) return st.err();
        return flatten();
    }

private:
    // Find the ancestry of `key` in the file graph, one batch of lookups
    // per generation.
    Status walk(const TextKey& key, TextKey* missing) {
        add_node(key);
        std::vector<uint32_t> frontier{0};
        std::vector<std::pair<uint32_t, std::vector<TextKey>>> found;
        std::vector<TextKey> keys;
        // By node: 1 while it is in the frontier, 2 once reported (only
        // the frontier's entries change, so a long history costs no more
        // than its length).
        std::vector<char> state(1, 1);
        while (!frontier.empty()) {  // bounded: each text enters the frontier once, at most max_texts
            keys.clear();
            for (uint32_t n : frontier) keys.push_back(nodes_[n].key);  // bounded: the frontier
            found.clear();
            Status st = src_.parents(keys, [&](const TextKey& k, std::vector<TextKey> ps) {
                auto it = index_.find(k);
                if (it == index_.end() || state[it->second] != 1) return;  // not asked now, or twice
                state[it->second] = 2;
                found.emplace_back(it->second, std::move(ps));
            });
            if (!st) return st;
            for (uint32_t n : frontier) {  // bounded: the frontier
                if (state[n] == 2) continue;
                if (missing) *missing = nodes_[n].key;
                return Error{Errc::NotFound, 0, "a text of the file's ancestry is missing"};
            }
            frontier.clear();
            for (auto& [n, ps] : found) {  // bounded: the texts found
                for (auto& p : ps) {        // bounded: the text's parents
                    auto it = index_.find(p);
                    uint32_t pi;
                    if (it != index_.end()) {
                        pi = it->second;
                    } else {
                        if (nodes_.size() >= limits_.max_texts)
                            return limit_exceeded("the file's ancestry has more than " +
                                                  std::to_string(limits_.max_texts) + " texts");
                        pi = add_node(std::move(p));
                        state.push_back(1);
                        frontier.push_back(pi);
                    }
                    nodes_[n].parents.push_back(pi);
                }
            }
        }
        return Ok{};
    }

    uint32_t add_node(TextKey key) {
        uint32_t i = static_cast<uint32_t>(nodes_.size());
        index_.emplace(key, i);
        nodes_.push_back(Node{});
        nodes_.back().key = std::move(key);
        return i;
    }

    // Parents before children (Kahn), generations, and how many children
    // will read each text.
    Status order() {
        const size_t n = nodes_.size();
        std::vector<std::vector<uint32_t>> kids(n);
        std::vector<size_t> waiting(n);
        for (uint32_t i = 0; i < n; ++i) {  // bounded: the texts
            waiting[i] = nodes_[i].parents.size();
            for (uint32_t p : nodes_[i].parents) {  // bounded: its parents
                kids[p].push_back(i);
                ++nodes_[p].needed;
            }
        }
        ++nodes_[0].needed;  // the answer itself
        std::deque<uint32_t> ready;
        for (uint32_t i = 0; i < n; ++i)  // bounded: the texts
            if (waiting[i] == 0) ready.push_back(i);
        while (!ready.empty()) {  // bounded: each text is ready once
            uint32_t u = ready.front();
            ready.pop_front();
            topo_.push_back(u);
            uint64_t g = 0;
            for (uint32_t p : nodes_[u].parents) g = std::max(g, nodes_[p].gdfo);  // bounded: its parents
            nodes_[u].gdfo = g + 1;
            for (uint32_t c : kids[u])  // bounded: its children
                if (--waiting[c] == 0) ready.push_back(c);
        }
        if (topo_.size() != n) return corrupt("the file's text graph has a cycle");
        return Ok{};
    }

    // ---- sets of sources, interned: equal sets have equal ids ----

    uint32_t intern(std::vector<uint32_t> s) {
        auto it = set_ids_.find(s);
        if (it != set_ids_.end()) return it->second;
        uint32_t id = static_cast<uint32_t>(sets_.size());
        set_ids_.emplace(s, id);
        sets_.push_back(std::move(s));
        picks_.push_back(kNoSet);
        return id;
    }

    uint32_t single(uint32_t node) {
        if (nodes_[node].single == kNoSet) nodes_[node].single = intern({node});
        return nodes_[node].single;
    }

    Result<uint32_t> combine(uint32_t x, uint32_t y) {
        uint64_t k = (static_cast<uint64_t>(std::min(x, y)) << 32) | std::max(x, y);
        auto it = unions_.find(k);
        if (it != unions_.end()) return it->second;
        std::vector<uint32_t> u;
        std::set_union(sets_[x].begin(), sets_[x].end(), sets_[y].begin(), sets_[y].end(), std::back_inserter(u));
        if (Status st = step(u.size()); !st) return st.err();
        uint32_t id = intern(std::move(u));
        unions_.emplace(k, id);
        return id;
    }

    Status step(uint64_t n) {
        steps_ += n;
        if (steps_ > limits_.max_steps)
            return limit_exceeded("annotate needs more than " + std::to_string(limits_.max_steps) + " graph steps");
        return Ok{};
    }

    // ---- one text ----

    Status build(uint32_t n) {
        auto bytes = src_.text(nodes_[n].key);
        if (!bytes) return bytes.err();
        bytes_ += bytes->size();
        if (bytes_ > limits_.max_bytes)
            return limit_exceeded("the file's texts hold more than " + std::to_string(limits_.max_bytes) + " bytes");
        auto t = std::make_unique<Node::Text>();
        t->bytes = std::move(*bytes);
        t->lines = split_lines(t->bytes);
        if (t->lines.size() > limits_.max_lines)
            return limit_exceeded("a text of the file has more than " + std::to_string(limits_.max_lines) + " lines");
        const uint32_t self = single(n);
        t->sets.assign(t->lines.size(), self);
        const auto& parents = nodes_[n].parents;
        for (size_t pi = 0; pi < parents.size(); ++pi) {  // bounded: its parents
            const Node::Text* pt = nodes_[parents[pi]].text.get();
            if (!pt) return corrupt("annotate lost a parent text");  // cannot happen: kept while needed
            auto blocks = patience::matching_blocks(pt->lines, t->lines);
            for (const auto& b : blocks) {         // bounded: the matching blocks
                for (size_t i = 0; i < b.len; ++i) {  // bounded: the block
                    uint32_t& mine = t->sets[b.b + i];
                    uint32_t theirs = pt->sets[b.a + i];
                    if (pi == 0 || mine == self) {
                        mine = theirs;  // the first parent's, or a line thought new
                    } else if (mine != theirs) {
                        auto u = combine(mine, theirs);
                        if (!u) return u.err();
                        mine = *u;
                    }
                }
            }
        }
        nodes_[n].text = std::move(t);
        for (uint32_t p : parents)  // bounded: its parents
            if (--nodes_[p].needed == 0) nodes_[p].text.reset();
        return Ok{};
    }

    // ---- the answer ----

    // The one source of a set of sources: the head, or the smallest key
    // among several heads.
    Result<uint32_t> pick(uint32_t set) {
        if (picks_[set] != kNoSet) return picks_[set];
        const std::vector<uint32_t> cands = sets_[set];
        uint32_t chosen = cands.front();
        if (cands.size() > 1) {
            std::vector<char> head(cands.size(), 1);
            uint64_t min_gdfo = UINT64_MAX;
            for (uint32_t c : cands) min_gdfo = std::min(min_gdfo, nodes_[c].gdfo);  // bounded: the set
            for (size_t ci = 0; ci < cands.size(); ++ci) {  // bounded: the set
                if (!head[ci]) continue;  // its ancestors are its descendant's too
                ++stamp_;
                std::vector<uint32_t> stack(nodes_[cands[ci]].parents);
                while (!stack.empty()) {  // bounded: each text is visited once per walk, and max_steps
                    uint32_t u = stack.back();
                    stack.pop_back();
                    if (seen_[u] == stamp_) continue;
                    seen_[u] = stamp_;
                    if (Status st = step(1); !st) return st.err();
                    // Ancestors have fewer generations: below the smallest
                    // candidate's no candidate can be reached.
                    if (nodes_[u].gdfo < min_gdfo) continue;
                    auto hit = std::lower_bound(cands.begin(), cands.end(), u);
                    if (hit != cands.end() && *hit == u) head[static_cast<size_t>(hit - cands.begin())] = 0;
                    for (uint32_t p : nodes_[u].parents) stack.push_back(p);  // bounded: its parents
                }
            }
            bool any = false;
            for (size_t ci = 0; ci < cands.size(); ++ci) {  // bounded: the set
                if (!head[ci]) continue;
                if (!any || nodes_[cands[ci]].key < nodes_[chosen].key) chosen = cands[ci];
                any = true;
            }
        }
        picks_[set] = chosen;
        return chosen;
    }

    Result<Annotation> flatten() {
        seen_.assign(nodes_.size(), 0);
        Node::Text& t = *nodes_[0].text;
        Annotation out;
        std::unordered_map<uint32_t, uint32_t> source_of;
        out.lines.reserve(t.lines.size());
        uint64_t at = 0;
        for (size_t i = 0; i < t.lines.size(); ++i) {  // bounded: the text's lines
            auto node = pick(t.sets[i]);
            if (!node) return node.err();
            auto [it, fresh] = source_of.try_emplace(*node, static_cast<uint32_t>(out.sources.size()));
            if (fresh) out.sources.push_back(nodes_[*node].key);
            out.lines.push_back(Annotation::Line{it->second, at, at + t.lines[i].size()});
            at += t.lines[i].size();
        }
        out.text = std::move(t.bytes);
        return out;
    }

    TextSource& src_;
    const AnnotateLimits& limits_;
    std::vector<Node> nodes_;
    std::map<TextKey, uint32_t> index_;
    std::vector<uint32_t> topo_;
    std::vector<std::vector<uint32_t>> sets_;  // each sorted by node index
    std::map<std::vector<uint32_t>, uint32_t> set_ids_;
    std::vector<uint32_t> picks_;              // by set id
    std::unordered_map<uint64_t, uint32_t> unions_;
    std::vector<uint64_t> seen_;  // by node: the walk that last visited it
    uint64_t stamp_ = 0;
    uint64_t bytes_ = 0, steps_ = 0;
};

// ---- the texts of a repository's packs ----

bool split_key(std::string_view joined, TextKey& out) {
    size_t z = joined.find('\0');
    if (z == std::string_view::npos || joined.find('\0', z + 1) != std::string_view::npos) return false;
    out.file_id = std::string(joined.substr(0, z));
    out.revision = std::string(joined.substr(z + 1));
    return true;
}

class PackTexts final : public TextSource {
public:
    explicit PackTexts(PackReader& r) : r_(r) {}

    Status parents(std::span<const TextKey> keys, const ParentsFn& fn) override {
        std::vector<std::string> joined;
        for (const auto& k : keys)  // bounded: the caller's keys
            if (k.file_id.find('\0') == std::string::npos && k.revision.find('\0') == std::string::npos)
                joined.push_back(k.file_id + '\0' + k.revision);  // others cannot be in the index
        std::vector<std::string_view> views(joined.begin(), joined.end());
        bool bad = false;
        Status st = r_.lookup(IndexKind::Texts, views, [&](std::string_view key, std::string_view refs, bool,
                                                           const RecordPos& pos) {
            TextKey k;
            std::vector<TextKey> ps;
            bad = bad || !split_key(key, k);
            for_each_ref(refs, [&](std::string_view ref) {  // bounded: the entry's references
                TextKey p;
                bad = bad || !split_key(ref, p);
                ps.push_back(std::move(p));
            });
            if (bad) return;
            pos_[std::string(key)] = pos;
            fn(k, std::move(ps));
        });
        if (!st) return st;
        if (bad) return corrupt("a texts index key is not (file id, revision)");
        return Ok{};
    }

    Result<std::string> text(const TextKey& key) override {
        auto it = pos_.find(key.file_id + '\0' + key.revision);
        if (it == pos_.end()) return Error{Errc::NotFound, 0, "text not looked up"};
        return r_.text(it->second);
    }

private:
    PackReader& r_;
    std::unordered_map<std::string, RecordPos> pos_;
};

// Strict UTF-8 (what Python's decode accepts): no overlong forms, no
// surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {  // bounded: each pass consumes one character
        unsigned char c = static_cast<unsigned char>(s[i]);
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            ++i;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n >= s.size() - i) return false;  // truncated
        for (size_t k = 1; k <= n; ++k) {  // bounded: at most 3 bytes
            unsigned char d = static_cast<unsigned char>(s[i + k]);
            if ((d & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (d & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

}  // namespace

Result<Annotation> annotate(TextSource& src, const TextKey& key, const AnnotateLimits& limits, TextKey* missing) {
    Annotator a(src, limits);
    return a.run(key, missing);
}

Result<FileAnnotation> annotate_file_revision(PackReader& reader, std::string_view revid, std::string_view tree_path,
                                              const AnnotateLimits& limits, const chk::Limits& chk_limits) {
    FileAnnotation out;
    // Checked in Breezy's order: the revision, then the path's encoding,
    // then its parts, then whether the tree has it.
    const bool empty_tree = revid == "null:";
    std::string rev(revid);
    std::string_view want[] = {rev};
    RecordPos inv_pos;
    bool have = false;
    if (!empty_tree && rev.find('\0') == std::string::npos) {  // a NUL cannot be in a one-element key
        Status st = reader.lookup(IndexKind::Inventories, want,
                                  [&](std::string_view, std::string_view, bool, const RecordPos& p) {
                                      inv_pos = p;
                                      have = true;
                                  });
        if (!st) return st.err();
    }
    if (!empty_tree && !have) {
        out.kind = FileAnnotation::Kind::NoSuchRevision;
        return out;
    }
    // The path, as Breezy's splitpath: '' and '.' parts dropped, '..' refused.
    if (!valid_utf8(tree_path)) {
        out.kind = FileAnnotation::Kind::BadPath;
        out.detail = "the path is not valid UTF-8";
        return out;
    }
    std::vector<std::string_view> names;
    size_t i = 0;
    for (;;) {  // bounded: each pass consumes up to the next '/'
        size_t j = tree_path.find('/', i);
        std::string_view part = tree_path.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i);
        if (part == "..") {
            out.kind = FileAnnotation::Kind::BadPath;
            out.detail = "sorry, '..' not allowed in path";
            return out;
        }
        if (!part.empty() && part != ".") names.push_back(part);
        if (j == std::string_view::npos) break;
        i = j + 1;
    }
    if (empty_tree) {  // nothing is in it
        out.kind = FileAnnotation::Kind::NoSuchPath;
        return out;
    }
    auto inv_text = reader.text(inv_pos);
    if (!inv_text) return inv_text.err();
    auto inv = parse_inventory(*inv_text);
    if (!inv) return inv.err();
    auto kind = inventory_search_key(*inv);
    if (!kind) return kind.err();
    std::unordered_map<std::string, RecordPos> where;
    PackPages pages(reader, where);
    // Down the path: each name under the directory found so far.
    std::string id = inv->root_id, parent;
    for (auto name : names) {  // bounded: the path's parts
        auto child = chk::lookup(pages, *kind, inv->parent_id_basename_to_file_id, chk::Key{id, std::string(name)},
                                 chk_limits);
        if (!child) return child.err();
        if (!*child) {
            out.kind = FileAnnotation::Kind::NoSuchPath;
            return out;
        }
        parent = std::move(id);
        id = std::move(**child);
    }
    auto value = chk::lookup(pages, *kind, inv->id_to_entry, chk::Key{id}, chk_limits);
    if (!value) return value.err();
    if (!*value) return corrupt("the inventory names a file id that has no entry");
    auto entry = parse_entry(**value);
    if (!entry) return entry.err();
    if (entry->file_id != id || (!names.empty() && (entry->parent_id != parent || entry->name != names.back())))
        return corrupt("the inventory's path map and entries disagree");
    // A tree reference's entry is the reference itself; souk does not
    // descend into nested trees (2a has none).
    TextKey key{id, entry->revision};
    PackTexts texts(reader);
    auto ann = annotate(texts, key, limits, &out.missing);
    if (!ann) {
        if (ann.err().code != Errc::NotFound) return ann.err();
        out.kind = FileAnnotation::Kind::TextMissing;
        return out;
    }
    out.annotation = std::move(*ann);
    return out;
}

}  // namespace souk::server::bzr
