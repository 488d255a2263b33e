// The revision graph (server/bzr/graph.*) and the pack collection
// (server/bzr/pack_collection.*): repositories whose pack-names and .rix
// indices are written with the B+Tree writer (whose bytes test_bzr_btree.cpp
// checks against Breezy's), spread over several packs, with ghosts; every
// answer is compared with a whole-graph reference implementation of the
// same rules (the algorithm Repository.get_parent_map used before the
// index reader bisected pages).
#include <doctest/doctest.h>

#include <stdlib.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "server/bzr/btree.hpp"
#include "server/bzr/graph.hpp"
#include "server/bzr/pack_collection.hpp"
#include "server/store/fs_store.hpp"

using namespace souk::server;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "souk-graph-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

void write_all(const fs::path& p, std::string_view data) {
    fs::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

using Graph = std::map<std::string, std::vector<std::string>, std::less<>>;

// A history of n revisions: mostly linear, some merges, some ghost parents.
Graph make_graph(size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    Graph g;
    std::vector<std::string> ids;
    for (size_t i = 0; i < n; ++i) {
        std::string id = "joe@example.com-2009" + std::to_string(10000000 + i) + "-" + std::to_string(rng() % 100000);
        std::vector<std::string> parents;
        if (i > 0) parents.push_back(ids[i - 1]);
        if (i > 10 && rng() % 8 == 0) parents.push_back(ids[i - 2 - rng() % 8]);
        if (i > 0 && rng() % 40 == 0) parents.push_back("ghost-" + std::to_string(i));
        g[id] = parents;
        ids.push_back(id);
    }
    return g;
}

// Write `g` as a 2a-style repository at root/repo/.bzr/repository, spread
// over `packs` packs (revision i goes to pack i % packs).
void write_repo(const fs::path& root, const Graph& g, size_t packs) {
    fs::path repo = root / "repo/.bzr/repository";
    std::vector<std::vector<bzr::BTreeNode>> rix(packs);
    size_t i = 0;
    for (const auto& [id, parents] : g) {
        bzr::BTreeNode n;
        n.key = id;
        n.refs = {parents};
        n.value = std::to_string(i * 100) + " 100 0 10";
        rix[i++ % packs].push_back(std::move(n));
    }
    std::vector<bzr::BTreeNode> names;
    for (size_t p = 0; p < packs; ++p) {
        std::string name = "pack" + std::to_string(p);
        auto bytes = bzr::write_btree({1, 1, true}, rix[p]);
        REQUIRE(bytes);
        write_all(repo / "indices" / (name + ".rix"), *bytes);
        names.push_back({name, {}, std::to_string(bytes->size()) + " 72 72 72 72"});
    }
    auto pn = bzr::write_btree({0, 1, false}, names);
    REQUIRE(pn);
    write_all(repo / "pack-names", *pn);
    write_all(repo / "format", "Bazaar repository format 2a (needs bzr 1.16 or later)\n");
}

// ---- the reference: the whole-graph algorithm ---------------------------------

std::string reference_parent_map(const Graph& graph, const std::vector<std::string>& asked_ids, bool include_missing,
                                 std::string_view body, size_t extra_bytes) {
    std::set<std::string, std::less<>> asked(asked_ids.begin(), asked_ids.end());
    std::set<std::string, std::less<>> seen;
    {
        std::vector<std::string_view> lines;
        size_t i = 0;
        while (i <= body.size() && lines.size() < 3) {
            size_t j = body.find('\n', i);
            if (j == std::string_view::npos) j = body.size();
            lines.push_back(body.substr(i, j - i));
            i = j + 1;
        }
        auto words = [](std::string_view s, std::set<std::string, std::less<>>& into) {
            size_t k = 0;
            while (k < s.size()) {
                size_t e = s.find(' ', k);
                if (e == std::string_view::npos) e = s.size();
                if (e > k) into.emplace(s.substr(k, e - k));
                k = e + 1;
            }
        };
        std::set<std::string, std::less<>> start, exclude;
        if (lines.size() >= 2) {
            words(lines[0], start);
            words(lines[1], exclude);
        }
        std::vector<std::string> todo(start.begin(), start.end());
        while (!todo.empty()) {
            std::string r = std::move(todo.back());
            todo.pop_back();
            if (exclude.count(r) || !seen.insert(r).second) continue;
            if (auto it = graph.find(r); it != graph.end())
                for (const auto& p : it->second) todo.push_back(p);
        }
        for (const auto& a : asked) seen.erase(a);
    }
    std::map<std::string, std::string, std::less<>> result;
    size_t bytes = 0;
    std::set<std::string, std::less<>> queried;
    std::vector<std::string> level(asked.begin(), asked.end());
    for (bool first = true; !level.empty(); first = false) {
        if (!first && bytes > extra_bytes) break;
        std::vector<std::string> next;
        for (const auto& r : level) {
            if (!queried.insert(r).second) continue;
            auto it = graph.find(r);
            bool missing = it == graph.end();
            if (seen.count(r) || (missing && !include_missing)) {
                if (!missing)
                    for (const auto& p : it->second) next.push_back(p);
                continue;
            }
            std::string line = missing ? "missing:" + r : r;
            if (!missing)
                for (const auto& p : it->second) {
                    if (p == "null:") continue;
                    line += ' ';
                    line += p;
                    next.push_back(p);
                }
            bytes += line.size() + 1;
            result.emplace(missing ? "missing:" + r : r, std::move(line));
        }
        level = std::move(next);
    }
    std::string text;
    for (const auto& [key, line] : result) {
        if (!text.empty()) text += '\n';
        text += line;
    }
    return text;
}

// nullopt: NoSuchRevision.
std::optional<std::string> reference_revision_graph(const Graph& graph, const std::string& revid) {
    std::vector<const std::string*> keep;
    if (revid.empty()) {
        for (const auto& kv : graph) keep.push_back(&kv.first);
    } else {
        if (!graph.count(revid)) return std::nullopt;
        std::set<std::string_view> done;
        std::vector<std::string_view> todo{revid};
        while (!todo.empty()) {
            std::string_view r = todo.back();
            todo.pop_back();
            auto it = graph.find(r);
            if (it == graph.end() || !done.insert(r).second) continue;
            keep.push_back(&it->first);
            for (const auto& p : it->second) todo.push_back(p);
        }
    }
    std::string text;
    for (const auto* r : keep) {
        if (!text.empty()) text += '\n';
        text += *r;
        for (const auto& p : graph.find(*r)->second) {
            if (p == "null:" || !graph.count(p)) continue;
            text += ' ';
            text += p;
        }
    }
    return text;
}

std::vector<std::string> ids_of(const Graph& g) {
    std::vector<std::string> ids;
    for (const auto& kv : g) ids.push_back(kv.first);
    return ids;
}

}  // namespace

TEST_CASE("graph: get_parent_map answers as the whole-graph algorithm, over several packs") {
    Graph g = make_graph(3000, 1);
    std::vector<std::string> ids = ids_of(g);  // sorted; sort order is history order here
    for (size_t packs : {1, 3}) {
        CAPTURE(packs);
        TempDir tmp;
        write_repo(tmp.path, g, packs);
        FsStore store(tmp.path.string());
        struct Case {
            std::vector<std::string> asked;
            bool include_missing;
            std::string recipe;
            size_t budget;
        };
        std::vector<Case> cases = {
            {{ids.back()}, false, "", 192 * 1024},
            {{ids.back()}, true, "", 2000},
            {{ids[1500], ids[20]}, false, "", 5000},
            {{ids.back(), "absent-one", "ghost-77"}, true, "", 192 * 1024},
            {{ids.back(), "absent-one"}, false, "", 192 * 1024},
            {{ids[2500]}, false, ids[2000] + "\n" + ids[1000] + "\n999", 192 * 1024},
            {{ids[2500]}, true, ids[2499] + " " + ids[2200] + "\n\n5", 10000},
            {{ids[2500], ids[2499]}, false, ids[2500] + "\n" + ids[10] + " " + ids[5] + "\n1", 192 * 1024},
            {{ids[0]}, false, "garbage", 192 * 1024},
            {{}, false, "", 192 * 1024},
            {{"null:"}, true, "", 192 * 1024},
        };
        for (const auto& c : cases) {
            CAPTURE(c.recipe);
            auto pc = bzr::PackCollection::open(store, "repo/.bzr/repository");
            REQUIRE(pc);
            CHECK(pc->packs().size() == packs);
            bzr::GraphLimits lim;
            lim.extra_bytes = c.budget;
            auto got = bzr::parent_map_text(*pc, c.asked, c.include_missing, c.recipe, lim);
            REQUIRE(got);
            CHECK(*got == reference_parent_map(g, c.asked, c.include_missing, c.recipe, c.budget));
            // Only part of the index was read.
            CHECK(pc->stats().pages_read <= 1 + packs * 40);
        }
    }
}

TEST_CASE("graph: get_revision_graph, whole and from one revision") {
    Graph g = make_graph(1200, 2);
    std::vector<std::string> ids = ids_of(g);
    TempDir tmp;
    write_repo(tmp.path, g, 2);
    FsStore store(tmp.path.string());
    for (const std::string& revid : {std::string(), ids.back(), ids[600], ids[0], std::string("absent"),
                                     std::string("ghost-5")}) {
        CAPTURE(revid);
        auto pc = bzr::PackCollection::open(store, "repo/.bzr/repository");
        REQUIRE(pc);
        auto got = bzr::revision_graph_text(*pc, revid);
        auto want = reference_revision_graph(g, revid);
        if (!want) {
            REQUIRE(!got);
            CHECK(got.err().code == bzr::Errc::NoSuchRevision);
        } else {
            REQUIRE(got);
            CHECK(*got == *want);
        }
    }
}

TEST_CASE("graph: limits and corrupt indices give errors") {
    Graph g = make_graph(1500, 3);
    std::vector<std::string> ids = ids_of(g);
    TempDir tmp;
    write_repo(tmp.path, g, 1);
    FsStore store(tmp.path.string());
    auto pc = bzr::PackCollection::open(store, "repo/.bzr/repository");
    REQUIRE(pc);
    bzr::GraphLimits lim;
    lim.max_visited = 50;
    auto r = bzr::parent_map_text(*pc, std::vector<std::string>{ids.back()}, false, ids.back() + "\n\n500", lim);
    REQUIRE(!r);
    CHECK(r.err().code == bzr::Errc::LimitExceeded);
    auto w = bzr::revision_graph_text(*pc, ids.back(), lim);
    REQUIRE(!w);
    CHECK(w.err().code == bzr::Errc::LimitExceeded);

    // A .rix whose leaf is damaged: the walk reports it, naming the index.
    fs::path rix = tmp.path / "repo/.bzr/repository/indices/pack0.rix";
    std::string bytes;
    {
        std::ifstream in(rix, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    REQUIRE(bytes.size() > 3 * bzr::kBTreePageSize);
    for (size_t i = 2 * bzr::kBTreePageSize; i < 2 * bzr::kBTreePageSize + 64; ++i) bytes[i] = 'X';
    write_all(rix, bytes);
    auto pc2 = bzr::PackCollection::open(store, "repo/.bzr/repository");
    REQUIRE(pc2);
    auto all = bzr::revision_graph_text(*pc2, "");
    REQUIRE(!all);
    CHECK(all.err().code == bzr::Errc::Corrupt);
    CHECK(all.err().detail.find("pack0.rix") != std::string::npos);

    // A missing index.
    fs::remove(rix);
    auto pc3 = bzr::PackCollection::open(store, "repo/.bzr/repository");
    REQUIRE(pc3);
    auto gone = bzr::parent_map_text(*pc3, std::vector<std::string>{ids.back()}, false, "");
    REQUIRE(!gone);
    CHECK(gone.err().code == bzr::Errc::NotFound);
    CHECK(gone.err().detail == "cannot read index pack0.rix");
}

TEST_CASE("pack collection: pack-names, lookups across packs, bad names") {
    TempDir tmp;
    fs::path repo = tmp.path / "repo/.bzr/repository";
    FsStore store(tmp.path.string());
    // No pack-names: NotFound (an empty repository to the verbs).
    fs::create_directories(repo);
    auto none = bzr::PackCollection::open(store, "repo/.bzr/repository");
    REQUIRE(!none);
    CHECK(none.err().code == bzr::Errc::NotFound);

    // Two packs both holding "b": the first in pack-names order answers.
    auto a = bzr::write_btree({1, 1, true}, {{"a", {{}}, "1 2 3 4"}, {"b", {{"a"}}, "5 6 7 8"}});
    auto b = bzr::write_btree({1, 1, true}, {{"b", {{"x"}}, "9 9 9 9"}, {"c", {{"b", "ghost"}}, "0 1 2 3"}});
    REQUIRE(a);
    REQUIRE(b);
    write_all(repo / "indices/aaa.rix", *a);
    write_all(repo / "indices/bbb.rix", *b);
    auto names = bzr::write_btree({0, 1, false}, {{"bbb", {}, "1 2 3 4 5"}, {"aaa", {}, "10 20 30 40 50"}});
    REQUIRE(names);
    write_all(repo / "pack-names", *names);
    auto pc = bzr::PackCollection::open(store, "repo/.bzr/repository");
    REQUIRE(pc);
    REQUIRE(pc->packs().size() == 2);
    CHECK(pc->packs()[0].name == "aaa");
    CHECK(pc->packs()[0].sizes == std::array<uint64_t, 5>{10, 20, 30, 40, 50});
    bzr::ParentMap pm;
    std::vector<std::string_view> keys = {"c", "b", "a", "zz", "b"};
    REQUIRE(pc->get_parent_map(keys, pm));
    CHECK(pm.size() == 3);
    CHECK(pm["b"] == std::vector<std::string>{"a"});
    CHECK(pm["c"] == std::vector<std::string>{"b", "ghost"});
    CHECK(pm["a"].empty());
    std::vector<std::string> legacy;
    std::string why;
    CHECK(bzr::pack_names(store, "repo/.bzr/repository", legacy, &why) == 0);
    CHECK(legacy == std::vector<std::string>{"aaa", "bbb"});

    // A pack name that would leave indices/.
    auto evil = bzr::write_btree({0, 1, false}, {{"../../x", {}, "1 2 3 4 5"}});
    REQUIRE(evil);
    write_all(repo / "pack-names", *evil);
    auto bad = bzr::PackCollection::open(store, "repo/.bzr/repository");
    REQUIRE(!bad);
    CHECK(bad.err().code == bzr::Errc::Corrupt);
    CHECK(bad.err().detail.find("bad pack name") != std::string::npos);
    CHECK(bzr::pack_names(store, "repo/.bzr/repository", legacy, &why) == EINVAL);
}

TEST_CASE("pack collection: find answers from the first pack that has a key, whatever each index's size") {
    TempDir tmp;
    fs::path repo = tmp.path / "repo/.bzr/repository";
    FsStore store(tmp.path.string());
    fs::create_directories(repo / "indices");
    // p0 and p2 have one-page indices (merged into one table), p1 a large
    // one (searched by descent); the three overlap.
    auto small0 = bzr::write_btree({0, 1, true}, {{"a", {}, "0 1 0 1"}, {"b", {}, "0 2 0 1"}});
    std::vector<bzr::BTreeNode> big;
    for (int i = 0; i < 5000; ++i) big.push_back({"k" + std::to_string(100000 + i), {}, "1 1 0 1"});
    big.push_back({"b", {}, "1 2 0 1"});
    big.push_back({"c", {}, "1 3 0 1"});
    auto large1 = bzr::write_btree({0, 1, true}, big);
    auto small2 = bzr::write_btree({0, 1, true}, {{"a", {}, "2 1 0 1"}, {"c", {}, "2 3 0 1"}, {"d", {}, "2 4 0 1"}});
    REQUIRE(small0);
    REQUIRE(large1);
    REQUIRE(small2);
    REQUIRE(large1->size() > 3 * bzr::kBTreePageSize);
    write_all(repo / "indices/p0.cix", *small0);
    write_all(repo / "indices/p1.cix", *large1);
    write_all(repo / "indices/p2.cix", *small2);
    auto names = bzr::write_btree({0, 1, false}, {{"p0", {}, "0 0 0 0 0"}, {"p1", {}, "0 0 0 0 0"}, {"p2", {}, "0 0 0 0 0"}});
    REQUIRE(names);
    write_all(repo / "pack-names", *names);
    auto pc = bzr::PackCollection::open(store, "repo/.bzr/repository");
    REQUIRE(pc);
    std::map<std::string, std::pair<size_t, std::string>> got;  // key -> (pack, value)
    size_t reports = 0;
    std::vector<std::string_view> keys = {"d", "c", "b", "a", "zz", "b", "k104999", "k100000"};
    REQUIRE(pc->find(bzr::IndexKind::Chk, keys, [&](const bzr::BTreeEntry& e, size_t pack, bool asked) {
        CHECK(asked);
        ++reports;
        got[std::string(e.key)] = {pack, std::string(e.value)};
    }));
    CHECK(reports == got.size());  // once per key
    CHECK(got.size() == 6);
    CHECK(got["a"] == std::pair<size_t, std::string>{0, "0 1 0 1"});
    CHECK(got["b"] == std::pair<size_t, std::string>{0, "0 2 0 1"});
    CHECK(got["c"] == std::pair<size_t, std::string>{1, "1 3 0 1"});
    CHECK(got["d"] == std::pair<size_t, std::string>{2, "2 4 0 1"});
    CHECK(got["k104999"].first == 1);
    CHECK(got["k100000"].first == 1);
    CHECK(!got.count("zz"));
    // With nearby: the other entries of the large index's leaf pages read
    // come too, not asked; the small indices give only what was asked.
    size_t asked = 0, nearby = 0;
    std::vector<std::string_view> one = {"k102000", "a"};
    REQUIRE(pc->find(bzr::IndexKind::Chk, one, [&](const bzr::BTreeEntry& e, size_t pack, bool was_asked) {
        if (was_asked) ++asked;
        else {
            ++nearby;
            CHECK(pack == 1);
            CHECK(e.key != "a");
        }
    }, true));
    CHECK(asked == 2);
    CHECK(nearby > 10);
    // A kind whose index is missing for some pack fails as a whole.
    std::string_view k = "a";
    CHECK(!pc->find(bzr::IndexKind::Texts, std::span(&k, 1), [](const bzr::BTreeEntry&, size_t, bool) {}));
}
