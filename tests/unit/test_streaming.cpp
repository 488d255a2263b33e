// Streaming, cancellation and the TCP waiter, in-process (issue 4): a real
// soukd TCP carrier (acceptor, epoll waiter, workers, pooled handlers) on
// loopback port 0, driven by raw sockets and by libsouk. Assertions are on
// counters (docs/conventions.md#assert-counters-not-logs), read as deltas
// since the counters are process-wide.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "client/client.hpp"
#include "protocol/message.hpp"
#include "server/base/counters.hpp"
#include "server/store/fs_store.hpp"
#include "server/carriers/tcp_server.hpp"
#include "server/carriers/waiter.hpp"

using namespace souk;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// FsStore with injected faults: reads fail with EIO from `fail_at` on, and
// open_read can report a size larger than the file (a file that shrank).
class FaultyStore final : public server::Store {
public:
    explicit FaultyStore(const std::string& root) : fs_(root) {}
    std::atomic<uint64_t> fail_at{UINT64_MAX};
    std::atomic<uint64_t> extra_size{0};

    int open_read(const std::string& p, server::OpenFile& out) override {
        int e = fs_.open_read(p, out);
        if (!e) out.info.size += extra_size.load();
        return e;
    }
    ssize_t pread(server::OpenFile& f, char* buf, size_t n, uint64_t off) override {
        uint64_t limit = fail_at.load();
        if (off >= limit) return -EIO;
        if (off + n > limit) n = static_cast<size_t>(limit - off);
        return fs_.pread(f, buf, n, off);
    }
    int stat(const std::string& p, server::FileInfo& out) override { return fs_.stat(p, out); }
    int begin_upload(const std::string& p, const server::WriteSpec& s, std::unique_ptr<server::Upload>& out) override {
        return fs_.begin_upload(p, s, out);
    }
    int mkdir(const std::string& p, int m) override { return fs_.mkdir(p, m); }
    int rmdir(const std::string& p) override { return fs_.rmdir(p); }
    int unlink(const std::string& p) override { return fs_.unlink(p); }
    int rename(const std::string& a, const std::string& b) override { return fs_.rename(a, b); }
    int list_dir(const std::string& p, std::vector<std::string>& n) override { return fs_.list_dir(p, n); }
    int list_files_recursive(const std::string& p, std::vector<std::string>& n) override {
        return fs_.list_files_recursive(p, n);
    }
    const std::string& root_realpath() const { return fs_.root_realpath(); }

private:
    server::FsStore fs_;
};

std::atomic<bool> g_stop{false};

// soukd's TCP carrier over a temp root, in a thread.
struct Server {
    std::string root;
    std::unique_ptr<FaultyStore> store;
    server::ServerContext ctx;
    std::thread thread;
    uint16_t port = 0;

    explicit Server(void (*tune)(server::Params&) = nullptr) {
        ::signal(SIGPIPE, SIG_IGN);  // as soukd's main: sendfile to a closed socket
        char tmpl[] = "/tmp/souk-stream-XXXXXX";
        REQUIRE(::mkdtemp(tmpl));
        root = tmpl;
        store = std::make_unique<FaultyStore>(root);
        ctx.store = store.get();
        ctx.root_realpath = store->root_realpath();
        ctx.configured.allow_writes = true;
        ctx.configured.access.allow_anonymous_writes = true;  // bzr:// has no users
        ctx.params.idle_timeout = 30;
        if (tune) tune(ctx.params);
    }
    void start() {
        g_stop = false;
        server::TcpOptions o;
        o.address = "127.0.0.1";
        o.port = 0;
        o.port_file = root + "/.port";
        thread = std::thread([this, o] { server::serve_tcp(ctx, o, &g_stop); });
        for (int i = 0; i < 500 && !port; ++i) {
            std::ifstream f(o.port_file);
            unsigned p = 0;
            if (f >> p) port = static_cast<uint16_t>(p);
            else std::this_thread::sleep_for(10ms);
        }
        REQUIRE(port != 0);
    }
    ~Server() {
        if (thread.joinable()) {
            g_stop = true;
            server::wake_waiters();
            thread.join();
        }
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    std::string url(const std::string& path = "") const { return "bzr://127.0.0.1:" + std::to_string(port) + "/" + path; }
    void write(const std::string& rel, const std::string& data) const { std::ofstream(root + "/" + rel, std::ios::binary) << data; }
};

int connect_to(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

void send_all(int fd, const std::string& s) {
    size_t done = 0;
    while (done < s.size()) {
        ssize_t n = ::send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
        REQUIRE(n > 0);
        done += static_cast<size_t>(n);
    }
}

std::string v3(const proto::Args& args, const std::string* body = nullptr) {
    std::string out;
    proto::request::encode(3, args, body, out);
    return out;
}

struct Response {
    bool success = false;
    proto::Args args;
    std::string body;
    bool stream_error = false;
    proto::Args error;
    bool eof = false;  // the connection closed instead
};

Response read_response(int fd) {
    proto::ResponseDecoder dec(3, false);
    Response r;
    char buf[65536];
    for (;;) {  // bounded by SO_RCVTIMEO and the response
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            r.eof = true;
            return r;
        }
        std::string_view in(buf, static_cast<size_t>(n));
        for (;;) {
            proto::Event ev = dec.next(in);
            if (ev.kind == proto::Ev::NeedMore) break;
            if (ev.kind == proto::Ev::ArgsReady) {
                r.success = ev.success;
                r.args = ev.args;
            } else if (ev.kind == proto::Ev::BodyChunk) {
                r.body.append(ev.chunk);
            } else if (ev.kind == proto::Ev::StreamError) {
                r.stream_error = true;
                r.error = ev.args;
            } else if (ev.kind == proto::Ev::End) {
                return r;
            } else if (ev.kind == proto::Ev::Error) {
                FAIL("bad response: " << ev.error);
            }
        }
    }
}


// Wait (bounded) until pred() holds.
template <typename P>
bool eventually(P pred, std::chrono::milliseconds limit = 5000ms) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return pred();
}

// Descriptors of this process open on `path`.
int fds_on(const std::string& path) {
    int n = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc/self/fd", ec)) {
        std::error_code ec2;
        auto target = fs::read_symlink(e.path(), ec2);
        if (!ec2 && target == path) ++n;
    }
    return n;
}

}  // namespace

TEST_CASE("streaming: a read error mid-readv ends with a v3 error part; the souk client reports an error") {
    Server s;
    s.start();
    std::string data(1 << 20, 'r');
    s.write("f", data);
    s.store->fail_at = 512 * 1024;
    auto& c = server::counters();
    uint64_t errors0 = c.stream_errors.load();

    // On the wire: body chunks, then the error part, then the end.
    int fd = connect_to(s.port);
    std::string ranges = "0,4096\n700000,4096";
    send_all(fd, v3({"readv", "/f"}, &ranges));
    Response r = read_response(fd);
    CHECK(r.success);
    CHECK(r.body.size() == 4096);  // the first range went out before the failure
    CHECK(r.stream_error);
    REQUIRE(!r.error.empty());
    CHECK(r.error[0].bytes == "ReadError");
    // The connection stays in step: the next request is answered.
    send_all(fd, v3({"hello"}));
    CHECK(read_response(fd).success);
    ::close(fd);
    CHECK(c.stream_errors.load() == errors0 + 1);

    // libsouk: an error, never short data.
    auto client = client::Client::connect(s.url());
    REQUIRE(client);
    std::vector<client::Range> want = {{0, 4096}, {700000, 4096}};
    auto rv = client->readv("f", want);
    REQUIRE(!rv);
    CHECK(rv.error().kind == client::ErrorKind::ReadError);
    CHECK(rv.error().message.find("during the transfer") != std::string::npos);
    s.write("small", std::string(100 * 1024, 's'));  // copied, not sent with sendfile
    s.store->fail_at = 50 * 1024;  // a get of a small file fails the same way
    auto g = client->get("small");
    REQUIRE(!g);
    CHECK(g.error().kind == client::ErrorKind::ReadError);
    CHECK(eventually([&] { return c.pool_req_live.load() == 0; }));
}

TEST_CASE("streaming: a file that ends early under sendfile ends with an error part, not a short body") {
    Server s;
    s.start();
    s.write("big", std::string(1 << 20, 'b'));
    s.store->extra_size = 5 << 20;  // reported 6 MiB: the first 4 MiB part comes up short
    auto client = client::Client::connect(s.url());
    REQUIRE(client);
    uint64_t got = 0;
    auto r = client->get_to("big", [&](std::string_view chunk) {
        got += chunk.size();
        return true;
    });
    REQUIRE(!r);
    CHECK(r.error().kind == client::ErrorKind::ShortReadv);
    CHECK(r.error().message.find("during the transfer") != std::string::npos);
    // The stream ended cleanly: the same connection carries the next request.
    CHECK(client->is_readonly());
    CHECK(client->stats().connects == 1);
}

TEST_CASE("streaming: a readv sent range after range with sendfile ends with an error part if the file ends early") {
    Server s;
    s.start();
    s.write("f", std::string(1 << 20, 'f'));
    s.store->extra_size = 1 << 20;  // reported 2 MiB: the last range lies past the real end
    int fd = connect_to(s.port);
    std::string ranges = "0,102400\n300000,102400\n1500000,102400";
    send_all(fd, v3({"readv", "/f"}, &ranges));
    Response r = read_response(fd);
    CHECK(r.success);
    CHECK(r.stream_error);
    REQUIRE(!r.error.empty());
    CHECK(r.error[0].bytes == "ShortReadvError");
    CHECK(r.body.substr(0, 204800) == std::string(204800, 'f'));  // the good ranges, then padding
    send_all(fd, v3({"hello"}));  // still in step
    CHECK(read_response(fd).success);
    ::close(fd);
    s.store->extra_size = 0;
    auto client = client::Client::connect(s.url());
    REQUIRE(client);
    std::vector<client::Range> want = {{0, 102400}, {300000, 102400}, {900000, 102400}};
    auto rv = client->readv("f", want);
    REQUIRE(rv);
    CHECK((*rv)[2] == std::string(102400, 'f'));
}

TEST_CASE("cancellation: a client that disconnects mid-get frees its handler, buffers and file at once") {
    Server s;
    s.start();
    const std::string path = s.root + "/huge";
    {
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        REQUIRE(fd >= 0);
        REQUIRE(::ftruncate(fd, 256 << 20) == 0);  // sparse
        ::close(fd);
    }
    auto& c = server::counters();
    uint64_t cancelled0 = c.streams_cancelled.load();
    int fd = connect_to(s.port);
    send_all(fd, v3({"get", "/huge"}));
    char buf[65536];
    size_t got = 0;
    while (got < (1u << 20)) {  // some of the body, then hang up
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        REQUIRE(n > 0);
        got += static_cast<size_t>(n);
    }
    CHECK(fds_on(fs::canonical(path).string()) == 1);  // the server has it open
    ::close(fd);
    CHECK(eventually([&] { return c.streams_cancelled.load() == cancelled0 + 1; }));
    CHECK(eventually([&] { return c.pool_req_live.load() == 0 && c.pool_iobuf_live.load() == 0; }));
    CHECK(fds_on(fs::canonical(path).string()) == 0);  // ... and closed it
    // Still healthy.
    int again = connect_to(s.port);
    send_all(again, v3({"hello"}));
    CHECK(read_response(again).success);
    ::close(again);
}

TEST_CASE("cancellation: an aborted upload applies nothing") {
    Server s;
    s.start();
    s.write("log", "before");
    auto& c = server::counters();
    uint64_t aborted0 = c.aborted_requests.load();
    int fd = connect_to(s.port);
    for (const char* verb : {"put", "append"}) {
        std::string req;
        proto::request::begin_v3({verb, std::string(verb) == "put" ? "/new" : "/log", ""}, req);
        proto::request::chunk_v3("some data", req);
        proto::request::abort_v3(req);
        send_all(fd, req);
        Response r = read_response(fd);
        CHECK(!r.success);
    }
    CHECK(!fs::exists(s.root + "/new"));
    std::ifstream f(s.root + "/log");
    std::string content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    CHECK(content == "before");
    CHECK(c.aborted_requests.load() == aborted0 + 2);
    // In step: the next request is served.
    send_all(fd, v3({"hello"}));
    CHECK(read_response(fd).success);
    ::close(fd);
    CHECK(eventually([&] { return c.pool_req_live.load() == 0; }));
}

TEST_CASE("waiter: idle connections are parked with no worker, no handler, no buffer") {
    Server s([](server::Params& p) {
        p.linger = 0.02;
        // Idle items must not age out of the pool while a loaded machine
        // runs this test: "ran dry" below is about recycling, not trimming.
        p.pool_max_age = 600;
        // One worker: with several, the next connection's request can be
        // picked up before the previous worker has handed its handler back
        // (it does so right after writing the reply), which counts as
        // "ran dry" on a loaded machine without any failure to recycle.
        p.workers = 1;
    });
    s.start();
    auto& c = server::counters();
    uint64_t parked0 = c.tcp_conns_parked.load(), live0 = c.tcp_conns_live.load();
    std::vector<int> fds;
    for (int i = 0; i < 40; ++i) {
        int fd = connect_to(s.port);
        send_all(fd, v3({"hello"}));
        CHECK(read_response(fd).success);
        fds.push_back(fd);
    }
    CHECK(eventually([&] { return c.tcp_conns_parked.load() == parked0 + 40; }));
    CHECK(c.tcp_conns_live.load() == live0 + 40);
    CHECK(c.pool_req_live.load() == 0);    // "handlers live = 0 when idle"
    CHECK(c.pool_iobuf_live.load() == 0);
    // One round to size the workspace for this verb, then a warm run in
    // which every request must get a recycled handler.
    for (int fd : fds) {
        send_all(fd, v3({"stat", "/"}));
        CHECK(read_response(fd).success);
    }
    uint64_t dry0 = c.pool_req_ran_dry.load();
    for (int round = 0; round < 5; ++round)
        for (int fd : fds) {
            send_all(fd, v3({"stat", "/"}));
            CHECK(read_response(fd).success);
        }
    CHECK(c.pool_req_ran_dry.load() == dry0);  // "ran dry = 0 after a warm run"
    for (int fd : fds) ::close(fd);
    CHECK(eventually([&] { return c.tcp_conns_live.load() == live0 && c.tcp_conns_parked.load() == parked0; }));
}

TEST_CASE("waiter: the idle timeout applies between requests only; a started request has its own deadline") {
    Server s([](server::Params& p) {
        p.idle_timeout = 0.4;
        p.request_timeout = 0.4;
        p.linger = 0.01;
    });
    s.start();
    s.write("big", std::string(8 << 20, 'x'));
    auto& c = server::counters();
    uint64_t idle0 = c.idle_timeouts.load(), req0 = c.request_timeouts.load();
    int idle = connect_to(s.port);        // says nothing
    int partial = connect_to(s.port);     // starts a request, never finishes it
    send_all(partial, std::string(proto::kV3Marker));
    int slow = connect_to(s.port);        // a long response, read slowly
    int rcv = 64 * 1024;
    ::setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    send_all(slow, v3({"get", "/big"}));
    char buf[65536];
    size_t got = 0;
    auto t0 = std::chrono::steady_clock::now();
    bool slow_ok = true;
    while (got < (8u << 20) + 100) {  // slower than the idle timeout overall
        ssize_t n = ::recv(slow, buf, sizeof buf, 0);
        if (n <= 0) {
            slow_ok = false;
            break;
        }
        got += static_cast<size_t>(n);
        if (std::chrono::steady_clock::now() - t0 < 900ms) std::this_thread::sleep_for(8ms);
        if (got >= (8u << 20)) break;
    }
    CHECK(slow_ok);
    CHECK(std::chrono::steady_clock::now() - t0 > 500ms);
    CHECK(::recv(idle, buf, sizeof buf, 0) == 0);     // closed by the server
    CHECK(::recv(partial, buf, sizeof buf, 0) <= 0);  // closed by the server
    CHECK(c.idle_timeouts.load() >= idle0 + 1);
    CHECK(c.request_timeouts.load() == req0 + 1);
    ::close(idle);
    ::close(partial);
    ::close(slow);
}

TEST_CASE("waiter: a request still arriving holds no worker; it is served once whole") {
    // One worker: before, a half-arrived request held it until --request-timeout.
    Server s([](server::Params& p) { p.workers = 1; });
    s.start();
    auto& c = server::counters();
    const uint64_t arriving0 = c.tcp_conns_arriving.load();
    const std::string req = v3({"hello"});
    std::vector<int> slow;
    for (int i = 0; i < 3; ++i) {  // bounded: 3
        slow.push_back(connect_to(s.port));
        send_all(slow.back(), req.substr(0, req.size() / 2));
    }
    CHECK(eventually([&] { return c.tcp_conns_arriving.load() == arriving0 + 3; }));
    CHECK(c.pool_req_live.load() == 0);  // no handler either
    int fast = connect_to(s.port);
    send_all(fast, v3({"hello"}));
    CHECK(read_response(fast).success);
    for (int fd : slow) send_all(fd, req.substr(req.size() / 2));
    for (int fd : slow) CHECK(read_response(fd).success);
    CHECK(eventually([&] { return c.tcp_conns_arriving.load() == arriving0; }));
    for (int fd : slow) ::close(fd);
    ::close(fast);
}

TEST_CASE("waiter: at --max-connections a newcomer takes the slot of the connection idle longest") {
    Server s([](server::Params& p) {
        p.max_connections = 3;
        p.idle_reclaim_age = 0.2;
        p.linger = 0;  // parked as soon as answered: parked in the order they were served
    });
    s.start();
    auto& c = server::counters();
    const uint64_t reclaimed0 = c.idle_reclaimed.load(), refused0 = c.connections_refused.load();
    const auto parked0 = static_cast<int64_t>(c.tcp_conns_parked.load());
    std::vector<int> fds;
    for (int i = 0; i < 3; ++i) {  // bounded: 3, accepted in this order
        fds.push_back(connect_to(s.port));
        send_all(fds.back(), v3({"hello"}));
        CHECK(read_response(fds.back()).success);
        // Parked before the next is served, whatever the scheduler does.
        CHECK(eventually([&] {
            return static_cast<int64_t>(c.tcp_conns_parked.load()) >= parked0 + static_cast<int64_t>(fds.size());
        }));
    }
    std::this_thread::sleep_for(400ms);  // idle beyond --idle-reclaim-age
    int extra = connect_to(s.port);
    send_all(extra, v3({"hello"}));
    CHECK(read_response(extra).success);
    char b;
    CHECK(::recv(fds[0], &b, 1, 0) == 0);  // the oldest was closed for it
    send_all(fds[1], v3({"hello"}));
    CHECK(read_response(fds[1]).success);  // the others were not
    CHECK(c.idle_reclaimed.load() == reclaimed0 + 1);
    CHECK(c.connections_refused.load() == refused0);
    for (int fd : fds) ::close(fd);
    ::close(extra);
}

TEST_CASE("waiter: beyond --max-connections new connections are closed at once") {
    Server s([](server::Params& p) { p.max_connections = 3; });
    s.start();
    auto& c = server::counters();
    uint64_t refused0 = c.connections_refused.load();
    std::vector<int> fds;
    for (int i = 0; i < 3; ++i) {
        fds.push_back(connect_to(s.port));
        send_all(fds.back(), v3({"hello"}));
        CHECK(read_response(fds.back()).success);
    }
    int extra = connect_to(s.port);
    char b;
    CHECK(::recv(extra, &b, 1, 0) <= 0);
    CHECK(c.connections_refused.load() == refused0 + 1);
    ::close(extra);
    ::close(fds[0]);
    fds.erase(fds.begin());
    // A slot is free again.
    CHECK(eventually([&] {
        int fd = connect_to(s.port);
        send_all(fd, v3({"hello"}));
        bool ok = read_response(fd).success;
        ::close(fd);
        return ok;
    }));
    for (int fd : fds) ::close(fd);
}
