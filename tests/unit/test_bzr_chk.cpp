// CHK maps and inventories (server/bzr/chk.hpp, inventory.hpp) against
// Breezy: souk parses every CHK page and inventory of brz's repositories,
// its walk from each inventory finds exactly the pages Breezy's chk_map
// iteration finds, its difference between a revision and its parent is
// exactly the set difference of Breezy's page sets (and its new items the
// difference of the maps' items), its search keys equal Breezy's; hostile
// pages and map cycles give a bzr::Error in bounded time.
#include <doctest/doctest.h>

#include <set>

#include "bzr_fixture.hpp"
#include "server/bzr/chk.hpp"
#include "server/bzr/inventory.hpp"

using namespace souk::server;
using namespace souk::test_bzr;
namespace chk = souk::server::bzr::chk;

namespace {

// CHK pages of a repository, read with souk's block reader through the
// .cix entries Breezy lists.
class RepoPages : public chk::PageSource {
public:
    RepoPages(Store& store, std::string rel, const std::vector<IndexRow>& rows) : store_(store), rel_(std::move(rel)) {
        for (const auto& r : rows)
            if (r.ext == "cix") rows_.emplace(r.key, r);
    }
    bzr::Result<std::string> page(std::string_view key) override {
        ++reads;
        auto it = rows_.find(std::string(key));
        if (it == rows_.end()) return bzr::Error{bzr::Errc::NotFound, 0, "no such page"};
        return read_text(store_, rel_, it->second);
    }
    std::vector<std::string> keys() const {
        std::vector<std::string> out;
        for (const auto& [k, r] : rows_) out.push_back(k);
        return out;
    }
    size_t reads = 0;

private:
    Store& store_;
    std::string rel_;
    std::map<std::string, IndexRow> rows_;
};

// Pages from a map (no hash check: lets tests build cycles).
class MapPages : public chk::PageSource {
public:
    std::map<std::string, std::string> pages;
    bzr::Result<std::string> page(std::string_view key) override {
        auto it = pages.find(std::string(key));
        if (it == pages.end()) return bzr::Error{bzr::Errc::NotFound, 0, "no such page"};
        return it->second;
    }
};

// A literal with NULs inside, all of it.
template <size_t N>
std::string S(const char (&s)[N]) {
    return std::string(s, N - 1);
}

std::string fake_key(int i) {
    std::string h = std::to_string(i);
    return "sha1:" + std::string(40 - h.size(), '0') + h;
}

struct Inv {
    std::string revid, text;
    std::vector<std::string> parents;
};

std::map<std::string, Inv> inventories(const Breezy& bz, const fs::path& repo) {
    std::map<std::string, Inv> out;
    for (const auto& line : lines_of(bz.py("inventories " + sh_quote(repo.string())))) {
        auto w = split_ws(line);
        REQUIRE(w.size() == 3);
        Inv inv{unhex(w[0]), unhex(w[2]), {}};
        if (w[1] != "-") {
            std::istringstream ps(w[1]);
            for (std::string p; std::getline(ps, p, ',');) inv.parents.push_back(unhex(p));
        }
        out[inv.revid] = inv;
    }
    return out;
}

// A list of words separated by `sep` ("-": none).
std::set<std::string> words_set(const std::string& s, char sep = ' ') {
    if (s == "-") return {};
    std::istringstream in(s);
    std::set<std::string> out;
    for (std::string w; std::getline(in, w, sep);)
        if (!w.empty()) out.insert(w);
    return out;
}

}  // namespace

TEST_CASE("bzr chk: every page and inventory of brz's repositories parses") {
    SampleRepo& s = sample_repo();
    FsStore store(s.root.string());
    for (const std::string& rel : {s.repo_rel, s.packed_rel}) {
        auto rows = index_rows(s.bz, s.repo_dir(rel));
        RepoPages src(store, rel, rows);
        size_t leaves = 0, internals = 0;
        for (const auto& key : src.keys()) {
            CHECK(chk::valid_page_key(key));
            auto bytes = src.page(key);
            REQUIRE(bytes);
            auto node = chk::parse_node(*bytes);
            REQUIRE_MESSAGE(node, node.err().detail);
            if (std::holds_alternative<chk::LeafNode>(*node)) ++leaves;
            else ++internals;
        }
        CHECK(leaves > 0);
        CHECK(internals > 0);  // the 600-file revision splits id_to_entry
        for (const auto& [revid, inv] : inventories(s.bz, s.repo_dir(rel))) {
            auto parsed = bzr::parse_inventory(inv.text);
            REQUIRE_MESSAGE(parsed, parsed.err().detail);
            CHECK(parsed->revision_id == revid);
            CHECK(parsed->search_key_name == "hash-255-way");
            CHECK(bzr::serialise_inventory(*parsed) == inv.text);
        }
    }
}

TEST_CASE("bzr chk: walks and differences equal Breezy's chk_map iteration") {
    SampleRepo& s = sample_repo();
    FsStore store(s.root.string());
    for (const std::string& rel : {s.repo_rel, s.packed_rel}) {
        CAPTURE(rel);
        auto rows = index_rows(s.bz, s.repo_dir(rel));
        RepoPages src(store, rel, rows);
        auto invs = inventories(s.bz, s.repo_dir(rel));
        std::map<std::string, bzr::ChkInventory> parsed;
        for (const auto& [revid, inv] : invs) parsed[revid] = bzr::parse_inventory(inv.text).value();
        size_t diffs = 0, nonempty_items = 0;
        for (const auto& line : lines_of(s.bz.py("chk " + sh_quote(s.repo_dir(rel).string())))) {
            std::istringstream in(line);
            std::string what, rev_hex;
            in >> what >> rev_hex;
            const bzr::ChkInventory& inv = parsed.at(unhex(rev_hex));
            auto kind = bzr::inventory_search_key(inv);
            REQUIRE(kind);
            if (what == "pages") {
                std::string rest;
                std::getline(in, rest);
                auto pages = bzr::inventory_pages(src, inv);
                REQUIRE_MESSAGE(pages, pages.err().detail);
                std::set<std::string> mine(pages->begin(), pages->end());
                CHECK(mine.size() == pages->size());
                CHECK(mine == words_set(rest));
                continue;
            }
            std::string parent_hex, which, strict, breezy;
            in >> parent_hex >> which;
            const bzr::ChkInventory& old = parsed.at(unhex(parent_hex));
            std::string new_root = which == "0" ? inv.id_to_entry : inv.parent_id_basename_to_file_id;
            std::string old_root = which == "0" ? old.id_to_entry : old.parent_id_basename_to_file_id;
            auto d = chk::difference(src, *kind, std::span(&new_root, 1), std::span(&old_root, 1), {}, true);
            REQUIRE_MESSAGE(d, d.err().detail);
            if (what == "diff") {
                in >> strict >> breezy;
                std::set<std::string> mine(d->pages.begin(), d->pages.end());
                CHECK(mine.size() == d->pages.size());
                CHECK(mine == words_set(strict, ','));
                for (const auto& p : words_set(strict, ',')) CHECK(words_set(breezy, ',').count(p) == 1);
                ++diffs;
            } else {
                REQUIRE(what == "items");
                std::string items;
                in >> items;
                std::set<std::string> mine;
                for (const auto& item : d->new_items) {
                    std::string k;
                    for (size_t i = 0; i < item.key.size(); ++i) k += (i ? std::string(1, '\0') : "") + item.key[i];
                    mine.insert((k.empty() ? "-" : hex(k)) + ":" + (item.value.empty() ? "-" : hex(item.value)));
                }
                CHECK(mine.size() == d->new_items.size());
                CHECK(mine == words_set(items, ','));
                nonempty_items += !mine.empty();
                // The same items, in the same order, through the callback.
                std::vector<std::string> seen, kept;
                auto d2 = chk::difference(src, *kind, std::span(&new_root, 1), std::span(&old_root, 1), {},
                                          [&](std::string_view key, std::string_view value) -> bzr::Status {
                                              seen.push_back(std::string(key) + '\n' + std::string(value));
                                              return bzr::Ok{};
                                          });
                REQUIRE(d2);
                CHECK(d2->new_items.empty());
                CHECK(d2->pages == d->pages);
                for (const auto& item : d->new_items) {
                    std::string k;
                    for (size_t i = 0; i < item.key.size(); ++i) k += (i ? std::string(1, '\0') : "") + item.key[i];
                    kept.push_back(k + '\n' + item.value);
                }
                CHECK(seen == kept);
            }
        }
        CHECK(diffs > 0);
        CHECK(nonempty_items > 0);
    }
}

TEST_CASE("bzr chk: inventory entries round-trip and give text keys") {
    SampleRepo& s = sample_repo();
    FsStore store(s.root.string());
    auto rows = index_rows(s.bz, s.repo_dir(s.repo_rel));
    RepoPages src(store, s.repo_rel, rows);
    std::set<bzr::EntryKind> kinds;
    bool executable = false;
    size_t lookups = 0;
    for (const auto& [revid, inv] : inventories(s.bz, s.repo_dir(s.repo_rel))) {
        auto parsed = bzr::parse_inventory(inv.text).value();
        auto items = chk::map_items(src, parsed.id_to_entry);
        REQUIRE(items);
        for (const auto& item : *items) {
            auto e = bzr::parse_entry(item.value);
            REQUIRE_MESSAGE(e, e.err().detail);
            CHECK(e->file_id == item.key.at(0));
            CHECK(bzr::serialise_entry(*e) == item.value);
            auto tk = bzr::entry_text_key(item.value);
            REQUIRE(tk);
            CHECK(tk->first == e->file_id);
            CHECK(tk->second == e->revision);
            kinds.insert(e->kind);
            executable |= e->executable;
            if (e->file_id == parsed.root_id) CHECK(e->parent_id.empty());
            if (lookups++ % 50 == 0) {  // point lookups find what the walk found
                auto v = chk::lookup(src, chk::SearchKeyKind::Hash255, parsed.id_to_entry, item.key);
                REQUIRE(v);
                CHECK(*v == std::optional<std::string>(item.value));
            }
        }
        auto none = chk::lookup(src, chk::SearchKeyKind::Hash255, parsed.id_to_entry, {"no-such-file-id"});
        REQUIRE(none);
        CHECK(!*none);
        auto by_name = chk::map_items(src, parsed.parent_id_basename_to_file_id);
        REQUIRE(by_name);
        for (const auto& item : *by_name) CHECK(item.key.size() == 2);
    }
    CHECK(kinds == std::set<bzr::EntryKind>{bzr::EntryKind::File, bzr::EntryKind::Directory, bzr::EntryKind::Symlink});
    CHECK(executable);
    bzr::InventoryEntry tree;
    tree.kind = bzr::EntryKind::TreeReference;
    tree.file_id = "t-id";
    tree.parent_id = "p-id";
    tree.name = "sub";
    tree.revision = "rev-1";
    tree.reference_revision = "ref-rev";
    CHECK(bzr::serialise_entry(tree) == "tree: t-id\np-id\nsub\nrev-1\nref-rev");
    CHECK(bzr::parse_entry(bzr::serialise_entry(tree)).value() == tree);
}

TEST_CASE("bzr chk: search keys equal Breezy's") {
    Breezy bz;
    std::vector<chk::Key> keys = {{"a"}, {"file-id-1"}, {"", ""}, {"parent-id", "name.txt"}, {std::string(1, '\n')},
                                  {std::string(300, 'z')}};
    for (int i = 0; i < 200; ++i) keys.push_back({"id-" + std::to_string(i)});  // some CRCs contain '\n'
    std::string args = "search-keys";
    for (const auto& k : keys) {
        std::string a;
        for (size_t i = 0; i < k.size(); ++i) a += (i ? "," : "") + hex(k[i]);
        args += " " + sh_quote(a.empty() ? std::string("") : a);
    }
    auto out = lines_of(bz.py(args));
    REQUIRE(out.size() == keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
        auto w = split_ws(out[i]);
        CHECK(hex(chk::search_key(chk::SearchKeyKind::Hash16, keys[i])) == w[0]);
        CHECK(hex(chk::search_key(chk::SearchKeyKind::Hash255, keys[i])) == w[1]);
    }
    CHECK(chk::search_key(chk::SearchKeyKind::Plain, chk::Key{"a", "b"}) == std::string("a\0b", 3));
    CHECK(chk::search_key_kind("hash-16-way").value() == chk::SearchKeyKind::Hash16);
    CHECK(chk::search_key_kind("hash-7-way").err().code == bzr::Errc::Unsupported);
}

TEST_CASE("bzr chk: valid_page_key takes 40 lower-case hex digits and nothing else") {
    std::string good = "sha1:0123456789abcdef0123456789abcdef01234567";
    REQUIRE(chk::valid_page_key(good));
    for (size_t i = 5; i < good.size(); ++i)  // every digit position, every byte value
        for (int c = 0; c < 256; ++c) {
            std::string k = good;
            k[i] = static_cast<char>(c);
            bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
            if (chk::valid_page_key(k) != hex) FAIL("position " << i << " byte " << c);
        }
    CHECK(!chk::valid_page_key(good.substr(0, 44)));
    CHECK(!chk::valid_page_key(good + "0"));
    CHECK(!chk::valid_page_key("sha2:" + good.substr(5)));
}

TEST_CASE("bzr chk: hostile pages and maps give a bzr::Error in bounded time") {
    auto bad = [](std::string_view page) { return !chk::parse_node(page); };
    CHECK(!bad("chkleaf:\n0\n1\n0\n\n"));
    CHECK(!bad(S("chkleaf:\n65536\n1\n1\nfile-\nid\x00" "1\nvalue\n")));
    CHECK(bad("chkleaf:\n0\n1\n0\n"));                        // no prefix line
    CHECK(bad("chkleaf:\n0\n1\n0\n\nextra"));                   // no final newline
    CHECK(bad("chkleaf:\nx\n1\n0\n\n"));                       // bad number
    CHECK(bad("chkleaf:\n0\n0\n0\n\n"));                       // width 0
    CHECK(bad("chkleaf:\n0\n99\n0\n\n"));                      // width above the cap
    CHECK(bad(S("chkleaf:\n0\n1\n1\n\na\0b\0" "1\nv\n")));   // too many key elements
    CHECK(bad(S("chkleaf:\n0\n2\n1\n\na\x00" "1\nv\n")));         // too few
    CHECK(bad(S("chkleaf:\n0\n1\n1\n\na\x00" "5\nv\n")));         // value lines past the end
    CHECK(bad(S("chkleaf:\n0\n1\n2\n\na\x00" "1\nv\n")));         // item count mismatch
    CHECK(bad(S("chkleaf:\n0\n1\n2\n\na\x00" "1\nv\na\x00" "1\nw\n")));  // a key twice
    CHECK(bad(S("chkleaf:\n0\n1\n1\n\na\x00" "99999999999999999999\nv\n")));
    CHECK(bad("chknode:\n0\n1\n1\n\n"));                       // no children
    CHECK(bad(S("chknode:\n0\n1\n1\n\na\x00" "sha1:xyz\n")));     // child not a page key
    CHECK(bad("chknode:\n0\n1\n1\n\nno-separator\n"));
    CHECK(bad(S("chknode:\n0\n1\n1\n\na\x00") + fake_key(1) + S("\na\x00") + fake_key(2) + "\n"));  // a prefix twice
    CHECK(bad("chkother:\n"));
    CHECK(bad(""));
    // A prefix that swallows an item's value count (Breezy never writes
    // one: its prefix is common to the keys alone) is refused.
    CHECK(bad(S("chkleaf:\n0\n1\n1\na\x00\n" "1\nv\n")));
    CHECK(bad(S("chknode:\n0\n1\n1\na\x00sha1:\n") + fake_key(1).substr(5) + "\n"));
    chk::Limits tiny;
    tiny.max_page = 64;
    CHECK(!chk::parse_node("chkleaf:\n0\n1\n0\n" + std::string(100, 'p') + "\n", tiny));

    // A cycle (impossible with real hashes, possible from a lying source):
    // every walk ends.
    MapPages src;
    src.pages[fake_key(1)] = S("chknode:\n0\n1\n2\n\na\x00") + fake_key(2) + S("\nb\x00") + fake_key(1) + "\n";
    src.pages[fake_key(2)] = S("chknode:\n0\n1\n1\na\naa\x00") + fake_key(1) + "\n";
    std::string root = fake_key(1);
    auto r = chk::reachable_pages(src, std::span(&root, 1));
    REQUIRE(r);
    CHECK(r->size() == 2);
    CHECK(chk::map_items(src, root));
    auto l = chk::lookup(src, chk::SearchKeyKind::Plain, root, {"aaaa"});
    CHECK(!l);
    std::string empty_root = fake_key(9);
    src.pages[empty_root] = "chkleaf:\n0\n1\n0\n\n";
    auto d = chk::difference(src, chk::SearchKeyKind::Plain, std::span(&root, 1), std::span(&empty_root, 1), {}, true);
    REQUIRE(d);
    CHECK(d->pages.size() == 2);
    // Missing pages and the page budget.
    std::string missing = fake_key(7);
    auto m = chk::reachable_pages(src, std::span(&missing, 1));
    REQUIRE(!m);
    CHECK(m.err().code == bzr::Errc::NotFound);
    src.pages[fake_key(3)] = S("chknode:\n0\n1\n1\n\na\x00") + missing + "\n";
    std::string r3 = fake_key(3);
    CHECK(!chk::difference(src, chk::SearchKeyKind::Plain, std::span(&r3, 1), std::span(&empty_root, 1)));
    chk::Limits budget;
    budget.max_pages = 1;
    auto b = chk::reachable_pages(src, std::span(&root, 1), budget);
    REQUIRE(!b);
    CHECK(b.err().code == bzr::Errc::LimitExceeded);
    std::string not_key = "sha1:short";
    CHECK(!chk::reachable_pages(src, std::span(&not_key, 1)));
    // A walk checks a child key when it follows it.
    src.pages[fake_key(5)] = S("chknode:\n0\n1\n1\n\na\x00") + "sha1:" + std::string(40, 'X') + "\n";
    std::string r5 = fake_key(5);
    auto bad_child = chk::reachable_pages(src, std::span(&r5, 1));
    REQUIRE(!bad_child);
    CHECK(bad_child.err().code == bzr::Errc::Corrupt);
    CHECK(!chk::difference(src, chk::SearchKeyKind::Plain, std::span(&r5, 1), std::span(&empty_root, 1)));
    CHECK(!chk::map_items(src, r5));

    // Inventory texts.
    std::string good = "chkinventory:\nsearch_key_name: hash-255-way\nroot_id: TREE_ROOT\n"
                       "parent_id_basename_to_file_id: " + fake_key(1) + "\nrevision_id: r1\nid_to_entry: " +
                       fake_key(2) + "\n";
    CHECK(bzr::parse_inventory(good));
    CHECK(!bzr::parse_inventory("chkinventory:\n"));
    CHECK(!bzr::parse_inventory(good + "root_id: again\n"));
    CHECK(!bzr::parse_inventory(good + "colour: blue\n"));
    CHECK(!bzr::parse_inventory(good.substr(0, good.size() - 1)));
    CHECK(!bzr::parse_inventory("chkinventory\n" + good.substr(14)));
    std::string bad_key = good;
    bad_key.replace(bad_key.find("sha1:"), 5, "md5::");
    CHECK(!bzr::parse_inventory(bad_key));
    CHECK(!bzr::parse_inventory(good + std::string(70000, 'x') + "\n"));
    // Entries.
    CHECK(bzr::parse_entry("file: id\nparent\nname\nrev\nsha\n12\nY"));
    CHECK(!bzr::parse_entry("file: id\nparent\nname\nrev\nsha\n12\nmaybe"));
    CHECK(!bzr::parse_entry("file: id\nparent\nname\nrev\nsha\n-1\nN"));
    CHECK(!bzr::parse_entry("file: id\nparent\nname\nrev"));
    CHECK(!bzr::parse_entry("dir: id\nparent\nname\nrev\nextra"));
    CHECK(!bzr::parse_entry("dir: id\nparent\n\xff\nrev"));
    CHECK(!bzr::parse_entry("blob: id\np\nn\nr"));
    CHECK(!bzr::entry_text_key("dir: id\nparent"));
}
