// Groupcompress blocks (server/bzr/groupcompress.hpp) against Breezy:
// every text of brz's repositories (fresh packs and `brz pack`ed ones with
// deltas) read by souk equals Breezy's own extraction and `brz cat`; blocks
// souk writes are read by Breezy's GroupCompressBlock, and a repository
// whose every pack souk rewrote (blocks and container) passes `brz check`;
// hostile blocks and deltas give a bzr::Error in bounded time and memory.
#include <doctest/doctest.h>

#include <zlib.h>

#include <chrono>
#include <random>
#include <set>
#include <tuple>

#include "bzr_fixture.hpp"
#include "server/bzr/groupcompress.hpp"
#include "server/bzr/pack.hpp"

using namespace souk::server;
using namespace souk::test_bzr;
namespace gc = souk::server::bzr::gc;

namespace {

// Breezy's extraction of every text: (ext, key) -> text.
std::map<std::pair<std::string, std::string>, std::string> breezy_texts(const Breezy& bz, const fs::path& repo) {
    std::map<std::pair<std::string, std::string>, std::string> out;
    for (const auto& line : lines_of(bz.py("texts " + sh_quote(repo.string())))) {
        auto w = split_ws(line);
        REQUIRE(w.size() == 3);
        out[{w[0], unhex(w[1])}] = unhex(w[2]);
    }
    return out;
}

std::string zlib_of(std::string_view data, int level = Z_DEFAULT_COMPRESSION) {
    std::string z(compressBound(static_cast<uLong>(data.size())), '\0');
    uLongf n = static_cast<uLongf>(z.size());
    REQUIRE(compress2(reinterpret_cast<Bytef*>(z.data()), &n, reinterpret_cast<const Bytef*>(data.data()),
                      static_cast<uLong>(data.size()), level) == Z_OK);
    z.resize(n);
    return z;
}

std::string block_of(std::string_view content, uint64_t claimed_len) {
    std::string z = zlib_of(content);
    return "gcb1z\n" + std::to_string(z.size()) + "\n" + std::to_string(claimed_len) + "\n" + z;
}

std::string varint(uint64_t v) {
    std::string s;
    gc::encode_base128(v, s);
    return s;
}

// Breezy's GroupCompressBlock extracts texts[i] at where[i] from `block`.
void check_breezy_reads(const Breezy& bz, const std::string& block, const std::vector<std::pair<uint64_t, uint64_t>>& where,
                        const std::vector<std::string>& texts) {
    write_all(bz.tmp.path / "block", block);
    std::string args = "gcb-extract " + sh_quote((bz.tmp.path / "block").string());
    for (const auto& [a, b] : where) args += " " + std::to_string(a) + ":" + std::to_string(b);
    auto got = lines_of(bz.py(args));
    REQUIRE(got.size() == texts.size());
    for (size_t i = 0; i < texts.size(); ++i) CHECK(unhex(got[i]) == texts[i]);
}

}  // namespace

TEST_CASE("bzr groupcompress: every text of brz's blocks equals Breezy's extraction") {
    SampleRepo& s = sample_repo();
    FsStore store(s.root.string());
    for (const std::string& rel : {s.repo_rel, s.packed_rel}) {
        CAPTURE(rel);
        auto expected = breezy_texts(s.bz, s.repo_dir(rel));
        auto rows = index_rows(s.bz, s.repo_dir(rel));
        REQUIRE(rows.size() == expected.size());
        size_t deltas = 0, fulltexts = 0, empty = 0;
        for (const auto& row : rows) {
            CAPTURE(row.ext);
            CAPTURE(hex(row.key));
            OpenFile f;
            REQUIRE(store.open_read(rel + "/packs/" + row.pack + ".pack", f) == 0);
            auto content = gc::read_block_prefix(store, f, row.offset, row.length, row.end);
            REQUIRE_MESSAGE(content, content.err().detail);
            CHECK(content->size() == row.end);  // only the prefix the entry needs
            gc::EntryKind kind;
            auto text = gc::extract_text(*content, row.start, row.end, {}, &kind);
            REQUIRE_MESSAGE(text, text.err().detail);
            CHECK(*text == expected.at({row.ext, row.key}));
            deltas += kind == gc::EntryKind::Delta;
            fulltexts += kind == gc::EntryKind::Fulltext;
            empty += kind == gc::EntryKind::Empty;
        }
        CHECK(fulltexts > 0);
        CHECK(empty > 0);  // directories
        if (rel == s.packed_rel) CHECK(deltas > 0);  // brz pack deltas texts against each other
        // Whole blocks, in memory, give the same texts.
        std::map<std::tuple<std::string, uint64_t, uint64_t>, std::string> blocks;
        for (const auto& row : rows) {
            auto key = std::make_tuple(row.pack, row.offset, row.length);
            if (!blocks.count(key)) {
                std::string pack = read_all(s.repo_dir(rel) / "packs" / (row.pack + ".pack"));
                auto rec = bzr::parse_record(std::string_view(pack).substr(row.offset, row.length));
                REQUIRE(rec);
                auto all = gc::block_content(rec->data);
                REQUIRE(all);
                blocks[key] = *all;
            }
            auto text = gc::extract_text(blocks[key], row.start, row.end);
            REQUIRE(text);
            CHECK(*text == expected.at({row.ext, row.key}));
        }
    }
}

TEST_CASE("bzr groupcompress: file texts equal brz cat") {
    SampleRepo& s = sample_repo();
    FsStore store(s.root.string());
    std::set<std::string> texts;
    for (const auto& row : index_rows(s.bz, s.repo_dir(s.repo_rel)))
        if (row.ext == "tix") {
            auto t = read_text(store, s.repo_rel, row);
            REQUIRE(t);
            texts.insert(*t);
        }
    fs::path trunk = s.shared / "trunk";
    for (const char* args : {"cat -r 1 a.txt", "cat -r 2 a.txt", "cat -r 3 a.txt", "cat -r 3 renamed.txt",
                             "cat -r 2 blob.bin", "cat -r 4 many/file-with-a-rather-long-name-599.txt",
                             "cat -r 5 many/file-with-a-rather-long-name-7.txt", "cat -r 2 run.sh"}) {
        CAPTURE(args);
        std::string out = s.bz.brz(trunk, args);
        CHECK(texts.count(out) == 1);
    }
}

TEST_CASE("bzr groupcompress: Breezy reads the blocks souk writes") {
    Breezy bz;
    std::vector<std::string> texts = {"", "hello\n", std::string("\0\x01\xff\n\r binary", 12), std::string(200000, 'q'),
                                      "", "last"};
    for (int i = 0; i < 300; ++i) texts.push_back("line " + std::to_string(i) + "\n");
    gc::BlockWriter w;
    std::vector<std::pair<uint64_t, uint64_t>> where;
    for (const auto& t : texts) {
        auto r = w.add_fulltext(t);
        REQUIRE(r);
        where.push_back(*r);
    }
    CHECK(where[0] == std::pair<uint64_t, uint64_t>{0, 0});  // empty texts take no bytes, like Breezy
    auto block = w.finish();
    REQUIRE(block);
    check_breezy_reads(bz, *block, where, texts);
    // And souk reads it back.
    auto content = gc::block_content(*block);
    REQUIRE(content);
    CHECK(*content == w.content());
    for (size_t i = 0; i < texts.size(); ++i) CHECK(gc::extract_text(*content, where[i].first, where[i].second).value() == texts[i]);
}

TEST_CASE("bzr groupcompress: add_text writes deltas that Breezy and souk read back") {
    Breezy bz;
    // Versions of a few files: each edits some lines of the one before, as
    // a text's revisions do; plus a binary text, a long line and repeats.
    std::mt19937 rng(20261205);
    std::vector<std::string> texts;
    for (int file = 0; file < 4; ++file) {
        std::vector<std::string> lines;
        for (int i = 0; i < 120; ++i) lines.push_back("file " + std::to_string(file) + " line " + std::to_string(rng()) + "\n");
        for (int v = 0; v < 8; ++v) {
            for (int e = 0; e < 5; ++e) {  // bounded: five edits a version
                size_t at = rng() % lines.size();
                if (rng() % 2) lines[at] = "edited " + std::to_string(rng()) + "\n";
                else lines.insert(lines.begin() + static_cast<long>(at), "inserted " + std::to_string(rng()) + "\n");
            }
            std::string t;
            for (const auto& l : lines) t += l;
            texts.push_back(t);
        }
    }
    texts.push_back(std::string(300, 'x') + "\n" + std::string(5000, 'y'));  // lines longer than an insert
    texts.push_back(texts[3]);                                            // an exact repeat
    static constexpr char kBinary[] = "\0\x01\xff no newline";
    texts.push_back(std::string(kBinary, sizeof kBinary - 1));
    texts.push_back("");
    gc::BlockWriter w;
    std::vector<std::pair<uint64_t, uint64_t>> where;
    size_t deltas = 0, text_bytes = 0;
    auto content = [&] { return std::string(w.content()); };
    for (const auto& t : texts) {
        auto r = w.add_text(t);
        REQUIRE(r);
        where.push_back(*r);
        text_bytes += t.size();
        if (r->second > r->first && content()[r->first] == 'd') ++deltas;
    }
    CHECK(deltas >= 28);                           // every later version of a file, and the repeat
    CHECK(w.content_size() * 4 < text_bytes);      // deltas, not fulltexts
    CHECK(where.back() == std::pair<uint64_t, uint64_t>{0, 0});
    std::string c = content();
    for (size_t i = 0; i < texts.size(); ++i) CHECK(gc::extract_text(c, where[i].first, where[i].second).value() == texts[i]);
    auto block = w.finish();
    REQUIRE(block);
    check_breezy_reads(bz, *block, where, texts);
}

TEST_CASE("bzr groupcompress: a repository whose packs souk rewrote passes brz check") {
    SampleRepo& s = sample_repo();
    TempDir tmp;
    fs::path copy = tmp.path / "shared";
    fs::copy(s.shared, copy, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    fs::path repo = copy / ".bzr/repository";
    auto before = breezy_texts(s.bz, repo);
    auto rows = index_rows(s.bz, repo);
    FsStore store(tmp.path.string());
    // One new block per stored block, fulltexts only, in one new pack.
    std::map<std::tuple<std::string, uint64_t, uint64_t>, std::vector<size_t>> by_block;
    for (size_t i = 0; i < rows.size(); ++i) by_block[{rows[i].pack, rows[i].offset, rows[i].length}].push_back(i);
    std::string pack;
    bzr::ContainerWriter cw([&](std::string_view b) -> bzr::Status {
        pack.append(b);
        return bzr::Ok{};
    });
    REQUIRE(cw.begin());
    std::string map;
    std::set<std::pair<std::string, std::string>> done;
    for (const auto& [blk, members] : by_block) {
        gc::BlockWriter bw;
        std::vector<std::pair<size_t, std::pair<uint64_t, uint64_t>>> placed;
        for (size_t i : members) {
            const IndexRow& row = rows[i];
            if (!done.insert({row.ext, row.key}).second) continue;  // a key listed by two packs
            auto text = read_text(store, "shared/.bzr/repository", row);
            REQUIRE_MESSAGE(text, text.err().detail);
            auto at = bw.add_fulltext(*text);
            REQUIRE(at);
            placed.push_back({i, *at});
        }
        auto bytes = bw.finish();
        REQUIRE(bytes);
        auto memo = cw.add_bytes_record(*bytes, {});
        REQUIRE(memo);
        for (const auto& [i, at] : placed)
            map += rows[i].ext + " " + hex(rows[i].key) + " " + std::to_string(memo->first) + " " +
                   std::to_string(memo->second) + " " + std::to_string(at.first) + " " + std::to_string(at.second) + "\n";
    }
    REQUIRE(cw.end());
    write_all(tmp.path / "new.pack", pack);
    write_all(tmp.path / "map", map);
    s.bz.py("rebuild " + sh_quote(repo.string()) + " " + sh_quote((tmp.path / "new.pack").string()) + " " +
            sh_quote((tmp.path / "map").string()));
    auto after = breezy_texts(s.bz, repo);
    CHECK(after == before);
    std::string out = s.bz.brz(copy / "trunk", "check");
    CHECK(out.find("ERROR") == std::string::npos);
    CHECK(out.find("revisions") != std::string::npos);
    // souk reads the rewritten repository too.
    for (const auto& row : index_rows(s.bz, repo)) {
        auto text = read_text(store, "shared/.bzr/repository", row);
        REQUIRE(text);
        CHECK(*text == before.at({row.ext, row.key}));
    }
}

TEST_CASE("bzr groupcompress: base128 integers") {
    for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{300}, uint64_t{1} << 32,
                       uint64_t{1} << 63, ~uint64_t{0} >> 1}) {
        std::string s = varint(v);
        size_t pos = 0;
        uint64_t back = 0;
        REQUIRE(gc::decode_base128(s, pos, 10, back));
        CHECK(back == v);
        CHECK(pos == s.size());
    }
    CHECK(varint(300) == "\xac\x02");
    size_t pos = 0;
    uint64_t v = 0;
    CHECK(!gc::decode_base128("\xff\xff", pos, 10, v));                     // truncated
    pos = 0;
    CHECK(!gc::decode_base128(std::string(11, '\xff'), pos, 10, v));        // too long
    pos = 0;
    CHECK(!gc::decode_base128(std::string(9, '\xff') + "\x7f", pos, 10, v));  // above 2^64
}

TEST_CASE("bzr groupcompress: hostile blocks and deltas give a bzr::Error in bounded time and memory") {
    gc::Limits small;
    small.max_content = small.max_text = 1 << 20;
    std::string f1 = "f" + varint(5) + "hello";

    SUBCASE("zip bomb: 256 MiB of zeros is never inflated past the cap") {
        z_stream zs{};
        REQUIRE(deflateInit(&zs, 9) == Z_OK);
        std::string zeros(1 << 20, '\0'), z;
        char buf[1 << 16];
        for (int i = 0; i < 256; ++i) {
            zs.next_in = reinterpret_cast<Bytef*>(zeros.data());
            zs.avail_in = static_cast<uInt>(zeros.size());
            do {
                zs.next_out = reinterpret_cast<Bytef*>(buf);
                zs.avail_out = sizeof buf;
                deflate(&zs, i == 255 ? Z_FINISH : Z_NO_FLUSH);
                z.append(buf, sizeof buf - zs.avail_out);
            } while (zs.avail_out == 0);
        }
        deflateEnd(&zs);
        std::string bomb = "gcb1z\n" + std::to_string(z.size()) + "\n" + std::to_string(256u << 20) + "\n" + z;
        auto t0 = std::chrono::steady_clock::now();
        auto all = gc::block_content(bomb, std::string_view::npos, small);
        REQUIRE(!all);
        CHECK(all.err().code == bzr::Errc::LimitExceeded);
        auto some = gc::block_content(bomb, 1000, small);
        REQUIRE(some);
        CHECK(some->size() == 1000);
        CHECK(!gc::block_content(bomb, (1 << 20) + 1, small));
        // A header that lies small: only what it claims is inflated.
        std::string liar = "gcb1z\n" + std::to_string(z.size()) + "\n4096\n" + z;
        auto l = gc::block_content(liar, std::string_view::npos, small);
        REQUIRE(l);
        CHECK(l->size() == 4096);
        CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
    }
    SUBCASE("bad headers and framing") {
        CHECK(gc::parse_block_header("gcb1l\n1\n1\nx").err().code == bzr::Errc::Unsupported);
        CHECK(!gc::parse_block_header("gcb2z\n1\n1\n"));
        CHECK(!gc::parse_block_header("gcb1z\n"));
        CHECK(!gc::parse_block_header("gcb1z\n12"));
        CHECK(!gc::parse_block_header("gcb1z\n99999999999999999999\n1\n"));
        CHECK(!gc::parse_block_header("gcb1z\n-1\n1\n"));
        CHECK(!gc::parse_block_header(""));
        std::string b = block_of(f1, f1.size());
        CHECK(gc::block_content(b));
        CHECK(!gc::block_content(b.substr(0, b.size() - 1)));            // z length mismatch
        CHECK(!gc::block_content(b + "x"));
        CHECK(!gc::block_content(block_of(f1, f1.size() + 10)));          // content shorter than claimed
        std::string broken = b;
        broken[gc::parse_block_header(b)->header_size] ^= 0x55;  // the zlib header
        CHECK(!gc::block_content(broken));                                // corrupt zlib
        CHECK(!gc::block_content("gcb1z\n3\n5\nabc"));
    }
    SUBCASE("entries") {
        std::string c = f1;
        CHECK(gc::extract_text(c, 0, c.size()).value() == "hello");
        CHECK(gc::extract_text(c, 0, 0)->empty());
        CHECK(!gc::extract_text(c, 0, c.size() + 1));  // beyond the content
        CHECK(!gc::extract_text(c, 3, 2));
        CHECK(!gc::extract_text(c, 0, c.size() - 1));  // length disagrees with the index
        CHECK(!gc::extract_text("x" + c.substr(1), 0, c.size()));
        CHECK(!gc::extract_text(std::string("f\xff\xff\xff\xff\xff\xff", 7), 0, 7));
        std::string huge = "f" + varint(2 << 20) + std::string(2 << 20, 'x');
        CHECK(gc::extract_text(huge, 0, huge.size(), small).err().code == bzr::Errc::LimitExceeded);
    }
    SUBCASE("deltas") {
        std::string src = "0123456789";
        std::string out;
        auto apply = [&](std::string d) { return static_cast<bool>(gc::apply_delta(src, d, out, 1 << 20)); };
        CHECK(apply(varint(4) + "\x91\x02\x04"));  // copy(2, 4)
        CHECK(out == "2345");
        CHECK(apply(varint(3) + "\x02XY\x90\x01"));  // insert "XY", copy(0, 1)
        CHECK(out == "XY0");
        CHECK(!apply(varint(4) + "\x91\x08\x04"));         // copy past the end of the source
        CHECK(!apply(varint(4) + "\x91\xff\x04"));
        CHECK(!apply(varint(4) + "\x9f\xff\xff\xff\xff\x04"));  // offset 4 GiB
        CHECK(!apply(varint(4) + "\x91\x02"));             // truncated copy
        CHECK(!apply(varint(2) + std::string(1, '\0')));   // instruction 0
        CHECK(!apply(varint(2) + "\x05X"));                // truncated insert
        CHECK(!apply(varint(9) + "\x02XY"));               // short of its target
        CHECK(!apply(varint(1) + "\x02XY"));               // past its target
        CHECK(!apply(varint(0x10000) + "\x80"));           // copy of 65536 from a 10-byte source
        CHECK(gc::apply_delta(src, varint(2 << 20), out, 1 << 20).err().code == bzr::Errc::LimitExceeded);
        CHECK(!apply(std::string(12, '\xff')));
        CHECK(!apply(""));
        // A delta entry copies only from the content before it.
        std::string delta = varint(5) + "\x91\x02\x05";  // copy(2, 5): "hello" inside f1
        std::string content = f1 + "d" + varint(delta.size()) + delta;
        auto t = gc::extract_text(content, f1.size(), content.size());
        REQUIRE(t);
        CHECK(*t == "hello");
        std::string forward = varint(3) + "\x91\x10\x03";  // copies from beyond the entry's start
        std::string c2 = f1 + "d" + varint(forward.size()) + forward + "padding-padding";
        CHECK(!gc::extract_text(c2, f1.size(), f1.size() + 1 + 1 + forward.size()));
    }
    SUBCASE("read_block_prefix checks the pack before reading") {
        TempDir tmp;
        std::string b = block_of(f1, f1.size());
        std::string rec = "B" + std::to_string(b.size()) + "\n\n" + b;
        write_all(tmp.path / "x.pack", std::string(bzr::kContainerMagic) + rec + "E");
        FsStore store(tmp.path.string());
        OpenFile f;
        REQUIRE(store.open_read("x.pack", f) == 0);
        uint64_t at = bzr::kContainerMagic.size();
        auto ok = gc::read_block_prefix(store, f, at, rec.size(), f1.size());
        REQUIRE(ok);
        CHECK(gc::extract_text(*ok, 0, f1.size()).value() == "hello");
        CHECK(!gc::read_block_prefix(store, f, at, rec.size() + 100, 1));         // beyond the pack
        CHECK(!gc::read_block_prefix(store, f, at + 1, rec.size() - 1, 1));       // not a record
        CHECK(!gc::read_block_prefix(store, f, at, rec.size() - 1, 1));           // length mismatch
        CHECK(!gc::read_block_prefix(store, f, at, rec.size(), f1.size() + 1));   // beyond the content
        CHECK(gc::read_block_prefix(store, f, at, rec.size(), 64u << 20, small).err().code ==
              bzr::Errc::LimitExceeded);
        CHECK(!gc::read_block_prefix(store, f, 1u << 30, 10, 1));
        CHECK(!gc::read_block_prefix(store, f, at, 0, 0));
    }
    SUBCASE("the writer's cap") {
        gc::BlockWriter w(100);
        CHECK(w.add_fulltext(std::string(90, 'a')));
        CHECK(w.add_fulltext(std::string(20, 'a')).err().code == bzr::Errc::LimitExceeded);
    }
}
