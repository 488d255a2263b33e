// Shared by the Bazaar-format unit tests (test_bzr_pack, _groupcompress,
// _chk, _revision): a scratch directory, brz and Breezy's Python API run as
// subprocesses (bzr_fixtures/breezy_fixture.py), and one sample repository
// built once per test run with the real brz. Missing Breezy fails loudly.
#pragma once

#include <doctest/doctest.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "server/bzr/groupcompress.hpp"
#include "server/store/fs_store.hpp"

namespace souk::test_bzr {

namespace fs = std::filesystem;

inline std::string sh_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// Run a shell command, stdout into out; the exit status or -1.
inline int run(const std::string& cmd, std::string& out) {
    out.clear();
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return -1;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int st = ::pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

inline std::string hex(std::string_view s) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

// Breezy fixture hex: "-" is the empty string.
inline std::string unhex(std::string_view s) {
    std::string out;
    if (s == "-") return out;
    for (size_t i = 0; i + 1 < s.size(); i += 2) out += static_cast<char>(std::stoi(std::string(s.substr(i, 2)), nullptr, 16));
    return out;
}

inline std::vector<std::string> split_ws(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

inline std::vector<std::string> lines_of(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);)
        if (!l.empty()) out.push_back(l);
    return out;
}

inline std::string read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void write_all(const fs::path& p, std::string_view data) {
    fs::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "souk-bzrfmt-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

// brz and Breezy's Python in a scratch HOME; fails loudly when missing.
struct Breezy {
    TempDir tmp;
    fs::path home, script;
    std::string python = "/usr/bin/python3";

    Breezy() {
        home = tmp.path / "home";
        fs::create_directories(home);
        script = fs::path(SOUK_TEST_UNIT_DIR) / "bzr_fixtures" / "breezy_fixture.py";
        REQUIRE_MESSAGE(fs::exists(script), "fixture script missing: " << script);
        std::string out;
        REQUIRE_MESSAGE(run(python + " -c 'import breezy.bzr' 2>&1", out) == 0,
                        "/usr/bin/python3 cannot import breezy: these tests need Breezy installed: " << out);
        REQUIRE_MESSAGE(run(env() + "brz version 2>&1", out) == 0, "brz is not installed or does not run: " << out);
    }
    std::string env() const {
        return "HOME=" + sh_quote(home.string()) + " BRZ_EMAIL='Test <test@example.com>' TZ=UTC LC_ALL=C.UTF-8 ";
    }
    // brz ARGS in DIR; its output.
    std::string brz(const fs::path& dir, const std::string& args) const {
        std::string out;
        int rc = run("cd " + sh_quote(dir.string()) + " && " + env() + "brz " + args + " 2>&1", out);
        REQUIRE_MESSAGE(rc == 0, "brz " << args << " failed: " << out);
        return out;
    }
    // The fixture script in MODE with ARGS (already quoted); its stdout.
    std::string py(const std::string& args) const {
        std::string out;
        fs::path err = tmp.path / "py.err";
        int rc = run("cd " + sh_quote(tmp.path.string()) + " && " + env() + python + " " + sh_quote(script.string()) +
                         " " + args + " 2>" + sh_quote(err.string()),
                     out);
        REQUIRE_MESSAGE(rc == 0, "breezy_fixture.py " << args << " failed: " << read_all(err));
        return out;
    }
};

// One index entry of a repository (as Breezy's indices list it).
struct IndexRow {
    std::string ext, pack, key, value;
    uint64_t offset = 0, length = 0, start = 0, end = 0;
};

inline std::vector<IndexRow> index_rows(const Breezy& bz, const fs::path& repo) {
    std::vector<IndexRow> rows;
    for (const auto& line : lines_of(bz.py("index " + sh_quote(repo.string())))) {
        auto w = split_ws(line);
        REQUIRE(w.size() == 7);
        IndexRow r{w[0], w[1], unhex(w[2]), w[3] + " " + w[4] + " " + w[5] + " " + w[6]};
        r.offset = std::stoull(w[3]);
        r.length = std::stoull(w[4]);
        r.start = std::stoull(w[5]);
        r.end = std::stoull(w[6]);
        rows.push_back(std::move(r));
    }
    return rows;
}

// A sample 2a repository made by brz: a shared repository with a branch
// of several revisions (text files, a rename, a binary file, a symlink, an
// executable, a deletion, a directory, and one commit of many files so
// that id_to_entry grows internal CHK nodes), and a packed copy of it
// (`brz pack`: deltas across revisions in big blocks). Built once.
struct SampleRepo {
    Breezy bz;
    fs::path root;         // tmp/root, the FsStore root
    fs::path shared;       // root/shared: `brz init-shared-repo`
    fs::path packed;       // root/packed: a copy, then `brz pack`
    std::string repo_rel = "shared/.bzr/repository";
    std::string packed_rel = "packed/.bzr/repository";

    SampleRepo() {
        root = bz.tmp.path / "root";
        shared = root / "shared";
        packed = root / "packed";
        fs::create_directories(root);
        bz.brz(root, "init-shared-repo -q shared");
        bz.brz(shared, "init -q trunk");
        fs::path t = shared / "trunk";
        write_all(t / "a.txt", "alpha\nbeta\ngamma\n");
        write_all(t / "b.txt", "bee\n");
        write_all(t / "sub/c.txt", "sea\n");
        bz.brz(t, "add -q");
        bz.brz(t, "commit -q -m 'first'");
        std::string bin;
        for (int i = 0; i < 4096; ++i) bin += static_cast<char>((i * 7) & 0xff);
        write_all(t / "blob.bin", bin);
        write_all(t / "a.txt", "alpha\nbeta\ngamma\ndelta\n");
        fs::create_symlink("a.txt", t / "link");
        write_all(t / "run.sh", "#!/bin/sh\necho hi\n");
        fs::permissions(t / "run.sh", fs::perms::owner_exec, fs::perm_options::add);
        bz.brz(t, "add -q");
        bz.brz(t, "commit -q -m 'binary, symlink, executable'");
        bz.brz(t, "mv -q b.txt renamed.txt");
        write_all(t / "a.txt", "alpha\nbeta\ngamma\ndelta\nepsilon\n");
        bz.brz(t, "commit -q -m 'rename'");
        for (int i = 0; i < 600; ++i)
            write_all(t / "many" / ("file-with-a-rather-long-name-" + std::to_string(i) + ".txt"),
                      "content of file " + std::to_string(i) + "\n");
        bz.brz(t, "add -q");
        bz.brz(t, "commit -q -m 'many files'");
        write_all(t / "many/file-with-a-rather-long-name-7.txt", "changed\n");
        bz.brz(t, "rm -q sub/c.txt");
        bz.brz(t, "commit -q -m 'change one, delete one'");
        std::error_code ec;
        fs::copy(shared, packed, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
        REQUIRE_MESSAGE(!ec, "copy failed: " << ec.message());
        bz.brz(packed, "pack -q");
    }
    fs::path repo_dir(const std::string& rel) const { return root / rel; }
};

inline SampleRepo& sample_repo() {
    static std::unique_ptr<SampleRepo> repo;
    if (!repo) repo = std::make_unique<SampleRepo>();
    return *repo;
}

// The text of an index entry, read with souk's own block reader.
inline server::bzr::Result<std::string> read_text(server::Store& store, const std::string& repo_rel,
                                                  const IndexRow& row) {
    server::OpenFile f;
    if (int e = store.open_read(repo_rel + "/packs/" + row.pack + ".pack", f))
        return server::bzr::io_error(e, "open pack");
    auto content = server::bzr::gc::read_block_prefix(store, f, row.offset, row.length, row.end);
    if (!content) return content.err();
    return server::bzr::gc::extract_text(*content, row.start, row.end);
}

}  // namespace souk::test_bzr
