// souk-bench: the load generator and machine-floor meter (docs/layout.md#performance-model).
//
//   souk-bench [run] [--soukd PATH] [--brz PATH | --no-brz] [--json FILE] [--quick] ...
//   souk-bench idle [--soukd PATH] [--connections N] [--json FILE]
//
// `run` starts soukd and `brz serve` on loopback over the same files, drives
// both with the same libsouk client (same protocol, same requests), and
// prints a table of medians and ratios; `idle` parks N idle bzr://
// connections on soukd and reports its resident memory per connection and
// its thread count. Both write JSON. A benchmark, not a test: it asserts
// nothing, it reports. Every process it starts is stopped by PID.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/client.hpp"
#include "transport/net.hpp"

namespace {

namespace sc = souk::client;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kSmallSize = 4096;
constexpr int kSmallFiles = 256;
constexpr uint64_t kBigSize = 256ull << 20;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    size_t i = static_cast<size_t>(std::min<double>(static_cast<double>(v.size() - 1), p * static_cast<double>(v.size())));
    return v[i];
}

[[noreturn]] void die(const std::string& msg) {
    std::fprintf(stderr, "souk-bench: %s\n", msg.c_str());
    std::exit(1);
}

// ------------------------------------------------------------ /proc --

struct ProcSample {
    double cpu_s = 0;       // user + system, all threads
    uint64_t rss_kib = 0;   // VmRSS
    uint64_t hwm_kib = 0;   // VmHWM (peak since start or the last reset)
    int threads = 0;
    int fds = 0;
};

ProcSample sample_proc(pid_t pid) {
    ProcSample s;
    std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(st)), std::istreambuf_iterator<char>());
    size_t rp = text.rfind(')');
    if (rp != std::string::npos) {
        std::istringstream in(text.substr(rp + 2));
        std::string field;
        // Fields after "(comm)": 3 state ... 14 utime 15 stime (1-based).
        unsigned long long utime = 0, stime = 0;
        for (int i = 3; i <= 15 && (in >> field); ++i) {
            if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
            if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
        }
        s.cpu_s = static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
    }
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        auto num = [&](const char* key, uint64_t& out) {
            if (line.rfind(key, 0) == 0) out = std::strtoull(line.c_str() + std::strlen(key), nullptr, 10);
        };
        num("VmRSS:", s.rss_kib);
        num("VmHWM:", s.hwm_kib);
        if (line.rfind("Threads:", 0) == 0) s.threads = std::atoi(line.c_str() + 8);
    }
    return s;
}

// Run time of each thread (ns, /proc/PID/task/TID/schedstat): precise where
// /proc/PID/stat counts 10 ms ticks. Threads that exit are not seen here.
std::map<int, uint64_t> task_cpu_ns(pid_t pid) {
    std::map<int, uint64_t> out;
    std::string dir = "/proc/" + std::to_string(pid) + "/task";
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        std::ifstream f(e.path() / "schedstat");
        uint64_t ns = 0;
        if (f >> ns) out[std::atoi(e.path().filename().c_str())] = ns;
    }
    return out;
}

// CPU seconds a server used between two samples: per-thread run time
// (precise) when every thread seen before is still there, else the
// process's tick count, which also covers threads that died meanwhile
// (brz serve's thread per connection). Work the kernel does for a socket
// in another task's context (a loopback receiver's copy of sendfile'd
// pages) is that task's, not the server's.
double cpu_between(const ProcSample& a, const std::map<int, uint64_t>& ta, const ProcSample& b,
                   const std::map<int, uint64_t>& tb) {
    double ticks = b.cpu_s - a.cpu_s;
    bool died = false;
    for (const auto& [tid, ns] : ta) died |= !tb.count(tid);
    if (died) return ticks;
    uint64_t ns = 0;
    for (const auto& [tid, v] : tb) {
        auto it = ta.find(tid);
        ns += v - (it == ta.end() ? 0 : std::min(v, it->second));
    }
    return static_cast<double>(ns) / 1e9;
}

// Reset VmHWM to the current RSS (Linux >= 4.0); false if not allowed.
bool reset_peak(pid_t pid) {
    int fd = ::open(("/proc/" + std::to_string(pid) + "/clear_refs").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = ::write(fd, "5", 1) == 1;
    ::close(fd);
    return ok;
}

// ------------------------------------------------------------ servers --

struct ServerProc {
    std::string name;   // "soukd" or "brz serve"
    pid_t pid = -1;
    uint16_t port = 0;
    std::string log;

    std::string url(const std::string& path = "") const {
        return "bzr://127.0.0.1:" + std::to_string(port) + "/" + path;
    }
};

uint16_t free_port() {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        die("cannot find a free port");
    ::close(s);
    return ntohs(a.sin_port);
}

pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env_set, const std::string& log) {
    pid_t pid = ::fork();
    if (pid < 0) die("fork failed");
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int null = ::open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
        }
        if (null >= 0) ::dup2(null, 0);
        for (const auto& kv : env_set) ::putenv(const_cast<char*>(kv.c_str()));
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
        std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
        ::_exit(127);
    }
    return pid;
}

void stop(ServerProc& s) {
    if (s.pid <= 0) return;
    ::kill(s.pid, SIGTERM);
    for (int i = 0; i < 100; ++i) {  // up to 5 s
        if (::waitpid(s.pid, nullptr, WNOHANG) == s.pid) {
            s.pid = -1;
            return;
        }
        ::usleep(50000);
    }
    ::kill(s.pid, SIGKILL);
    ::waitpid(s.pid, nullptr, 0);
    s.pid = -1;
}

std::string read_text(const std::string& path, size_t tail = 4000) {
    std::ifstream f(path);
    std::string t((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return t.size() > tail ? t.substr(t.size() - tail) : t;
}

bool wait_listening(ServerProc& s, const std::string& port_file, double timeout_s) {
    auto t0 = Clock::now();
    while (seconds_since(t0) < timeout_s) {
        int status = 0;
        if (::waitpid(s.pid, &status, WNOHANG) == s.pid) {
            s.pid = -1;
            return false;
        }
        if (!port_file.empty() && s.port == 0) {
            std::ifstream f(port_file);
            unsigned p = 0;
            if (f >> p) s.port = static_cast<uint16_t>(p);
        }
        if (s.port) {
            std::string err;
            if (souk::io::connect_tcp("127.0.0.1", s.port, 1000, &err)) return true;
        }
        ::usleep(20000);
    }
    return false;
}

ServerProc start_soukd(const std::string& soukd, const std::string& root, const std::string& tmp,
                       const std::vector<std::string>& extra) {
    ServerProc s;
    s.name = "soukd";
    s.log = tmp + "/soukd.log";
    std::string port_file = tmp + "/soukd.port";
    ::unlink(port_file.c_str());
    std::vector<std::string> argv = {soukd, "serve", "--listen", "127.0.0.1", "--port", "0",
                                     "--port-file", port_file, "--directory=" + root, "--allow-writes",
                                     "--allow-anonymous-writes", "-q"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    s.pid = spawn(argv, {}, s.log);
    if (!wait_listening(s, port_file, 30)) {
        stop(s);
        die("soukd did not start:\n" + read_text(s.log));
    }
    return s;
}

ServerProc start_brz(const std::string& brz, const std::string& root, const std::string& tmp) {
    ServerProc s;
    s.name = "brz serve";
    s.log = tmp + "/brz-serve.log";
    std::string home = tmp + "/brz-home";
    ::mkdir(home.c_str(), 0755);
    for (int attempt = 0; attempt < 3; ++attempt) {
        s.port = free_port();
        s.pid = spawn({brz, "serve", "--listen", "127.0.0.1", "--port", std::to_string(s.port), "--directory", root,
                       "--allow-writes"},
                      {"HOME=" + home, "BRZ_HOME=" + home, "BRZ_LOG=" + tmp + "/brz.log", "BRZ_PLUGIN_PATH=-site:-user",
                       "LC_ALL=C.UTF-8"},
                      s.log);
        if (wait_listening(s, "", 60)) return s;
        stop(s);
    }
    die("brz serve did not start:\n" + read_text(s.log));
}

// -------------------------------------------------------------- files --

void write_file(const std::string& path, uint64_t size, uint64_t seed) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die("cannot create " + path + ": " + std::strerror(errno));
    std::vector<uint64_t> buf(1 << 17);  // 1 MiB
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (uint64_t done = 0; done < size;) {
        for (auto& w : buf) {  // xorshift64: incompressible, cheap
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w = x;
        }
        size_t n = static_cast<size_t>(std::min<uint64_t>(size - done, buf.size() * 8));
        if (::write(fd, buf.data(), n) != static_cast<ssize_t>(n)) die("cannot write " + path);
        done += n;
    }
    ::close(fd);
}

std::string small_name(int i) {
    char b[32];
    std::snprintf(b, sizeof b, "small/f%03d", i);
    return b;
}

void make_tree(const std::string& root) {
    ::mkdir(root.c_str(), 0755);
    ::mkdir((root + "/small").c_str(), 0755);
    for (int i = 0; i < kSmallFiles; ++i) write_file(root + "/" + small_name(i), kSmallSize, 1000 + static_cast<uint64_t>(i));
    write_file(root + "/big.bin", kBigSize, 7);
    int fd = ::open((root + "/append.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ::close(fd);
}

// ------------------------------------------------------- load runner --

// One operation on a client; adds the payload bytes it moved to *bytes.
using Op = std::function<sc::Status(sc::Client&, uint64_t index, uint64_t* bytes)>;

struct LoadResult {
    uint64_t requests = 0;
    uint64_t bytes = 0;
    double seconds = 0;
    std::vector<double> lat_us;
    std::string error;
    double cpu_s = 0;        // server CPU during the run
    uint64_t peak_kib = 0;   // server VmHWM after the run (reset before)
    bool peak_reset = false;
};

// `conns` connections (one thread each) share `total` operations. The clock
// starts when every connection is open.
LoadResult run_load(const ServerProc& srv, int conns, uint64_t total, const Op& op) {
    LoadResult res;
    std::vector<std::optional<sc::Client>> clients(static_cast<size_t>(conns));
    sc::Options opts;
    opts.timeout = std::chrono::milliseconds(120000);
    for (auto& c : clients) {
        auto r = sc::Client::connect(srv.url(), opts);
        if (!r) {
            res.error = "connect: " + r.error().message;
            return res;
        }
        c.emplace(std::move(r).value());
        auto h = c->is_readonly();  // one round trip: the connection is up and served
        if (!h) {
            res.error = "first request: " + h.error().message;
            return res;
        }
    }
    res.peak_reset = reset_peak(srv.pid);
    ProcSample before = sample_proc(srv.pid);
    auto tasks_before = task_cpu_ns(srv.pid);
    std::atomic<uint64_t> next{0};
    std::mutex mu;
    std::vector<std::thread> threads;
    auto t0 = Clock::now();
    for (int t = 0; t < conns; ++t) {
        threads.emplace_back([&, t] {
            std::vector<double> lat;
            uint64_t bytes = 0;
            std::string err;
            for (;;) {  // bounded by `total`
                uint64_t i = next.fetch_add(1);
                if (i >= total) break;
                auto s = Clock::now();
                auto st = op(*clients[static_cast<size_t>(t)], i, &bytes);
                lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - s).count());
                if (!st) {
                    err = st.error().message;
                    next.store(total);
                    break;
                }
            }
            std::lock_guard<std::mutex> lock(mu);
            res.lat_us.insert(res.lat_us.end(), lat.begin(), lat.end());
            res.bytes += bytes;
            if (!err.empty() && res.error.empty()) res.error = err;
        });
    }
    for (auto& th : threads) th.join();
    res.seconds = seconds_since(t0);
    ProcSample after = sample_proc(srv.pid);
    res.requests = res.lat_us.size();
    res.cpu_s = cpu_between(before, tasks_before, after, task_cpu_ns(srv.pid));
    res.peak_kib = after.hwm_kib;
    return res;
}

struct Workload {
    std::string key;    // JSON key
    std::string title;  // table label
    int conns;
    uint64_t requests;
    Op op;
    bool bulk = false;  // report MB/s rather than req/s
};

struct Summary {
    double rate = NAN;          // req/s (or MB/s for bulk)
    double median_us = NAN;
    double p99_us = NAN;
    double cpu_per_1k = NAN;    // server CPU seconds per 1000 requests
    double peak_mib = NAN;
    uint64_t requests = 0;
    std::string error;
    json runs = json::array();
};

// Accumulates the runs of one workload on one server.
struct Runs {
    std::vector<double> rates, medians, p99s, cpus, peaks;
    Summary s;
    void add(const Workload& w, const LoadResult& lr) {
        if (!lr.error.empty()) {
            if (s.error.empty()) s.error = lr.error;
            return;
        }
        double rate = w.bulk ? static_cast<double>(lr.bytes) / lr.seconds / 1e6 : static_cast<double>(lr.requests) / lr.seconds;
        rates.push_back(rate);
        medians.push_back(median(lr.lat_us));
        p99s.push_back(percentile(lr.lat_us, 0.99));
        cpus.push_back(lr.cpu_s * 1000.0 / static_cast<double>(std::max<uint64_t>(lr.requests, 1)));
        peaks.push_back(static_cast<double>(lr.peak_kib) / 1024.0);
        s.requests += lr.requests;
        s.runs.push_back({{"requests", lr.requests},
                          {"seconds", lr.seconds},
                          {"bytes", lr.bytes},
                          {"rate", rate},
                          {"median_us", medians.back()},
                          {"p99_us", p99s.back()},
                          {"server_cpu_s", lr.cpu_s},
                          {"server_peak_rss_kib", lr.peak_kib},
                          {"peak_reset", lr.peak_reset}});
    }
    Summary done() {
        s.rate = median(rates);
        s.median_us = median(medians);
        s.p99_us = median(p99s);
        s.cpu_per_1k = median(cpus);
        s.peak_mib = peaks.empty() ? NAN : *std::max_element(peaks.begin(), peaks.end());
        return s;
    }
};

// ------------------------------------------------------------ floors --

void set_nodelay(int fd) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bool full_write(int fd, const char* p, size_t n) {
    while (n) {
        ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

bool full_read(int fd, char* p, size_t n) {
    while (n) {
        ssize_t r = ::recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= static_cast<size_t>(r);
    }
    return true;
}

// A connected loopback TCP pair (client, server side).
std::pair<souk::io::Fd, souk::io::Fd> tcp_pair() {
    std::string err;
    souk::io::Fd l = souk::io::listen_tcp("127.0.0.1", 0, 4, &err);
    if (!l) die("listen: " + err);
    uint16_t port = souk::io::bound_port(l.get());
    souk::io::Fd c = souk::io::connect_tcp("127.0.0.1", port, 5000, &err);
    if (!c) die("connect: " + err);
    souk::io::Fd s = souk::io::accept_tcp(l.get(), 5000);
    if (!s) die("accept failed");
    // accept_tcp/connect_tcp may leave the sockets non-blocking; these loops block.
    for (int fd : {c.get(), s.get()}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    set_nodelay(c.get());
    set_nodelay(s.get());
    return {std::move(c), std::move(s)};
}

// Median round trip of a 64-byte message over loopback TCP, echoed by
// another process (as a server is: a thread of the same process is woken
// on the same CPU and is several times faster on some machines; reported
// too, as loopback_rtt_thread_us).
double floor_rtt_us(int n, bool other_process = true) {
    auto [c, s] = tcp_pair();
    int sfd = s.get();
    auto echo = [sfd] {
        char b[64];
        while (full_read(sfd, b, sizeof b) && full_write(sfd, b, sizeof b)) {
        }
    };
    pid_t child = -1;
    std::thread th;
    if (other_process) {
        child = ::fork();
        if (child < 0) die("fork failed");
        if (child == 0) {
            echo();
            ::_exit(0);
        }
    } else {
        th = std::thread(echo);
    }
    std::vector<double> lat;
    char b[64] = {};
    // The first round trips only warm up (the idle governor of a virtual
    // CPU adapts to the wake-up pattern, as it does for a real client).
    for (int i = 0; i < 2 * n; ++i) {
        auto t = Clock::now();
        if (!full_write(c.get(), b, sizeof b) || !full_read(c.get(), b, sizeof b)) break;
        if (i >= n) lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
    }
    ::shutdown(c.get(), SHUT_RDWR);
    if (child > 0) ::waitpid(child, nullptr, 0);
    if (th.joinable()) th.join();
    return median(lat);
}

// A loopback echo peer in another process that stays up, so that round
// trips can be measured between blocks of requests under the same
// scheduling as a long-lived client/server pair.
// Pin a task (a thread id, or 0 for the caller) to one CPU; -1: any CPU.
void pin(pid_t tid, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    int n = static_cast<int>(std::thread::hardware_concurrency());
    for (int i = 0; i < n; ++i)
        if (cpu < 0 || i == cpu) CPU_SET(i, &set);
    ::sched_setaffinity(tid, sizeof set, &set);
}

// Pin every thread of a process (threads it starts later inherit it).
void pin_process(pid_t pid, int cpu) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec))
        pin(std::atoi(e.path().filename().c_str()), cpu);
}

class EchoPeer {
public:
    explicit EchoPeer(int cpu = -1) {
        auto [c, s] = tcp_pair();
        pid_ = ::fork();
        if (pid_ < 0) die("fork failed");
        if (pid_ == 0) {
            pin(0, cpu);
            c.reset();
            char b[64];
            while (full_read(s.get(), b, sizeof b) && full_write(s.get(), b, sizeof b)) {
            }
            ::_exit(0);
        }
        c_ = std::move(c);
    }
    ~EchoPeer() {
        ::shutdown(c_.get(), SHUT_RDWR);
        ::waitpid(pid_, nullptr, 0);
    }
    // Median of n round trips after n warm-up ones.
    double rtt_us(int n) {
        std::vector<double> lat;
        char b[64] = {};
        for (int i = 0; i < 2 * n; ++i) {
            auto t = Clock::now();
            if (!full_write(c_.get(), b, sizeof b) || !full_read(c_.get(), b, sizeof b)) break;
            if (i >= n) lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
        }
        return median(lat);
    }

private:
    souk::io::Fd c_;
    pid_t pid_ = -1;
};

// Loopback TCP bulk throughput in MB/s: a thread sends `total` bytes in
// 256 KiB writes from a buffer of `source` bytes, the caller receives them
// in 256 KiB reads. With a source as large as a big file (256 MiB) the
// bytes come from memory, not the CPU's caches, as a file's do; with a
// 256 KiB source they stay in cache (an upper bound no file transfer sees).
double floor_bulk_mbs(uint64_t total, size_t source) {
    auto [c, s] = tcp_pair();
    int sfd = s.get();
    std::vector<char> src(source, 'x');
    for (size_t i = 0; i < src.size(); i += 4096) src[i] = static_cast<char>(i >> 12);  // touched: resident
    std::thread sender([sfd, total, &src] {
        const size_t piece = 256 << 10;
        size_t at = 0;
        for (uint64_t done = 0; done < total;) {
            size_t n = static_cast<size_t>(std::min<uint64_t>({piece, total - done, src.size() - at}));
            if (!full_write(sfd, src.data() + at, n)) break;
            done += n;
            at = (at + n) % src.size();
        }
    });
    std::vector<char> b(256 << 10);
    uint64_t got = 0;
    auto t0 = Clock::now();
    while (got < total) {
        ssize_t r = ::recv(c.get(), b.data(), b.size(), 0);
        if (r <= 0) break;
        got += static_cast<uint64_t>(r);
    }
    double secs = seconds_since(t0);
    sender.join();
    return static_cast<double>(got) / secs / 1e6;
}

// 4 KiB preads at random aligned offsets of a page-cached file, per second.
double floor_pread_rate(const std::string& path, double secs) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open " + path);
    char b[4096];
    std::mt19937_64 rng(42);
    uint64_t blocks = kBigSize / 4096;
    for (uint64_t i = 0; i < blocks; ++i) (void)!::pread(fd, b, sizeof b, static_cast<off_t>(i * 4096));  // warm
    uint64_t n = 0;
    auto t0 = Clock::now();
    while (seconds_since(t0) < secs) {
        for (int k = 0; k < 1024; ++k) {
            if (::pread(fd, b, sizeof b, static_cast<off_t>((rng() % blocks) * 4096)) != 4096) die("pread");
            ++n;
        }
    }
    double rate = static_cast<double>(n) / seconds_since(t0);
    ::close(fd);
    return rate;
}

// ----------------------------------------------------------- output --

std::string fmt(double v, int prec = 1) {
    if (std::isnan(v)) return "-";
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", prec, v);
    return b;
}

std::string pad(const std::string& s, size_t w, bool right = true) {
    if (s.size() >= w) return s;
    return right ? std::string(w - s.size(), ' ') + s : s + std::string(w - s.size(), ' ');
}

json summary_json(const Summary& s, bool bulk) {
    json j = {{bulk ? "mb_per_s" : "req_per_s", s.rate},
              {"median_us", s.median_us},
              {"p99_us", s.p99_us},
              {"server_cpu_s_per_1k", s.cpu_per_1k},
              {"server_peak_rss_mib", s.peak_mib},
              {"requests", s.requests},
              {"runs", s.runs}};
    if (!s.error.empty()) j["error"] = s.error;
    for (auto it = j.begin(); it != j.end(); ++it)
        if (it->is_number_float() && std::isnan(it->get<double>())) *it = nullptr;
    return j;
}

struct Args {
    std::string mode = "run";
    std::string soukd, brz;
    bool no_brz = false;
    std::string json_path = "bench.json";
    std::string dir;
    bool quick = false;
    int repeat = 3;
    int connections = 10000;
    std::vector<std::string> soukd_extra;
};

std::string self_dir() {
    char b[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", b, sizeof b - 1);
    if (n <= 0) return ".";
    b[n] = 0;
    std::string p = b;
    return p.substr(0, p.rfind('/'));
}

std::string find_soukd(const Args& a) {
    if (!a.soukd.empty()) return a.soukd;
    if (const char* e = std::getenv("SOUKD")) return e;
    std::string guess = self_dir() + "/../server/soukd";
    if (::access(guess.c_str(), X_OK) == 0) return guess;
    die("cannot find soukd: pass --soukd PATH or set SOUKD");
}

void raise_nofile() {
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &r);
    }
}

void write_json(const std::string& path, const json& j) {
    std::ofstream f(path);
    f << j.dump(2) << "\n";
    if (!f) die("cannot write " + path);
    std::printf("JSON written to %s\n", path.c_str());
}

// ------------------------------------------------------------- run --

int cmd_run(const Args& a) {
    std::string soukd = find_soukd(a);
    std::string brz = a.brz;
    if (!a.no_brz && brz.empty()) {
        if (::access("/usr/bin/brz", X_OK) == 0) brz = "/usr/bin/brz";
        else die("brz not found: pass --brz PATH or --no-brz");
    }
    std::string tmp = a.dir;
    std::string tmpl = "/tmp/souk-bench-XXXXXX";
    if (tmp.empty()) {
        if (!::mkdtemp(tmpl.data())) die("mkdtemp failed");
        tmp = tmpl;
    }
    std::string root = tmp + "/root";
    std::printf("preparing %d x 4 KiB files and a 256 MiB file in %s ...\n", kSmallFiles, root.c_str());
    std::fflush(stdout);
    make_tree(root);

    // Machine floors first, on a quiet machine.
    std::printf("measuring machine floors ...\n");
    std::fflush(stdout);
    double rtt = floor_rtt_us(a.quick ? 2000 : 20000);
    double rtt_thread = floor_rtt_us(a.quick ? 2000 : 20000, false);
    double bulk = floor_bulk_mbs(a.quick ? (512ull << 20) : (2ull << 30), kBigSize);
    double bulk_hot = floor_bulk_mbs(a.quick ? (512ull << 20) : (2ull << 30), 256 << 10);
    double pread_rate = floor_pread_rate(root + "/big.bin", a.quick ? 0.3 : 1.0);

    const uint64_t q = a.quick ? 10 : 1;
    std::vector<Workload> workloads;
    workloads.push_back({"small_get_1", "small get 4 KiB, 1 conn", 1, 6000 / q,
                         [](sc::Client& c, uint64_t i, uint64_t* bytes) -> sc::Status {
                             auto r = c.get(small_name(static_cast<int>(i % kSmallFiles)));
                             if (!r) return r.error();
                             *bytes += r->size();
                             return {};
                         }});
    workloads.push_back({"small_get_16", "small get 4 KiB, 16 conns", 16, 16000 / q,
                         [](sc::Client& c, uint64_t i, uint64_t* bytes) -> sc::Status {
                             auto r = c.get(small_name(static_cast<int>((i * 7) % kSmallFiles)));
                             if (!r) return r.error();
                             *bytes += r->size();
                             return {};
                         }});
    workloads.push_back({"readv_64x4k", "readv 64 x 4 KiB of 256 MiB", 1, 1000 / q,
                         [](sc::Client& c, uint64_t i, uint64_t* bytes) -> sc::Status {
                             std::mt19937_64 rng(i);
                             std::vector<sc::Range> ranges;
                             uint64_t blocks = kBigSize / 4096;
                             // 64 distinct, non-adjacent 4 KiB blocks: one stride per slot.
                             for (uint64_t k = 0; k < 64; ++k)
                                 ranges.push_back({(k * (blocks / 64) + rng() % (blocks / 64 - 1)) * 4096, 4096});
                             auto r = c.readv("big.bin", ranges);
                             if (!r) return r.error();
                             for (auto& s : *r) *bytes += s.size();
                             return {};
                         }});
    workloads.push_back({"get_256m", "get whole 256 MiB", 1, a.quick ? 1u : 3u,
                         [](sc::Client& c, uint64_t, uint64_t* bytes) -> sc::Status {
                             auto r = c.get_to("big.bin", [](std::string_view) { return true; });
                             if (!r) return r.error();
                             if (*r != kBigSize) return sc::make_error(sc::ErrorKind::Protocol, "short get");
                             *bytes += *r;
                             return {};
                         },
                         true});
    workloads.push_back({"append_200b_4w", "append 200 B, 4 writers", 4, 4000 / q,
                         [](sc::Client& c, uint64_t, uint64_t* bytes) -> sc::Status {
                             static const std::string data(200, 'a');
                             auto r = c.append("append.log", data);
                             if (!r) return r.error();
                             *bytes += data.size();
                             return {};
                         }});

    json out;
    out["machine"] = {{"cores", std::thread::hardware_concurrency()},
                      {"loopback_rtt_us", rtt},
                      {"loopback_rtt_thread_us", rtt_thread},
                      {"loopback_bulk_mb_per_s", bulk},
                      {"loopback_bulk_cache_hot_mb_per_s", bulk_hot},
                      {"pread_4k_per_s", pread_rate}};
    std::map<std::string, std::map<std::string, Summary>> results;  // server -> workload -> summary
    std::vector<ServerProc> servers;
    servers.push_back(start_soukd(soukd, root, tmp, a.soukd_extra));
    if (!a.no_brz) servers.push_back(start_brz(brz, root, tmp));
    for (auto& srv : servers) {
        std::printf("warming up %s (pid %d, port %u) ...\n", srv.name.c_str(), srv.pid, srv.port);
        std::fflush(stdout);
        for (const auto& w : workloads) {  // page cache, the server's own start-up paths
            if (w.key == "get_256m") continue;
            LoadResult lr = run_load(srv, 1, std::min<uint64_t>(w.requests / 10 + 1, 100), w.op);
            if (!lr.error.empty()) {
                for (auto& x : servers) stop(x);
                die(srv.name + " warm-up " + w.key + ": " + lr.error + "\n" + read_text(srv.log));
            }
        }
    }
    // Each workload runs `repeat` times on each server, alternating, so a
    // change in the machine's load (it may be shared) hits both alike; the
    // loopback round trip is measured again before each workload.
    // The machine's round trip can change with its load (a virtual CPU that
    // idles wakes slowly), so the small-get latency is compared with a
    // round trip measured just before each of its runs.
    std::vector<double> rtts = {rtt}, latency_ratios;
    for (const auto& w : workloads) {
        rtts.push_back(floor_rtt_us(a.quick ? 500 : 2000));
        std::map<std::string, Runs> runs;
        for (int r = 0; r < a.repeat; ++r) {
            double rtt_now = w.key == "small_get_1" ? floor_rtt_us(a.quick ? 300 : 1000) : NAN;
            for (auto& srv : servers) runs[srv.name].add(w, run_load(srv, w.conns, w.requests, w.op));
            if (!std::isnan(rtt_now) && !runs["soukd"].medians.empty()) {
                rtts.push_back(rtt_now);
                latency_ratios.push_back(runs["soukd"].medians.back() / rtt_now);
            }
        }
        for (auto& srv : servers) {
            Summary s = runs[srv.name].done();
            std::printf("  %-10s %-30s %s %s  median %s us\n", srv.name.c_str(), w.title.c_str(), fmt(s.rate).c_str(),
                        w.bulk ? "MB/s" : "req/s", fmt(s.median_us).c_str());
            if (!s.error.empty()) std::printf("    error: %s\n", s.error.c_str());
            results[srv.name][w.key] = std::move(s);
        }
        std::fflush(stdout);
    }
    // The latency target: this machine's round trip changes over time (a
    // virtual CPU's idle governor), so compare in short alternating blocks,
    // each soukd small-get block against the round trip measured just
    // before it.
    // Whether the two ends of a round trip share a CPU decides its cost on
    // some machines far more than the software does (a direct switch, or a
    // wake-up of an idle virtual CPU): both placements are measured, the
    // bare echo and soukd alike, pinned.
    if (std::thread::hardware_concurrency() >= 2) {
        for (int cross = 0; cross < 2; ++cross) {
            const int peer_cpu = cross ? 1 : 0;
            pin(0, 0);
            pin_process(servers[0].pid, peer_cpu);
            auto c = sc::Client::connect(servers[0].url());
            EchoPeer echo(peer_cpu);
            std::vector<double> ratios, floors, gets;
            for (int block = 0; c && block < (a.quick ? 3 : 8); ++block) {
                double rtt_now = echo.rtt_us(300);
                std::vector<double> lat;
                for (int i = 0; i < 600; ++i) {
                    auto t = Clock::now();
                    auto g = c->get(small_name(i % kSmallFiles));
                    if (!g) break;
                    if (i >= 300) lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
                }
                if (lat.empty()) break;
                floors.push_back(rtt_now);
                gets.push_back(median(lat));
                ratios.push_back(median(lat) / rtt_now);
                latency_ratios.push_back(ratios.back());
            }
            const char* name = cross ? "cross_cpu" : "same_cpu";
            out["latency_pinned"][name] = {{"loopback_rtt_us", median(floors)},
                                           {"soukd_small_get_median_us", median(gets)},
                                           {"ratio", median(ratios)}};
            std::printf("  pinned %-9s loopback round trip %s us, soukd small get %s us: %sx\n", name,
                        fmt(median(floors)).c_str(), fmt(median(gets)).c_str(), fmt(median(ratios), 2).c_str());
        }
        pin(0, -1);
        pin_process(servers[0].pid, -1);
    }
    for (auto& srv : servers) {
        ProcSample end = sample_proc(srv.pid);
        out["servers"][srv.name]["threads_at_end"] = end.threads;
        out["servers"][srv.name]["rss_kib_at_end"] = end.rss_kib;
        out["servers"][srv.name]["peak_rss_kib_since_start"] = end.hwm_kib;
        stop(srv);
    }
    rtt = median(rtts);
    out["machine"]["loopback_rtt_us"] = rtt;
    out["machine"]["loopback_rtt_us_samples"] = rtts;

    // The table.
    std::printf("\n%s\n", std::string(100, '=').c_str());
    std::printf("machine floors: loopback round trip %s us between processes (%s us between threads),\n"
                "                loopback bulk %s MB/s from 256 MiB of memory (%s MB/s from a cache-hot 256 KiB buffer),\n"
                "                pread 4 KiB %s /s (%u cores)\n",
                fmt(rtt).c_str(), fmt(rtt_thread).c_str(), fmt(bulk, 0).c_str(), fmt(bulk_hot, 0).c_str(),
                fmt(pread_rate, 0).c_str(), std::thread::hardware_concurrency());
    std::printf("%s\n", std::string(100, '-').c_str());
    std::printf("%s %s %s %s\n", pad("workload / metric", 44, false).c_str(), pad("soukd", 16).c_str(),
                pad("brz serve", 16).c_str(), pad("soukd/brz", 12).c_str());
    std::printf("%s\n", std::string(100, '-').c_str());
    json ratios;
    for (const auto& w : workloads) {
        const Summary& s = results["soukd"][w.key];
        const Summary* b = a.no_brz ? nullptr : &results["brz serve"][w.key];
        json jw;
        jw["soukd"] = summary_json(s, w.bulk);
        if (b) jw["brz_serve"] = summary_json(*b, w.bulk);
        jw["connections"] = w.conns;
        jw["requests_per_run"] = w.requests;
        out["workloads"][w.key] = jw;
        auto row = [&](const std::string& metric, double sv, double bv, bool higher_better, int prec) {
            double ratio = b ? (higher_better ? sv / bv : bv / sv) : NAN;
            std::printf("%s %s %s %s\n", pad("  " + metric, 44, false).c_str(), pad(fmt(sv, prec), 16).c_str(),
                        pad(b ? fmt(bv, prec) : "-", 16).c_str(), pad(std::isnan(ratio) ? "-" : fmt(ratio, 1) + "x", 12).c_str());
            return ratio;
        };
        std::printf("%s\n", w.title.c_str());
        double r = row(w.bulk ? "throughput MB/s" : "throughput req/s", s.rate, b ? b->rate : NAN, true, w.bulk ? 0 : 0);
        row("median latency us", s.median_us, b ? b->median_us : NAN, false, 1);
        row("p99 latency us", s.p99_us, b ? b->p99_us : NAN, false, 1);
        row("server CPU s / 1000 requests", s.cpu_per_1k, b ? b->cpu_per_1k : NAN, false, 3);
        row("server peak RSS MiB", s.peak_mib, b ? b->peak_mib : NAN, false, 1);
        if (!std::isnan(r)) ratios[w.key] = r;
    }
    std::printf("%s\n", std::string(100, '-').c_str());
    out["ratios_soukd_over_brz"] = ratios;

    // The targets of docs/layout.md#performance-model / issue 4, as ratios from this run.
    json targets;
    auto target = [&](const std::string& key, const std::string& text, double value, double want, bool at_least) {
        bool ok = !std::isnan(value) && (at_least ? value >= want : value <= want);
        std::printf("target %-58s %8s  %s\n", text.c_str(), fmt(value, 2).c_str(),
                    std::isnan(value) ? "n/a" : ok ? "met" : "NOT met");
        targets[key] = {{"value", std::isnan(value) ? json(nullptr) : json(value)}, {"want", want},
                        {"at_least", at_least}, {"met", ok}};
    };
    auto ratio_of = [&](const std::string& k) { return ratios.contains(k) ? ratios[k].get<double>() : NAN; };
    target("small_get_1_ratio", "soukd/brz small get, 1 conn >= 10x", ratio_of("small_get_1"), 10, true);
    target("small_get_16_ratio", "soukd/brz small get, 16 conns >= 10x", ratio_of("small_get_16"), 10, true);
    target("readv_ratio", "soukd/brz readv 64 x 4 KiB >= 10x", ratio_of("readv_64x4k"), 10, true);
    target("get_256m_of_bulk", "soukd whole-file get / loopback bulk >= 0.70",
           results["soukd"]["get_256m"].rate / bulk, 0.70, true);
    // The worse of the two pinned placements (same CPU: the software's
    // share shows most), else the unpinned blocks.
    double latency_ratio = median(latency_ratios);
    if (out.contains("latency_pinned"))
        latency_ratio = std::max(out["latency_pinned"]["same_cpu"]["ratio"].get<double>(),
                                 out["latency_pinned"]["cross_cpu"]["ratio"].get<double>());
    target("small_get_latency_over_rtt", "soukd small-get median / loopback round trip <= 2 (worse placement)",
           latency_ratio, 2.0, false);
    out["small_get_latency_over_rtt_runs"] = latency_ratios;
    out["targets"] = targets;
    write_json(a.json_path, out);
    if (a.dir.empty()) {
        std::string cmd = "rm -rf '" + tmp + "'";
        if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "souk-bench: could not remove %s\n", tmp.c_str());
    }
    return 0;
}

// ------------------------------------------------------------ idle --

// N idle bzr:// connections: soukd's RSS growth per connection and its
// thread count. Each connection first completes one request (as a real
// client does: hello), then stays idle.
int cmd_idle(const Args& a) {
    raise_nofile();
    rlimit r{};
    ::getrlimit(RLIMIT_NOFILE, &r);
    // The client side (this process) and soukd each need one fd per connection.
    if (r.rlim_cur < static_cast<rlim_t>(a.connections) + 64)
        die("RLIMIT_NOFILE is " + std::to_string(r.rlim_cur) + "; need " + std::to_string(a.connections + 64));
    std::string soukd = find_soukd(a);
    std::string tmpl = "/tmp/souk-bench-idle-XXXXXX";
    if (!::mkdtemp(tmpl.data())) die("mkdtemp failed");
    std::string tmp = tmpl, root = tmp + "/root";
    ::mkdir(root.c_str(), 0755);
    std::vector<std::string> extra = {"--max-connections", std::to_string(a.connections + 100)};
    extra.insert(extra.end(), a.soukd_extra.begin(), a.soukd_extra.end());
    ServerProc srv = start_soukd(soukd, root, tmp, extra);
    ::usleep(200000);
    ProcSample base = sample_proc(srv.pid);
    std::printf("soukd pid %d: RSS %llu KiB, %d threads before\n", srv.pid,
                static_cast<unsigned long long>(base.rss_kib), base.threads);

    static const char kHello[] =
        "bzr message 3 (bzr 1.6)\n" "\x00\x00\x00\x02" "de" "s" "\x00\x00\x00\x09" "l5:helloe" "e";
    const std::string hello(kHello, sizeof kHello - 1);
    std::vector<souk::io::Fd> conns;
    conns.reserve(static_cast<size_t>(a.connections));
    std::string err;
    auto t0 = Clock::now();
    int peak_threads = base.threads;
    for (int i = 0; i < a.connections; ++i) {
        souk::io::Fd c = souk::io::connect_tcp("127.0.0.1", srv.port, 5000, &err);
        if (!c) die("connection " + std::to_string(i) + ": " + err);
        ::fcntl(c.get(), F_SETFL, ::fcntl(c.get(), F_GETFL) & ~O_NONBLOCK);
        timeval tv{10, 0};
        ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (!full_write(c.get(), hello.data(), hello.size())) die("write hello failed on connection " + std::to_string(i));
        // Read the whole response: it ends with 'e' after the args structure.
        char buf[512];
        size_t got = 0;
        bool done = false;
        while (!done && got < sizeof buf) {
            ssize_t n = ::recv(c.get(), buf + got, sizeof buf - got, 0);
            if (n <= 0) die("no answer to hello on connection " + std::to_string(i) + " (" + std::strerror(errno) + ")");
            got += static_cast<size_t>(n);
            // v3: marker, 4-byte header length + headers, "oS", 's' + 4-byte length + structure, 'e'.
            const size_t m = 24;
            if (got >= m + 4) {
                size_t hl = (static_cast<unsigned char>(buf[m]) << 24) | (static_cast<unsigned char>(buf[m + 1]) << 16) |
                            (static_cast<unsigned char>(buf[m + 2]) << 8) | static_cast<unsigned char>(buf[m + 3]);
                size_t at = m + 4 + hl + 2;  // after "oS"
                if (got >= at + 5) {
                    size_t sl = (static_cast<unsigned char>(buf[at + 1]) << 24) | (static_cast<unsigned char>(buf[at + 2]) << 16) |
                                (static_cast<unsigned char>(buf[at + 3]) << 8) | static_cast<unsigned char>(buf[at + 4]);
                    done = got >= at + 5 + sl + 1;
                }
            }
        }
        conns.push_back(std::move(c));
        if ((i + 1) % 1000 == 0) {
            ProcSample s = sample_proc(srv.pid);
            peak_threads = std::max(peak_threads, s.threads);
            std::printf("  %6d connections: RSS %llu KiB, %d threads\n", i + 1,
                        static_cast<unsigned long long>(s.rss_kib), s.threads);
            std::fflush(stdout);
        }
    }
    double open_s = seconds_since(t0);
    ::usleep(1500000);  // let the server settle (pools trimmed, workers parked)
    ProcSample idle = sample_proc(srv.pid);
    peak_threads = std::max(peak_threads, idle.threads);
    // Still served after parking: hello on a spread of them.
    int answered = 0, probes = 0;
    for (size_t i = 0; i < conns.size(); i += std::max<size_t>(1, conns.size() / 50)) {
        ++probes;
        char buf[512];
        if (!full_write(conns[i].get(), hello.data(), hello.size())) continue;
        ssize_t n = ::recv(conns[i].get(), buf, sizeof buf, 0);
        if (n > 0) ++answered;
    }
    double per_conn = (static_cast<double>(idle.rss_kib) - static_cast<double>(base.rss_kib)) * 1024.0 /
                      static_cast<double>(a.connections);
    std::printf("\n%d idle connections (each after one hello), opened in %.1f s\n", a.connections, open_s);
    std::printf("soukd RSS: %llu KiB before, %llu KiB with all idle: %.0f bytes per connection (target <= 1024)\n",
                static_cast<unsigned long long>(base.rss_kib), static_cast<unsigned long long>(idle.rss_kib), per_conn);
    std::printf("soukd threads: %d before, %d with all idle, %d at most (target: bounded, not one per connection)\n",
                base.threads, idle.threads, peak_threads);
    std::printf("probes answered after idling: %d of %d\n", answered, probes);
    json out = {{"connections", a.connections},
                {"open_seconds", open_s},
                {"rss_kib_before", base.rss_kib},
                {"rss_kib_idle", idle.rss_kib},
                {"rss_bytes_per_connection", per_conn},
                {"threads_before", base.threads},
                {"threads_idle", idle.threads},
                {"threads_peak_sampled", peak_threads},
                {"probes", probes},
                {"probes_answered", answered},
                {"target_bytes_per_connection", 1024},
                {"met", per_conn <= 1024 && idle.threads < 200 && answered == probes}};
    conns.clear();
    stop(srv);
    write_json(a.json_path, out);
    std::string cmd = "rm -rf '" + tmp + "'";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "souk-bench: could not remove %s\n", tmp.c_str());
    return 0;
}

const char kUsage[] =
    "usage: souk-bench [run] [--soukd PATH] [--brz PATH | --no-brz] [--json FILE] [--repeat N]\n"
    "                  [--quick] [--dir DIR] [--soukd-arg ARG]...\n"
    "       souk-bench idle [--soukd PATH] [--connections N] [--json FILE] [--soukd-arg ARG]...\n"
    "\n"
    "run:  machine floors (loopback round trip and bulk, pread rate), then soukd and\n"
    "      brz serve on loopback over the same files with the same libsouk client:\n"
    "      small get (1 and 16 connections), readv 64 x 4 KiB, whole 256 MiB get,\n"
    "      append with 4 writers; medians, server CPU per 1000 requests, peak RSS,\n"
    "      ratios, and the issue's targets. JSON to --json (default bench.json).\n"
    "idle: N connections (default 10000) each after one hello, then idle; soukd's\n"
    "      RSS growth per connection and thread count.\n"
    "soukd: --soukd, else $SOUKD, else ../server/soukd next to this program.\n";

}  // namespace

int main(int argc, char** argv) {
    ::signal(SIGPIPE, SIG_IGN);
    Args a;
    for (int i = 1; i < argc; ++i) {
        std::string s = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) die(s + " needs a value");
            return argv[++i];
        };
        if (s == "run" || s == "idle") a.mode = s;
        else if (s == "--soukd") a.soukd = value();
        else if (s == "--brz") a.brz = value();
        else if (s == "--no-brz") a.no_brz = true;
        else if (s == "--json") a.json_path = value();
        else if (s == "--dir") a.dir = value();
        else if (s == "--quick") a.quick = true;
        else if (s == "--repeat") a.repeat = std::max(1, std::atoi(value().c_str()));
        else if (s == "--connections") a.connections = std::max(1, std::atoi(value().c_str()));
        else if (s == "--soukd-arg") a.soukd_extra.push_back(value());
        else if (s == "-h" || s == "--help") {
            std::printf("%s", kUsage);
            return 0;
        } else {
            std::fprintf(stderr, "souk-bench: unknown argument %s\n%s", s.c_str(), kUsage);
            return 2;
        }
    }
    if (a.quick) a.repeat = std::min(a.repeat, 2);
    return a.mode == "idle" ? cmd_idle(a) : cmd_run(a);
}
