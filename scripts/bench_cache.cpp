// souk-bench-cache: what readahead and the shared range cache are worth (issue
// 5; docs/store-chain.md, docs/layout.md#performance-model). A benchmark, not
// a test: it prints a table of medians and ratios from one run and writes
// JSON; it asserts nothing.
//
//   souk-bench-cache [--soukd PATH] [--json FILE] [--quick] [--no-cgi] [--no-zstd] [--cases ABCZ]
//
// Cases (each soukd started fresh, its root's segment removed first, so
// every configuration starts cold; every process is stopped by PID):
//   A. Sequential readv through a 256 MiB file, 64 KiB per request, over
//      bzr:// on slow storage (--slow-read-delay=0.001: 1 ms per filesystem
//      read): no cache, cache without readahead, cache with readahead.
//   B. 64 scattered 4 KiB ranges per readv on the page cache (no delay):
//      cache off vs cache warm (the cache must not cost more than 10%).
//   C. The same scattered readv served by `soukd cgi` behind nginx +
//      fcgiwrap (bzr+http://), slow storage: cache off vs cache warm.
//   Z. zstd on cached blocks: how well 64 KiB blocks of a real Breezy 2a
//      repository (packs and indices, made with brz from this source tree)
//      compress, and what decompressing one costs next to a hit's copy.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/client.hpp"
#include "server/store/shm.hpp"
#include "server/store/shm_stats.hpp"

namespace {

namespace fs = std::filesystem;
namespace sc = souk::client;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

constexpr uint64_t KiB = 1024, MiB = 1024 * 1024;

[[noreturn]] void die(const std::string& msg) {
    std::fprintf(stderr, "souk-bench-cache: %s\n", msg.c_str());
    std::exit(1);
}

double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double pct(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

std::string fmt_time(double s) {
    char b[32];
    if (s >= 1) std::snprintf(b, sizeof b, "%.2f s", s);
    else if (s >= 1e-3) std::snprintf(b, sizeof b, "%.2f ms", s * 1e3);
    else std::snprintf(b, sizeof b, "%.1f us", s * 1e6);
    return b;
}

std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

// ---- processes ----

struct Proc {
    pid_t pid = -1;
};

Proc spawn(const std::vector<std::string>& argv, const std::string& log, const std::vector<std::string>& env_add = {}) {
    pid_t pid = ::fork();
    if (pid < 0) die("fork failed");
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
        }
        int nul = ::open("/dev/null", O_RDONLY);
        if (nul >= 0) ::dup2(nul, 0);
        for (const auto& e : env_add) ::putenv(const_cast<char*>(e.c_str()));
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
        std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
        ::_exit(127);
    }
    return Proc{pid};
}

void stop(Proc& p) {
    if (p.pid <= 0) return;
    ::kill(p.pid, SIGTERM);
    for (int i = 0; i < 500; ++i) {  // up to 5 s
        if (::waitpid(p.pid, nullptr, WNOHANG) == p.pid) {
            p.pid = -1;
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(p.pid, SIGKILL);
    ::waitpid(p.pid, nullptr, 0);
    p.pid = -1;
}

std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// Wait for a file with a port number (bounded).
int wait_port_file(const std::string& path, Proc& p, const std::string& log) {
    for (int i = 0; i < 2000; ++i) {
        std::string s = slurp(path);
        if (!s.empty() && s.back() == '\n') return std::atoi(s.c_str());
        int st;
        if (::waitpid(p.pid, &st, WNOHANG) == p.pid) die("soukd exited during start-up:\n" + slurp(log));
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    die("soukd did not start:\n" + slurp(log));
}

bool port_open(int port) {
    auto c = sc::connect("bzr://127.0.0.1:" + std::to_string(port) + "/");
    return c.ok();
}

// ---- files and segments ----

void write_file(const std::string& path, uint64_t size, uint64_t seed) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    std::string buf(MiB, '\0');
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (uint64_t done = 0; done < size; done += buf.size()) {
        for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            std::memcpy(buf.data() + i, &x, 8);
        }
        f.write(buf.data(), static_cast<std::streamsize>(std::min<uint64_t>(buf.size(), size - done)));
    }
    if (!f) die("cannot write " + path);
}

void drop_segment(const std::string& root) { ::shm_unlink(souk::server::shm::segment_name(root).c_str()); }

json stats_of(const std::string& root) {
    std::string note;
    return json::parse(souk::server::stats_report(root, false, &note));
}

double hit_rate(const json& st) {
    double h = st["counters"]["cache_hits"].get<double>(), m = st["counters"]["cache_misses"].get<double>();
    return h + m > 0 ? h / (h + m) : 0.0;
}

struct Soukd {
    Proc proc;
    int port = 0;
};

Soukd start_soukd(const std::string& soukd, const std::string& root, const std::string& tmp,
                  const std::vector<std::string>& opts) {
    static int n = 0;
    std::string pf = tmp + "/port." + std::to_string(++n), log = tmp + "/soukd." + std::to_string(n) + ".log";
    std::vector<std::string> argv = {soukd, "serve", "--listen", "127.0.0.1", "--port", "0", "--port-file", pf,
                                     "--directory=" + root};
    argv.insert(argv.end(), opts.begin(), opts.end());
    Soukd s;
    s.proc = spawn(argv, log);
    s.port = wait_port_file(pf, s.proc, log);
    for (int i = 0; i < 500 && !port_open(s.port); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return s;
}

sc::Client client_for(const std::string& url) {
    auto c = sc::connect(url);
    if (!c) die("connect " + url + ": " + c.error().message);
    return std::move(c).value();
}

// ---- table ----

struct Row {
    std::string case_name, config;
    double median_s = 0, p90_s = 0, total_s = 0, mb_s = 0, hit_rate = -1, ratio = 0;
    json extra;
};

void print_table(const std::vector<Row>& rows) {
    std::printf("\n%-44s %-28s %11s %11s %9s %9s %6s %8s\n", "case", "config", "median", "p90", "total", "MB/s",
                "hits", "ratio");
    std::string last;
    for (const auto& r : rows) {
        std::printf("%-44s %-28s %11s %11s %9s %9s %6s %8s\n", r.case_name == last ? "" : r.case_name.c_str(),
                    r.config.c_str(), fmt_time(r.median_s).c_str(), fmt_time(r.p90_s).c_str(),
                    r.total_s > 0 ? fmt_time(r.total_s).c_str() : "", r.mb_s > 0 ? fmt("%.0f", r.mb_s).c_str() : "",
                    r.hit_rate >= 0 ? fmt("%.0f%%", r.hit_rate * 100).c_str() : "",
                    r.ratio > 0 ? fmt("%.2fx", r.ratio).c_str() : "");
        last = r.case_name;
    }
}

json row_json(const Row& r) {
    json j = {{"case", r.case_name}, {"config", r.config}, {"median_s", r.median_s}, {"p90_s", r.p90_s},
              {"total_s", r.total_s}, {"mb_per_s", r.mb_s}, {"ratio_vs_first", r.ratio}};
    if (r.hit_rate >= 0) j["hit_rate"] = r.hit_rate;
    if (!r.extra.is_null()) j["detail"] = r.extra;
    return j;
}

json counters_subset(const json& st) {
    json out;
    for (const char* k : {"cache_hits", "cache_misses", "cache_inserts", "cache_evictions", "fs_reads",
                          "readahead_issued", "readahead_useful", "readahead_wasted", "readahead_skipped",
                          "readahead_dropped", "readahead_grows", "readahead_resets", "readahead_random"})
        out[k] = st["counters"][k];
    if (!st["cache"].is_null()) out["fragmentation"] = st["cache"]["fragmentation"];
    return out;
}

// ---- case A: sequential readv on slow storage ----

void case_sequential(const std::string& soukd, const std::string& root, const std::string& tmp, uint64_t size,
                     std::vector<Row>& rows) {
    const std::string file = "seq.bin";
    const uint64_t step = 64 * KiB;
    struct Cfg {
        const char* name;
        std::vector<std::string> opts;
    };
    const std::vector<Cfg> cfgs = {
        {"no cache, no readahead", {"--cache=0", "--readahead=0"}},
        {"cache, readahead off", {"--cache=1", "--readahead=0"}},
        {"cache, readahead on", {"--cache=1", "--readahead=1"}},
    };
    const std::string case_name = "A seq readv 64 KiB x " + std::to_string(size / MiB) + " MiB, slow 1 ms";
    double base = 0;
    for (const auto& cfg : cfgs) {
        drop_segment(root);
        std::vector<std::string> opts = cfg.opts;
        opts.push_back("--slow-read-delay=0.001");
        Soukd s = start_soukd(soukd, root, tmp, opts);
        sc::Client c = client_for("bzr://127.0.0.1:" + std::to_string(s.port) + "/");
        std::vector<double> lat;
        auto t0 = Clock::now();
        for (uint64_t off = 0; off < size; off += step) {
            sc::Range r{off, step};
            auto t1 = Clock::now();
            auto got = c.readv(file, std::span(&r, 1));
            lat.push_back(secs(Clock::now() - t1));
            if (!got || got->at(0).size() != step) die("readv failed in case A");
        }
        double total = secs(Clock::now() - t0);
        json st = stats_of(root);
        stop(s.proc);
        Row row{case_name, cfg.name, median(lat), pct(lat, 0.9), total, static_cast<double>(size) / MiB / total,
                cfg.opts[0] == "--cache=0" ? -1 : hit_rate(st), 0, counters_subset(st)};
        if (base == 0) base = row.mb_s;
        row.ratio = row.mb_s / base;
        rows.push_back(row);
        std::fprintf(stderr, "  A %-28s %s\n", cfg.name, fmt_time(total).c_str());
    }
}

// ---- case B and C: scattered readv ----

std::vector<std::vector<sc::Range>> scattered_sets(uint64_t file_size, int sets, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<std::vector<sc::Range>> out(static_cast<size_t>(sets));
    for (auto& set : out) {
        std::vector<uint64_t> offs;
        while (offs.size() < 64) {
            uint64_t o = rng() % (file_size / 4096 - 1) * 4096;
            if (std::find(offs.begin(), offs.end(), o) == offs.end()) offs.push_back(o);
        }
        std::sort(offs.begin(), offs.end());
        for (uint64_t o : offs) set.push_back({o, 4096});
    }
    return out;
}

struct Measured {
    std::vector<double> lat;
    double total = 0;
};

Measured run_sets(sc::Client& c, const std::string& file, const std::vector<std::vector<sc::Range>>& sets, int rounds) {
    Measured m;
    auto t0 = Clock::now();
    for (int r = 0; r < rounds; ++r)
        for (const auto& set : sets) {
            auto t1 = Clock::now();
            auto got = c.readv(file, set);
            m.lat.push_back(secs(Clock::now() - t1));
            if (!got || got->size() != set.size()) die("readv failed: " + (got ? std::string() : got.error().message));
        }
    m.total = secs(Clock::now() - t0);
    return m;
}

void case_scattered(const std::string& soukd, const std::string& root, const std::string& tmp, uint64_t size,
                    bool quick, std::vector<Row>& rows) {
    const std::string file = "scatter.bin";
    auto sets = scattered_sets(size, 64, 42);
    const int rounds = quick ? 4 : 12;
    const std::string case_name = "B scattered 64x4 KiB/readv, page cache";
    // Cache off and cache on run side by side (two daemons on the same
    // root) and are measured in alternating rounds, so that drift in the
    // machine's load hits both alike. The default (readahead on) first, then
    // readahead off to show the cache's own cost.
    for (int readahead = 1; readahead >= 0; --readahead) {
        drop_segment(root);
        const std::string ra = "--readahead=" + std::to_string(readahead);
        Soukd off = start_soukd(soukd, root, tmp, {"--cache=0", ra});
        Soukd on = start_soukd(soukd, root, tmp, {"--cache=1", ra, "--cache-size=268435456"});
        sc::Client c_off = client_for("bzr://127.0.0.1:" + std::to_string(off.port) + "/");
        sc::Client c_on = client_for("bzr://127.0.0.1:" + std::to_string(on.port) + "/");
        run_sets(c_off, file, sets, 1);  // warm-up: the page cache
        run_sets(c_on, file, sets, 1);   // and the range cache
        json before = stats_of(root);
        Measured m_off, m_on;
        for (int r = 0; r < rounds; ++r) {
            Measured a = run_sets(c_off, file, sets, 1), b = run_sets(c_on, file, sets, 1);
            m_off.lat.insert(m_off.lat.end(), a.lat.begin(), a.lat.end());
            m_on.lat.insert(m_on.lat.end(), b.lat.begin(), b.lat.end());
            m_off.total += a.total;
            m_on.total += b.total;
        }
        json st = stats_of(root);
        stop(off.proc);
        stop(on.proc);
        double hits = st["counters"]["cache_hits"].get<double>() - before["counters"]["cache_hits"].get<double>();
        double misses = st["counters"]["cache_misses"].get<double>() - before["counters"]["cache_misses"].get<double>();
        const std::string suffix = readahead ? "" : ", no readahead";
        Row r_off{case_name, "cache off" + suffix, median(m_off.lat), pct(m_off.lat, 0.9), m_off.total, 0, -1, 1.0,
                  json()};
        Row r_on{case_name, "cache on, warm" + suffix, median(m_on.lat), pct(m_on.lat, 0.9), m_on.total, 0,
                 hits + misses > 0 ? hits / (hits + misses) : 0, 0, counters_subset(st)};
        r_on.ratio = r_off.median_s / r_on.median_s;  // > 1: faster than cache off
        rows.push_back(r_off);
        rows.push_back(r_on);
        std::fprintf(stderr, "  B %-28s median %s vs %s\n", r_on.config.c_str(), fmt_time(r_on.median_s).c_str(),
                     fmt_time(r_off.median_s).c_str());
    }
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
    return s;
}

void case_cgi(const std::string& soukd, const std::string& root, const std::string& tmp, const std::string& repo_dir,
              bool quick, std::vector<Row>& rows, json& notes) {
    const char* nginx = "/usr/sbin/nginx";
    const char* fcgiwrap = "/usr/sbin/fcgiwrap";
    if (::access(nginx, X_OK) != 0 || ::access(fcgiwrap, X_OK) != 0) {
        notes["cgi"] = "skipped: nginx or fcgiwrap not installed";
        std::fprintf(stderr, "  C skipped: nginx or fcgiwrap missing\n");
        return;
    }
    std::string tmpl = slurp(repo_dir + "/scripts/deploy/nginx-souk.conf");
    if (tmpl.empty()) die("cannot read scripts/deploy/nginx-souk.conf");
    const std::string file = "cgi.bin";
    const uint64_t size = 16 * MiB;
    auto sets = scattered_sets(size, 16, 7);
    const std::string case_name = "C CGI+nginx 64x4 KiB/readv, slow 1 ms";
    double base = 0;
    for (int cache = 0; cache <= 1; ++cache) {
        drop_segment(root);
        std::string run = tmp + "/nginx" + std::to_string(cache);
        fs::create_directories(run);
        std::string sock = run + "/fcgiwrap.sock";
        Proc fw = spawn({fcgiwrap, "-f", "-c", "4", "-s", "unix:" + sock}, run + "/fcgiwrap.log");
        for (int i = 0; i < 500 && !fs::exists(sock); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        int port = 0;
        {
            int s = ::socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            socklen_t len = sizeof a;
            if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0)
                port = ntohs(a.sin_port);
            ::close(s);
        }
        std::string options = "--slow-read-delay=0.001 --cache=" + std::to_string(cache) + " --cache-size=268435456";
        std::string conf;
        std::istringstream in(tmpl);
        for (std::string line; std::getline(in, line);) {
            if (line.find("ssl") != std::string::npos) continue;  // no TLS here
            if (line.find("fastcgi_param SOUK_ROOT") != std::string::npos)
                conf += "            fastcgi_param SOUK_OPTIONS \"" + options + "\";\n";
            conf += line + "\n";
        }
        const char* user = std::getenv("USER");
        conf = replace_all(conf, "@USER@", ::geteuid() == 0 ? "root" : (user ? user : "nobody"));
        conf = replace_all(conf, "@PORT@", std::to_string(port));
        conf = replace_all(conf, "@ROOT@", root);
        conf = replace_all(conf, "@SOUKD@", soukd);
        conf = replace_all(conf, "@RUNDIR@", run);
        conf = replace_all(conf, "@FCGI_SOCKET@", sock);
        conf = replace_all(conf, "@ALLOW_WRITES@", "0");
        std::ofstream(run + "/nginx.conf") << conf;
        Proc ng = spawn({nginx, "-p", run, "-c", run + "/nginx.conf", "-e", run + "/nginx-error.log"}, run + "/nginx.out");
        std::string url = "bzr+http://127.0.0.1:" + std::to_string(port) + "/";
        bool up = false;
        for (int i = 0; i < 500 && !up; ++i) {
            auto c = sc::connect(url);
            up = c.ok() && c->readv(file, std::span(sets[0].data(), 1)).ok();
            if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        if (!up) {
            stop(ng);
            stop(fw);
            die("nginx + fcgiwrap did not serve: " + slurp(run + "/nginx-error.log") + slurp(run + "/fcgiwrap.log"));
        }
        sc::Client c = client_for(url);
        if (cache) run_sets(c, file, sets, 1);  // warm the shared cache (each request is a new CGI process)
        json before = stats_of(root);
        Measured m = run_sets(c, file, sets, cache ? (quick ? 3 : 8) : (quick ? 1 : 2));
        json st = stats_of(root);
        stop(ng);
        stop(fw);
        double hits = st["counters"]["cache_hits"].get<double>() - before["counters"]["cache_hits"].get<double>();
        double misses = st["counters"]["cache_misses"].get<double>() - before["counters"]["cache_misses"].get<double>();
        Row row{case_name, cache ? "cache on, warm" : "cache off", median(m.lat), pct(m.lat, 0.9), m.total, 0,
                cache ? (hits + misses > 0 ? hits / (hits + misses) : 0) : -1, 0, counters_subset(st)};
        if (base == 0) base = row.median_s;
        row.ratio = base / row.median_s;
        rows.push_back(row);
        std::fprintf(stderr, "  C %-28s median %s\n", row.config.c_str(), fmt_time(row.median_s).c_str());
    }
}

// ---- Z: zstd on cached blocks ----

void case_zstd(const std::string& tmp, const std::string& repo_dir, json& out) {
    // A real 2a repository: this source tree committed with brz (packs and
    // B+Tree indices are what Breezy reads through readv).
    std::string repo = tmp + "/zrepo";
    fs::create_directories(repo);
    std::error_code ec;
    for (const char* d : {"server", "client", "protocol", "transport", "tests", "docs", "scripts"})
        fs::copy(repo_dir + "/" + d, repo + "/" + d, fs::copy_options::recursive, ec);
    std::string cmd = "cd '" + repo + "' && export HOME='" + tmp +
                      "' BRZ_EMAIL='bench <bench@example.com>' && { brz init -q . && brz add -q . && "
                      "brz commit -q -m one . ; } >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) {
        out["note"] = "skipped: could not build a brz repository (is brz installed?)";
        return;
    }
    struct Kind {
        const char* name;
        std::vector<std::string> blocks;
    };
    Kind packs{"2a pack blocks", {}}, indices{"2a index blocks", {}}, text{"source text blocks", {}};
    for (auto& e : fs::recursive_directory_iterator(repo + "/.bzr/repository")) {
        if (!e.is_regular_file()) continue;
        std::string data = slurp(e.path().string());
        Kind& k = e.path().extension() == ".pack" ? packs : indices;
        for (size_t o = 0; o < data.size(); o += 64 * KiB) k.blocks.push_back(data.substr(o, 64 * KiB));
    }
    for (auto& e : fs::recursive_directory_iterator(repo + "/server")) {
        if (!e.is_regular_file()) continue;
        std::string data = slurp(e.path().string());
        for (size_t o = 0; o < data.size(); o += 64 * KiB) text.blocks.push_back(data.substr(o, 64 * KiB));
    }
    for (Kind* k : {&packs, &indices, &text}) {
        if (k->blocks.empty()) continue;
        uint64_t raw = 0, z = 0;
        double c_s = 0, d_s = 0, copy_s = 0;
        std::string dst, back;
        for (const auto& b : k->blocks) {
            dst.resize(ZSTD_compressBound(b.size()));
            auto t0 = Clock::now();
            size_t n = ZSTD_compress(dst.data(), dst.size(), b.data(), b.size(), 1);
            c_s += secs(Clock::now() - t0);
            if (ZSTD_isError(n)) continue;
            back.resize(b.size());
            t0 = Clock::now();
            for (int i = 0; i < 20; ++i) ZSTD_decompress(back.data(), back.size(), dst.data(), n);
            d_s += secs(Clock::now() - t0) / 20;
            t0 = Clock::now();
            for (int i = 0; i < 20; ++i) std::memcpy(back.data(), b.data(), b.size());
            copy_s += secs(Clock::now() - t0) / 20;
            raw += b.size();
            z += n;
        }
        double nb = static_cast<double>(k->blocks.size());
        out[k->name] = {{"blocks", k->blocks.size()},
                        {"bytes", raw},
                        {"zstd1_ratio", static_cast<double>(z) / static_cast<double>(raw)},
                        {"compress_us_per_block", c_s / nb * 1e6},
                        {"decompress_us_per_block", d_s / nb * 1e6},
                        {"copy_us_per_block", copy_s / nb * 1e6}};
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string soukd, json_path = "bench-cache.json";
    bool quick = false, cgi = true, zstd = true;
    std::string cases = "ABCZ";
    fs::path self = fs::canonical("/proc/self/exe");
    std::string repo_dir = fs::path(SOUK_SOURCE_DIR).string();
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--soukd" && i + 1 < argc) soukd = argv[++i];
        else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
        else if (a == "--quick") quick = true;
        else if (a == "--no-cgi") cgi = false;
        else if (a == "--no-zstd") zstd = false;
        else if (a == "--cases" && i + 1 < argc) cases = argv[++i];
        else if (a == "--help" || a == "-h") {
            std::printf("usage: souk-bench-cache [--soukd PATH] [--json FILE] [--quick] [--no-cgi] [--no-zstd] "
                        "[--cases ABCZ]\n");
            return 0;
        } else {
            die("unknown option " + a);
        }
    }
    if (soukd.empty()) soukd = (self.parent_path().parent_path() / "server" / "soukd").string();
    if (::access(soukd.c_str(), X_OK) != 0) die("no soukd at " + soukd + " (use --soukd)");
    soukd = fs::canonical(soukd).string();

    char tmpl[] = "/tmp/souk-bench-cache-XXXXXX";
    if (!::mkdtemp(tmpl)) die("mkdtemp failed");
    const std::string tmp = tmpl, root = fs::canonical(tmp).string() + "/root";
    fs::create_directories(root);
    const uint64_t seq_size = quick ? 32 * MiB : 256 * MiB;
    const uint64_t scatter_size = quick ? 16 * MiB : 64 * MiB;
    std::fprintf(stderr, "souk-bench-cache: files in %s\n", root.c_str());
    write_file(root + "/seq.bin", seq_size, 1);
    write_file(root + "/scatter.bin", scatter_size, 2);
    write_file(root + "/cgi.bin", 16 * MiB, 3);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // older than --cache-settle

    std::vector<Row> rows;
    json notes = json::object(), zj = json::object();
    auto want = [&](char c) { return cases.find(c) != std::string::npos; };
    if (want('A')) case_sequential(soukd, root, tmp, seq_size, rows);
    if (want('B')) case_scattered(soukd, root, tmp, scatter_size, quick, rows);
    if (cgi && want('C')) case_cgi(soukd, root, tmp, repo_dir, quick, rows, notes);
    if (zstd && want('Z')) case_zstd(tmp, repo_dir, zj);
    drop_segment(root);
    std::error_code ec;
    fs::remove_all(tmp, ec);

    print_table(rows);
    std::printf("\nratio: A = MB/s over the first row; B, C = the cache-off row's median / this median (> 1: faster).\n");
    if (!zj.empty()) {
        std::printf("\nzstd level 1 on 64 KiB cached blocks:\n");
        for (auto& [k, v] : zj.items()) {
            if (!v.is_object()) {
                std::printf("  %s\n", v.get<std::string>().c_str());
                continue;
            }
            std::printf("  %-20s %5zu blocks  size %5.1f%%  compress %6.1f us  decompress %6.1f us  copy %5.1f us\n",
                        k.c_str(), v["blocks"].get<size_t>(), v["zstd1_ratio"].get<double>() * 100,
                        v["compress_us_per_block"].get<double>(), v["decompress_us_per_block"].get<double>(),
                        v["copy_us_per_block"].get<double>());
        }
    }
    json j = {{"rows", json::array()}, {"zstd", zj}, {"notes", notes}, {"quick", quick}};
    for (const auto& r : rows) j["rows"].push_back(row_json(r));
    std::ofstream(json_path) << j.dump(2) << "\n";
    std::printf("\nJSON: %s\n", json_path.c_str());
    return 0;
}
