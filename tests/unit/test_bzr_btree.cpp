// B+Tree graph indices (server/bzr/btree.*), checked against Breezy itself:
// tests/unit/bzr_fixtures/make_btree.py builds indices with Breezy's
// BTreeBuilder and reads ours with BTreeGraphIndex. The reader must find
// every key, the writer's bytes must equal Breezy's, and hostile files must
// give a bzr::Error quickly, never a crash.
#include <doctest/doctest.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "server/base/work_budget.hpp"
#include "server/bzr/btree.hpp"
#include "server/store/fs_store.hpp"

using namespace souk::server;
namespace fs = std::filesystem;

namespace {

std::string sh_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') out += "'\\''";
        else out += c;
    }
    return out + "'";
}

int run(const std::string& cmd, std::string& out) {
    out.clear();
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return -1;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int st = ::pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string unhex(std::string_view s) {
    std::string out;
    for (size_t i = 0; i + 1 < s.size(); i += 2) out += static_cast<char>(std::stoi(std::string(s.substr(i, 2)), nullptr, 16));
    return out;
}

std::string read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_all(const fs::path& p, std::string_view data) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "souk-btree-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

// The Python that has Breezy; the tests fail (never skip) without it.
std::string breezy_python() {
    std::string out;
    REQUIRE_MESSAGE(run("/usr/bin/python3 -c 'import breezy.bzr.btree_index' 2>&1", out) == 0,
                    "/usr/bin/python3 cannot import breezy: these tests need Breezy installed: " << out);
    return "/usr/bin/python3";
}

std::string script() { return std::string(SOUK_TEST_VECTORS) + "/../unit/bzr_fixtures/make_btree.py"; }

struct Dump {
    size_t ref_lists = 0, key_elements = 1;
    std::vector<bzr::BTreeNode> nodes;  // sorted by key
};

Dump parse_dump(const std::string& text) {
    Dump d;
    std::istringstream in(text);
    std::string line;
    REQUIRE(std::getline(in, line));
    std::istringstream meta(line);
    std::string word;
    size_t count = 0;
    meta >> word >> d.ref_lists >> d.key_elements >> count;
    REQUIRE(word == "meta");
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string key, value;
        f >> key >> value;
        bzr::BTreeNode n;
        n.key = unhex(key);
        n.value = value == "-" ? "" : unhex(value);
        for (size_t l = 0; l < d.ref_lists; ++l) {
            std::string list;
            f >> list;
            auto& refs = n.refs.emplace_back();
            if (list == "-") continue;
            std::istringstream items(list);
            for (std::string r; std::getline(items, r, ',');) refs.push_back(unhex(r));
        }
        d.nodes.push_back(std::move(n));
    }
    REQUIRE(d.nodes.size() == count);
    return d;
}

// Breezy builds an index of n generated nodes in dir/name; returns them.
Dump breezy_build(const fs::path& dir, const std::string& name, size_t ref_lists, size_t key_elements, bool optimize,
                  size_t n, int seed) {
    std::string out;
    std::string cmd = breezy_python() + " " + sh_quote(script()) + " build " + sh_quote((dir / name).string()) + " " +
                      std::to_string(ref_lists) + " " + std::to_string(key_elements) + " " + (optimize ? "1" : "0") +
                      " " + std::to_string(n) + " " + std::to_string(seed) + " 2>&1";
    REQUIRE_MESSAGE(run(cmd, out) == 0, "make_btree.py build failed: " << out);
    return parse_dump(out);
}

// Breezy reads dir/name with BTreeGraphIndex; returns what it found.
Dump breezy_read(const fs::path& file) {
    std::string out;
    std::string cmd = breezy_python() + " " + sh_quote(script()) + " read " + sh_quote(file.string()) + " 2>&1";
    REQUIRE_MESSAGE(run(cmd, out) == 0, "Breezy could not read our index: " << out);
    return parse_dump(out);
}

std::string refs_text(const bzr::BTreeNode& n) {
    std::string s;
    for (size_t l = 0; l < n.refs.size(); ++l) {
        if (l) s += '\t';
        for (size_t r = 0; r < n.refs[l].size(); ++r) {
            if (r) s += '\r';
            s += n.refs[l][r];
        }
    }
    return s;
}

struct Shape {
    size_t ref_lists, key_elements;
    bool optimize;
    const char* what;
};
constexpr Shape kShapes[] = {
    {1, 1, true, ".rix"},       {0, 1, true, ".cix"},        {1, 2, true, ".tix"},
    {2, 1, true, "two lists"},  {0, 1, false, "pack-names"}, {1, 1, false, "rix for speed"},
};

// Check a reader against the nodes it should hold.
void check_reader(bzr::BTreeReader& r, const Dump& d) {
    CHECK(r.key_count() == d.nodes.size());
    CHECK(r.ref_lists() == d.ref_lists);
    CHECK(r.key_elements() == d.key_elements);
    // every entry, in order
    size_t i = 0;
    bool same = true;
    REQUIRE(r.iter_all([&](const bzr::BTreeEntry& e) {
        if (i >= d.nodes.size() || e.key != d.nodes[i].key || e.value != d.nodes[i].value ||
            e.refs != refs_text(d.nodes[i]))
            same = false;
        ++i;
    }));
    CHECK(same);
    CHECK(i == d.nodes.size());
    // each key alone, and an absent neighbour of each
    size_t found = 0, wrong = 0, phantom = 0;
    for (const auto& n : d.nodes) {
        std::string_view k = n.key;
        REQUIRE(r.lookup(std::span<const std::string_view>(&k, 1), [&](const bzr::BTreeEntry& e) {
            ++found;
            std::string all = refs_text(n);
            std::string first = n.refs.empty() ? std::string() : all.substr(0, all.find('\t'));
            if (e.value != n.value || e.refs != all || e.ref_list(0) != first) ++wrong;
        }));
        std::string absent = n.key + "~";
        std::string_view a = absent;
        REQUIRE(r.lookup(std::span<const std::string_view>(&a, 1), [&](const bzr::BTreeEntry&) { ++phantom; }));
    }
    CHECK(found == d.nodes.size());
    CHECK(wrong == 0);
    CHECK(phantom == 0);
    // one batch of everything plus absent keys, duplicates and out of order
    std::vector<std::string_view> batch;
    for (const auto& n : d.nodes) batch.push_back(n.key);
    std::vector<std::string> extra = {"", "\x01", "zzzz", "a", "joe@example.com-2009"};
    for (const auto& e : extra) batch.push_back(e);
    if (!d.nodes.empty()) batch.push_back(d.nodes.front().key);
    std::reverse(batch.begin(), batch.end());
    size_t batch_found = 0;
    std::string last;
    bool ordered = true;
    REQUIRE(r.lookup(batch, [&](const bzr::BTreeEntry& e) {
        if (batch_found && !(last < e.key)) ordered = false;
        last = e.key;
        ++batch_found;
    }));
    CHECK(batch_found == d.nodes.size());
    CHECK(ordered);
}

}  // namespace

TEST_CASE("btree: the reader finds every key of Breezy's indices, and the writer's bytes equal Breezy's") {
    TempDir tmp;
    FsStore store(tmp.path.string());
    REQUIRE(store.valid());
    int seed = 1;
    for (const Shape& shape : kShapes) {
        for (size_t n : {0, 1, 2, 100, 3000}) {
            CAPTURE(shape.what);
            CAPTURE(n);
            std::string name = "idx" + std::to_string(seed);
            Dump d = breezy_build(tmp.path, name, shape.ref_lists, shape.key_elements, shape.optimize, n, seed++);
            std::string theirs = read_all(tmp.path / name);
            auto r = bzr::BTreeReader::open(store, name);
            REQUIRE_MESSAGE(r, (r ? "" : r.err().detail));
            check_reader(*r, d);
            bzr::BTreeWriterOptions opt{shape.ref_lists, shape.key_elements, shape.optimize};
            auto ours = bzr::write_btree(opt, d.nodes);
            REQUIRE(ours);
            CHECK(ours->size() == theirs.size());
            CHECK(*ours == theirs);
        }
    }
}

TEST_CASE("btree: three levels (50,000 keys), lookups read O(depth) pages") {
    TempDir tmp;
    FsStore store(tmp.path.string());
    Dump d = breezy_build(tmp.path, "big.rix", 1, 1, true, 50000, 42);
    std::string theirs = read_all(tmp.path / "big.rix");
    auto r = bzr::BTreeReader::open(store, "big.rix");
    REQUIRE(r);
    REQUIRE(r->row_lengths().size() == 3);
    check_reader(*r, d);
    auto ours = bzr::write_btree({1, 1, true}, d.nodes);
    REQUIRE(ours);
    CHECK(*ours == theirs);

    // A fresh reader: one key costs the root (at open) plus one page per row below.
    auto one = bzr::BTreeReader::open(store, "big.rix");
    REQUIRE(one);
    CHECK(one->stats().pages_read == 1);
    std::string_view k = d.nodes[31337].key;
    size_t hits = 0;
    REQUIRE(one->lookup(std::span<const std::string_view>(&k, 1), [&](const bzr::BTreeEntry&) { ++hits; }));
    CHECK(hits == 1);
    CHECK(one->stats().pages_read == 3);
    CHECK(one->stats().bytes_read <= 3 * bzr::kBTreePageSize);
    // The same key again: served by the reader's cache.
    REQUIRE(one->lookup(std::span<const std::string_view>(&k, 1), [&](const bzr::BTreeEntry&) { ++hits; }));
    CHECK(one->stats().pages_read == 3);
    // A batch of 100 neighbouring keys reads each page once.
    auto batch_reader = bzr::BTreeReader::open(store, "big.rix");
    REQUIRE(batch_reader);
    std::vector<std::string_view> batch;
    for (size_t i = 20000; i < 20100; ++i) batch.push_back(d.nodes[i].key);
    REQUIRE(batch_reader->lookup(batch, [](const bzr::BTreeEntry&) {}));
    CHECK(batch_reader->stats().pages_read <= 1 + 1 + 3);
    // lookup_pages reports whole leaves around the asked key.
    size_t nearby = 0;
    bool asked_seen = false;
    REQUIRE(batch_reader->lookup_pages(std::span<const std::string_view>(&k, 1), [&](const bzr::BTreeEntry& e) {
        ++nearby;
        if (e.key == k) asked_seen = true;
    }));
    CHECK(asked_seen);
    CHECK(nearby > 10);
}

TEST_CASE("btree: a small index read whole answers as one read page by page") {
    TempDir tmp;
    FsStore store(tmp.path.string());
    Dump d = breezy_build(tmp.path, "mid.tix", 1, 2, true, 3000, 11);
    const auto size = fs::file_size(tmp.path / "mid.tix");
    REQUIRE(size > 3 * bzr::kBTreePageSize);  // several pages
    bzr::BTreeLimits whole, paged;
    whole.whole_file_bytes = size;
    paged.whole_file_bytes = size - 1;
    auto w = bzr::BTreeReader::open(store, "mid.tix", whole);
    auto p = bzr::BTreeReader::open(store, "mid.tix", paged);
    REQUIRE(w);
    REQUIRE(p);
    check_reader(*w, d);
    check_reader(*p, d);
    CHECK(w->stats().pages_read == p->stats().pages_read);  // pages are parsed as they are needed either way
    CHECK(!w->single_page());
    CHECK(w->root_entries().empty());
    // A one-page index hands its entries out whole.
    Dump small = breezy_build(tmp.path, "small.rix", 1, 1, true, 20, 5);
    auto s = bzr::BTreeReader::open(store, "small.rix");
    REQUIRE(s);
    CHECK(s->single_page());
    REQUIRE(s->root_entries().size() == small.nodes.size());
    CHECK(s->root_entries().front().key == small.nodes.front().key);
}

TEST_CASE("btree: Breezy reads the writer's indices") {
    TempDir tmp;
    std::mt19937 rng(7);
    for (const Shape& shape : kShapes) {
        for (size_t n : {0, 1, 700, 20000}) {
            CAPTURE(shape.what);
            CAPTURE(n);
            if (n == 20000 && shape.key_elements == 2) continue;  // covered by the .rix shapes
            std::vector<bzr::BTreeNode> nodes;
            for (size_t i = 0; i < n; ++i) {
                bzr::BTreeNode node;
                std::string id = "rev-" + std::to_string(rng() % 1000000) + "-" + std::to_string(i);
                node.key = shape.key_elements == 2 ? "f" + std::to_string(i % 13) + '\0' + id : id;
                node.value = std::to_string(rng()) + " " + std::to_string(i);
                for (size_t l = 0; l < shape.ref_lists; ++l) {
                    auto& refs = node.refs.emplace_back();
                    if (i > 0) refs.push_back(nodes[rng() % i].key);
                    if (i > 2 && rng() % 4 == 0) refs.push_back(nodes[rng() % i].key);
                }
                nodes.push_back(std::move(node));
            }
            auto ours = bzr::write_btree({shape.ref_lists, shape.key_elements, shape.optimize}, nodes);
            REQUIRE(ours);
            fs::path file = tmp.path / "ours.idx";
            write_all(file, *ours);
            Dump d = breezy_read(file);
            std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
            REQUIRE(d.nodes.size() == nodes.size());
            size_t diff = 0;
            for (size_t i = 0; i < nodes.size(); ++i)
                if (d.nodes[i].key != nodes[i].key || d.nodes[i].value != nodes[i].value ||
                    refs_text(d.nodes[i]) != refs_text(nodes[i]))
                    ++diff;
            CHECK(diff == 0);
        }
    }
}

TEST_CASE("btree: prefix lookups on two-element keys") {
    TempDir tmp;
    FsStore store(tmp.path.string());
    Dump d = breezy_build(tmp.path, "t.tix", 1, 2, true, 4000, 9);
    auto r = bzr::BTreeReader::open(store, "t.tix");
    REQUIRE(r);
    REQUIRE(r->row_lengths().size() >= 2);
    for (int f : {0, 3, 6, 7}) {
        std::string prefix = "file-" + std::to_string(f) + "-id";
        std::vector<std::string> want, got;
        for (const auto& n : d.nodes)
            if (n.key.rfind(prefix + '\0', 0) == 0) want.push_back(n.key);
        REQUIRE(r->iter_prefix(prefix, [&](const bzr::BTreeEntry& e) { got.emplace_back(e.key); }));
        CHECK(got == want);
    }
    // A whole key as the prefix is an exact lookup.
    size_t n = 0;
    REQUIRE(r->iter_prefix(d.nodes[5].key, [&](const bzr::BTreeEntry&) { ++n; }));
    CHECK(n == 1);
    CHECK(!r->iter_prefix(d.nodes[5].key + '\0' + "x", [](const bzr::BTreeEntry&) {}));
}

TEST_CASE("btree: the writer rejects what Breezy rejects") {
    using bzr::BTreeNode;
    CHECK(!bzr::write_btree({0, 1, false}, {BTreeNode{"a b", {}, "v"}}));           // whitespace in a key
    CHECK(!bzr::write_btree({0, 1, false}, {BTreeNode{"", {}, "v"}}));              // empty key
    CHECK(!bzr::write_btree({0, 2, false}, {BTreeNode{"a", {}, "v"}}));             // one element, two wanted
    CHECK(!bzr::write_btree({0, 1, false}, {BTreeNode{"a", {}, "v\n"}}));           // newline in a value
    CHECK(!bzr::write_btree({1, 1, false}, {BTreeNode{"a", {}, "v"}}));             // missing ref list
    CHECK(!bzr::write_btree({0, 1, false}, {BTreeNode{"a", {}, ""}, BTreeNode{"a", {}, ""}}));  // duplicate
    std::string noise;
    std::mt19937 rng(3);
    for (int i = 0; i < 6000; ++i) noise += static_cast<char>('!' + rng() % 90);
    CHECK(!bzr::write_btree({0, 1, false}, {BTreeNode{"a", {}, noise}}));  // too big for a page
    auto empty = bzr::write_btree({0, 1, false}, {});
    REQUIRE(empty);
    CHECK(*empty == "B+Tree Graph Index 2\nnode_ref_lists=0\nkey_elements=1\nlen=0\nrow_lengths=\n");
}

// ---- hostile input -----------------------------------------------------------

namespace {

std::string zlib_of(std::string_view data) {
    uLongf n = compressBound(static_cast<uLong>(data.size()));
    std::string out(n, '\0');
    REQUIRE(compress2(reinterpret_cast<Bytef*>(out.data()), &n, reinterpret_cast<const Bytef*>(data.data()),
                      static_cast<uLong>(data.size()), 9) == Z_OK);
    out.resize(n);
    return out;
}

std::string header(size_t refs, size_t elems, const std::string& len, const std::string& rows) {
    return "B+Tree Graph Index 2\nnode_ref_lists=" + std::to_string(refs) + "\nkey_elements=" + std::to_string(elems) +
           "\nlen=" + len + "\nrow_lengths=" + rows + "\n";
}

// Open the bytes and use every access path; true if all succeeded.
bool exercise(std::string_view bytes, const bzr::BTreeLimits& lim = {}) {
    auto r = bzr::BTreeReader::from_bytes(bytes, lim);
    if (!r) return false;
    bool ok = true;
    std::vector<std::string> keys;
    ok = ok && r->iter_all([&](const bzr::BTreeEntry& e) {
        if (keys.size() < 50) keys.emplace_back(e.key);
    });
    std::vector<std::string_view> probe(keys.begin(), keys.end());
    probe.push_back("zzz");
    probe.push_back("");
    ok = r->lookup(probe, [](const bzr::BTreeEntry&) {}) && ok;
    ok = r->lookup_pages(probe, [](const bzr::BTreeEntry&) {}) && ok;
    if (r->key_elements() > 1) ok = r->iter_prefix("a", [](const bzr::BTreeEntry&) {}) && ok;
    return ok;
}

}  // namespace

TEST_CASE("btree: hostile indices give an error in bounded time") {
    auto t0 = std::chrono::steady_clock::now();
    SUBCASE("a page that inflates far beyond its limit") {
        std::string leaf = "type=leaf\n" + std::string(3 * 1024 * 1024, 'a');
        std::string bytes = header(0, 1, "1", "1") + zlib_of(leaf);
        REQUIRE(bytes.size() < 4096);
        bzr::BTreeLimits lim;
        lim.max_page_inflated = 64 * 1024;
        auto r = bzr::BTreeReader::from_bytes(bytes, lim);
        REQUIRE(!r);
        CHECK(r.err().code == bzr::Errc::LimitExceeded);
        CHECK(!exercise(bytes));  // default limit: a 3 MiB line with no key separators is corrupt
    }
    SUBCASE("impossible row counts and key counts") {
        std::string leaf = zlib_of(std::string("type=leaf\na\0\0v\n", 15));
        CHECK(exercise(header(0, 1, "1", "1") + leaf));  // the control: valid
        for (const char* rows : {"2", "0", "1,0", "1,5,2", "1,99999999999999", "x", "1,,2", "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1"}) {
            CAPTURE(rows);
            CHECK(!exercise(header(0, 1, "1", rows) + leaf));
        }
        for (const char* len : {"1000000000000000000", "99999999999999999999999", "-1", ""}) {
            CAPTURE(len);
            CHECK(!exercise(header(0, 1, len, "1") + leaf));
        }
        CHECK(!exercise(header(0, 0, "1", "1") + leaf));        // no key elements
        CHECK(!exercise(header(1000, 1, "1", "1") + leaf));     // too many ref lists
        CHECK(!exercise(header(0, 1000, "1", "1") + leaf));     // too many key elements
        CHECK(exercise(header(1, 1, "1", "1") + leaf));         // one empty ref list
        CHECK(!exercise(header(2, 1, "1", "1") + leaf));        // a leaf line without its second ref list
        CHECK(!exercise("B+Tree Graph Index 1\n" + leaf));      // signature
        CHECK(!exercise(""));
    }
    SUBCASE("child pointers outside their row, and pages of the wrong kind") {
        std::string leaf = zlib_of(std::string("type=leaf\nb\0\0v\n", 15));
        auto two_level = [&](const std::string& root_text, const std::string& second) {
            std::string h = header(0, 1, "1", "1,1");
            std::string page0 = h + zlib_of(root_text);
            page0.resize(4096, '\0');
            return page0 + second;
        };
        CHECK(exercise(two_level("type=internal\noffset=0\n", leaf)));  // the control
        CHECK(!exercise(two_level("type=internal\noffset=1\n", leaf)));
        CHECK(!exercise(two_level("type=internal\noffset=18446744073709551615\n", leaf)));
        CHECK(!exercise(two_level("type=internal\noffset=0\nb\n", leaf)));  // second child beyond the row
        CHECK(!exercise(two_level("type=internal\noffset=x\n", leaf)));
        CHECK(!exercise(two_level(std::string("type=leaf\na\0\0v\n", 15), leaf)));        // leaf as root of 2 rows
        CHECK(!exercise(two_level("type=internal\noffset=0\n", zlib_of("type=internal\noffset=0\n"))));
        CHECK(!exercise(two_level("type=internal\noffset=0\n", zlib_of(std::string("type=leaf\nb\0\0v\na\0\0v\n", 20)))));  // unsorted
        CHECK(!exercise(two_level("type=internal\noffset=0\n", "not zlib at all")));
    }
    SUBCASE("too many keys in a page") {
        std::string text = "type=leaf\n";
        for (int i = 0; i < 1000; ++i) text += "k" + std::to_string(100000 + i) + std::string("\0\0v\n", 4);
        std::string bytes = header(0, 1, "1000", "1") + zlib_of(text);
        REQUIRE(exercise(bytes));
        bzr::BTreeLimits lim;
        lim.max_keys_per_page = 999;
        CHECK(!exercise(bytes, lim));
    }
    SUBCASE("truncated and bit-flipped real indices") {
        TempDir tmp;
        breezy_build(tmp.path, "r.rix", 1, 1, true, 3000, 5);
        std::string good = read_all(tmp.path / "r.rix");
        REQUIRE(exercise(good));
        for (size_t cut : {size_t(0), size_t(10), size_t(60), size_t(80), size_t(200), size_t(4096), size_t(4097),
                           size_t(4096 * 5 + 100), good.size() - 1, good.size() - 100}) {
            CAPTURE(cut);
            CHECK(!exercise(std::string_view(good).substr(0, cut)));
        }
        CHECK(!exercise(good + std::string(4096, 'x')));  // longer than its pages
        std::mt19937 rng(11);
        size_t failures = 0;
        for (int i = 0; i < 300; ++i) {
            std::string bad = good;
            bad[rng() % bad.size()] ^= static_cast<char>(1 << (rng() % 8));
            if (!exercise(bad)) ++failures;
        }
        CHECK(failures > 0);  // most flips inside compressed data are noticed; none may crash
    }
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(secs < 30);
}

TEST_CASE("btree: parse_btree (the whole-file form) agrees with the reader") {
    TempDir tmp;
    Dump d = breezy_build(tmp.path, "w.tix", 1, 2, true, 800, 3);
    std::string bytes = read_all(tmp.path / "w.tix");
    size_t i = 0, bad = 0;
    std::string err = bzr::parse_btree(bytes, [&](const bzr::IndexEntry& e) {
        const auto& n = d.nodes[i++];
        std::string key = std::string(e.key[0]) + '\0' + std::string(e.key[1]);
        std::string refs;
        for (const auto& ref : e.refs.at(0)) {
            if (!refs.empty()) refs += '\r';
            refs += std::string(ref.at(0)) + '\0' + std::string(ref.at(1));
        }
        if (key != n.key || e.value != n.value || refs != refs_text(n)) ++bad;
    });
    CHECK(err.empty());
    CHECK(i == d.nodes.size());
    CHECK(bad == 0);
}

TEST_CASE("btree: a page inflating to exactly the limit is read, one byte more is refused") {
    std::string leaf = "type=leaf\n";
    for (int i = 0; i < 200; ++i) leaf += "k" + std::to_string(1000 + i) + std::string("\0\0v\n", 4);
    std::string bytes = header(0, 1, "200", "1") + zlib_of(leaf);
    bzr::BTreeLimits lim;
    lim.max_page_inflated = leaf.size();
    CHECK(exercise(bytes, lim));
    lim.max_page_inflated = leaf.size() - 1;
    auto r = bzr::BTreeReader::from_bytes(bytes, lim);
    REQUIRE(!r);
    CHECK(r.err().code == bzr::Errc::LimitExceeded);
}

namespace {

// A two-row index whose 16 leaves each inflate to about 1 MiB from a few
// KiB: keys with thousands of references, the shape of the cheapest
// CPU-and-memory bomb the per-page limits still allow.
std::string reference_bomb(size_t leaves = 16, size_t refs_per_key = 4000) {
    std::string root = "type=internal\noffset=0\n", pages;
    size_t key = 0;
    for (size_t l = 0; l < leaves; ++l) {  // bounded: `leaves`
        std::string leaf = "type=leaf\n";
        if (l) root += "r" + std::to_string(100000000 + key) + "\n";
        for (size_t k = 0; k < 20; ++k, ++key) {  // bounded: 20 keys a leaf
            leaf += "r" + std::to_string(100000000 + key) + std::string(1, '\0') + "r100000000";
            for (size_t i = 1; i < refs_per_key; ++i) leaf += "\rr100000000";  // bounded: refs_per_key
            leaf += std::string(1, '\0') + "0 1 0 1\n";
        }
        std::string z = zlib_of(leaf);
        REQUIRE(z.size() <= 4096);
        z.resize(4096, '\0');
        pages += z;
    }
    std::string page0 = header(1, 1, std::to_string(key), "1," + std::to_string(leaves)) + zlib_of(root);
    REQUIRE(page0.size() <= 4096);
    page0.resize(4096, '\0');
    return page0 + pages;
}

}  // namespace

TEST_CASE("btree: a request's work budget ends a hostile index's inflation; the page cache is bounded in bytes") {
    const std::string bomb = reference_bomb();
    REQUIRE(bomb.size() == 17 * 4096);  // 68 KiB on disk, about 16 MiB inflated
    size_t entries = 0;
    auto count = [&](const bzr::BTreeEntry&) { ++entries; };
    {
        auto r = bzr::BTreeReader::from_bytes(bomb);  // the control: no budget, it is a valid index
        REQUIRE(r);
        CHECK(r->iter_all(count));
        CHECK(entries == 16 * 20);
    }
    WorkBudget budget{4 << 20, 0};
    {
        BudgetScope scope(&budget);
        auto r = bzr::BTreeReader::from_bytes(bomb);
        REQUIRE(r);
        auto t0 = std::chrono::steady_clock::now();
        auto st = r->iter_all([](const bzr::BTreeEntry&) {});
        REQUIRE(!st);
        CHECK(st.err().code == bzr::Errc::LimitExceeded);
        CHECK(st.err().detail.find("--request-inflate-budget") != std::string::npos);
        CHECK(budget.inflated > budget.max_inflated);
        CHECK(budget.inflated < budget.max_inflated + (2 << 20));  // stopped at the first page past it
        CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
    }
    // Out of the scope nothing is charged.
    const uint64_t spent = budget.inflated;
    auto again = bzr::BTreeReader::from_bytes(bomb);
    REQUIRE(again);
    CHECK(again->iter_all([](const bzr::BTreeEntry&) {}));
    CHECK(budget.inflated == spent);
    // Each leaf holds about 1 MiB: a 2 MiB page cache keeps two of them,
    // however many pages its count allows; the default (8 MiB) keeps four.
    std::vector<std::string> keys;
    for (int i = 0; i < 4; ++i) keys.push_back("r" + std::to_string(100000000 + 20 * i));  // four leaves
    std::vector<std::string_view> probe(keys.begin(), keys.end());
    auto rereads = [&](const bzr::BTreeLimits& lim) {
        auto r = bzr::BTreeReader::from_bytes(bomb, lim);
        REQUIRE(r);
        REQUIRE(r->lookup(probe, [](const bzr::BTreeEntry&) {}));
        const uint64_t once = r->stats().pages_read;
        REQUIRE(r->lookup(probe, [](const bzr::BTreeEntry&) {}));
        return r->stats().pages_read - once;
    };
    bzr::BTreeLimits small;
    small.max_cached_bytes = 2 << 20;
    CHECK(rereads(small) == 4);  // least recently used first: each is gone before it is asked again
    CHECK(rereads(bzr::BTreeLimits{}) == 0);
}
