// Client request/response handling against a scripted in-process server on
// loopback TCP (port 0): chunked bodies, mid-stream errors, retry after a
// reset only for safe verbs, stale idle connections, timeouts, garbage.
// Plus bzr+ssh through a local pipe whose "remote" program exits at once.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/client.hpp"
#include "loopback_server.hpp"
#include "protocol/message.hpp"
#include "transport/net.hpp"

using namespace souk::client;
namespace proto = souk::proto;
namespace io = souk::io;

namespace {

struct SeenRequest {
    proto::Args args;
    std::string body;
    int connection = 0;
    std::string verb() const { return args.empty() ? "" : args[0].bytes; }
};

struct Action {
    std::string bytes;       // written back as is
    bool close = false;      // close the connection after writing
    int delay_ms = 0;        // wait before writing
};

std::string reply(const proto::Args& args, const std::string* body = nullptr, bool ok = true) {
    std::string out;
    proto::response::encode(3, ok, args, body, out);
    return out;
}

// Success args, body in the given chunks, then optionally a mid-stream error.
std::string chunked(const proto::Args& args, const std::vector<std::string>& chunks,
                    const proto::Args* error = nullptr) {
    std::string out;
    proto::response::begin(3, true, args, out);
    for (const auto& c : chunks) proto::response::body_chunk(3, c, out);
    if (error) proto::response::stream_error(3, *error, out);
    proto::response::end(3, out);
    return out;
}

class FakeServer {
public:
    using Handler = std::function<Action(const SeenRequest&)>;

    explicit FakeServer(Handler h) : handler_(std::move(h)) {}
    std::string url(const std::string& path = "/") const {
        return "bzr://127.0.0.1:" + std::to_string(server_.port()) + path;
    }
    std::vector<SeenRequest> seen() {
        std::lock_guard<std::mutex> g(mu_);
        return seen_;
    }
    int connections() const { return server_.connections(); }

private:
    void serve(io::Stream s, int id) {
        proto::RequestDecoder dec;
        SeenRequest cur;
        char buf[65536];
        while (!server_.stopping()) {
            ssize_t n = s.read_some(buf, sizeof buf, io::after_ms(50));
            if (n == 0) return;
            if (n < 0) {
                if (errno == ETIMEDOUT) continue;
                return;
            }
            std::string_view in(buf, static_cast<size_t>(n));
            for (;;) {
                proto::Event ev = dec.next(in);
                if (ev.kind == proto::Ev::NeedMore) break;
                if (ev.kind == proto::Ev::Error) return;
                if (ev.kind == proto::Ev::ArgsReady) {
                    cur = SeenRequest{};
                    cur.args = ev.args;
                    cur.connection = id;
                } else if (ev.kind == proto::Ev::BodyChunk) {
                    cur.body.append(ev.chunk);
                } else if (ev.kind == proto::Ev::End) {
                    {
                        std::lock_guard<std::mutex> g(mu_);
                        seen_.push_back(cur);
                    }
                    Action a = handler_(cur);
                    if (a.delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(a.delay_ms));
                    if (!a.bytes.empty() && s.write_all(a.bytes, io::after_ms(2000)) < 0) return;
                    if (a.close) return;
                }
            }
        }
    }

    Handler handler_;
    std::mutex mu_;
    std::vector<SeenRequest> seen_;
    souk::test::LoopbackServer server_{[this](io::Stream s, int id) { serve(std::move(s), id); }};  // last
};

Options fast_options() {
    Options o;
    o.timeout = std::chrono::milliseconds(2000);
    o.connect_timeout = std::chrono::milliseconds(2000);
    return o;
}

}  // namespace

TEST_SUITE("client.session") {

TEST_CASE("a body in many chunks is concatenated; paths are escaped on the wire") {
    FakeServer srv([](const SeenRequest& r) {
        if (r.verb() == "get") return Action{chunked({"ok"}, {"he", "", "llo", " world"})};
        return Action{reply({"error", "unexpected"}, nullptr, false)};
    });
    auto c = Client::connect(srv.url("/base dir"), fast_options());
    REQUIRE(c.ok());
    auto r = c->get("sub/a b");
    REQUIRE(r.ok());
    CHECK(*r == "hello world");
    auto seen = srv.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].args == proto::Args{"get", "/base%20dir/sub/a%20b"});

    std::string streamed;
    auto n = c->get_to("x", [&](std::string_view chunk) {
        streamed += chunk;
        return true;
    });
    REQUIRE(n.ok());
    CHECK(*n == 11);
    CHECK(streamed == "hello world");
    CHECK(srv.connections() == 1);  // one connection, many requests
}

TEST_CASE("an error after some chunks is an error, not a short file") {
    proto::Args boom{"error", "Exception", "Boom!"};
    FakeServer srv([&](const SeenRequest&) { return Action{chunked({"ok"}, {"aaa", "bbb"}, &boom)}; });
    auto c = Client::connect(srv.url(), fast_options());
    REQUIRE(c.ok());
    auto r = c->get("f");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == ErrorKind::Other);
    CHECK(r.error().message == "failed during the transfer: server error: Exception: Boom!");
    CHECK(r.error().args == boom);
    std::string got;
    auto s = c->get_to("f", [&](std::string_view chunk) {
        got += chunk;
        return true;
    });
    CHECK_FALSE(s.ok());
    CHECK(got == "aaabbb");  // what arrived was delivered, and the call still failed
    CHECK(srv.connections() == 1);  // the stream stayed in sync
}

TEST_CASE("a failure reply keeps the connection") {
    FakeServer srv([](const SeenRequest& r) {
        if (r.verb() == "stat") return Action{reply({"NoSuchFile", "/srv/x"}, nullptr, false)};
        return Action{reply({"yes"})};
    });
    auto c = Client::connect(srv.url("/d"), fast_options());
    REQUIRE(c.ok());
    auto st = c->stat("x");
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().kind == ErrorKind::NoSuchFile);
    CHECK(st.error().message == "no such file: /d/x");
    CHECK(st.error().path == "/d/x");
    auto h = c->has("x");
    REQUIRE(h.ok());
    CHECK(*h);
    CHECK(srv.connections() == 1);
}

TEST_CASE("a reset before the response is retried once for a safe verb") {
    std::atomic<int> gets{0};
    FakeServer srv([&](const SeenRequest& r) {
        if (r.verb() == "get" && ++gets == 1) return Action{"", true};  // drop it
        return Action{chunked({"ok"}, {"data"})};
    });
    auto c = Client::connect(srv.url(), fast_options());
    REQUIRE(c.ok());
    auto r = c->get("f");
    REQUIRE(r.ok());
    CHECK(*r == "data");
    CHECK(c->stats().retries == 1);
    CHECK(c->stats().connects == 2);
    CHECK(gets == 2);
}

TEST_CASE("a reset mid-body is retried for get (nothing reached the caller yet)") {
    std::atomic<int> gets{0};
    FakeServer srv([&](const SeenRequest&) {
        if (++gets == 1) {
            std::string partial = chunked({"ok"}, {"0123456789"});
            partial.resize(partial.size() - 4);  // cut inside the body
            return Action{partial, true};
        }
        return Action{chunked({"ok"}, {"0123456789"})};
    });
    auto c = Client::connect(srv.url(), fast_options());
    REQUIRE(c.ok());
    auto r = c->get("f");
    REQUIRE(r.ok());
    CHECK(*r == "0123456789");
    CHECK(c->stats().retries == 1);
}

TEST_CASE("get_to is not retried once the sink has data") {
    FakeServer srv([&](const SeenRequest&) {
        std::string partial = chunked({"ok"}, {"01234", "56789"});
        partial.resize(partial.size() - 3);
        return Action{partial, true};
    });
    auto c = Client::connect(srv.url(), fast_options());
    REQUIRE(c.ok());
    std::string got;
    auto r = c->get_to("f", [&](std::string_view chunk) {
        got += chunk;
        return true;
    });
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == ErrorKind::Connection);
    CHECK(c->stats().retries == 0);
    CHECK(got.substr(0, 5) == "01234");
}

TEST_CASE("append, mkdir, rename, move, delete, rmdir are never retried") {
    FakeServer srv([](const SeenRequest& r) {
        if (r.verb() == "has") return Action{reply({"no"})};
        return Action{"", true};
    });
    auto c = Client::connect(srv.url(), fast_options());
    REQUIRE(c.ok());
    auto a = c->append("log", "line\n");
    REQUIRE_FALSE(a.ok());
    CHECK(a.error().kind == ErrorKind::Connection);
    CHECK(a.error().message.find("connection closed") == 0);
    CHECK_FALSE(c->mkdir("d").ok());
    CHECK_FALSE(c->rename("a", "b").ok());
    CHECK_FALSE(c->move("a", "b").ok());
    CHECK_FALSE(c->remove("a").ok());
    CHECK_FALSE(c->rmdir("d").ok());
    CHECK(c->stats().retries == 0);
    auto seen = srv.seen();
    REQUIRE(seen.size() == 6);  // each sent exactly once
    CHECK(seen[0].verb() == "append");
    CHECK(seen[0].body == "line\n");
    // and the client recovers: the next call reconnects
    auto h = c->has("x");
    REQUIRE(h.ok());
    CHECK_FALSE(*h);
}

TEST_CASE("a connection the server closed while idle is replaced before sending") {
    FakeServer srv([](const SeenRequest& r) {
        if (r.verb() == "append") return Action{reply({"appended", "7"})};
        return Action{reply({"yes"}), true};  // answer, then idle-timeout close
    });
    auto c = Client::connect(srv.url(), fast_options());
    REQUIRE(c.ok());
    REQUIRE(c->has("x").ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto a = c->append("x", "more");  // not retriable, but nothing was lost
    REQUIRE(a.ok());
    CHECK(*a == 7);
    CHECK(c->stats().retries == 0);
    CHECK(c->stats().connects == 2);
}

TEST_CASE("no progress within the timeout is a Timeout error") {
    FakeServer srv([](const SeenRequest&) { return Action{reply({"yes"}), false, 600}; });
    Options o = fast_options();
    o.timeout = std::chrono::milliseconds(150);
    auto c = Client::connect(srv.url(), o);
    REQUIRE(c.ok());
    auto t0 = std::chrono::steady_clock::now();
    auto h = c->has("x");
    auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE_FALSE(h.ok());
    CHECK(h.error().kind == ErrorKind::Timeout);
    CHECK(took < std::chrono::milliseconds(550));
    CHECK(c->stats().retries == 0);
}

TEST_CASE("garbage and unexpected replies are Protocol errors") {
    std::atomic<int> n{0};
    FakeServer srv([&](const SeenRequest&) {
        switch (++n) {
        case 1: return Action{"HTTP/1.1 400 Bad Request\r\n\r\n"};
        case 2: return Action{reply({"maybe"})};
        default: return Action{reply({"stat", "12", "0o1x"})};
        }
    });
    auto c = Client::connect(srv.url(), fast_options());
    REQUIRE(c.ok());
    auto a = c->has("x");
    REQUIRE_FALSE(a.ok());
    CHECK(a.error().kind == ErrorKind::Protocol);
    auto b = c->has("x");
    REQUIRE_FALSE(b.ok());
    CHECK(b.error().kind == ErrorKind::Protocol);
    CHECK(b.error().message == "unexpected response to has: ('maybe')");
    auto s = c->stat("x");
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().kind == ErrorKind::Protocol);
}

TEST_CASE("verbs send the right args and parse the right replies") {
    FakeServer srv([](const SeenRequest& r) {
        const std::string v = r.verb();
        if (v == "append") return Action{reply({"appended", "14"})};
        if (v == "stat") return Action{reply({"stat", "5", "0o100644"})};
        if (v == "list_dir") return Action{reply({"names", "a%20b", "c", "100%"})};
        if (v == "iter_files_recursive") return Action{reply({"names", "d%20x/f%20y"})};
        if (v == "Transport.is_readonly") return Action{reply({"UnknownMethod", v}, nullptr, false)};
        return Action{reply({"ok"})};
    });
    auto c = Client::connect(srv.url("/r"), fast_options());
    REQUIRE(c.ok());
    CHECK(*c->append("f", "x", 0644) == 14);
    CHECK(c->put("f", "content").ok());
    CHECK(c->put_non_atomic("d/f", "c", std::nullopt, true, 0755).ok());
    CHECK(c->mkdir("d", 0700).ok());
    CHECK(c->rmdir("d").ok());
    CHECK(c->remove("f").ok());
    CHECK(c->rename("a", "/abs/b").ok());
    CHECK(c->move("a", "../up").ok());
    auto st = c->stat("f");
    REQUIRE(st.ok());
    CHECK(st->size == 5);
    CHECK(st->mode == 0100644);
    CHECK(*c->list_dir("") == std::vector<std::string>{"a b", "c", "100%"});
    CHECK(*c->iter_files_recursive(".") == std::vector<std::string>{"d x/f y"});
    CHECK(*c->is_readonly() == false);  // UnknownMethod: assume writable
    auto bad = c->get("../../x");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().kind == ErrorKind::InvalidArgument);

    auto seen = srv.seen();
    REQUIRE(seen.size() == 12);
    CHECK(seen[0].args == proto::Args{"append", "/r/f", "420"});
    CHECK(seen[0].body == "x");
    CHECK(seen[1].args == proto::Args{"put", "/r/f", ""});
    CHECK(seen[1].body == "content");
    CHECK(seen[2].args == proto::Args{"put_non_atomic", "/r/d/f", "", "T", "493"});
    CHECK(seen[3].args == proto::Args{"mkdir", "/r/d", "448"});
    CHECK(seen[4].args == proto::Args{"rmdir", "/r/d"});
    CHECK(seen[5].args == proto::Args{"delete", "/r/f"});
    CHECK(seen[6].args == proto::Args{"rename", "/r/a", "/abs/b"});
    CHECK(seen[7].args == proto::Args{"move", "/r/a", "/up"});
    CHECK(seen[8].args == proto::Args{"stat", "/r/f"});
    CHECK(seen[9].args == proto::Args{"list_dir", "/r"});
    CHECK(seen[10].args == proto::Args{"iter_files_recursive", "/r"});
    CHECK(seen[11].args == proto::Args{"Transport.is_readonly"});
}

TEST_CASE("large request bodies are streamed in parts and arrive whole") {
    FakeServer srv([](const SeenRequest&) { return Action{reply({"ok"})}; });
    auto c = Client::connect(srv.url(), fast_options());
    REQUIRE(c.ok());
    std::string big(3 * 1024 * 1024 + 17, '\0');
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31);
    REQUIRE(c->put("big", big).ok());
    auto seen = srv.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].body == big);
}

TEST_CASE("readv: split over requests by the limits, reassembled in caller order") {
    std::string file(10000, '\0');
    for (size_t i = 0; i < file.size(); ++i) file[i] = static_cast<char>('A' + i % 53);
    FakeServer srv([&](const SeenRequest& r) {
        std::string out;
        std::string_view body = r.body;
        uint64_t last_end = 0;
        bool first = true;
        while (!body.empty()) {
            size_t nl = body.find('\n');
            std::string_view line = body.substr(0, nl);
            body.remove_prefix(nl == std::string_view::npos ? body.size() : nl + 1);
            size_t comma = line.find(',');
            uint64_t off = std::stoull(std::string(line.substr(0, comma)));
            uint64_t len = std::stoull(std::string(line.substr(comma + 1)));
            if (!first && off < last_end)  // what Breezy's server refuses
                return Action{reply({"error", "ValueError", "Overlapping range not allowed"}, nullptr, false)};
            first = false;
            last_end = off + len;
            if (off + len > file.size())
                return Action{reply({"ShortReadvError", "f", std::to_string(off), std::to_string(len),
                                     std::to_string(file.size() > off ? file.size() - off : 0)},
                                    nullptr, false)};
            out += file.substr(off, len);
        }
        return Action{chunked({"readv"}, {out.substr(0, out.size() / 2), out.substr(out.size() / 2)})};
    });
    Options o = fast_options();
    o.readv.max_request_bytes = 1000;
    o.readv.max_request_ranges = 3;
    auto c = Client::connect(srv.url(), o);
    REQUIRE(c.ok());
    std::vector<Range> ranges = {{9000, 500}, {0, 10}, {5, 10}, {2500, 2500}, {100, 1}, {102, 1}, {104, 1},
                                 {106, 1},    {108, 0}};
    auto r = c->readv("f", ranges);
    REQUIRE(r.ok());
    for (size_t i = 0; i < ranges.size(); ++i) CHECK((*r)[i] == file.substr(ranges[i].offset, ranges[i].length));
    auto seen = srv.seen();
    CHECK(seen.size() >= 4);
    for (const auto& s : seen) CHECK(s.args == proto::Args{"readv", "/f"});

    auto shortr = c->readv("f", std::vector<Range>{{9990, 20}});
    REQUIRE_FALSE(shortr.ok());
    CHECK(shortr.error().kind == ErrorKind::ShortReadv);
    auto overflow = c->readv("f", std::vector<Range>{{UINT64_MAX - 1, 5}});
    REQUIRE_FALSE(overflow.ok());
    CHECK(overflow.error().kind == ErrorKind::InvalidArgument);
}

TEST_CASE("a readv reply of the wrong size is caught") {
    FakeServer srv([](const SeenRequest&) { return Action{chunked({"readv"}, {"abc"})}; });
    auto c = Client::connect(srv.url(), fast_options());
    REQUIRE(c.ok());
    auto r = c->readv("f", std::vector<Range>{{0, 5}});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == ErrorKind::ShortReadv);
    auto p = c->readv("f", std::vector<Range>{{0, 2}});
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().kind == ErrorKind::Protocol);
}

TEST_CASE("connection refused is a Connection error") {
    std::string err;
    io::Fd l = io::listen_tcp("127.0.0.1", 0, 1, &err);
    REQUIRE(l.valid());
    uint16_t port = io::bound_port(l.get());
    l.reset();  // nobody listens there now
    auto c = Client::connect("bzr://127.0.0.1:" + std::to_string(port) + "/", fast_options());
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().kind == ErrorKind::Connection);
    CHECK(c.error().message.find("cannot connect") == 0);
}

TEST_CASE("bzr+ssh through a local pipe: a remote that exits is a Connection error, never SIGPIPE") {
    Options o = fast_options();
    o.ssh_command = "sh -c 'shift; exec \"$@\"' ssh";
    o.remote_program = "true";  // exits at once, ignoring "serve --inet ..."
    auto c = Client::connect("bzr+ssh://localhost/x", o);
    REQUIRE(c.ok());
    std::string big(1 << 20, 'x');  // larger than a pipe buffer: the write hits EPIPE
    auto p = c->put("f", big);
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().kind == ErrorKind::Connection);
    CHECK(p.error().message.find("sh exited with status 0") != std::string::npos);
    auto h = c->has("f");  // safe: retried once, then fails
    REQUIRE_FALSE(h.ok());
    CHECK(h.error().kind == ErrorKind::Connection);
    CHECK(c->stats().retries >= 1);
}

TEST_CASE("bzr+ssh: a missing ssh program is a Connection error") {
    Options o = fast_options();
    o.ssh_command = "/nonexistent/souk-ssh";
    auto c = Client::connect("bzr+ssh://localhost/x", o);
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().kind == ErrorKind::Connection);
    CHECK(c.error().message.find("/nonexistent/souk-ssh") != std::string::npos);
}

}  // TEST_SUITE
