// libsouk's HTTP/1.1 client (client/http.cpp) against a scripted server on
// loopback: keep-alive reuse, the three body framings, interim responses,
// stale connections, and every bound a hostile server can push against
// (head size, body size, malformed framing, a cut body, silence).
#include <doctest/doctest.h>
#include <zstd.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/http.hpp"
#include "client/url.hpp"
#include "loopback_server.hpp"
#include "protocol/http1.hpp"
#include "transport/net.hpp"
#include "transport/stream.hpp"

using namespace souk::client;
namespace io = souk::io;
namespace http1 = souk::proto::http1;

namespace {

struct Seen {
    std::string method, target, body;
    int connection = 0;
};

struct Answer {
    Answer(std::string b, bool c = false, std::string l = {}, int d = 0)
        : bytes(std::move(b)), close(c), later(std::move(l)), delay_ms(d) {}
    std::string bytes;  // written back as is
    bool close;         // close the connection afterwards
    std::string later;  // then, after `delay_ms`, these bytes
    int delay_ms;
};

// Each whole request (http1::request_length)
// goes to the handler, whose answer is written back.
class RawServer {
public:
    using Handler = std::function<Answer(const Seen&)>;
    explicit RawServer(Handler h) : handler_(std::move(h)) {}
    Url url() const { return parse_url("http://127.0.0.1:" + std::to_string(server_.port()) + "/").value(); }
    std::vector<Seen> seen() {
        std::lock_guard<std::mutex> g(mu_);
        return seen_;
    }
    int connections() const { return server_.connections(); }

private:
    void serve(io::Stream s, int id) {
        std::string in;
        char buf[65536];
        while (!server_.stopping()) {  // bounded: ends when the client or the test does
            bool expect = false;
            size_t len = http1::request_length(in, &expect);
            if (len == SIZE_MAX) return;
            if (len == 0) {
                ssize_t n = s.read_some(buf, sizeof buf, io::after_ms(50));
                if (n == 0 || (n < 0 && errno != ETIMEDOUT)) return;
                if (n > 0) in.append(buf, static_cast<size_t>(n));
                continue;
            }
            http1::Head head;
            size_t hl = http1::head_length(in);
            REQUIRE(http1::parse_head(std::string_view(in).substr(0, hl), head, nullptr) == 0);
            Seen seen{std::string(head.method), std::string(head.target), in.substr(hl, len - hl), id};
            in.erase(0, len);
            {
                std::lock_guard<std::mutex> g(mu_);
                seen_.push_back(seen);
            }
            Answer a = handler_(seen);
            if (!a.bytes.empty() && s.write_all(a.bytes, io::after_ms(2000)) < 0) return;
            if (!a.later.empty()) {
                std::this_thread::sleep_for(std::chrono::milliseconds(a.delay_ms));
                if (s.write_all(a.later, io::after_ms(2000)) < 0) return;
            }
            if (a.close) return;
        }
    }

    Handler handler_;
    std::mutex mu_;
    std::vector<Seen> seen_;
    souk::test::LoopbackServer server_{[this](io::Stream s, int id) { serve(std::move(s), id); }};  // last
};

std::string ok(const std::string& body, const std::string& extra = "") {
    return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body;
}

Options quick() {
    Options o;
    o.timeout = std::chrono::milliseconds(1000);
    o.connect_timeout = std::chrono::milliseconds(1000);
    return o;
}

HttpCarrier carrier(const RawServer& s, const Options& o = quick()) {
    auto c = HttpCarrier::open(s.url(), o);
    REQUIRE(c);
    return std::move(c).value();
}

}  // namespace

TEST_SUITE("client.http") {

TEST_CASE("one kept-alive connection carries GETs and POSTs, small and large bodies") {
    RawServer server([](const Seen& r) {
        if (r.method == "POST") return Answer{ok("got " + std::to_string(r.body.size()))};
        return Answer{ok(std::string(3 << 20, 'x'))};
    });
    // Megabytes each way: a progress bound a sanitizer's slowdown cannot
    // reach (the client's write deadline runs per 1 MiB step).
    Options roomy = quick();
    roomy.timeout = std::chrono::milliseconds(20000);
    HttpCarrier c = carrier(server, roomy);
    for (int i = 0; i < 3; ++i) {
        auto g = c.get("/f", "", false);
        REQUIRE(g);
        CHECK(g->status == 200);
        CHECK(g->body == std::string(3 << 20, 'x'));
    }
    std::string big(5 << 20, 'b');
    auto p1 = c.post("/.bzr/smart", "hello");
    auto p2 = c.post("/.bzr/smart", big);
    REQUIRE_MESSAGE(p1, (p1 ? "" : p1.error().message));
    REQUIRE_MESSAGE(p2, (p2 ? "" : p2.error().message));
    CHECK(*p1 == "got 5");
    CHECK(*p2 == "got " + std::to_string(big.size()));
    CHECK(server.connections() == 1);
    auto seen = server.seen();
    REQUIRE(seen.size() == 5);
    CHECK(seen[4].body == big);
    CHECK(c.requests() == 5);
}

TEST_CASE("chunked and unframed bodies; interim 1xx responses are skipped") {
    RawServer server([](const Seen& r) {
        if (r.target == "/chunked")
            return Answer{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n"};
        if (r.target == "/unframed") return Answer{"HTTP/1.0 200 OK\r\n\r\nto the end", true};
        return Answer{"HTTP/1.1 204 No Content\r\n\r\n"};
    });
    HttpCarrier c = carrier(server);
    auto a = c.get("/chunked", "", false);
    REQUIRE(a);
    CHECK(a->body == "hello world");
    auto b = c.get("/unframed", "", false);
    REQUIRE(b);
    CHECK(b->body == "to the end");
    auto d = c.get("/none", "", false);  // a new connection: the last one ended with its body
    REQUIRE(d);
    CHECK(d->status == 204);
    CHECK(d->body.empty());
    CHECK(server.connections() == 2);
}

TEST_CASE("HEAD reads no body; a range answer keeps its headers") {
    RawServer server([](const Seen& r) {
        if (r.method == "HEAD") return Answer{"HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n\r\n"};
        return Answer{"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 2-4/10\r\nContent-Type: text/plain\r\n"
                      "Content-Length: 3\r\n\r\nabc"};
    });
    HttpCarrier c = carrier(server);
    auto h = c.get("/f", "", true);
    REQUIRE(h);
    CHECK(h->content_length == 12345);
    CHECK(h->body.empty());
    auto r = c.get("/f", "bytes=2-4", false);  // on the same connection: HEAD's length was not read as a body
    REQUIRE(r);
    CHECK(r->status == 206);
    CHECK(r->content_range == "bytes 2-4/10");
    CHECK(r->content_type == "text/plain");
    CHECK(r->body == "abc");
    CHECK(server.connections() == 1);
}

TEST_CASE("a kept-alive connection the server closed is replaced; a GET lost on it is sent again, a POST is not") {
    std::atomic<int> n{0};
    RawServer server([&](const Seen&) {
        int k = ++n;
        if (k == 1) return Answer{ok("first"), true};  // answers, then closes while the client is idle
        if (k == 3) return Answer{"", true};           // reads the request, closes without a byte
        return Answer{ok("again")};
    });
    HttpCarrier c = carrier(server);
    REQUIRE(c.get("/a", "", false));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto b = c.get("/b", "", false);  // the closed connection is noticed before sending
    REQUIRE(b);
    CHECK(b->body == "again");
    auto d = c.get("/c", "", false);  // request 3 dies unanswered on a reused connection: sent once more
    REQUIRE(d);
    CHECK(d->body == "again");
    CHECK(server.seen().size() == 4);

    std::atomic<int> m{0};
    RawServer writes([&](const Seen&) {
        return ++m == 2 ? Answer{"", true} : Answer{ok("done")};
    });
    HttpCarrier w = carrier(writes);
    REQUIRE(w.post("/.bzr/smart", "one"));
    auto lost = w.post("/.bzr/smart", "two");
    REQUIRE_FALSE(lost);
    CHECK(lost.error().kind == ErrorKind::Connection);
    CHECK(writes.seen().size() == 2);  // not sent again: the server may have acted on it
}

TEST_CASE("a smart answer is read as it arrives, zstd decoded on the way, and its end is exact") {
    std::string plain;
    for (int i = 0; plain.size() < 600000; ++i) plain += "line " + std::to_string(i) + "\n";
    std::string packed(ZSTD_compressBound(plain.size()), '\0');
    packed.resize(ZSTD_compress(packed.data(), packed.size(), plain.data(), plain.size(), 3));
    auto chunk = [](std::string_view b) {
        char size[20];
        std::snprintf(size, sizeof size, "%zx\r\n", b.size());
        return std::string(size) + std::string(b) + "\r\n";
    };
    RawServer server([&](const Seen& r) {
        if (r.body == "exact") return Answer{ok("0123456789")};
        if (r.body == "first")  // 100 bytes now, the rest 400 ms later
            return Answer{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(plain.substr(0, 100)), false,
                          chunk(plain.substr(100)) + "0\r\n\r\n", 400};
        return Answer{"HTTP/1.1 200 OK\r\nContent-Encoding: zstd\r\nTransfer-Encoding: chunked\r\n\r\n" +
                      chunk(std::string_view(packed).substr(0, 7)) + chunk(std::string_view(packed).substr(7)) +
                      "0\r\n\r\n"};
    });
    HttpCarrier c = carrier(server);
    REQUIRE(c.begin_post("/.bzr/smart", "first"));
    char buf[4096];
    auto t0 = std::chrono::steady_clock::now();
    auto k = c.read_body(buf, sizeof buf);
    REQUIRE(k);
    CHECK(*k == 100);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(300));  // not after the whole body
    std::string got(buf, *k);
    for (int i = 0; i < 10000; ++i) {  // bounded: the body is finite
        k = c.read_body(buf, sizeof buf);
        REQUIRE(k);
        if (*k == 0) break;
        got.append(buf, *k);
    }
    CHECK(got == plain);
    auto z = c.post("/.bzr/smart", "second");  // same connection: the first body ended exactly
    REQUIRE(z);
    CHECK(*z == plain);
    // A caller that stops at its message's end, without the read that says
    // the body ended, keeps the connection too.
    for (const char* ask : {"exact", "second"}) {
        REQUIRE(c.begin_post("/.bzr/smart", ask));
        auto some = c.read_body(buf, 10);
        REQUIRE(some);
        CHECK(*some == 10);
    }
    REQUIRE(c.post("/.bzr/smart", "exact"));
    CHECK(server.connections() == 1);
    // A body left half read is dropped with its connection before the next request.
    REQUIRE(c.begin_post("/.bzr/smart", "first"));
    REQUIRE(c.read_body(buf, 10));
    auto again = c.post("/.bzr/smart", "second");
    REQUIRE(again);
    CHECK(*again == plain);
    CHECK(server.connections() == 2);
}

TEST_CASE("a hostile or broken server gives a clear error, never a hang or a huge allocation") {
    struct Case {
        const char* name;
        std::string answer;
        ErrorKind kind;
        const char* says;
    };
    const std::vector<Case> cases = {
        {"endless head", "HTTP/1.1 200 OK\r\n" + std::string(70000, 'X'), ErrorKind::Protocol, "response head"},
        {"body over the limit", "HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n", ErrorKind::Protocol,
         "max_response_body"},
        {"chunked over the limit", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1e8480\r\n" +
                                       std::string(1100000, 'c'),
         ErrorKind::Protocol, "max_response_body"},
        {"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", ErrorKind::Protocol,
         "chunked"},
        {"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", ErrorKind::Protocol,
         "Content-Length"},
        {"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", ErrorKind::Protocol, "status line"},
        {"bad status", "HTTP/1.1 2x0 OK\r\n\r\n", ErrorKind::Protocol, "status code"},
        {"cut body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", ErrorKind::Connection, "closed"},
        {"interim flood", [] {
             std::string s;
             for (int i = 0; i < 20; ++i) s += "HTTP/1.1 100 Continue\r\n\r\n";
             return s;
         }(),
         ErrorKind::Protocol, "interim"},
        {"unasked encoding", ok("x", "Content-Encoding: br\r\n"), ErrorKind::Protocol, "Content-Encoding"},
        {"bad zstd", ok("not zstd", "Content-Encoding: zstd\r\n"), ErrorKind::Protocol, "zstd"},
    };
    for (const auto& k : cases) {
        CAPTURE(k.name);
        RawServer server([&](const Seen&) { return Answer{k.answer, true}; });
        Options o = quick();
        o.max_response_body = 1000000;
        HttpCarrier c = carrier(server, o);
        auto r = c.get("/f", "", false);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == k.kind);
        CHECK(r.error().message.find(k.says) != std::string::npos);
    }
}

TEST_CASE("silence is a Timeout within the progress bound; zstd bodies are decoded") {
    std::string plain(100000, 'z');
    std::string packed(ZSTD_compressBound(plain.size()), '\0');
    packed.resize(ZSTD_compress(packed.data(), packed.size(), plain.data(), plain.size(), 1));
    RawServer server([&](const Seen& r) {
        if (r.target == "/quiet") return Answer{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"};
        if (r.target == "/cut") return Answer{ok(packed.substr(0, packed.size() - 4), "Content-Encoding: zstd\r\n")};
        return Answer{ok(packed, "Content-Encoding: zstd\r\n")};
    });
    Options o = quick();
    o.timeout = std::chrono::milliseconds(300);
    HttpCarrier c = carrier(server, o);
    auto z = c.get("/z", "", false);
    REQUIRE_MESSAGE(z, (z ? "" : z.error().message));
    CHECK(z->body == plain);
    auto cut = c.get("/cut", "", false);  // a whole HTTP body, a zstd frame cut short
    REQUIRE_FALSE(cut);
    CHECK(cut.error().kind == ErrorKind::Protocol);
    CHECK(cut.error().message.find("truncated") != std::string::npos);
    auto t0 = std::chrono::steady_clock::now();
    auto q = c.get("/quiet", "", false);
    auto waited = std::chrono::steady_clock::now() - t0;
    REQUIRE_FALSE(q);
    CHECK(q.error().kind == ErrorKind::Timeout);
    CHECK(waited < std::chrono::seconds(3));
}

TEST_CASE("nothing listening is a Connection error") {
    std::string err;
    io::Fd l = io::listen_tcp("127.0.0.1", 0, 1, &err);
    REQUIRE(l.valid());
    uint16_t port = io::bound_port(l.get());
    l = io::Fd();  // closed: the port refuses
    auto c = HttpCarrier::open(parse_url("http://127.0.0.1:" + std::to_string(port) + "/").value(), quick());
    REQUIRE(c);
    auto r = c->get("/f", "", false);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::Connection);
}

}  // TEST_SUITE
