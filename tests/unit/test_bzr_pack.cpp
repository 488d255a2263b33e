// The pack container (server/bzr/pack.hpp) against Breezy: souk's reader
// reads the .pack files brz wrote record by record at exactly the
// positions Breezy's indices give, and a get_stream body Breezy produced
// with the names Breezy's own push parser sees, fed in chunks of any size;
// souk's writer produces ContainerWriter's bytes; hostile input fails in
// bounded time and memory.
#include <doctest/doctest.h>

#include <chrono>
#include <set>
#include <tuple>

#include "bzr_fixture.hpp"
#include "server/bzr/pack.hpp"

using namespace souk::server;
using namespace souk::test_bzr;

namespace {

struct ReadRecord {
    std::vector<bzr::RecordName> names;
    std::string data;
    uint64_t offset = 0, size = 0;
};

// Read a whole container through the incremental reader, `chunk` bytes at a time.
bzr::Result<std::vector<ReadRecord>> read_chunked(std::string_view bytes, size_t chunk, bzr::ContainerLimits limits = {}) {
    bzr::ContainerReader r(limits);
    std::vector<ReadRecord> out;
    size_t pos = 0;
    bool ended = false;
    while (!ended) {
        std::string_view in = bytes.substr(pos, chunk);
        size_t before = in.size();
        for (;;) {
            auto ev = r.next(in);
            if (!ev) return ev.err();
            if (*ev == bzr::ContainerReader::Event::NeedMore) break;
            if (*ev == bzr::ContainerReader::Event::End) {
                ended = true;
                break;
            }
            if (*ev == bzr::ContainerReader::Event::Begin) out.push_back({r.names(), {}, r.record_offset(), 0});
            if (*ev == bzr::ContainerReader::Event::Data) out.back().data.append(r.data());
            if (*ev == bzr::ContainerReader::Event::RecordEnd) out.back().size = r.offset() - out.back().offset;
        }
        pos += before - in.size();
        if (!ended && pos >= bytes.size()) {
            auto st = r.finish();
            if (!st) return st.err();
        }
    }
    std::string_view rest = bytes.substr(pos);  // after "E": an error when strict, else ignored
    auto ev = r.next(rest);
    if (!ev) return ev.err();
    return out;
}

std::string names_text(const std::vector<bzr::RecordName>& names) {
    std::string s;
    for (size_t i = 0; i < names.size(); ++i) {
        if (i) s += ';';
        for (size_t j = 0; j < names[i].size(); ++j) {
            if (j) s += ',';
            s += names[i][j].empty() ? "" : hex(names[i][j]);
        }
    }
    return s.empty() ? "-" : s;
}

}  // namespace

TEST_CASE("bzr pack: the reader reads brz's .pack files at the positions its indices give") {
    SampleRepo& s = sample_repo();
    for (const std::string& rel : {s.repo_rel, s.packed_rel}) {
        CAPTURE(rel);
        auto rows = index_rows(s.bz, s.repo_dir(rel));
        REQUIRE(!rows.empty());
        std::map<std::string, std::set<std::pair<uint64_t, uint64_t>>> indexed;  // pack -> (offset, size)
        for (const auto& r : rows) indexed[r.pack].insert({r.offset, r.length});
        for (const auto& [pack, positions] : indexed) {
            std::string bytes = read_all(s.repo_dir(rel) / "packs" / (pack + ".pack"));
            for (size_t chunk : {size_t{1}, size_t{7}, size_t{4096}, bytes.size()}) {
                CAPTURE(chunk);
                auto recs = read_chunked(bytes, chunk);
                REQUIRE_MESSAGE(recs, recs.err().detail);
                std::set<std::pair<uint64_t, uint64_t>> found;
                for (const auto& rec : *recs) {
                    CHECK(rec.names.empty());  // 2a pack records carry no names
                    found.insert({rec.offset, rec.size});
                }
                CHECK(found == positions);
            }
            auto whole = bzr::read_container(bytes);
            REQUIRE(whole);
            CHECK(whole->size() == positions.size());
            // A record read alone from its index position.
            for (const auto& [off, len] : positions) {
                auto one = bzr::parse_record(std::string_view(bytes).substr(off, len));
                REQUIRE(one);
                CHECK(one->data.substr(0, 6) == "gcb1z\n");
            }
        }
    }
}

TEST_CASE("bzr pack: a get_stream body reads as Breezy's push parser reads it, in any chunking") {
    SampleRepo& s = sample_repo();
    fs::path body = s.bz.tmp.path / "stream.bin";
    s.bz.py("stream " + sh_quote(s.repo_dir(s.repo_rel).string()) + " " + sh_quote(body.string()));
    std::string bytes = read_all(body);
    auto expected = lines_of(s.bz.py("push-parse " + sh_quote(body.string())));
    REQUIRE(expected.size() > 5);
    bzr::ContainerLimits push;
    push.strict_end = false;
    for (size_t chunk : {size_t{1}, size_t{3}, size_t{1000}, bytes.size()}) {
        CAPTURE(chunk);
        auto recs = read_chunked(bytes, chunk, push);
        REQUIRE_MESSAGE(recs, recs.err().detail);
        REQUIRE(recs->size() == expected.size());
        std::set<std::string> substreams;
        for (size_t i = 0; i < recs->size(); ++i) {
            auto w = split_ws(expected[i]);
            REQUIRE(w.size() == 2);
            CHECK(names_text((*recs)[i].names) == w[0]);
            CHECK(hex((*recs)[i].data) == (w[1] == "-" ? "" : w[1]));
            if (i > 0) substreams.insert((*recs)[i].names.at(0).at(0));
        }
        CHECK((*recs)[0].data == "Bazaar repository format 2a (needs bzr 1.16 or later)\n");
        CHECK(substreams == std::set<std::string>{"revisions", "inventories", "chk_bytes", "texts"});
    }
}

TEST_CASE("bzr pack: the writer's bytes equal Breezy's ContainerWriter") {
    Breezy bz;
    std::string big(150000, 'x');  // above ContainerWriter's 100000-byte join threshold
    for (size_t i = 0; i < big.size(); i += 97) big[i] = static_cast<char>(i & 0xff);
    struct Rec {
        std::vector<bzr::RecordName> names;
        std::string data;
    };
    std::vector<Rec> recs = {
        {{}, "Bazaar repository format 2a (needs bzr 1.16 or later)\n"},
        {{{"revisions"}}, "groupcompress-block\n1\n2\n3\n"},
        {{{"a", "b", "c"}, {"second"}}, std::string("\0\n\xff binary", 10)},
        {{{"empty"}}, ""},
        {{}, ""},
        {{{"texts"}}, big},
    };
    std::string spec;
    std::string mine;
    bzr::ContainerWriter w([&](std::string_view b) -> bzr::Status {
        mine.append(b);
        return bzr::Ok{};
    });
    REQUIRE(w.begin());
    for (const auto& r : recs) {
        std::string names;
        for (size_t i = 0; i < r.names.size(); ++i) {
            if (i) names += ';';
            for (size_t j = 0; j < r.names[i].size(); ++j) names += (j ? "," : "") + hex(r.names[i][j]);
        }
        spec += (r.names.empty() ? "-" : names) + " " + (r.data.empty() ? "-" : hex(r.data)) + "\n";
        uint64_t before = w.offset();
        auto memo = w.add_bytes_record(r.data, r.names);
        REQUIRE(memo);
        CHECK(memo->first == before);
        CHECK(memo->second == w.offset() - before);
        auto again = bzr::parse_record(std::string_view(mine).substr(memo->first, memo->second));
        REQUIRE(again);
        CHECK(again->data == r.data);
        CHECK(again->names == r.names);
    }
    REQUIRE(w.end());
    CHECK(w.records_written() == recs.size());
    write_all(bz.tmp.path / "spec", spec);
    bz.py("container " + sh_quote((bz.tmp.path / "out").string()) + " " + sh_quote((bz.tmp.path / "spec").string()));
    std::string theirs = read_all(bz.tmp.path / "out");
    CHECK(mine.size() == theirs.size());
    CHECK(mine == theirs);
    // Chunked records write the same bytes.
    std::string chunked;
    bzr::ContainerWriter w2([&](std::string_view b) -> bzr::Status {
        chunked.append(b);
        return bzr::Ok{};
    });
    std::string_view parts[] = {"ab", "", "cd"};
    REQUIRE(w2.add_bytes_record(std::span<const std::string_view>(parts), {{"n"}}));
    CHECK(chunked == "B4\nn\n\nabcd");
}

TEST_CASE("bzr pack: hostile and broken containers give a bzr::Error in bounded time and memory") {
    std::string magic(bzr::kContainerMagic);
    auto read = [](std::string_view b, bzr::ContainerLimits l = {}) { return read_chunked(b, 5, l); };
    auto code = [&](std::string_view b, bzr::ContainerLimits l = {}) {
        auto r = read(b, l);
        return r ? std::string("ok") : std::string(r.err().code == bzr::Errc::LimitExceeded ? "limit" : "corrupt");
    };
    CHECK(code(magic + "E") == "ok");
    CHECK(code(magic + "B3\n\nabcE") == "ok");
    CHECK(code("Bazaar pack format 2 (introduced in 9.99)\nE") == "corrupt");
    CHECK(code("not a container at all, no newline for a long long time") == "corrupt");
    CHECK(code(magic + "X") == "corrupt");                     // unknown record type
    CHECK(code(magic + "B-1\n\nE") == "corrupt");              // bad length
    CHECK(code(magic + "B 3\n\nabcE") == "corrupt");
    CHECK(code(magic + "B99999999999999999999999\n\n") == "corrupt");
    CHECK(code(magic + "B12\n\nabc") == "corrupt");            // truncated data
    CHECK(code(magic + "B3\nna") == "corrupt");                // truncated name
    CHECK(code(magic + "B3\n") == "corrupt");
    CHECK(code(magic + "B0\n\n") == "corrupt");                // no end marker
    CHECK(code(magic) == "corrupt");
    CHECK(code("") == "corrupt");
    CHECK(code(magic + "B1\nbad name\n\nxE") == "corrupt");    // whitespace in a name
    CHECK(code(magic + "B1\nbad\tname\n\nxE") == "corrupt");
    CHECK(code(magic + "EE") == "corrupt");                     // data after the end (file reader)
    bzr::ContainerLimits push;
    push.strict_end = false;
    CHECK(code(magic + "E trailing bytes", push) == "ok");     // the push parser ignores them
    bzr::ContainerLimits small;
    small.max_record = 1000;
    CHECK(code(magic + "B1001\n\n", small) == "limit");        // refused before any data
    CHECK(code(magic + "B1000\n\n" + std::string(1000, 'z') + "E", small) == "ok");
    small.max_names = 2;
    CHECK(code(magic + "B0\na\nb\nc\n\nE", small) == "limit");
    small.max_name_elements = 2;
    CHECK(code(magic + "B0\n" + std::string("a\0b\0c", 5) + "\n\nE", small) == "limit");
    // A name line without a newline: refused after max_line bytes, however
    // much arrives (memory stays bounded).
    small.max_line = 4096;
    {
        bzr::ContainerReader r(small);
        std::string hdr = magic + "B0\n";
        std::string_view in = hdr;
        REQUIRE(r.next(in));
        std::string junk(1 << 20, 'n');
        bool failed = false;
        for (size_t i = 0; i < 64 && !failed; ++i) {
            std::string_view j = junk;
            auto ev = r.next(j);
            if (!ev) {
                failed = true;
                CHECK(ev.err().code == bzr::Errc::LimitExceeded);
            }
        }
        CHECK(failed);
    }
    // An absurd claimed length with a real stream: the reader passes data
    // through without holding it.
    {
        std::string hdr = magic + "B1000000000000\n\n";
        bzr::ContainerLimits huge;
        huge.max_record = uint64_t{1} << 50;
        bzr::ContainerReader r(huge);
        std::string_view in = hdr;
        REQUIRE(r.next(in).value() == bzr::ContainerReader::Event::Begin);
        CHECK(r.length() == 1000000000000ull);
        std::string chunk(1 << 16, 'd');
        for (int i = 0; i < 16; ++i) {
            std::string_view c = chunk;
            auto ev = r.next(c);
            REQUIRE(ev);
            CHECK(*ev == bzr::ContainerReader::Event::Data);
            CHECK(r.data().size() == chunk.size());
        }
        CHECK(!r.finish());
    }
    // parse_record: lengths must agree with the index entry.
    CHECK(!bzr::parse_record("B5\n\nabc"));
    CHECK(!bzr::parse_record("B2\n\nabc"));
    CHECK(!bzr::parse_record("abc"));
    CHECK(!bzr::parse_record("E"));
    CHECK(!bzr::parse_record_header("B5\n"));
    // The writer refuses names Breezy refuses (and NULs), and stops at a sink error.
    std::string out;
    bzr::ContainerWriter w([&](std::string_view b) -> bzr::Status {
        out.append(b);
        return bzr::Ok{};
    });
    CHECK(!w.add_bytes_record("x", {{"a b"}}));
    CHECK(!w.add_bytes_record("x", {{std::string("a\0b", 3)}}));
    CHECK(!w.add_bytes_record("x", {{""}}));  // an empty name line would end the names
    int calls = 0;
    bzr::ContainerWriter failing([&](std::string_view) -> bzr::Status {
        if (++calls > 1) return bzr::io_error(28, "disk full");
        return bzr::Ok{};
    });
    REQUIRE(failing.begin());
    CHECK(!failing.add_bytes_record("data", {}));
    CHECK(!failing.end());
    CHECK(calls == 2);
}
