#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "server/store/fs_store.hpp"

namespace fs = std::filesystem;
using souk::server::FileInfo;
using souk::server::FsStore;
using souk::server::OpenFile;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/souk-store-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

std::string slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}
void spit(const fs::path& p, const std::string& s) {
    std::ofstream f(p, std::ios::binary);
    f << s;
}

std::string read_all(FsStore& s, const std::string& path, int* err = nullptr) {
    OpenFile f;
    int e = s.open_read(path, f);
    if (err) *err = e;
    if (e) return {};
    std::string out(f.info.size, '\0');
    ssize_t r = s.pread(f, out.data(), out.size(), 0);
    out.resize(r < 0 ? 0 : static_cast<size_t>(r));
    return out;
}

}  // namespace

TEST_CASE("fs_store: symlinks never lead outside the root, for reads or writes") {
    TempDir outside, tmp;
    fs::create_directory(tmp.path / "root");
    FsStore s((tmp.path / "root").string());
    REQUIRE(s.valid());
    spit(outside.path / "secret", "secret");
    fs::create_symlink(outside.path / "secret", tmp.path / "root/link");
    fs::create_directory_symlink(outside.path, tmp.path / "root/dirlink");

    int e = 0;
    CHECK(read_all(s, "link", &e).empty());
    CHECK(e == ELOOP);
    CHECK(read_all(s, "dirlink/secret", &e).empty());
    CHECK(e != 0);
    uint64_t old = 0;
    CHECK(s.append("link", "x", -1, &old) == ELOOP);
    CHECK(s.append("dirlink/secret", "x", -1, &old) != 0);
    CHECK(s.put("dirlink/secret", "x", -1) != 0);
    CHECK(s.put_non_atomic("dirlink/secret", "x", -1, false, -1) != 0);
    CHECK(s.mkdir("dirlink/new", -1) != 0);
    CHECK(s.unlink("dirlink/secret") != 0);
    std::vector<std::string> names;
    CHECK(s.list_dir("dirlink", names) != 0);
    CHECK(slurp(outside.path / "secret") == "secret");
    CHECK(!fs::exists(outside.path / "new"));
    // Replacing the link itself is allowed and does not touch its target.
    CHECK(s.put("link", "mine", -1) == 0);
    CHECK(slurp(outside.path / "secret") == "secret");
    CHECK(!fs::is_symlink(tmp.path / "root/link"));
}

TEST_CASE("fs_store: put is atomic and hides its temporary file") {
    TempDir tmp;
    FsStore s(tmp.path.string());
    CHECK(s.put("f", "old", 0640) == 0);
    CHECK(read_all(s, "f") == "old");
    CHECK((fs::status(tmp.path / "f").permissions() & fs::perms::all) ==
          (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
    CHECK(s.put("missing/f", "x", -1) == ENOENT);
    CHECK(s.put("", "x", -1) == EISDIR);

    const std::string a(256 * 1024, 'a'), b(256 * 1024, 'b');
    std::atomic<bool> stop{false};
    std::atomic<int> mixed{0}, reads{0};
    std::thread reader([&] {
        for (int i = 0; i < 20000 && !stop; ++i) {
            std::string got = read_all(s, "f");
            ++reads;
            if (got != "old" && got != a && got != b) ++mixed;
        }
    });
    for (int i = 0; i < 40; ++i) REQUIRE(s.put("f", i % 2 ? a : b, -1) == 0);
    stop = true;
    reader.join();
    CHECK(reads > 0);
    CHECK(mixed == 0);
    std::vector<std::string> names;
    CHECK(s.list_dir("", names) == 0);
    CHECK(names == std::vector<std::string>{"f"});
}

TEST_CASE("fs_store: concurrent appends get exact, unique old lengths") {
    TempDir tmp;
    FsStore s(tmp.path.string());
    constexpr int kThreads = 6, kEach = 200;
    std::vector<std::vector<uint64_t>> offsets(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            std::string rec = "[" + std::to_string(t) + std::string(10 + t, 'x') + "]";
            for (int i = 0; i < kEach; ++i) {
                uint64_t old = 0;
                REQUIRE(s.append("log", rec, -1, &old) == 0);
                offsets[t].push_back(old);
            }
        });
    }
    for (auto& th : threads) th.join();
    std::set<uint64_t> all;
    uint64_t total = 0;
    for (int t = 0; t < kThreads; ++t) {
        total += kEach * (2 + std::to_string(t).size() + 10 + t);
        all.insert(offsets[t].begin(), offsets[t].end());
    }
    CHECK(all.size() == static_cast<size_t>(kThreads * kEach));
    std::string data = slurp(tmp.path / "log");
    CHECK(data.size() == total);
    for (int t = 0; t < kThreads; ++t) {
        std::string rec = "[" + std::to_string(t) + std::string(10 + t, 'x') + "]";
        for (uint64_t off : offsets[t]) CHECK(data.compare(off, rec.size(), rec) == 0);
    }
}

TEST_CASE("fs_store: a failed append is truncated back to the old length") {
    TempDir tmp;
    FsStore s(tmp.path.string());
    REQUIRE(s.put("f", std::string(1000, 'a'), -1) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // In the child: a file-size limit makes the append fail half-way.
        ::signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {1500, 1500};
        ::setrlimit(RLIMIT_FSIZE, &rl);
        uint64_t old = 0;
        int e = s.append("f", std::string(4000, 'b'), -1, &old);
        ::_exit(e == EFBIG ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(slurp(tmp.path / "f") == std::string(1000, 'a'));
}

TEST_CASE("fs_store: rename keeps POSIX semantics that LockDir relies on") {
    TempDir tmp;
    FsStore s(tmp.path.string());
    REQUIRE(s.mkdir("lock", -1) == 0);
    REQUIRE(s.mkdir("lock/a.tmp", -1) == 0);
    REQUIRE(s.put_non_atomic("lock/a.tmp/info", "nonce: a\n", -1, false, -1) == 0);
    REQUIRE(s.rename("lock/a.tmp", "lock/held") == 0);
    REQUIRE(s.mkdir("lock/b.tmp", -1) == 0);
    REQUIRE(s.put_non_atomic("lock/b.tmp/info", "nonce: b\n", -1, false, -1) == 0);
    int e = s.rename("lock/b.tmp", "lock/held");
    CHECK((e == ENOTEMPTY || e == EEXIST));
    CHECK(slurp(tmp.path / "lock/held/info") == "nonce: a\n");
    // Onto an empty directory, rename succeeds.
    REQUIRE(s.mkdir("empty", -1) == 0);
    CHECK(s.rename("lock/b.tmp", "empty") == 0);
    CHECK(slurp(tmp.path / "empty/info") == "nonce: b\n");
}

TEST_CASE("fs_store: put_non_atomic creates one parent level only; errors are errno values") {
    TempDir tmp;
    FsStore s(tmp.path.string());
    CHECK(s.put_non_atomic("a/f", "1", -1, true, 0750) == 0);
    CHECK(slurp(tmp.path / "a/f") == "1");
    CHECK(s.put_non_atomic("x/y/f", "1", -1, true, -1) == ENOENT);
    CHECK(s.put_non_atomic("b/f", "1", -1, false, -1) == ENOENT);
    CHECK(s.mkdir("a", -1) == EEXIST);
    CHECK(s.rmdir("a") == ENOTEMPTY);
    CHECK(s.unlink("a") == EISDIR);
    FileInfo fi;
    CHECK(s.stat("a/f", fi) == 0);
    CHECK(fi.size == 1);
    CHECK(S_ISREG(fi.mode));
    CHECK(s.stat("nope", fi) == ENOENT);
    int err = 0;
    read_all(s, "a", &err);
    CHECK(err == EISDIR);
    std::vector<std::string> names;
    CHECK(s.list_dir("a/f", names) == ENOTDIR);
    std::vector<std::string> files;
    REQUIRE(s.put_non_atomic("a/g h", "2", -1, false, -1) == 0);
    CHECK(s.list_files_recursive("", files) == 0);
    std::set<std::string> got(files.begin(), files.end());
    CHECK(got == std::set<std::string>{"a/f", "a/g h"});
}
