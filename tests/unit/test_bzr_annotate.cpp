// Annotate (server/bzr/annotate.hpp, server/bzr/patience.hpp) against
// Breezy: patience diff's matching blocks equal those of patiencediff's C
// extension (random inputs, and a nesting deep enough to hit its recursion
// cap); annotate over in-memory file graphs equals Breezy's Annotator
// (hand-made merges where both sides changed lines or made the same
// change, and random graphs with merges and criss-crosses); over a
// repository made by brz, annotate_file_revision equals Breezy's
// annotate_iter for every path of every revision, unpacked and packed.
// Hostile input: missing texts, cycles, every bound, bad paths, a zeroed
// pack: an error, never a crash.
#include <doctest/doctest.h>

#include <random>

#include "bzr_fixture.hpp"
#include "server/bzr/annotate.hpp"
#include "server/bzr/patience.hpp"
#include "server/bzr/stream_source.hpp"

using namespace souk::server;
using namespace souk::test_bzr;
using bzr::patience::Block;

namespace {

using Lines = std::vector<std::string>;

std::string hex_lines(const Lines& lines) {
    if (lines.empty()) return "-";
    std::string out;
    for (const auto& l : lines) out += (out.empty() ? "" : ",") + (l.empty() ? std::string("-") : hex(l));
    return out;
}

std::vector<Block> blocks(const Lines& a, const Lines& b) {
    std::vector<std::string_view> va(a.begin(), a.end()), vb(b.begin(), b.end());
    return bzr::patience::matching_blocks(va, vb);
}

std::string blocks_text(const std::vector<Block>& bs) {
    std::string out;
    for (const auto& b : bs)
        out += (out.empty() ? "" : " ") + std::to_string(b.a) + "," + std::to_string(b.b) + "," + std::to_string(b.len);
    return out;
}

Lines chars(std::string_view s) {
    Lines out;
    for (char c : s) out.emplace_back(1, c);
    return out;
}

// Two sequences whose unique lines nest `depth` levels: at each level one
// line is unique in the range, and the lines of the level below occur on
// both sides of it, so they are unique only inside the gaps. At the bottom
// a common first line that only the deepest recursion would match.
void nested(int depth, Lines& a, Lines& b) {
    if (depth == 0) {
        a = {"p\n", "x\n"};
        b = {"p\n", "y\n"};
        return;
    }
    Lines la, lb;
    nested(depth - 1, la, lb);
    std::string u = "u" + std::to_string(depth) + "\n";
    a = la;
    a.push_back(u);
    a.insert(a.end(), la.begin(), la.end());
    b = lb;
    b.push_back(u);
    b.insert(b.end(), lb.begin(), lb.end());
}

// ---- in-memory file graphs ----

struct MemTexts final : bzr::TextSource {
    struct Text {
        std::vector<bzr::TextKey> parents;
        std::string bytes;
    };
    std::map<bzr::TextKey, Text> texts;
    size_t parent_calls = 0, text_calls = 0;

    static bzr::TextKey key(const std::string& name) { return {"file-id", name}; }
    void add(const std::string& name, const std::vector<std::string>& parents, const std::string& bytes) {
        Text t;
        for (const auto& p : parents) t.parents.push_back(key(p));
        t.bytes = bytes;
        texts[key(name)] = std::move(t);
    }
    bzr::Status parents(std::span<const bzr::TextKey> keys, const ParentsFn& fn) override {
        ++parent_calls;
        for (const auto& k : keys) {
            auto it = texts.find(k);
            if (it != texts.end()) fn(k, it->second.parents);
        }
        return bzr::Ok{};
    }
    bzr::Result<std::string> text(const bzr::TextKey& k) override {
        ++text_calls;
        auto it = texts.find(k);
        if (it == texts.end()) return bzr::Error{bzr::Errc::NotFound, 0, "no such text"};
        return it->second.bytes;
    }
};

// "REVID HEXLINE" per line, as the fixture prints Breezy's answer.
std::string rendered(const bzr::Annotation& a) {
    std::string out;
    for (size_t i = 0; i < a.lines.size(); ++i)
        out += a.sources[a.lines[i].source].revision + " " + hex(a.line(i)) + "\n";
    return out;
}

std::string annotate_text(MemTexts& m, const std::string& name, const bzr::AnnotateLimits& limits = {}) {
    auto r = bzr::annotate(m, MemTexts::key(name), limits);
    REQUIRE_MESSAGE(r, "annotate " << name << ": " << (r ? "" : r.err().detail));
    return rendered(*r);
}

std::string join(const Lines& lines) {
    std::string out;
    for (const auto& l : lines) out += l;
    return out;
}

// A graph for the fixture's annotator mode, and our answers for it.
struct GraphCase {
    MemTexts mem;
    std::string spec;  // "text ..." lines
    std::vector<std::string> names;
    void add(const std::string& name, const std::vector<std::string>& parents, const Lines& lines) {
        mem.add(name, parents, join(lines));
        std::string ps;
        for (const auto& p : parents) ps += (ps.empty() ? "" : ",") + p;
        spec += "text " + name + " " + (ps.empty() ? "-" : ps) + " " + hex_lines(lines) + "\n";
        names.push_back(name);
    }
};

// Breezy's answers for every text of every graph, by name (names are
// unique across the graphs).
std::map<std::string, std::string> breezy_annotations(Breezy& bz, const std::vector<GraphCase*>& graphs) {
    std::string spec;
    for (const auto* g : graphs) {
        spec += "reset\n" + g->spec;
        for (const auto& n : g->names) spec += "ask " + n + "\n";
    }
    fs::path file = bz.tmp.path / "graphs.txt";
    write_all(file, spec);
    std::map<std::string, std::string> answers;
    std::string* current = nullptr;
    for (const auto& l : lines_of(bz.py("annotator " + sh_quote(file.string())))) {
        if (l.rfind("ask ", 0) == 0) current = &answers[l.substr(4)];
        else if (current) *current += l + "\n";
    }
    return answers;
}

Lines random_edit(std::mt19937& rng, Lines lines, const std::string& tag) {
    static const char* alphabet[] = {"a\n", "b\n", "c\n", "d\n", "e\n", "{\n", "}\n", "\n"};
    int edits = static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
        size_t at = lines.empty() ? 0 : rng() % (lines.size() + 1);
        switch (rng() % 4) {
        case 0:
            if (!lines.empty() && at < lines.size()) lines.erase(lines.begin() + static_cast<long>(at));
            break;
        case 1: lines.insert(lines.begin() + static_cast<long>(at), alphabet[rng() % 8]); break;
        case 2:
            lines.insert(lines.begin() + static_cast<long>(at), tag + "-" + std::to_string(e) + "\n");
            break;
        default:
            if (at < lines.size()) lines[at] = alphabet[rng() % 8];
            break;
        }
    }
    // Sometimes a last line without a newline.
    if (!lines.empty() && rng() % 8 == 0 && lines.back().size() > 1) lines.back().pop_back();
    return lines;
}

std::unique_ptr<GraphCase> random_graph(std::mt19937& rng, int id) {
    auto g = std::make_unique<GraphCase>();
    size_t n = 2 + rng() % 12;
    std::vector<Lines> texts;
    for (size_t i = 0; i < n; ++i) {
        // Names whose order is not the order of the history (ties pick the smallest).
        std::string name = std::string(1, static_cast<char>('a' + rng() % 26)) + std::to_string(id) + "-" +
                           std::to_string(i);
        std::vector<size_t> ps;
        if (i > 0 && rng() % 10 != 0) {
            size_t k = rng() % 10 < 6 ? 1 : rng() % 10 < 8 ? 2 : 3;
            for (size_t j = 0; j < k && ps.size() < i; ++j) {
                size_t p = rng() % i;
                if (std::find(ps.begin(), ps.end(), p) == ps.end()) ps.push_back(p);
            }
        }
        Lines base = ps.empty() ? Lines{} : texts[ps[0]];
        // A merge takes the other parents' lines where they differ, or not.
        for (size_t j = 1; j < ps.size(); ++j)
            if (rng() % 2) {
                const Lines& other = texts[ps[j]];
                for (size_t x = 0; x < other.size() && x < base.size(); ++x)
                    if (rng() % 3 == 0) base[x] = other[x];
                if (other.size() > base.size())
                    base.insert(base.end(), other.begin() + static_cast<long>(base.size()), other.end());
            }
        Lines lines = random_edit(rng, base, "n" + std::to_string(i));
        // Occasionally every parent (or none) starts from the same few lines.
        if (ps.empty() && rng() % 2) lines = random_edit(rng, {"a\n", "b\n", "c\n"}, "root" + std::to_string(i));
        texts.push_back(lines);
        std::vector<std::string> pnames;
        for (size_t p : ps) pnames.push_back(g->names[p]);
        g->add(name, pnames, lines);
    }
    return g;
}

// ---- a repository made by brz ----

struct AnnotateRepo {
    Breezy bz;
    fs::path root, src, feat, packed;

    AnnotateRepo() {
        root = bz.tmp.path / "root";
        src = root / "src";
        feat = root / "feat";
        packed = root / "packed";
        fs::create_directories(root);
        bz.brz(root, "init -q src");
        write_all(src / "f.txt", "a\nb\nc\nd\ne\nf\ng\nh\ni\n");
        write_all(src / "sub/g.txt", "x\ny\n");
        write_all(src / "nonl.txt", "one\ntwo");
        write_all(src / "crlf.txt", "one\r\ntwo\r\nthree\r\n");
        std::string bin;
        for (int i = 0; i < 2000; ++i) bin += static_cast<char>((i * 31) & 0xff);
        write_all(src / "bin.dat", bin);
        fs::create_symlink("f.txt", src / "link");
        bz.brz(src, "add -q");
        bz.brz(src, "commit -q -m r1");
        bz.brz(root, "branch -q src feat");
        // Both sides change f.txt (different lines), and both add the same
        // last line: the merge is clean, and that line has two sources.
        write_all(feat / "f.txt", "a\nb\nC\nd\ne\nf\nG\nh\ni\nsame\n");
        write_all(feat / "nonl.txt", "one\ntwo\nthree");
        bz.brz(feat, "commit -q -m f1");
        write_all(src / "f.txt", "A\nb\nc\nd\nE\nf\ng\nh\ni\nsame\n");
        write_all(src / "crlf.txt", "one\r\nTWO\r\nthree\r\n");
        bz.brz(src, "mv -q sub/g.txt sub/renamed.txt");
        bz.brz(src, "commit -q -m r2");
        bz.brz(src, "merge -q ../feat");
        write_all(src / "f.txt", "A\nb\nC\nd\nE\nf\nG\nh\nI\nsame\n");  // and the merge's own change
        bz.brz(src, "commit -q -m r3-merge");
        // A criss-cross: feat merges src, both change more, src merges feat.
        bz.brz(feat, "merge -q ../src");
        bz.brz(feat, "commit -q -m f2-merge");
        write_all(feat / "f.txt", "A\nb\nC\nd\nE\nF\nG\nh\nI\nsame\n");
        bz.brz(feat, "commit -q -m f3");
        write_all(src / "f.txt", "A\nb\nC\nd\nE\nf\nG\nH\nI\nsame\n");
        bz.brz(src, "rm -q bin.dat");
        bz.brz(src, "commit -q -m r4");
        bz.brz(src, "merge -q ../feat");
        bz.brz(src, "commit -q -m r5-merge");
        std::error_code ec;
        fs::copy(src, packed, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
        REQUIRE_MESSAGE(!ec, "copy failed: " << ec.message());
        bz.brz(packed, "pack -q");
    }
};

AnnotateRepo& annotate_repo() {
    static std::unique_ptr<AnnotateRepo> repo;
    if (!repo) repo = std::make_unique<AnnotateRepo>();
    return *repo;
}

bzr::PackReader reader_for(FsStore& store, const std::string& repo) {
    auto pc = bzr::PackCollection::open(store, repo);
    REQUIRE_MESSAGE(pc, "pack-names: " << (pc ? "" : pc.err().detail));
    return bzr::PackReader(store, repo, std::move(pc).value());
}

bzr::FileAnnotation file_annotation(FsStore& store, const std::string& repo, const std::string& revid,
                                    const std::string& path, const bzr::AnnotateLimits& limits = {}) {
    auto reader = reader_for(store, repo);
    auto r = bzr::annotate_file_revision(reader, revid, path, limits);
    REQUIRE_MESSAGE(r, "annotate " << revid << " " << path << ": " << (r ? "" : r.err().detail));
    return std::move(r).value();
}

// Breezy's annotate_iter for every (revid, path): "REVID HEXLINE" lines.
std::map<std::pair<std::string, std::string>, std::string> breezy_repo_annotations(AnnotateRepo& s,
                                                                                    const fs::path& branch) {
    std::map<std::pair<std::string, std::string>, std::string> out;
    std::pair<std::string, std::string> current;
    for (const auto& line : lines_of(s.bz.py("annotate " + sh_quote(branch.string())))) {
        auto w = split_ws(line);
        if (w[0] == "path") {
            current = {w[1], unhex(w[2])};
            out[current];
        } else {
            out[current] += line + "\n";
        }
    }
    return out;
}

}  // namespace

TEST_CASE("patience: the documented example, empty sides, the sentinel") {
    CHECK(blocks(chars("abxcd"), chars("abcd")) == std::vector<Block>{{0, 0, 2}, {3, 2, 2}, {5, 4, 0}});
    CHECK(blocks({}, {}) == std::vector<Block>{{0, 0, 0}});
    CHECK(blocks(chars("abc"), {}) == std::vector<Block>{{3, 0, 0}});
    CHECK(blocks({}, chars("abc")) == std::vector<Block>{{0, 3, 0}});
    CHECK(blocks(chars("aaaa"), chars("aaaa")) == std::vector<Block>{{0, 0, 4}, {4, 4, 0}});
    // No unique line, different first lines: the common tail.
    CHECK(blocks(chars("xaab"), chars("yaab")) == std::vector<Block>{{1, 1, 3}, {4, 4, 0}});
    // Lines compare by all their bytes.
    CHECK(blocks({"a\n", "b"}, {"a", "b"}) == std::vector<Block>{{1, 1, 1}, {2, 2, 0}});
}

TEST_CASE("patience: the same blocks as patiencediff's C extension") {
    Breezy bz;
    std::mt19937 rng(20240611);
    std::vector<std::pair<Lines, Lines>> cases;
    static const char* alphabet[] = {"a\n", "b\n", "c\n", "d\n", "e\n", "f\n", "\n", "}\n"};
    for (int i = 0; i < 400; ++i) {
        Lines a, b;
        size_t na = rng() % 40, k = 2 + rng() % 7;
        for (size_t j = 0; j < na; ++j) a.push_back(alphabet[rng() % k]);
        if (rng() % 2) {
            b = random_edit(rng, a, "t" + std::to_string(i));
            b = random_edit(rng, b, "s" + std::to_string(i));
        } else {
            size_t nb = rng() % 40;
            for (size_t j = 0; j < nb; ++j) b.push_back(alphabet[rng() % k]);
        }
        cases.emplace_back(a, b);
    }
    // Nesting beyond the recursion cap (10 levels below the top call).
    for (int depth : {8, 9, 10, 11, 12}) {
        Lines a, b;
        nested(depth, a, b);
        cases.emplace_back(a, b);
    }
    // A larger text with an edit in the middle.
    Lines big;
    for (int i = 0; i < 3000; ++i) big.push_back("line " + std::to_string(i % 700) + "\n");
    Lines big2 = big;
    big2.erase(big2.begin() + 1500, big2.begin() + 1510);
    big2.insert(big2.begin() + 100, "new\n");
    cases.emplace_back(big, big2);

    std::string spec;
    for (const auto& [a, b] : cases) spec += hex_lines(a) + " " + hex_lines(b) + "\n";
    fs::path file = bz.tmp.path / "patience.txt";
    write_all(file, spec);
    auto want = lines_of(bz.py("patience " + sh_quote(file.string())));
    REQUIRE(want.size() == cases.size());
    for (size_t i = 0; i < cases.size(); ++i) {
        CAPTURE(i);
        CHECK(blocks_text(blocks(cases[i].first, cases[i].second)) == want[i]);
    }
    // The deepest nesting loses the match the cut-off recursion would have found.
    Lines a, b;
    nested(12, a, b);
    size_t matched = 0;
    for (const auto& bl : blocks(a, b)) matched += bl.len;
    CHECK(matched < a.size() - (size_t{1} << 12));
}

TEST_CASE("annotate: a linear history, a last line without a newline") {
    MemTexts m;
    m.add("r1", {}, "a\nb\nc\n");
    m.add("r2", {"r1"}, "a\nB\nc\nd");
    CHECK(annotate_text(m, "r1") == "r1 610a\nr1 620a\nr1 630a\n");
    CHECK(annotate_text(m, "r2") == "r1 610a\nr2 420a\nr1 630a\nr2 64\n");
    m.add("empty", {"r2"}, "");
    CHECK(annotate_text(m, "empty").empty());
    // One lookup per generation, each text read once.
    m.parent_calls = m.text_calls = 0;
    annotate_text(m, "r2");
    CHECK(m.parent_calls == 2);
    CHECK(m.text_calls == 2);
}

TEST_CASE("annotate: a long linear history is walked without recursion, each text read once") {
    MemTexts m;
    const int n = 30000;
    for (int i = 0; i < n; ++i) {
        std::string name = "r" + std::to_string(i);
        // Line 2 changes in every revision; lines 1 and 3 never do.
        m.add(name, i ? std::vector<std::string>{"r" + std::to_string(i - 1)} : std::vector<std::string>{},
              "first\n" + name + "\nlast\n");
    }
    bzr::AnnotateLimits l;
    l.max_texts = n;
    std::string tip = "r" + std::to_string(n - 1);
    CHECK(annotate_text(m, tip, l) == "r0 66697273740a\n" + tip + " " + hex(tip + "\n") + "\nr0 6c6173740a\n");
    CHECK(m.text_calls == static_cast<size_t>(n));
    CHECK(m.parent_calls == static_cast<size_t>(n));
    l.max_texts = n - 1;
    auto r = bzr::annotate(m, MemTexts::key(tip), l);
    REQUIRE_FALSE(r);
    CHECK(r.err().code == bzr::Errc::LimitExceeded);
}

TEST_CASE("annotate: merges where both sides changed lines, or made the same change") {
    Breezy bz;
    GraphCase g;
    g.add("base", {}, {"a\n", "b\n", "c\n", "d\n", "e\n"});
    // Names sort against the history: the tie goes to the smallest key.
    g.add("z-left", {"base"}, {"A\n", "b\n", "c\n", "d\n", "E\n", "same\n"});
    g.add("a-right", {"base"}, {"a\n", "B\n", "c\n", "d\n", "e\n", "same\n"});
    g.add("merge", {"z-left", "a-right"}, {"A\n", "B\n", "C\n", "d\n", "E\n", "same\n"});
    g.add("later", {"merge"}, {"A\n", "B\n", "C\n", "d\n", "E\n", "same\n", "f\n"});
    // The other side merges too (criss-cross), then both heads merge.
    g.add("m-other", {"a-right", "z-left"}, {"A\n", "B\n", "c\n", "d\n", "E\n", "same\n", "g\n"});
    g.add("final", {"later", "m-other"}, {"A\n", "B\n", "C\n", "d\n", "E\n", "same\n", "f\n", "g\n"});
    CHECK(annotate_text(g.mem, "merge") ==
          "z-left 410a\n"
          "a-right 420a\n"
          "merge 430a\n"
          "base 640a\n"
          "z-left 450a\n"
          "a-right 73616d650a\n");
    auto want = breezy_annotations(bz, {&g});
    for (const auto& n : g.names) {
        CAPTURE(n);
        CHECK(annotate_text(g.mem, n) == want[n]);
    }
}

TEST_CASE("annotate: random graphs give Breezy's answers") {
    Breezy bz;
    std::mt19937 rng(7);
    std::vector<std::unique_ptr<GraphCase>> graphs;
    std::vector<GraphCase*> ptrs;
    for (int i = 0; i < 150; ++i) {
        graphs.push_back(random_graph(rng, i));
        ptrs.push_back(graphs.back().get());
    }
    auto want = breezy_annotations(bz, ptrs);
    size_t compared = 0;
    for (size_t i = 0; i < graphs.size(); ++i)
        for (const auto& n : graphs[i]->names) {
            CAPTURE(n);
            auto it = want.find(n);
            REQUIRE(it != want.end());
            CHECK(annotate_text(graphs[i]->mem, n) == it->second);
            ++compared;
        }
    CHECK(compared > 500);
}

TEST_CASE("annotate: missing texts, cycles and every bound are errors, never a crash") {
    MemTexts m;
    m.add("r1", {}, "a\n");
    m.add("r2", {"r1", "ghost"}, "a\nb\n");
    m.add("r3", {"r2"}, "a\nb\nc\n");
    bzr::TextKey missing;
    auto r = bzr::annotate(m, MemTexts::key("r3"), {}, &missing);
    REQUIRE_FALSE(r);
    CHECK(r.err().code == bzr::Errc::NotFound);
    CHECK(missing == MemTexts::key("ghost"));
    r = bzr::annotate(m, MemTexts::key("nothing"), {}, &missing);
    REQUIRE_FALSE(r);
    CHECK(r.err().code == bzr::Errc::NotFound);
    CHECK(missing == MemTexts::key("nothing"));

    MemTexts cyc;
    cyc.add("x", {"y"}, "a\n");
    cyc.add("y", {"x"}, "a\n");
    cyc.add("tip", {"x"}, "a\n");
    cyc.add("self", {"self"}, "a\n");
    for (const char* k : {"tip", "self"}) {
        auto c = bzr::annotate(cyc, MemTexts::key(k));
        REQUIRE_FALSE(c);
        CHECK(c.err().code == bzr::Errc::Corrupt);
    }

    MemTexts ok;
    ok.add("r1", {}, "a\nb\n");
    ok.add("r2", {"r1"}, "a\nb\nc\n");
    ok.add("left", {"r2"}, "a\nb\nc\nx\n");
    ok.add("right", {"r2"}, "a\nb\nc\nx\n");
    ok.add("merge", {"left", "right"}, "a\nb\nc\nx\n");
    // A parent named twice counts as one.
    ok.add("twice", {"r1", "r1"}, "a\nb\nz\n");
    CHECK(annotate_text(ok, "twice") == "r1 610a\nr1 620a\ntwice 7a0a\n");
    auto over = [&](const char* name, auto set) {
        bzr::AnnotateLimits l;
        set(l);
        auto res = bzr::annotate(ok, MemTexts::key(name), l);
        REQUIRE_FALSE(res);
        CHECK(res.err().code == bzr::Errc::LimitExceeded);
    };
    over("r2", [](bzr::AnnotateLimits& l) { l.max_texts = 1; });
    over("r2", [](bzr::AnnotateLimits& l) { l.max_lines = 2; });
    over("r2", [](bzr::AnnotateLimits& l) { l.max_bytes = 9; });
    over("merge", [](bzr::AnnotateLimits& l) { l.max_steps = 1; });
    bzr::AnnotateLimits exact;
    exact.max_texts = 2;
    exact.max_lines = 3;
    exact.max_bytes = 10;
    CHECK(annotate_text(ok, "r2", exact) == "r1 610a\nr1 620a\nr2 630a\n");
    // "x" was added on both sides: two heads, the smaller key wins.
    CHECK(annotate_text(ok, "merge") == "r1 610a\nr1 620a\nr2 630a\nleft 780a\n");
}

TEST_CASE("annotate_file_revision equals Breezy's annotate_iter for every path of every revision") {
    auto& s = annotate_repo();
    FsStore store(s.root.string());
    for (const char* branch : {"src", "packed"}) {
        CAPTURE(branch);
        auto want = breezy_repo_annotations(s, s.root / branch);
        REQUIRE(want.size() > 30);
        size_t sources = 0;
        for (const auto& entry : want) {
            // Named, not a structured binding: clang 14 cannot capture one
            // in CAPTURE's lambda.
            const auto& key = entry.first;
            const auto& text = entry.second;
            CAPTURE(key.first);
            CAPTURE(key.second);
            auto fa = file_annotation(store, std::string(branch) + "/.bzr/repository", key.first, key.second);
            REQUIRE(fa.kind == bzr::FileAnnotation::Kind::Ok);
            CHECK(rendered(fa.annotation) == text);
            if (key.second == "f.txt") sources += fa.annotation.sources.size();
        }
        CHECK(sources > 10);
    }
}

TEST_CASE("annotate_file_revision: unknown revisions and paths, bad paths, a zeroed pack") {
    auto& s = annotate_repo();
    FsStore store(s.root.string());
    const std::string repo = "src/.bzr/repository";
    std::string tip = split_ws(s.bz.brz(s.src, "revision-info")).at(1);
    using Kind = bzr::FileAnnotation::Kind;
    CHECK(file_annotation(store, repo, "no-such-revision", "f.txt").kind == Kind::NoSuchRevision);
    CHECK(file_annotation(store, repo, std::string("a\0b", 3), "f.txt").kind == Kind::NoSuchRevision);
    CHECK(file_annotation(store, repo, "", "f.txt").kind == Kind::NoSuchRevision);
    CHECK(file_annotation(store, repo, "null:", "f.txt").kind == Kind::NoSuchPath);
    CHECK(file_annotation(store, repo, "null:", "").kind == Kind::NoSuchPath);
    // Breezy's order: the revision, then the path.
    CHECK(file_annotation(store, repo, "no-such-revision", "../f.txt").kind == Kind::NoSuchRevision);
    CHECK(file_annotation(store, repo, "no-such-revision", "\xff").kind == Kind::NoSuchRevision);
    CHECK(file_annotation(store, repo, "null:", "../f.txt").kind == Kind::BadPath);
    for (const char* p : {"nothing", "f.txt/x", "F.TXT", "sub/g.txt", "bin.dat", "link/x"}) {
        CAPTURE(p);
        CHECK(file_annotation(store, repo, tip, p).kind == Kind::NoSuchPath);
    }
    for (const char* p : {"../f.txt", "sub/../f.txt", "\xff", "a\xc0\xaf", "\xed\xa0\x80"}) {
        CAPTURE(p);
        auto fa = file_annotation(store, repo, tip, p);
        CHECK(fa.kind == Kind::BadPath);
        CHECK_FALSE(fa.detail.empty());
    }
    // '' and '.' parts are dropped; the root and directories are empty texts.
    auto plain = rendered(file_annotation(store, repo, tip, "sub/renamed.txt").annotation);
    CHECK(plain.size() > 0);
    for (const char* p : {"/sub/renamed.txt", "./sub//renamed.txt", "sub/./renamed.txt/"}) {
        CAPTURE(p);
        CHECK(rendered(file_annotation(store, repo, tip, p).annotation) == plain);
    }
    for (const char* p : {"", ".", "sub", "sub/"}) {
        CAPTURE(p);
        auto fa = file_annotation(store, repo, tip, p);
        CHECK(fa.kind == Kind::Ok);
        CHECK(fa.annotation.lines.empty());
    }
    // The bounds reach the repository path too.
    bzr::AnnotateLimits tight;
    tight.max_texts = 2;
    auto reader = reader_for(store, repo);
    auto r = bzr::annotate_file_revision(reader, tip, "f.txt", tight);
    REQUIRE_FALSE(r);
    CHECK(r.err().code == bzr::Errc::LimitExceeded);

    // Every pack zeroed (sizes kept): errors, not crashes.
    TempDir work;
    fs::create_directories(work.path / "z");
    fs::copy(s.src / ".bzr", work.path / "z/.bzr", fs::copy_options::recursive);
    for (const auto& e : fs::directory_iterator(work.path / "z/.bzr/repository/packs"))
        write_all(e.path(), std::string(fs::file_size(e.path()), '\0'));
    FsStore zstore(work.path.string());
    auto zreader = reader_for(zstore, "z/.bzr/repository");
    auto z = bzr::annotate_file_revision(zreader, tip, "f.txt");
    REQUIRE_FALSE(z);
    CHECK(z.err().code == bzr::Errc::Corrupt);
}
