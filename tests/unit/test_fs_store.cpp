#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
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

namespace {

// In a child process under a 1500-byte file-size limit, append `bytes`
// bytes to `name`: the append must fail with EFBIG part-way.
void append_fails_past_size_limit(FsStore& s, const std::string& name, size_t bytes) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {1500, 1500};
        ::setrlimit(RLIMIT_FSIZE, &rl);
        uint64_t old = 0;
        ::_exit(s.append(name, std::string(bytes, 'b'), -1, &old) == EFBIG ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

}  // namespace

TEST_CASE("fs_store: a failed append is truncated back to the old length") {
    TempDir tmp;
    FsStore s(tmp.path.string());
    REQUIRE(s.put("f", std::string(1000, 'a'), -1) == 0);
    append_fails_past_size_limit(s, "f", 4000);
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

// ---- Nothing torn, nothing left behind (docs/store-chain.md#temporary-files) ----

namespace {

using souk::server::kIntentPrefix;
using souk::server::kTempPrefix;

uint64_t raw_size(const fs::path& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : UINT64_MAX;
}

// What a process killed in the middle of landing an append leaves: the
// target grown by `landed` bytes of a `total`-byte append and the intent
// record beside it (the format fs_store.cpp writes).
fs::path leave_torn_append(const fs::path& dir, const std::string& leaf, uint64_t landed, uint64_t total) {
    const fs::path target = dir / leaf;
    struct stat st;
    REQUIRE(::stat(target.c_str(), &st) == 0);
    const uint64_t old = static_cast<uint64_t>(st.st_size);
    const fs::path rec = dir / (std::string(kIntentPrefix) + std::to_string(st.st_ino));
    spit(rec, "souk-append-intent 1 " + std::to_string(st.st_dev) + " " + std::to_string(st.st_ino) + " " +
                  std::to_string(old) + " " + std::to_string(old + total) + "\n");
    std::ofstream(target, std::ios::binary | std::ios::app) << std::string(landed, 'T');
    REQUIRE(raw_size(target) == old + landed);
    return rec;
}

std::vector<std::string> temp_names(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir))  // bounded: the directory's entries
        if (e.path().filename().string().rfind(std::string(kTempPrefix), 0) == 0) out.push_back(e.path().filename());
    return out;
}

}  // namespace

TEST_CASE("fs_store: a dead appender's torn tail is rolled back by whatever touches the file next") {
    TempDir tmp;
    const std::string base(1000, 'a');
    for (const char* toucher : {"stat", "open_read", "append", "rename", "sweep", "delete", "put"}) {
        CAPTURE(toucher);
        FsStore s(tmp.path.string());
        REQUIRE(s.put("f", base, -1) == 0);
        const fs::path rec = leave_torn_append(tmp.path, "f", 600, 2000);
        // The appender died an hour ago: the roll back keeps that time.
        const struct timespec died[2] = {{0, UTIME_OMIT}, {::time(nullptr) - 3600, 0}};
        REQUIRE(::utimensat(AT_FDCWD, (tmp.path / "f").c_str(), died, 0) == 0);
        std::string name = "f";
        uint64_t old = 0;
        FileInfo fi;
        if (!std::strcmp(toucher, "stat")) {
            REQUIRE(s.stat("f", fi) == 0);
            CHECK(fi.size == base.size());
        } else if (!std::strcmp(toucher, "open_read")) {
            CHECK(read_all(s, "f") == base);
        } else if (!std::strcmp(toucher, "append")) {
            REQUIRE(s.append("f", "next", -1, &old) == 0);
            CHECK(old == base.size());  // the next offset follows the old length, not the torn tail
            CHECK(slurp(tmp.path / "f") == base + "next");
        } else if (!std::strcmp(toucher, "rename")) {
            REQUIRE(s.rename("f", "g") == 0);
            name = "g";
        } else if (!std::strcmp(toucher, "sweep")) {
            auto c = s.sweep(3600);
            CHECK(c.rolled_back == 1);
        } else if (!std::strcmp(toucher, "delete")) {
            REQUIRE(s.unlink("f") == 0);
            CHECK(!fs::exists(rec));
            CHECK(temp_names(tmp.path).empty());
            continue;
        } else {
            REQUIRE(s.put("f", "new", -1) == 0);
            CHECK(slurp(tmp.path / "f") == "new");
            CHECK(temp_names(tmp.path).empty());
            REQUIRE(s.unlink("f") == 0);
            continue;
        }
        if (std::strcmp(toucher, "append") != 0) {
            CHECK(slurp(tmp.path / name) == base);
            struct stat st;
            REQUIRE(::stat((tmp.path / name).c_str(), &st) == 0);
            CHECK(st.st_mtim.tv_sec == died[1].tv_sec);  // a repair is not a write
        }
        CHECK(!fs::exists(rec));
        CHECK(temp_names(tmp.path).empty());
        REQUIRE(s.unlink(name) == 0);
    }
}

TEST_CASE("fs_store: a read-only store hides a torn tail without writing") {
    TempDir tmp;
    FsStore s(tmp.path.string());
    REQUIRE(s.put("f", "0123456789", -1) == 0);
    const fs::path rec = leave_torn_append(tmp.path, "f", 5, 8);
    s.set_repair(false);
    FileInfo fi;
    REQUIRE(s.stat("f", fi) == 0);
    CHECK(fi.size == 10);
    OpenFile f;
    REQUIRE(s.open_read("f", f) == 0);
    CHECK(f.info.size == 10);
    CHECK(s.sweep(0).dirs == 0);  // no sweeping without repairs
    CHECK(raw_size(tmp.path / "f") == 15);
    CHECK(fs::exists(rec));
    s.set_repair(true);
    REQUIRE(s.stat("f", fi) == 0);
    CHECK(fi.size == 10);
    CHECK(raw_size(tmp.path / "f") == 10);
    CHECK(!fs::exists(rec));
}

TEST_CASE("fs_store: a live appender's record is left alone and its tail hidden from readers") {
    TempDir tmp;
    FsStore s(tmp.path.string());
    REQUIRE(s.put("f", "abc", -1) == 0);
    const fs::path rec = leave_torn_append(tmp.path, "f", 4, 10);
    // Another process (a fork) holds the lock, as a live appender does.
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int fd = ::open((tmp.path / "f").c_str(), O_WRONLY);
        ::flock(fd, LOCK_EX);
        (void)!::write(ready[1], "x", 1);
        ::pause();
        ::_exit(0);
    }
    char c;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    FileInfo fi;
    REQUIRE(s.stat("f", fi) == 0);
    CHECK(fi.size == 3);
    CHECK(read_all(s, "f") == "abc");
    CHECK(s.sweep(0).busy >= 1);
    CHECK(fs::exists(rec));              // not a dead appender's: kept
    CHECK(raw_size(tmp.path / "f") == 7);  // and nothing cut under it
    ::kill(pid, SIGKILL);
    int status;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    // Now its appender is dead: the next touch rolls back.
    REQUIRE(s.stat("f", fi) == 0);
    CHECK(fi.size == 3);
    CHECK(raw_size(tmp.path / "f") == 3);
    CHECK(!fs::exists(rec));
    ::close(ready[0]);
    ::close(ready[1]);
}

TEST_CASE("fs_store: an append SIGKILLed at many points while landing leaves the old length") {
    TempDir tmp;
    const std::string base(4096, 'a');
    constexpr uint64_t kBig = 96ull << 20;
    const std::string big(kBig, 'b');
    int torn_seen = 0, completed = 0;
    // Kill when the target has grown past these fractions of the append.
    for (double frac : {0.0, 0.1, 0.3, 0.5, 0.7, 0.9}) {
        CAPTURE(frac);
        FsStore s(tmp.path.string());
        REQUIRE(s.put("f", base, -1) == 0);
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            uint64_t old = 0;
            ::_exit(s.append("f", big, -1, &old) == 0 ? 0 : 1);
        }
        const uint64_t threshold = base.size() + static_cast<uint64_t>(frac * static_cast<double>(kBig));
        uint64_t at_kill = 0;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        for (long i = 0; i < 100000000 && std::chrono::steady_clock::now() < deadline; ++i) {  // bounded: count and time
            uint64_t sz = raw_size(tmp.path / "f");
            if (sz > threshold && sz != UINT64_MAX) {
                ::kill(pid, SIGKILL);
                at_kill = sz;
                break;
            }
            int st;
            if (::waitpid(pid, &st, WNOHANG) == pid) {
                pid = -1;
                break;
            }
        }
        if (pid > 0) {
            int st;
            REQUIRE(::waitpid(pid, &st, 0) == pid);
        }
        INFO("killed at " << at_kill << " of " << base.size() + kBig);
        const uint64_t on_disk = raw_size(tmp.path / "f");
        if (on_disk > base.size() && on_disk < base.size() + kBig) ++torn_seen;
        // What every reader sees, and where the next append goes.
        FileInfo fi;
        REQUIRE(s.stat("f", fi) == 0);
        if (fi.size == base.size() + kBig) {
            ++completed;  // the append committed before the kill landed
        } else {
            CHECK(fi.size == base.size());
            CHECK(read_all(s, "f") == base);
            uint64_t old = 0;
            REQUIRE(s.append("f", "z", -1, &old) == 0);
            CHECK(old == base.size());
            CHECK(slurp(tmp.path / "f") == base + "z");
        }
        CHECK(temp_names(tmp.path).empty());
        REQUIRE(s.unlink("f") == 0);
    }
    CHECK(torn_seen >= 1);  // the test did kill in the middle of a land
    CHECK(completed <= 5);
}

TEST_CASE("fs_store: a failed or killed append to a new name leaves nothing behind") {
    TempDir tmp;
    FsStore s(tmp.path.string());
    append_fails_past_size_limit(s, "new", 400000);
    CHECK(!fs::exists(tmp.path / "new"));
    CHECK(temp_names(tmp.path).empty());
    // A new name appears whole or not at all, with the client's mode.
    uint64_t old = 7;
    REQUIRE(s.append("new", std::string(300000, 'c'), 0640, &old) == 0);
    CHECK(old == 0);
    CHECK(slurp(tmp.path / "new") == std::string(300000, 'c'));
    CHECK((fs::status(tmp.path / "new").permissions() & fs::perms::all) ==
          (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
    REQUIRE(s.append("new", "d", -1, &old) == 0);
    CHECK(old == 300000);
}

TEST_CASE("fs_store: the temporary namespace is invisible to every verb and reserved") {
    TempDir tmp;
    FsStore s(tmp.path.string());
    REQUIRE(s.mkdir("d", -1) == 0);
    const std::string t = std::string(kTempPrefix) + "0123456789abcdef";
    spit(tmp.path / "d" / t, "stale");
    const std::string p = "d/" + t;
    FileInfo fi;
    CHECK(s.stat(p, fi) == ENOENT);
    int e = 0;
    read_all(s, p, &e);
    CHECK(e == ENOENT);
    CHECK(s.unlink(p) == ENOENT);
    CHECK(s.rmdir(p) == ENOENT);
    CHECK(s.rename(p, "d/x") == ENOENT);
    std::vector<std::string> names;
    CHECK(s.list_dir(p, names) == ENOENT);
    CHECK(s.list_dir("d", names) == 0);
    CHECK(names.empty());
    // Creating names there: refused, whatever the depth.
    uint64_t old = 0;
    CHECK(s.put(p, "x", -1) == EACCES);
    CHECK(s.put_non_atomic(std::string(kTempPrefix) + "dir/f", "x", -1, true, -1) == EACCES);
    CHECK(s.append(p, "x", -1, &old) == EACCES);
    CHECK(s.mkdir("d/" + std::string(kTempPrefix) + "sub", -1) == EACCES);
    REQUIRE(s.put("d/f", "1", -1) == 0);
    CHECK(s.rename("d/f", p) == EACCES);
    CHECK(slurp(tmp.path / "d" / t) == "stale");
    // Names that merely contain the prefix are ordinary.
    CHECK(s.put("d/x.souk-tmp.y", "ok", -1) == 0);
    CHECK(s.stat("d/x.souk-tmp.y", fi) == 0);
}

TEST_CASE("fs_store: sweeps and rmdir remove dead writers' files, never a live writer's") {
    TempDir tmp;
    FsStore s(tmp.path.string());
    REQUIRE(s.mkdir("d", -1) == 0);
    REQUIRE(s.mkdir("d/e", -1) == 0);
    const fs::path dead = tmp.path / "d/e" / (std::string(kTempPrefix) + "00000000deadbeef");
    spit(dead, "a killed put's bytes");
    // A live put in the same directory: its file is locked by its writer.
    std::unique_ptr<souk::server::Upload> live;
    REQUIRE(s.begin_upload("d/e/live", souk::server::WriteSpec{}, live) == 0);
    REQUIRE(live->write("live bytes") == 0);
    REQUIRE(temp_names(tmp.path / "d/e").size() == 2);

    // Too young for an age-bounded sweep...
    auto c = s.sweep(3600);
    CHECK(c.removed == 0);
    CHECK(c.busy == 2);
    CHECK(fs::exists(dead));
    // ...old enough for one with no grace; the live writer's stays.
    c = s.sweep(0);
    CHECK(c.removed == 1);
    CHECK(c.dirs == 3);
    CHECK(!fs::exists(dead));
    CHECK(temp_names(tmp.path / "d/e").size() == 1);
    // rmdir: a live writer's file keeps the directory.
    CHECK(s.rmdir("d/e") == ENOTEMPTY);
    REQUIRE(live->commit(nullptr) == 0);
    live.reset();
    CHECK(slurp(tmp.path / "d/e/live") == "live bytes");
    REQUIRE(s.unlink("d/e/live") == 0);
    // Only dead writers' files: rmdir removes them and the directory.
    spit(dead, "another killed put");
    CHECK(s.rmdir("d/e") == 0);
    CHECK(!fs::exists(tmp.path / "d/e"));
    // A real file still makes it not empty, and its temps stay.
    spit(tmp.path / "d" / (std::string(kTempPrefix) + "00000000feedface"), "x");
    REQUIRE(s.put("d/real", "r", -1) == 0);
    CHECK(s.rmdir("d") == ENOTEMPTY);
    CHECK(temp_names(tmp.path / "d").size() == 1);
}

TEST_CASE("fs_store: sweep_if_due sweeps once per interval across processes") {
    TempDir tmp;
    FsStore s(tmp.path.string());
    const fs::path t = tmp.path / (std::string(kTempPrefix) + "0000000000000001");
    spit(t, "x");
    std::atomic<int64_t> clock{0};  // the shared segment's field in soukd
    FsStore::SweepCounts c;
    CHECK(s.sweep_if_due(3600, 0, false, &clock, &c));  // never swept: due
    CHECK(c.removed == 1);
    CHECK(clock.load() > 0);
    spit(t, "x");
    FsStore other(tmp.path.string());                  // another process sharing the clock
    CHECK(!other.sweep_if_due(3600, 0, false, &clock));  // swept a moment ago
    CHECK(fs::exists(t));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK(other.sweep_if_due(0.001, 0, false, &clock));   // due again after its (short) interval
    CHECK(!other.sweep_if_due(3600, 0, false, &clock));
    spit(t, "x");
    CHECK(other.sweep_if_due(3600, 0, true, &clock));  // a daemon's start-up sweep
    CHECK(!fs::exists(t));
    CHECK(!other.sweep_if_due(3600, 0, false, nullptr));  // no clock (no segment): only when forced
    // Nothing is written for the bookkeeping: the root holds only what clients made.
    CHECK(fs::is_empty(tmp.path));
}
