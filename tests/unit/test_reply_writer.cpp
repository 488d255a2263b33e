// The reply writer (server/request/reply.cpp) with a generated body
// (Reply::Body::Stream): pieces of bytes and file ranges go out in order
// in v3; a failing source ends the body with an error part; v1/v2 get the
// body gathered whole, or a failure beyond --max-body.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "protocol/message.hpp"
#include "server/request/reply.hpp"
#include "server/store/fs_store.hpp"
#include "transport/sink.hpp"

namespace fs = std::filesystem;
using namespace souk;
using namespace souk::server;

namespace {

class Pieces final : public BodySource {
public:
    std::vector<std::string> bytes;   // "" = the file range instead
    OpenFile* file = nullptr;
    uint64_t offset = 0, length = 0;
    bool fail_at_end = false;
    size_t i = 0;
    Next next(BodyPiece& p) override {
        if (i == bytes.size()) return fail_at_end ? Next::Failed : Next::Done;
        p = BodyPiece{};
        if (bytes[i].empty()) {
            p.file = file;
            p.offset = offset;
            p.length = length;
        } else {
            p.bytes = bytes[i];
        }
        ++i;
        return Next::Piece;
    }
    proto::Args error() const override { return {proto::Value("error"), proto::Value("broken source")}; }
};

struct Decoded {
    bool success = false;
    proto::Args args, stream_error;
    std::string body;
    bool done = false;
};

Decoded decode(int version, bool expect_body, std::string_view in) {
    proto::ResponseDecoder d(version, expect_body);
    Decoded r;
    for (int k = 0; k < 100000; ++k) {  // bounded: a reply has few events
        auto ev = d.next(in);
        if (ev.kind == proto::Ev::ArgsReady) {
            r.success = ev.success;
            r.args = ev.args;
        } else if (ev.kind == proto::Ev::BodyChunk) {
            r.body.append(ev.chunk);
        } else if (ev.kind == proto::Ev::StreamError) {
            r.stream_error = ev.args;
        } else if (ev.kind == proto::Ev::End) {
            r.done = true;
            break;
        } else {
            break;
        }
    }
    return r;
}

struct Root {
    fs::path dir;
    std::unique_ptr<FsStore> store;
    ServerContext ctx;
    Root() {
        char tmpl[] = "/tmp/souk-reply-XXXXXX";
        REQUIRE(::mkdtemp(tmpl));
        dir = tmpl;
        std::ofstream(dir / "f", std::ios::binary) << std::string(300000, 'x') + "TAIL";
        store = std::make_unique<FsStore>(dir.string());
        ctx.store = store.get();
        ctx.root_realpath = store->root_realpath();
    }
    ~Root() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};

}  // namespace

TEST_CASE("reply writer: a generated body streams bytes and file ranges in order (v3)") {
    Root r;
    OpenFile f;
    REQUIRE(r.store->open_read("f", f) == 0);
    auto src = std::make_unique<Pieces>();
    src->bytes = {"head:", "", ":tail"};
    src->file = &f;
    src->offset = 299990;
    src->length = 14;
    Reply reply;
    reply.args = {proto::Value("ok")};
    reply.body_kind = Reply::Body::Stream;
    reply.source = std::move(src);
    std::string wire, buf;
    io::StringSink sink(wire);
    REQUIRE(write_reply(r.ctx, sink, 3, reply, buf, ""));
    Decoded d = decode(3, true, wire);
    CHECK(d.done);
    CHECK(d.success);
    CHECK(d.body == "head:xxxxxxxxxxTAIL:tail");
    CHECK(d.stream_error.empty());
}

TEST_CASE("reply writer: a generated body that fails ends with an error part (v3)") {
    Root r;
    auto src = std::make_unique<Pieces>();
    src->bytes = {"some bytes"};
    src->fail_at_end = true;
    Reply reply;
    reply.args = {proto::Value("ok")};
    reply.body_kind = Reply::Body::Stream;
    reply.source = std::move(src);
    std::string wire, buf;
    io::StringSink sink(wire);
    REQUIRE(write_reply(r.ctx, sink, 3, reply, buf, ""));
    Decoded d = decode(3, true, wire);
    CHECK(d.done);
    CHECK(d.body == "some bytes");
    REQUIRE(d.stream_error.size() == 2);
    CHECK(d.stream_error[1].bytes == "broken source");
}

TEST_CASE("reply writer: v1/v2 gather a generated body whole, up to --max-body") {
    Root r;
    for (int version : {1, 2}) {
        auto src = std::make_unique<Pieces>();
        src->bytes = {"abc", "def"};
        Reply reply;
        reply.args = {proto::Value("ok")};
        reply.body_kind = Reply::Body::Stream;
        reply.source = std::move(src);
        std::string wire, buf;
        io::StringSink sink(wire);
        REQUIRE(write_reply(r.ctx, sink, version, reply, buf, ""));
        std::string_view in = wire;
        Decoded d = decode(version, true, in);
        CHECK(d.body == "abcdef");
    }
    r.ctx.params.max_body = 4;
    auto src = std::make_unique<Pieces>();
    src->bytes = {"abc", "def"};
    Reply reply;
    reply.args = {proto::Value("ok")};
    reply.body_kind = Reply::Body::Stream;
    reply.source = std::move(src);
    std::string wire, buf;
    io::StringSink sink(wire);
    REQUIRE(write_reply(r.ctx, sink, 1, reply, buf, ""));
    Decoded d = decode(1, false, wire);
    REQUIRE(!d.args.empty());
    CHECK(d.args[0].bytes == "error");
    CHECK(d.args[1].bytes == "TooLarge");
}

namespace {

// The v3 body chunks of a reply, as the client sees them (boundaries kept).
std::vector<std::string> chunks_of(std::string_view wire) {
    proto::ResponseDecoder d(3, true);
    std::vector<std::string> out;
    for (int k = 0; k < 100000; ++k) {  // bounded: a reply has few events
        auto ev = d.next(wire);
        if (ev.kind == proto::Ev::BodyChunk) out.emplace_back(ev.chunk);
        else if (ev.kind != proto::Ev::ArgsReady) break;
    }
    return out;
}

std::string written(Root& r, Reply& reply) {
    std::string wire, buf;
    io::StringSink sink(wire);
    REQUIRE(write_reply(r.ctx, sink, 3, reply, buf, ""));
    return wire;
}

// A generated reply of "head:", 14 file bytes, ":tail" (or failing after "head:").
Reply generated(OpenFile& f, bool fail = false) {
    auto src = std::make_unique<Pieces>();
    src->bytes = fail ? std::vector<std::string>{"head:"} : std::vector<std::string>{"head:", "", ":tail"};
    src->fail_at_end = fail;
    src->file = &f;
    src->offset = 299990;
    src->length = 14;
    Reply reply;
    reply.args = {proto::Value("ok")};
    reply.body_kind = Reply::Body::Stream;
    reply.source = std::move(src);
    return reply;
}

}  // namespace

TEST_CASE("settle_generated: a short generated body gets a known size and the same chunks on the wire") {
    Root r;
    OpenFile f1, f2;
    REQUIRE(r.store->open_read("f", f1) == 0);
    REQUIRE(r.store->open_read("f", f2) == 0);
    Reply plain = generated(f1), settled = generated(f2);
    CHECK(settle_generated(r.ctx, settled, 1024) == 5 + 14 + 5);
    const std::string want = written(r, plain), got = written(r, settled);
    CHECK(got == want);
    CHECK(chunks_of(got) == std::vector<std::string>{"head:", "xxxxxxxxxxTAIL", ":tail"});
}

TEST_CASE("settle_generated: a long body stays unknown and streams on after what was pulled") {
    Root r;
    for (uint64_t limit : {0, 4, 5, 18}) {  // before, inside and after the first piece; at the file range
        OpenFile f1, f2;
        REQUIRE(r.store->open_read("f", f1) == 0);
        REQUIRE(r.store->open_read("f", f2) == 0);
        Reply plain = generated(f1), settled = generated(f2);
        CHECK(settle_generated(r.ctx, settled, limit) == UINT64_MAX);
        CHECK(written(r, settled) == written(r, plain));
    }
}

TEST_CASE("settle_generated: a source that fails early keeps its error part") {
    Root r;
    OpenFile f;
    Reply reply = generated(f, true);
    CHECK(settle_generated(r.ctx, reply, 1024) == UINT64_MAX);
    Decoded d = decode(3, true, written(r, reply));
    CHECK(d.done);
    CHECK(d.body == "head:");
    REQUIRE(d.stream_error.size() == 2);
    CHECK(d.stream_error[1].bytes == "broken source");
}

TEST_CASE("settle_generated: bodies of a known size are left as they are") {
    Root r;
    Reply reply;
    reply.args = {proto::Value("ok")};
    reply.body_kind = Reply::Body::Bytes;
    reply.body = "abc";
    CHECK(settle_generated(r.ctx, reply, 0) == 3);
    CHECK(reply.body_kind == Reply::Body::Bytes);
}

TEST_CASE("StringSink: take() hands an empty sink the buffer itself, else appends; both count") {
    std::string held, buf = std::string(300 * 1024, 'x');
    const char* data = buf.data();
    io::StringSink sink(held);
    REQUIRE(sink.take(buf));
    CHECK(held.size() == 300 * 1024);
    CHECK(held.data() == data);  // taken, not copied
    CHECK(buf.empty());
    buf = "tail";
    REQUIRE(sink.take(buf));
    CHECK(held.size() == 300 * 1024 + 4);
    CHECK(held.substr(held.size() - 5) == "xtail");
    CHECK(buf.empty());
    CHECK(sink.written() == 300 * 1024 + 4);
}

namespace {
// A sink that takes file bytes as send_file (direct), as a socket does.
class DirectStringSink final : public io::Sink {
public:
    explicit DirectStringSink(std::string& out, bool one_shot = false) : out_(out), one_shot_(one_shot) {}
    bool write(std::string_view data) override {
        out_.append(data);
        written_ += data.size();
        return true;
    }
    bool direct() const override { return true; }
    bool one_shot() const override { return one_shot_; }
    int64_t send_file(int file, uint64_t offset, uint64_t n) override {
        ++send_files;
        return io::Sink::send_file(file, offset, n);
    }
    int send_files = 0;

private:
    std::string& out_;
    bool one_shot_;
};
}  // namespace

TEST_CASE("file_reply_length: the bytes write_reply writes for file ranges, known before sending") {
    Root r;
    const std::vector<std::vector<std::pair<uint64_t, uint64_t>>> shapes = {
        {},                                   // an empty body
        {{0, 100}},                           // one small range (copied)
        {{10, 200000}},                       // one large range (sendfile)
        {{0, 4096}, {8192, 4096}, {100000, 70000}, {200000, 4}},  // many: parts span ranges when direct
        {{0, 300004}},                        // the whole file
    };
    for (int version : {1, 2, 3}) {
        for (bool direct : {false, true}) {
            for (const auto& ranges : shapes) {
                Reply reply;
                reply.args = {proto::Value("readv")};
                reply.body_kind = Reply::Body::File;
                REQUIRE(r.store->open_read("f", reply.file) == 0);
                reply.ranges = ranges;
                const uint64_t want = file_reply_length(r.ctx, version, reply, direct);
                std::string wire, buf;
                io::StringSink plain(wire);
                DirectStringSink fast(wire);
                io::Sink& sink = direct ? static_cast<io::Sink&>(fast) : plain;
                REQUIRE(write_reply(r.ctx, sink, version, reply, buf, "f"));
                CAPTURE(version);
                CAPTURE(direct);
                CAPTURE(ranges.size());
                CHECK(want == wire.size());
            }
        }
    }
    Reply bytes;
    bytes.body_kind = Reply::Body::Bytes;
    bytes.body = "abc";
    CHECK(file_reply_length(r.ctx, 3, bytes, true) == UINT64_MAX);
}

TEST_CASE("reply writer: a readv of many ranges carries each range's bytes, copied or sent, parts spanning or not") {
    Root r;
    std::string file(300000, '\0');
    for (size_t i = 0; i < file.size(); ++i) file[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
    std::ofstream(r.dir / "p", std::ios::binary) << file;
    // Small ranges (copied behind the part head) and one above kCopyRange
    // (sendfile where the sink takes it), 290 KiB in all: above kDirectBody,
    // so a direct sink gets parts that span ranges.
    const std::vector<std::pair<uint64_t, uint64_t>> ranges = {
        {0, 4096}, {8192, 100}, {100000, 140000}, {250000, 4}, {260000, 30000}, {299990, 10}};
    std::string want;
    for (const auto& [o, n] : ranges) want += file.substr(o, n);
    for (int version : {2, 3}) {
        for (int kind : {0, 1, 2}) {  // not direct; direct; direct and one-shot (CGI)
            Reply reply;
            reply.args = {proto::Value("readv")};
            reply.body_kind = Reply::Body::File;
            REQUIRE(r.store->open_read("p", reply.file) == 0);
            reply.ranges = ranges;
            std::string wire, buf;
            io::StringSink plain(wire);
            DirectStringSink fast(wire, kind == 2);
            io::Sink& sink = kind ? static_cast<io::Sink&>(fast) : plain;
            REQUIRE(write_reply(r.ctx, sink, version, reply, buf, "p"));
            CAPTURE(version);
            CAPTURE(kind);
            Decoded d = decode(version, true, wire);
            CHECK(d.done);
            CHECK(d.body == want);
            CHECK(d.stream_error.empty());
            // The large range alone is sent; a one-shot process sends all six.
            if (kind) CHECK(fast.send_files == (kind == 2 ? 6 : 1));
        }
    }
}

TEST_CASE("reply writer: a small range cut short in parts that span ranges ends the v3 body with an error part") {
    Root r;
    // The range at 299900 runs 96 bytes past the end of f (300004 bytes),
    // as when the file shrinks between the check and the send.
    auto send = [&](std::vector<std::pair<uint64_t, uint64_t>> ranges, int version, std::string& wire) {
        Reply reply;
        reply.args = {proto::Value("readv")};
        reply.body_kind = Reply::Body::File;
        REQUIRE(r.store->open_read("f", reply.file) == 0);
        reply.ranges = std::move(ranges);
        std::string buf;
        DirectStringSink sink(wire);
        return write_reply(r.ctx, sink, version, reply, buf, "f");
    };
    for (bool short_first : {false, true}) {
        CAPTURE(short_first);
        std::string wire;
        REQUIRE(send(short_first ? std::vector<std::pair<uint64_t, uint64_t>>{{299900, 200}, {0, 70000}}
                                 : std::vector<std::pair<uint64_t, uint64_t>>{{0, 70000}, {299900, 200}},
                     3, wire));
        Decoded d = decode(3, true, wire);
        CHECK(d.done);
        REQUIRE(d.stream_error.size() >= 2);
        CHECK(d.stream_error[0].bytes == "ShortReadvError");
        // The part was completed with zeros (cut short first: the next
        // range's share of it too) before the error part: the decoder read
        // a whole body, of which the client keeps nothing.
        CHECK(d.body.size() == 70200);
        if (short_first) CHECK(d.body.substr(0, 104) == std::string(100, 'x') + "TAIL");
        else CHECK(d.body.substr(0, 70000) == std::string(70000, 'x'));
    }
    // v1/v2 cannot take a length back: the reply stops, for the connection to close.
    std::string wire;
    CHECK_FALSE(send({{299900, 200}, {0, 70000}}, 2, wire));
}
