// The push side of the format library: StreamSink + WriteGroup
// (server/bzr/stream_sink.hpp, write_group.hpp). Real streams made by
// Breezy go in; Breezy then reads the repository (brz check, log, every
// revision's tree compared with the source). Hostile streams write nothing.
#include <doctest/doctest.h>

#include <chrono>
#include <set>
#include <thread>

#include "bzr_fixture.hpp"
#include "server/bzr/btree.hpp"
#include "server/bzr/md5.hpp"
#include "server/bzr/stream_sink.hpp"
#include "server/bzr/write_group.hpp"

using namespace souk::server;
using namespace souk::server::bzr;
using namespace souk::test_bzr;

namespace {

constexpr std::string_view k2a = "Bazaar repository format 2a (needs bzr 1.16 or later)\n";

struct PushFixture {
    Breezy bz;
    fs::path root, src, dst;
    fs::path script;
    std::vector<std::string> revs;  // oldest first

    PushFixture() {
        root = bz.tmp.path / "root";
        fs::create_directories(root);
        script = fs::path(SOUK_TEST_UNIT_DIR) / "bzr_fixtures" / "write_group_fixture.py";
        src = root / "src";
        dst = root / "dst";
        bz.brz(root, "init-shared-repo -q src");
        bz.brz(src, "init -q trunk");
        fs::path t = src / "trunk";
        write_all(t / "a.txt", "alpha\n");
        write_all(t / "d/b.txt", "bee\n");
        bz.brz(t, "add -q");
        bz.brz(t, "commit -q -m one");
        write_all(t / "a.txt", "alpha\nbeta\n");
        bz.brz(t, "commit -q -m two");
        write_all(t / "c.txt", "sea\n");
        bz.brz(t, "add -q");
        bz.brz(t, "mv -q d/b.txt d/bee.txt");
        bz.brz(t, "commit -q -m three");
        bz.brz(root, "init-shared-repo -q dst");
        revs = lines_of(py("history " + sh_quote((src / "trunk").string())));
        REQUIRE(revs.size() == 3);
    }
    std::string py(const std::string& args) const {
        std::string out;
        int rc = run("cd " + sh_quote(bz.tmp.path.string()) + " && " + bz.env() + bz.python + " " +
                         sh_quote(script.string()) + " " + args + " 2>&1",
                     out);
        REQUIRE_MESSAGE(rc == 0, "write_group_fixture.py " << args << " failed: " << out);
        return out;
    }
    std::string stream(const std::string& extra = "") const {
        fs::path out = bz.tmp.path / "s.bin";
        py("stream " + sh_quote(src.string()) + " " + sh_quote(out.string()) + extra);
        return read_all(out);
    }
    std::string missing_stream(const std::string& rev) const {
        fs::path out = bz.tmp.path / "m.bin";
        py("missing " + sh_quote(src.string()) + " " + sh_quote(out.string()) + " " + rev);
        return read_all(out);
    }
    // Every file below dst/.bzr/repository, with its size.
    std::map<std::string, uint64_t> files() const {
        std::map<std::string, uint64_t> out;
        for (auto& e : fs::recursive_directory_iterator(dst / ".bzr/repository"))
            if (e.is_regular_file()) out[fs::relative(e.path(), root).string()] = e.file_size();
        return out;
    }
};

InsertOutcome insert(const PushFixture& f, std::string_view body, size_t chunk = 4096,
                     std::vector<std::string> tokens = {}, InsertLimits limits = {}) {
    FsStore store(f.root.string());
    REQUIRE(store.valid());
    StreamSink sink(store, "dst/.bzr/repository", std::string(k2a), std::move(tokens), "", limits);
    if (!sink.prepare()) return sink.finish();
    for (size_t i = 0; i < body.size(); i += chunk) sink.write(body.substr(i, chunk));
    return sink.finish();
}

}  // namespace

TEST_CASE("md5 of known strings") {
    CHECK(md5_hex("") == "d41d8cd98f00b204e9800998ecf8427e");
    CHECK(md5_hex("abc") == "900150983cd24fb0d6963f7d28e17f72");
    std::string big(1000, 'x');
    Md5 m;
    for (size_t i = 0; i < big.size(); i += 37) m.update(std::string_view(big).substr(i, 37));
    CHECK(m.hex_digest() == md5_hex(big));
}

TEST_CASE("Breezy's autopack rule") {
    CHECK(max_pack_count(0) == 1);
    CHECK(max_pack_count(123) == 6);
    CHECK(max_pack_count(100) == 1);
    CHECK(max_pack_count(19) == 10);
    CHECK(pack_distribution(123) == std::vector<uint64_t>{100, 10, 10, 1, 1, 1});
    CHECK(pack_distribution(0) == std::vector<uint64_t>{0});
    // 10 packs of one revision each: 10 revisions allow one pack.
    std::vector<uint64_t> ten(10, 1);
    CHECK(plan_autopack(ten, pack_distribution(10)).size() == 10);
    // 12 revisions as 10 + 1 + 1: already distributed.
    CHECK(plan_autopack({10, 1, 1}, pack_distribution(12)).empty());
    // 13 revisions as 10 + 1 + 1 + 1 + 0-revision pack: the empty one is left alone.
    CHECK(plan_autopack({10, 1, 1, 1, 0}, pack_distribution(13)).empty());
    // 11 revisions as 9 + 1 + 1: the 9 and one 1 are combined.
    auto plan = plan_autopack({9, 1, 1}, pack_distribution(11));
    CHECK(plan.size() == 2);  // the 9 and one 1 (Breezy keeps the other 1 as the last bucket)
}

TEST_CASE("a real stream goes into an empty repository and Breezy reads it back") {
    PushFixture f;
    std::string body = f.stream();
    auto before = f.files();
    auto out = insert(f, body, 7);  // 7-byte chunks: every boundary case of the parser
    REQUIRE_MESSAGE(out.kind == InsertOutcome::Kind::Ok, out.error.detail);
    CHECK(out.published.size() == 32);
    auto after = f.files();
    CHECK(after.count("dst/.bzr/repository/packs/" + out.published + ".pack"));
    for (auto ext : {".rix", ".iix", ".tix", ".six", ".cix"})
        CHECK(after.count("dst/.bzr/repository/indices/" + out.published + ext));
    // The pack's name is the MD5 of its bytes.
    CHECK(md5_hex(read_all(f.dst / ".bzr/repository/packs" / (out.published + ".pack"))) == out.published);
    CHECK(f.py("compare " + sh_quote(f.src.string()) + " " + sh_quote(f.dst.string())) == "same\n");
    f.bz.brz(f.root, "check -q --repo dst");
    // A branch on it: log equal to the source's, check clean.
    f.bz.brz(f.dst, "branch -q --use-existing-dir --no-tree ../src/trunk trunk");
    CHECK(f.bz.brz(f.dst, "log trunk") == f.bz.brz(f.src, "log trunk"));
    f.bz.brz(f.dst, "check -q trunk");
    (void)before;

    SUBCASE("the same stream again adds nothing") {
        auto files = f.files();
        auto again = insert(f, body);
        REQUIRE(again.kind == InsertOutcome::Kind::Ok);
        CHECK(again.published.empty());
        CHECK(f.files() == files);
    }
}

TEST_CASE("a commit sweeps unlisted pack files a killed publisher left, once they are stale") {
    PushFixture f;
    const std::string body = f.stream();
    const fs::path repo = f.dst / ".bzr/repository";
    const std::string dead = std::string(32, 'a'), young = std::string(32, 'b');
    // What a process killed between moving its files into place and
    // rewriting pack-names leaves: a pack and indices pack-names does not list.
    write_all(repo / "packs" / (dead + ".pack"), "orphan");
    write_all(repo / "indices" / (dead + ".rix"), "orphan");
    write_all(repo / "indices" / (dead + ".cix"), "orphan");
    write_all(repo / "packs" / "notes.txt", "not a pack name");  // left alone: not ours to judge
    std::this_thread::sleep_for(std::chrono::milliseconds(2000));
    write_all(repo / "packs" / (young + ".pack"), "a publisher waiting for the lock");
    InsertLimits limits;
    limits.group.stale_upload = 1.5;  // the young file is younger unless the insert takes 1.5 s
    auto out = insert(f, body, 4096, {}, limits);
    REQUIRE_MESSAGE(out.kind == InsertOutcome::Kind::Ok, out.error.detail);
    CHECK(!fs::exists(repo / "packs" / (dead + ".pack")));
    CHECK(!fs::exists(repo / "indices" / (dead + ".rix")));
    CHECK(!fs::exists(repo / "indices" / (dead + ".cix")));
    CHECK(fs::exists(repo / "packs" / (young + ".pack")));
    CHECK(fs::exists(repo / "packs" / "notes.txt"));
    CHECK(fs::exists(repo / "packs" / (out.published + ".pack")));
    fs::remove(repo / "packs" / (young + ".pack"));
    fs::remove(repo / "packs" / "notes.txt");
    f.bz.brz(f.root, "check -q --repo dst");
}

TEST_CASE("the empty stream (the client's probe) changes nothing") {
    PushFixture f;
    std::string body = std::string(kContainerMagic) + "B54\n\n" + std::string(k2a) + "E";
    REQUIRE(body.size() == 102);
    auto before = f.files();
    auto out = insert(f, body);
    CHECK(out.kind == InsertOutcome::Kind::Ok);
    CHECK(f.files() == before);
    CHECK(!fs::exists(f.dst / ".bzr/repository/upload/x"));
}

TEST_CASE("hostile streams write nothing") {
    PushFixture f;
    std::string body = f.stream();
    auto before = f.files();
    auto refused = [&](std::string_view bad, const char* what) {
        INFO(what);
        auto out = insert(f, bad);
        CHECK(out.kind == InsertOutcome::Kind::Failed);
        CHECK(out.stage == InsertOutcome::Stage::Stream);
        CHECK(!out.error.detail.empty());
        CHECK(f.files() == before);
    };
    // Truncated anywhere (no "E"): refused.
    for (size_t cut : {size_t{10}, size_t{60}, size_t{200}, body.size() / 2, body.size() - 1})
        refused(std::string_view(body).substr(0, cut), "truncated");
    refused(std::string(kContainerMagic) + "B54\n\n" + std::string(k2a) + "B99999999999999999999999\n\n", "absurd length");
    std::string fmt = std::string(kContainerMagic) + "B54\n\n" + std::string(k2a);
    refused(fmt + "B17\nrevisions\n\nknit-ft-gz\nxxxxxx" + "E", "knit record kind");
    refused(fmt + "B10\nbogus\n\nfulltext\nx" + "E", "unknown substream");
    refused(std::string(kContainerMagic) + "B12\n\nwrong format" + "E", "another format");
    // A block whose header addresses bytes beyond its content.
    {
        gc::BlockWriter bw;
        auto span = bw.add_fulltext("hello\n");
        REQUIRE(span);
        auto block = bw.finish();
        REQUIRE(block);
        std::string header = "rev-1\n\n0\n99\n";
        // zlib bytes of the header, made by Python.
        fs::path hf = f.bz.tmp.path / "h.bin";
        write_all(hf, header);
        std::string zhex;
        REQUIRE(run(f.bz.python + " -c \"import zlib,sys;sys.stdout.write(zlib.compress(open('" + hf.string() +
                        "','rb').read()).hex())\"",
                    zhex) == 0);
        std::string zh = unhex(zhex);
        std::string rec = "groupcompress-block\n" + std::to_string(zh.size()) + "\n" + std::to_string(header.size()) +
                          "\n" + std::to_string(block->size()) + "\n" + zh + *block;
        refused(fmt + "B" + std::to_string(rec.size()) + "\nrevisions\n\n" + rec + "E", "entry beyond the block");
        // The same record with a consistent header, but corrupt zlib in the block.
        std::string good_header = "rev-1\n\n0\n" + std::to_string(span->second) + "\n";
        write_all(hf, good_header);
        REQUIRE(run(f.bz.python + " -c \"import zlib,sys;sys.stdout.write(zlib.compress(open('" + hf.string() +
                        "','rb').read()).hex())\"",
                    zhex) == 0);
        zh = unhex(zhex);
        std::string bad_block = *block;
        bad_block[bad_block.size() - 3] ^= 0x55;
        rec = "groupcompress-block\n" + std::to_string(zh.size()) + "\n" + std::to_string(good_header.size()) + "\n" +
              std::to_string(bad_block.size()) + "\n" + zh + bad_block;
        refused(fmt + "B" + std::to_string(rec.size()) + "\nrevisions\n\n" + rec + "E", "corrupt zlib");
        // Lengths that do not add up to the record.
        rec = "groupcompress-block\n" + std::to_string(zh.size()) + "\n" + std::to_string(good_header.size()) + "\n" +
              std::to_string(block->size() + 5) + "\n" + zh + *block;
        refused(fmt + "B" + std::to_string(rec.size()) + "\nrevisions\n\n" + rec + "E", "Invalid length for block");
    }
    // A revision without its inventory: a well-formed stream the commit
    // checks refuse (BzrCheckError), nothing published.
    {
        std::string only_revs;
        auto recs = read_container(body);
        REQUIRE(recs);
        std::vector<ContainerRecord> keep;
        for (auto& r : *recs)
            if (r.names.empty() || r.names[0][0] == "revisions") keep.push_back(r);
        std::string out;
        ContainerWriter w([&](std::string_view b) {
            out.append(b);
            return Status(Ok{});
        });
        REQUIRE(w.begin());
        for (auto& r : keep) REQUIRE(w.add_bytes_record(r.data, r.names));
        REQUIRE(w.end());
        auto res = insert(f, out);
        CHECK(res.kind == InsertOutcome::Kind::Failed);
        CHECK(res.stage == InsertOutcome::Stage::Check);
        CHECK(res.error.detail.find("inventories missing") != std::string::npos);
        CHECK(f.files() == before);
    }
    // Limits: a block bigger than the configured content bound.
    {
        InsertLimits tight;
        tight.group.gc.max_content = 16;
        auto out = insert(f, body, 4096, {}, tight);
        CHECK(out.kind == InsertOutcome::Kind::Failed);
        CHECK(f.files() == before);
    }
}

TEST_CASE("missing basis: suspended, then resumed with the missing inventories") {
    PushFixture f;
    // Only the newest revision, without its parent (as a stacked branch's push).
    auto before = f.files();
    std::string newest = f.revs[2], parent = f.revs[1];
    auto out = insert(f, f.stream(" " + newest + " " + parent));
    REQUIRE_MESSAGE(out.kind == InsertOutcome::Kind::MissingBasis, out.error.detail);
    REQUIRE(out.tokens.size() == 1);
    CHECK(out.missing == MissingKeys{{"inventories", parent}});
    // Suspended: in upload/, not in pack-names.
    auto mid = f.files();
    CHECK(mid.count("dst/.bzr/repository/upload/" + out.tokens[0] + ".pack"));
    CHECK(mid.count("dst/.bzr/repository/pack-names") == before.count("dst/.bzr/repository/pack-names"));

    SUBCASE("bad tokens are refused") {
        auto bad = insert(f, f.missing_stream(parent), 4096, {"0123456789abcdef0123456789abcdef"});
        CHECK(bad.kind == InsertOutcome::Kind::Failed);
        CHECK(bad.stage == InsertOutcome::Stage::Resume);
        auto malformed = insert(f, f.missing_stream(parent), 4096, {"../../etc"});
        CHECK(malformed.kind == InsertOutcome::Kind::Failed);
        CHECK(malformed.stage == InsertOutcome::Stage::Resume);
        CHECK(malformed.error.detail.find("Malformed write group token") != std::string::npos);
    }
    SUBCASE("resumed: committed") {
        auto done = insert(f, f.missing_stream(parent), 4096, out.tokens);
        REQUIRE_MESSAGE(done.kind == InsertOutcome::Kind::Ok, done.error.detail);
        auto end = f.files();
        CHECK(end.count("dst/.bzr/repository/packs/" + out.tokens[0] + ".pack"));
        CHECK(!end.count("dst/.bzr/repository/upload/" + out.tokens[0] + ".pack"));
        // The newest revision is readable (as in a stacked repository).
        std::string r = f.py("revids " + sh_quote(f.dst.string()));
        CHECK(r == newest + "\n");
    }
}

TEST_CASE("autopack combines packs by Breezy's rule; Breezy reads the result") {
    PushFixture f;
    // Three pushes of one revision each into an empty repository, one pack
    // each: 3 revisions allow 3 packs; a fourth revision makes 4 packs for
    // 4 revisions (4 allowed), ... push 11 single revisions to force a combination.
    fs::path t = f.src / "trunk";
    for (int i = 0; i < 8; ++i) {
        write_all(t / "a.txt", "rev " + std::to_string(i) + "\n");
        f.bz.brz(t, "commit -q -m more");
    }
    auto ids = lines_of(f.py("history " + sh_quote(t.string())));
    REQUIRE(ids.size() == 11);
    FsStore store(f.root.string());
    WriteGroupLimits limits;
    for (size_t i = 0; i < ids.size(); ++i) {
        std::string extra = " " + ids[i] + (i ? " " + ids[i - 1] : std::string());
        auto out = insert(f, f.stream(extra));
        REQUIRE_MESSAGE(out.kind == InsertOutcome::Kind::Ok, out.error.detail);
        auto packed = autopack(store, "dst/.bzr/repository", limits);
        REQUIRE_MESSAGE(packed, packed.err().detail);
        if (i < 9) CHECK(!*packed);  // up to 9 revisions: as many packs as revisions are allowed
        if (i == 9) CHECK(*packed);  // 10 revisions: one pack allowed
    }
    auto names = f.files();
    size_t packs = 0;
    for (auto& [n, s] : names) packs += n.find("/packs/") != std::string::npos;
    CHECK(packs == 2);  // 10 combined + the 11th
    CHECK(f.py("compare " + sh_quote(f.src.string()) + " " + sh_quote(f.dst.string())) == "same\n");
    f.bz.brz(f.root, "check -q --repo dst");
}
