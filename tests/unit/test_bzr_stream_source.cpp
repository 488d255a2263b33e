// The fetch side of repository streams (server/bzr/stream_source.hpp)
// against Breezy: the revisions a search selects equal those Breezy's
// server selects; the streams souk produces for several searches decode
// with Breezy's own reader, carry the same revisions, inventories and
// signatures as Breezy's server sends and no CHK page or text beyond its,
// and Breezy's stream sink inserts them into a fresh or partly filled
// repository with nothing missing, after which `brz check` is clean and
// `brz log` equals the source's. Runs on a branch with a rename, a binary
// file, a merge, and on a packed copy (blocks with deltas, so that partial
// blocks are trimmed or rebuilt).
#include <doctest/doctest.h>
#include <zlib.h>

#include <set>

#include "bzr_fixture.hpp"
#include "server/bzr/stream_source.hpp"

using namespace souk::server;
using namespace souk::test_bzr;

namespace {

struct StreamRepo {
    Breezy bz;
    fs::path root, src, packed, feat;
    std::vector<std::string> mainline;  // r1.. on src's left-hand history
    std::string f1;                     // the merged feature revision

    StreamRepo() {
        root = bz.tmp.path / "root";
        src = root / "src";
        packed = root / "packed";
        feat = root / "feat";
        fs::create_directories(root);
        bz.brz(root, "init -q src");
        write_all(src / "a.txt", "one\ntwo\nthree\n");
        write_all(src / "sub/b.txt", "bee\n");
        std::string bin;
        for (int i = 0; i < 3000; ++i) bin += static_cast<char>((i * 13) & 0xff);
        bin += std::string("\0\xff\0", 3);
        write_all(src / "bin.dat", bin);
        bz.brz(src, "add -q");
        bz.brz(src, "commit -q -m r1");
        write_all(src / "a.txt", "one\ntwo\nthree\nfour\n");
        bz.brz(src, "mv -q sub/b.txt sub/renamed.txt");
        bz.brz(src, "commit -q -m r2");
        bz.brz(root, "branch -q src feat");
        write_all(feat / "d.txt", "dee\n");
        write_all(feat / "a.txt", "zero\none\ntwo\nthree\nfour\n");
        bz.brz(feat, "add -q");
        bz.brz(feat, "commit -q -m f1");
        bin[10] = 'x';
        write_all(src / "bin.dat", bin);
        bz.brz(src, "commit -q -m r3");
        bz.brz(src, "merge -q ../feat");
        bz.brz(src, "commit -q -m r4-merge");
        write_all(src / "a.txt", "zero\none\ntwo\nthree\nfour\nfive\n");
        fs::create_directories(src / "newdir");
        write_all(src / "newdir/e.txt", "eee\n");
        bz.brz(src, "add -q");
        bz.brz(src, "commit -q -m r5");
        std::error_code ec;
        fs::copy(src, packed, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
        REQUIRE_MESSAGE(!ec, "copy failed: " << ec.message());
        bz.brz(packed, "pack -q");
        // The graph, tip first.
        std::map<std::string, std::vector<std::string>> parents;
        std::string tip;
        for (const auto& line : lines_of(py("graph " + sh_quote(src.string())))) {
            auto w = split_ws(line);
            if (tip.empty()) tip = w[0];
            parents[w[0]] = std::vector<std::string>(w.begin() + 1, w.end());
        }
        for (std::string r = tip; !r.empty();) {  // bounded: the left-hand history
            mainline.insert(mainline.begin(), r);
            r = parents[r].empty() ? "" : parents[r][0];
        }
        REQUIRE(mainline.size() == 5);
        REQUIRE(parents[mainline[3]].size() == 2);
        f1 = parents[mainline[3]][1];
    }
    std::string py(const std::string& args) const {
        std::string out;
        fs::path script = fs::path(SOUK_TEST_UNIT_DIR) / "bzr_fixtures" / "stream_check.py";
        fs::path err = bz.tmp.path / "stream_check.err";
        int rc = run("cd " + sh_quote(bz.tmp.path.string()) + " && " + bz.env() + bz.python + " " +
                         sh_quote(script.string()) + " " + args + " 2>" + sh_quote(err.string()),
                     out);
        REQUIRE_MESSAGE(rc == 0, "stream_check.py " << args << " failed: " << read_all(err));
        return out;
    }
};

StreamRepo& stream_repo() {
    static std::unique_ptr<StreamRepo> repo;
    if (!repo) repo = std::make_unique<StreamRepo>();
    return *repo;
}

bzr::PackCollection open_packs(Store& store, const std::string& repo) {
    auto pc = bzr::PackCollection::open(store, repo);
    REQUIRE_MESSAGE(pc, "pack-names: " << (pc ? "" : pc.err().detail));
    return std::move(pc).value();
}

// The whole body of a stream (file ranges read back), and its stats.
std::string produce(Store& store, bzr::StreamSource& src, bzr::StreamStats* stats = nullptr) {
    std::string out;
    bzr::StreamPiece p;
    for (int guard = 0; guard < 1000000; ++guard) {  // bounded: a test stream has few pieces
        auto more = src.next(p);
        REQUIRE_MESSAGE(more, "stream failed: " << (more ? "" : more.err().detail));
        if (!*more) break;
        if (p.file) {
            std::string buf(p.length, '\0');
            REQUIRE(store.pread(*p.file, buf.data(), buf.size(), p.offset) == static_cast<ssize_t>(buf.size()));
            out += buf;
        } else {
            out += p.bytes;
        }
    }
    if (stats) *stats = src.stats();
    return out;
}

std::unique_ptr<bzr::StreamSource> stream_for(Store& store, const std::string& repo, const std::string& body,
                                              const bzr::StreamLimits& limits = {}) {
    auto spec = bzr::parse_search(body);
    REQUIRE(spec);
    auto packs = open_packs(store, repo);
    auto revs = bzr::search_revisions(packs, *spec, limits);
    REQUIRE_MESSAGE(revs, "search: " << (revs ? "" : revs.err().detail));
    auto reader = std::make_unique<bzr::PackReader>(store, repo, std::move(packs), limits);
    return bzr::StreamSource::for_revisions(std::move(reader), "Bazaar repository format 2a (needs bzr 1.16 or later)\n",
                                            std::move(*revs), limits);
}

// (substream, key hex) lines of a stream, decoded by Breezy.
std::multiset<std::string> decoded(StreamRepo& s, const fs::path& file) {
    std::multiset<std::string> out;
    for (const auto& line : lines_of(s.py("decode " + sh_quote(file.string())))) out.insert(line);
    return out;
}

std::set<std::string> of_kind(const std::multiset<std::string>& lines, const std::string& kind) {
    std::set<std::string> out;
    for (const auto& l : lines)
        if (l.rfind(kind + " ", 0) == 0) out.insert(l);
    return out;
}

std::string search_body(const std::string& start, const std::vector<std::string>& exclude, size_t count) {
    std::string ex;
    for (const auto& e : exclude) ex += (ex.empty() ? "" : " ") + e;
    return "search\n" + start + "\n" + ex + "\n" + std::to_string(count);
}

// `n` incompressible bytes: xorshift32 from the state `x`, which advances.
std::string noise(uint32_t& x, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) {  // bounded: n bytes
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        out += static_cast<char>(x & 0xff);
    }
    return out;
}

// `brz pack` the branch at `dir`; its revisions, tip first.
std::vector<std::string> pack_and_list(StreamRepo& s, const fs::path& dir) {
    s.bz.brz(dir, "pack -q");
    std::vector<std::string> revs;
    for (const auto& line : lines_of(s.py("graph " + sh_quote(dir.string())))) revs.push_back(split_ws(line)[0]);
    return revs;
}

// Check one search end to end; target: "" for a new empty branch, else
// the revision to branch the target at first.
void check_stream(StreamRepo& s, const fs::path& branch, const std::string& body, const std::string& base,
                  const std::string& tip, bzr::StreamStats* stats = nullptr) {
    FsStore store(s.root.string());
    std::string repo = fs::relative(branch, s.root).string() + "/.bzr/repository";
    auto src = stream_for(store, repo, body);
    std::string bytes = produce(store, *src, stats);
    TempDir work;
    fs::path ours = work.path / "ours.stream", theirs = work.path / "theirs.stream", req = work.path / "req";
    write_all(ours, bytes);
    write_all(req, body);
    s.py("breezy-stream " + sh_quote(branch.string()) + " " + sh_quote(req.string()) + " " + sh_quote(theirs.string()));
    auto a = decoded(s, ours), b = decoded(s, theirs);
    for (const char* kind : {"revisions", "inventories", "signatures", "format"}) {
        CAPTURE(kind);
        CHECK(of_kind(a, kind) == of_kind(b, kind));
    }
    for (const char* kind : {"chk_bytes", "texts"}) {
        CAPTURE(kind);
        auto x = of_kind(a, kind), y = of_kind(b, kind);
        for (const auto& k : x) CHECK_MESSAGE(y.count(k), "souk sends " << k << " which Breezy does not");
    }
    // Into Breezy's sink.
    fs::path target = work.path / "target";
    if (base.empty()) s.bz.brz(work.path, "init -q target");
    else s.bz.brz(work.path, "branch -q -r revid:" + base + " " + sh_quote(branch.string()) + " target");
    std::string out = s.py("insert " + sh_quote(ours.string()) + " " + sh_quote(target.string()) + " " + tip);
    CHECK_MESSAGE(out.empty(), "the sink reports missing keys: " << out);
    std::string check = s.bz.brz(target, "check");
    CHECK_MESSAGE(check.find("rror") == std::string::npos, check);
    CHECK(s.bz.brz(target, "log -n0") == s.bz.brz(branch, "log -n0 -r ..revid:" + tip));
}

}  // namespace

TEST_CASE("parse_search: the three forms, and BadSearch for anything else") {
    auto a = bzr::parse_search("ancestry-of\nr1\nr2");
    REQUIRE(a);
    CHECK(a->kind == bzr::SearchKind::AncestryOf);
    CHECK(a->heads == std::vector<std::string>{"r1", "r2"});
    auto s = bzr::parse_search("search\nr5\nnull: r1 r2\n2");
    REQUIRE(s);
    CHECK(s->kind == bzr::SearchKind::Search);
    CHECK(s->heads == std::vector<std::string>{"r5"});
    CHECK(s->exclude == std::vector<std::string>{"null:", "r1", "r2"});
    CHECK(s->count == 2);
    auto e = bzr::parse_search("everything");
    REQUIRE(e);
    CHECK(e->kind == bzr::SearchKind::Everything);
    for (const char* bad : {"", "everything\n", "frobnicate\nx", "search\nr1\nnull:", "search\nr1\nnull:\nx"}) {
        CAPTURE(bad);
        auto r = bzr::parse_search(bad);
        REQUIRE_FALSE(r);
        CHECK(r.err().code == bzr::Errc::Unsupported);
    }
}

TEST_CASE("search_revisions selects what Breezy's server selects") {
    auto& s = stream_repo();
    FsStore store(s.root.string());
    const auto& m = s.mainline;
    const std::string bodies[] = {
        "ancestry-of\n" + m[4],
        "ancestry-of\n" + m[2] + "\nnot-a-revision",
        "everything",
        search_body(m[4], {"null:", m[0], m[1]}, 3),
        search_body(m[3], {"null:", m[2]}, 2),
        search_body(m[4], {"null:"}, 6),
        search_body(m[4] + " " + s.f1, {m[1]}, 4),
        search_body("ghost", {"null:"}, 0),
    };
    TempDir work;
    for (const auto& body : bodies) {
        CAPTURE(body);
        write_all(work.path / "req", body);
        auto want = lines_of(s.py("search " + sh_quote(s.src.string()) + " " + sh_quote((work.path / "req").string())));
        auto spec = bzr::parse_search(body);
        REQUIRE(spec);
        auto packs = open_packs(store, "src/.bzr/repository");
        auto got = bzr::search_revisions(packs, *spec);
        REQUIRE(got);
        std::vector<std::string> sorted(got->begin(), got->end());
        std::sort(sorted.begin(), sorted.end());
        CHECK(sorted == want);
    }
}

TEST_CASE("get_stream into Breezy's sink: a whole branch, unpacked and packed") {
    auto& s = stream_repo();
    bzr::StreamStats st;
    check_stream(s, s.src, "ancestry-of\n" + s.mainline[4], "", s.mainline[4], &st);
    CHECK(st.revisions == 6);
    CHECK(st.inventories == 6);
    CHECK(st.blocks_as_stored > 0);
    check_stream(s, s.packed, "ancestry-of\n" + s.mainline[4], "", s.mainline[4], &st);
    CHECK(st.revisions == 6);
    check_stream(s, s.src, "everything", "", s.mainline[4]);
}

TEST_CASE("get_stream: a fetch of every revision sends the indices whole, the same keys as the walk") {
    auto& s = stream_repo();
    FsStore store(s.root.string());
    for (const fs::path* b : {&s.src, &s.packed}) {
        CAPTURE(b->string());
        std::string repo = fs::relative(*b, s.root).string() + "/.bzr/repository";
        for (const std::string& body : {std::string("everything"), "ancestry-of\n" + s.mainline[4]}) {
            CAPTURE(body);
            bzr::StreamStats fast_st, walk_st;
            auto fast = stream_for(store, repo, body);
            std::string fast_bytes = produce(store, *fast, &fast_st);
            bzr::StreamLimits walk;
            walk.whole_repository = false;
            auto walked = stream_for(store, repo, body, walk);
            std::string walk_bytes = produce(store, *walked, &walk_st);
            CHECK(fast_st.whole_repository);
            CHECK(!walk_st.whole_repository);
            CHECK(fast_st.chk_pages == walk_st.chk_pages);
            CHECK(fast_st.texts == walk_st.texts);
            TempDir work;
            fs::path a = work.path / "a.stream", w = work.path / "w.stream";
            write_all(a, fast_bytes);
            write_all(w, walk_bytes);
            auto da = decoded(s, a);
            CHECK(da.size() > 20);
            CHECK(da == decoded(s, w));
        }
        // Fewer revisions than the repository holds: the walk.
        bzr::StreamStats part;
        auto src = stream_for(store, repo, search_body(s.mainline[4], {"null:", s.mainline[0]}, 5));
        produce(store, *src, &part);
        CHECK(!part.whole_repository);
    }
    // Into Breezy's sink, checked as every other fetch is.
    check_stream(s, s.packed, "everything", "", s.mainline[4]);
}

TEST_CASE("get_stream into Breezy's sink: incremental searches, a merge") {
    auto& s = stream_repo();
    const auto& m = s.mainline;
    for (const fs::path* b : {&s.src, &s.packed}) {
        CAPTURE(b->string());
        bzr::StreamStats st;
        // pull of r3..r5 onto r2
        check_stream(s, *b, search_body(m[4], {"null:", m[0], m[1]}, 4), m[1], m[4], &st);
        CHECK(st.revisions == 4);
        // the merge: r4 and the feature revision onto r3
        check_stream(s, *b, search_body(m[3], {"null:", m[0], m[1], m[2]}, 2), m[2], m[3], &st);
        CHECK(st.revisions == 2);
        // checkout-style: everything from the tip, excluding null: only
        check_stream(s, *b, search_body(m[4], {"null:"}, 6), "", m[4]);
    }
}

TEST_CASE("get_stream: a packed repository's partial blocks are trimmed or rebuilt, and still insert") {
    auto& s = stream_repo();
    const auto& m = s.mainline;
    bzr::StreamStats st;
    check_stream(s, s.packed, search_body(m[4], {"null:", m[0], m[1], m[2], m[3]}, 1), m[3], m[4], &st);
    CHECK(st.revisions == 1);
    CHECK(st.blocks_trimmed + st.blocks_rebuilt > 0);
}

TEST_CASE("get_stream: a block whose wanted texts are all empty (a new directory) is rebuilt empty, not sent stored") {
    auto& s = stream_repo();
    fs::path dir = s.root / "dir-only";
    s.bz.brz(s.root, "init -q dir-only");
    uint32_t x = 2463534242u;
    write_all(dir / "noise.bin", noise(x, 200000));  // the stored block is as large as this
    s.bz.brz(dir, "add -q");
    s.bz.brz(dir, "commit -q -m one");
    fs::create_directories(dir / "d");
    s.bz.brz(dir, "add -q d");
    s.bz.brz(dir, "commit -q -m two");
    auto revs = pack_and_list(s, dir);
    REQUIRE(revs.size() == 2);
    bzr::StreamStats st;
    check_stream(s, dir, search_body(revs[0], {"null:", revs[1]}, 1), revs[1], revs[0], &st);
    CHECK(st.texts == 1);
    CHECK(st.blocks_rebuilt >= 1);
    FsStore store(s.root.string());
    auto src = stream_for(store, "dir-only/.bzr/repository", search_body(revs[0], {"null:", revs[1]}, 1));
    CHECK(produce(store, *src).size() < 20000);  // the stored block alone is over 200,000
}

TEST_CASE("get_stream: a pull's texts that use most but not three quarters of a stored block are rebuilt, "
          "no larger than Breezy's server's stream") {
    // One packed block holds an old file the client has and three new ones
    // it lacks (65% of the block). Breezy's server sends it stored (the
    // three files' texts are one run, over half the block), with the old
    // file's bytes the client already has; souk rebuilds it with the three.
    auto& s = stream_repo();
    fs::path dir = s.root / "most-used";
    s.bz.brz(s.root, "init -q most-used");
    uint32_t x = 88172645u;  // incompressible texts: the block's size is theirs
    write_all(dir / "a-old.bin", noise(x, 40000));  // first in the block: the new files are not a prefix
    s.bz.brz(dir, "add -q");
    s.bz.brz(dir, "commit -q -m one");
    for (const char* f : {"new-a.bin", "new-b.bin", "new-c.bin"}) write_all(dir / f, noise(x, 25000));
    s.bz.brz(dir, "add -q");
    s.bz.brz(dir, "commit -q -m two");
    auto revs = pack_and_list(s, dir);
    REQUIRE(revs.size() == 2);
    const std::string body = search_body(revs[0], {"null:", revs[1]}, 1);
    bzr::StreamStats st;
    check_stream(s, dir, body, revs[1], revs[0], &st);
    CHECK(st.texts == 3);
    CHECK(st.blocks_rebuilt >= 1);
    FsStore store(s.root.string());
    auto src = stream_for(store, "most-used/.bzr/repository", body);
    const size_t ours = produce(store, *src).size();
    TempDir work;
    fs::path req = work.path / "req", theirs = work.path / "theirs.stream";
    write_all(req, body);
    s.py("breezy-stream " + sh_quote(dir.string()) + " " + sh_quote(req.string()) + " " + sh_quote(theirs.string()));
    const size_t breezy = read_all(theirs).size();
    CHECK(ours < 100000);  // the stored block alone is over 115,000
    CHECK_MESSAGE(ours <= breezy, "souk sends " << ours << " bytes, Breezy's server " << breezy);
}

TEST_CASE("get_stream: packs read whole or by record give the same bytes; headers stored or deflated decode alike") {
    auto& s = stream_repo();
    FsStore store(s.root.string());
    const auto& m = s.mainline;
    for (const char* rel : {"src", "packed"}) {
        for (const std::string& body : {"ancestry-of\n" + m[4], search_body(m[4], {"null:", m[0], m[1], m[2], m[3]}, 1)}) {
            CAPTURE(rel);
            CAPTURE(body);
            std::string repo = std::string(rel) + "/.bzr/repository";
            bzr::StreamStats whole_st, record_st;
            auto whole = stream_for(store, repo, body);
            std::string whole_bytes = produce(store, *whole, &whole_st);
            bzr::StreamLimits by_record;
            by_record.whole_pack_bytes = 0;
            by_record.max_record_header = 64;  // stored blocks go as file ranges, read framing first
            auto record = stream_for(store, repo, body, by_record);
            std::string record_bytes = produce(store, *record, &record_st);
            CHECK(whole_bytes == record_bytes);
            CHECK(whole_st.records == record_st.records);
            // Every header uncompressed (zlib stored blocks), then every one deflated.
            TempDir work;
            fs::path a = work.path / "a.stream", b = work.path / "b.stream";
            bzr::StreamLimits stored, deflated;
            stored.compress_header_bytes = SIZE_MAX;
            deflated.compress_header_bytes = 0;
            auto st1 = stream_for(store, repo, body, stored);
            auto st2 = stream_for(store, repo, body, deflated);
            write_all(a, produce(store, *st1));
            write_all(b, produce(store, *st2));
            auto da = decoded(s, a);
            CHECK(!da.empty());
            CHECK(da == decoded(s, b));
        }
    }
}

TEST_CASE("zlib_compress: stored blocks and deflate both inflate to the input") {
    for (size_t n : {size_t{0}, size_t{1}, size_t{100}, size_t{65535}, size_t{65536}, size_t{200000}}) {
        std::string in(n, '\0');
        for (size_t i = 0; i < n; ++i) in[i] = static_cast<char>((i * 7 + i / 300) & 0xff);
        for (int level : {0, 1, -1}) {
            CAPTURE(n);
            CAPTURE(level);
            auto z = bzr::zlib_compress(in, level);
            REQUIRE(z);
            std::string out(n + 1, '\0');
            uLongf len = static_cast<uLongf>(out.size());
            REQUIRE(uncompress(reinterpret_cast<Bytef*>(out.data()), &len, reinterpret_cast<const Bytef*>(z->data()),
                               static_cast<uLong>(z->size())) == Z_OK);
            out.resize(len);
            CHECK(out == in);
            if (level == 0) CHECK(z->size() == 2 + n + 5 * std::max<size_t>(1, (n + 65534) / 65535) + 4);
        }
    }
}

TEST_CASE("parse_record_pos: four decimal numbers, start <= end, nothing else") {
    bzr::RecordPos p;
    CHECK(bzr::parse_record_pos("10 20 3 4", 7, p));
    CHECK(p.pack == 7);
    CHECK((p.offset == 10 && p.length == 20 && p.start == 3 && p.end == 4));
    CHECK(bzr::parse_record_pos("18446744073709551615 0 0 0", 0, p));
    CHECK(p.offset == UINT64_MAX);
    for (const char* bad : {"", "1 2 3", "1 2 3 4 5", "1  2 3 4", " 1 2 3 4", "1 2 3 4 ", "1 2 5 4", "a 2 3 4",
                            "18446744073709551616 0 0 0", "1 2 3 -4", "1\t2 3 4"}) {
        CAPTURE(bad);
        CHECK(!bzr::parse_record_pos(bad, 0, p));
    }
}

TEST_CASE("get_stream: an unknown head or an empty search is the empty container") {
    auto& s = stream_repo();
    FsStore store(s.root.string());
    for (const char* body : {"ancestry-of\nno-such-revision", "search\nno-such\nnull:\n3"}) {
        CAPTURE(body);
        auto src = stream_for(store, "src/.bzr/repository", body);
        std::string bytes = produce(store, *src);
        CHECK(bytes.size() == 102);
        CHECK(bytes == std::string(bzr::kContainerMagic) + "B54\n\nBazaar repository format 2a (needs bzr 1.16 or later)\nE");
    }
}

TEST_CASE("get_stream_for_missing_keys: the inventories that exist, then every page of their maps") {
    auto& s = stream_repo();
    FsStore store(s.root.string());
    for (const char* rel : {"src", "packed"}) {
        CAPTURE(rel);
        auto packs = open_packs(store, std::string(rel) + "/.bzr/repository");
        auto reader = std::make_unique<bzr::PackReader>(store, std::string(rel) + "/.bzr/repository", std::move(packs));
        auto src = bzr::StreamSource::for_inventories(std::move(reader), "Bazaar repository format 2a (needs bzr 1.16 or later)\n",
                                                      {s.mainline[2], "ghost-revision"});
        bzr::StreamStats st;
        std::string bytes = produce(store, *src, &st);
        CHECK(st.inventories == 1);
        CHECK(st.revisions == 0);
        CHECK(st.texts == 0);
        CHECK(st.chk_pages >= 2);
        TempDir work;
        write_all(work.path / "s", bytes);
        auto lines = decoded(s, work.path / "s");
        CHECK(of_kind(lines, "inventories").size() == 1);
        CHECK(of_kind(lines, "chk_bytes").size() == st.chk_pages);
        CHECK(of_kind(lines, "texts").empty());
    }
}

TEST_CASE("get_stream: a revision the repository lacks ends the stream with NoSuchRevision") {
    auto& s = stream_repo();
    FsStore store(s.root.string());
    auto packs = open_packs(store, "src/.bzr/repository");
    auto reader = std::make_unique<bzr::PackReader>(store, "src/.bzr/repository", std::move(packs));
    auto src = bzr::StreamSource::for_revisions(std::move(reader), "x\n", {"ghost-revision"});
    bzr::StreamPiece p;
    bzr::Result<bool> r = true;
    for (int i = 0; i < 100 && r && *r; ++i) r = src->next(p);  // bounded: 100 pieces
    REQUIRE_FALSE(r);
    CHECK(r.err().code == bzr::Errc::NoSuchRevision);
    CHECK(r.err().detail == "ghost-revision");
}
