// The allocation-count test (issue 4,
// docs/conventions.md#allocation-freedom-proven-by-a-test): in steady state,
// serving get, readv and stat performs zero heap allocations per request.
//
// This binary replaces operator new/delete (every form) and, outside
// sanitizer builds, malloc/calloc/realloc/free and the aligned forms, with
// counting versions. It starts soukd's TCP carrier in-process (acceptor,
// epoll waiter, workers, pooled handlers) over the jailed filesystem store,
// warms it up, then drives thousands of get/readv/stat requests over one
// loopback connection from a client that itself allocates nothing
// (pre-encoded requests, fixed buffers), and counts every allocation made
// by any thread meanwhile. Expected: 0. Paths are longer than the
// standard library's small-string buffer, so a copied path would show.
// The access log is on (to a file): its line per request allocates nothing
// either (docs/access-log.md#where-the-lines-come-from).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "protocol/message.hpp"
#include "server/base/counters.hpp"
#include "server/base/log.hpp"
#include "server/base/sanitizer.hpp"
#include "server/verbs/dispatch.hpp"
#include "server/store/fs_store.hpp"
#include "server/carriers/tcp_server.hpp"
#include "server/carriers/waiter.hpp"
#include "server/request/access.hpp"

// ------------------------------------------------------------ counting --

namespace {
std::atomic<uint64_t> g_allocs{0};
std::atomic<bool> g_counting{false};
inline void note_alloc() {
    if (g_counting.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

#if !defined(SOUK_ASAN) && !defined(SOUK_TSAN)
// glibc's own entry points: interposing malloc for the whole process
// (libstdc++, glibc internals) while still using glibc's allocator.
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);

void* malloc(size_t n) {
    note_alloc();
    return __libc_malloc(n);
}
void* calloc(size_t n, size_t m) {
    note_alloc();
    return __libc_calloc(n, m);
}
void* realloc(void* p, size_t n) {
    note_alloc();
    return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
void* memalign(size_t a, size_t n) {
    note_alloc();
    return __libc_memalign(a, n);
}
void* aligned_alloc(size_t a, size_t n) {
    note_alloc();
    return __libc_memalign(a, n);
}
int posix_memalign(void** out, size_t a, size_t n) {
    note_alloc();
    void* p = __libc_memalign(a, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
}
#define SOUK_RAW_ALLOC(n) __libc_malloc(n)
#define SOUK_RAW_ALIGNED(a, n) __libc_memalign(a, n)
#define SOUK_RAW_FREE(p) __libc_free(p)
#else
#define SOUK_RAW_ALLOC(n) std::malloc(n)
#define SOUK_RAW_ALIGNED(a, n) std::aligned_alloc(a, ((n) + (a)-1) / (a) * (a))
#define SOUK_RAW_FREE(p) std::free(p)
#endif

namespace {
void* counted_new(size_t n) {
    note_alloc();
    void* p = SOUK_RAW_ALLOC(n ? n : 1);
    if (!p) throw std::bad_alloc();
    return p;
}
void* counted_new_aligned(size_t n, std::align_val_t a) {
    note_alloc();
    void* p = SOUK_RAW_ALIGNED(static_cast<size_t>(a), n ? n : 1);
    if (!p) throw std::bad_alloc();
    return p;
}
}  // namespace

void* operator new(size_t n) { return counted_new(n); }
void* operator new[](size_t n) { return counted_new(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
    try {
        return counted_new(n);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
    try {
        return counted_new(n);
    } catch (...) {
        return nullptr;
    }
}
void* operator new(size_t n, std::align_val_t a) { return counted_new_aligned(n, a); }
void* operator new[](size_t n, std::align_val_t a) { return counted_new_aligned(n, a); }
void operator delete(void* p) noexcept { SOUK_RAW_FREE(p); }
void operator delete[](void* p) noexcept { SOUK_RAW_FREE(p); }
void operator delete(void* p, size_t) noexcept { SOUK_RAW_FREE(p); }
void operator delete[](void* p, size_t) noexcept { SOUK_RAW_FREE(p); }
void operator delete(void* p, std::align_val_t) noexcept { SOUK_RAW_FREE(p); }
void operator delete[](void* p, std::align_val_t) noexcept { SOUK_RAW_FREE(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { SOUK_RAW_FREE(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { SOUK_RAW_FREE(p); }

// ------------------------------------------------------------- client --

namespace {

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "test_alloc: %s (%s)\n", what, std::strerror(errno));
    std::exit(2);
}

uint32_t be32(const char* p) {
    auto u = [&](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(p[i])); };
    return (u(0) << 24) | (u(1) << 16) | (u(2) << 8) | u(3);
}

// Parse a complete v3 response in buf[0, len): returns its length, or 0 if
// incomplete; sets *ok (oS) and *body (body bytes). No allocation.
size_t parse_v3(const char* buf, size_t len, bool* ok, size_t* body) {
    const size_t m = souk::proto::kV3Marker.size();
    if (len < m + 4) return 0;
    size_t at = m + 4 + be32(buf + m);
    *ok = false;
    *body = 0;
    while (at < len) {  // bounded: each part advances `at`
        char kind = buf[at];
        if (kind == 'e') return at + 1;
        if (kind == 'o') {
            if (at + 1 >= len) return 0;
            if (buf[at + 1] == 'S') *ok = true;
            at += 2;
            continue;
        }
        if (kind != 's' && kind != 'b') die("unexpected response part");
        if (at + 5 > len) return 0;
        size_t n = be32(buf + at + 1);
        if (kind == 'b') *body += n;
        at += 5 + n;
    }
    return 0;
}

struct Exchange {
    int fd;
    std::vector<char>& buf;
    // Send `req`, read its whole response; checks success and body size.
    void run(const std::string& req, size_t want_body) {
        const char* p = req.data();
        size_t left = req.size();
        while (left) {
            ssize_t w = ::send(fd, p, left, MSG_NOSIGNAL);
            if (w <= 0) die("send");
            p += w;
            left -= static_cast<size_t>(w);
        }
        size_t len = 0;
        for (;;) {  // bounded by the response's size (SO_RCVTIMEO guards a hang)
            ssize_t r = ::recv(fd, buf.data() + len, buf.size() - len, 0);
            if (r <= 0) die("recv");
            len += static_cast<size_t>(r);
            bool ok;
            size_t body;
            size_t n = parse_v3(buf.data(), len, &ok, &body);
            if (n) {
                if (n != len) die("bytes after the response");
                if (!ok) die("failure response");
                if (body != want_body) die("wrong body size");
                return;
            }
            if (len == buf.size()) die("response too large");
        }
    }
};

std::string v3_request(const std::vector<std::string>& args, const std::string* body) {
    souk::proto::Args a;
    for (const auto& s : args) a.emplace_back(s);
    std::string out;
    souk::proto::request::begin_v3(a, out);
    if (body) souk::proto::request::chunk_v3(*body, out);
    souk::proto::request::end_v3(out);
    return out;
}

void write_file(const std::string& path, size_t size) {
    std::ofstream f(path, std::ios::binary);
    std::string data(size, '\0');
    for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>('a' + i % 26);
    f << data;
    if (!f) die("write file");
}

}  // namespace

int main(int argc, char** argv) {
    const int rounds = argc > 1 ? std::atoi(argv[1]) : 1000;  // x3 requests
    char tmpl[] = "/tmp/souk-alloc-XXXXXX";
    if (!::mkdtemp(tmpl)) die("mkdtemp");
    const std::string root = tmpl;
    // Long names: a copy of any of them would need the heap.
    const std::string dir = "a-directory-with-a-long-name/and-another-long-one";
    const std::string file = dir + "/0123456789abcdef0123456789abcdef.pack";
    const std::string big = dir + "/a-file-for-scattered-readv-ranges.dat";
    ::mkdir((root + "/a-directory-with-a-long-name").c_str(), 0755);
    ::mkdir((root + "/" + dir).c_str(), 0755);
    write_file(root + "/" + file, 4096);
    write_file(root + "/" + big, 1 << 20);

    souk::server::FsStore store(root);
    if (!store.valid()) die("store");
    souk::server::ServerContext ctx;
    ctx.store = &store;
    ctx.root_realpath = store.root_realpath();
    ctx.params.pool_max_age = 3600;  // no idle item ages out during the test
    // The maintenance thread tops the pools up to --pool-min outside the
    // request path; whether a pass falls during the window is timing. With
    // no minimum, every allocation counted below is the request path's.
    ctx.params.pool_min = 0;
    ctx.params.linger = 1;
    // Served as one of two roots (docs/configuration.md#roots), with the
    // rules a SIGHUP publishes: choosing the root and reading the rules
    // are on every request's path too.
    auto live = std::make_shared<souk::server::LiveRules>(std::vector<souk::server::RootRules>(2));
    ctx.live = live;
    souk::server::ServerContext other = ctx;
    other.mount = "another-root-with-a-long-prefix";
    other.root_index = 1;
    souk::server::ServerContext server_ctx;
    server_ctx.params = ctx.params;
    server_ctx.live = live;
    server_ctx.roots = {other, ctx};  // longest mount first
    server_ctx.nowhere = souk::server::make_nowhere(ctx.params);
    souk::server::TcpOptions opts;
    opts.address = "127.0.0.1";
    opts.port = 0;
    opts.port_file = root + "/port";
    std::string log_err;
    if (!souk::server::log::init_access(souk::server::log::parse_target(root + "/access.log"), &log_err))
        die("access log");
    static std::atomic<bool> stop{false};
    std::thread server([&] { souk::server::serve_tcp(server_ctx, opts, &stop); });

    uint16_t port = 0;
    for (int i = 0; i < 500 && !port; ++i) {  // up to 5 s
        std::ifstream pf(opts.port_file);
        unsigned p = 0;
        if (pf >> p) port = static_cast<uint16_t>(p);
        else std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!port) die("server did not start");
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    std::string ranges;
    for (int i = 0; i < 64; ++i) {
        if (i) ranges += '\n';
        ranges += std::to_string((i * 16 + 3) * 1024) + ",4096";  // scattered, never touching
    }
    const std::string get = v3_request({"get", "/" + file}, nullptr);
    const std::string readv = v3_request({"readv", "/" + big}, &ranges);
    const std::string stat = v3_request({"stat", "/" + file}, nullptr);
    std::vector<char> buf(1 << 20);
    Exchange ex{fd, buf};

    // Warm-up: pools filled, buffers grown, workers started.
    for (int i = 0; i < 300; ++i) {
        ex.run(get, 4096);
        ex.run(readv, 64 * 4096);
        ex.run(stat, 0);
    }
    const auto& c = souk::server::counters();
    const uint64_t dry0 = c.pool_req_ran_dry.load() + c.pool_iobuf_ran_dry.load();
    g_allocs.store(0);
    g_counting.store(true);
    for (int i = 0; i < rounds; ++i) {
        ex.run(get, 4096);
        ex.run(readv, 64 * 4096);
        ex.run(stat, 0);
    }
    g_counting.store(false);
    const uint64_t allocs = g_allocs.load();
    const uint64_t dry = c.pool_req_ran_dry.load() + c.pool_iobuf_ran_dry.load() - dry0;

    ::close(fd);
    stop = true;
    souk::server::wake_waiters();
    server.join();
    std::printf("%d requests (get, readv 64 x 4 KiB, stat) after warm-up: %llu heap allocations\n", rounds * 3,
                static_cast<unsigned long long>(allocs));
    std::printf("pool req: allocs %llu, recycled %llu, ran dry %llu, live %llu\n",
                static_cast<unsigned long long>(c.pool_req_allocs.load()),
                static_cast<unsigned long long>(c.pool_req_recycled.load()),
                static_cast<unsigned long long>(c.pool_req_ran_dry.load()),
                static_cast<unsigned long long>(c.pool_req_live.load()));
    size_t access_lines = 0;
    {
        std::ifstream al(root + "/access.log");
        std::string line;
        while (std::getline(al, line)) ++access_lines;  // bounded: the file's lines
    }
    std::printf("access-log lines: %zu\n", access_lines);
    std::string cmd = "rm -rf '" + root + "'";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", root.c_str());
    std::printf("pools ran dry during the window: %llu\n", static_cast<unsigned long long>(dry));
    if (access_lines != static_cast<size_t>(rounds + 300) * 3) {
        std::printf("FAIL: expected one access-log line per request\n");
        return 1;
    }
    if (dry != 0) {
        std::printf("FAIL: a warm pool ran dry\n");
        return 1;
    }
    if (allocs != 0) {
        std::printf("FAIL: expected 0 allocations in steady state\n");
        return 1;
    }
    if (c.pool_req_live.load() != 0) {
        std::printf("FAIL: handlers still live after the connection closed\n");
        return 1;
    }
    std::printf("OK\n");
    return 0;
}
