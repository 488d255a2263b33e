// The allocation-free request path (issue 4): the decoder's args-storage
// mode, flat-list bencode, resolve_path_into and the in-place replies
// must behave exactly like the general code they shortcut.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "protocol/bencode.hpp"
#include "protocol/message.hpp"
#include "server/verbs/dispatch.hpp"
#include "server/store/paths.hpp"
#include "server/store/fs_store.hpp"

using namespace souk;
using proto::Args;
using proto::Ev;
using proto::Value;

namespace {

// Every event of decoding `stream`, fed in pieces of `step` bytes, as text.
std::vector<std::string> decode_all(const std::string& stream, size_t step, bool storage_mode) {
    proto::RequestDecoder dec;
    Args storage;
    if (storage_mode) dec.set_args_storage(&storage);
    std::vector<std::string> out;
    std::string body;
    for (size_t at = 0; at < stream.size();) {
        std::string_view in(stream.data() + at, std::min(step, stream.size() - at));
        at += in.size();
        for (;;) {
            proto::Event ev = dec.next(in);
            if (ev.kind == Ev::NeedMore) break;
            std::string line = std::to_string(static_cast<int>(ev.kind)) + " v" + std::to_string(ev.version) + " ";
            if (ev.kind == Ev::ArgsReady) {
                Args a = storage_mode ? Args(storage.begin(), storage.begin() + static_cast<long>(ev.argc)) : ev.args;
                line += proto::to_display(a);
            } else if (ev.kind == Ev::BodyChunk) {
                body.append(ev.chunk);
                continue;
            } else if (ev.kind == Ev::End) {
                line += "body=" + body;
                body.clear();
            } else if (ev.kind == Ev::Abort) {
                line += proto::to_display(ev.args);
            } else if (ev.kind == Ev::Error) {
                out.push_back(line + ev.error);
                return out;
            }
            out.push_back(line);
        }
    }
    return out;
}

void same_events(const std::string& stream) {
    for (size_t step : {size_t(1), size_t(3), size_t(7), size_t(64), stream.size() + 1}) {
        CAPTURE(step);
        CHECK(decode_all(stream, step, true) == decode_all(stream, step, false));
    }
}

std::string v3(const Args& args, const std::string* body = nullptr) {
    std::string out;
    proto::request::encode(3, args, body, out);
    return out;
}

}  // namespace

TEST_CASE("hot path: the args-storage decoder gives the same events on every captured client stream") {
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(SOUK_TEST_VECTORS)) {
        if (e.path().extension() != ".c2s") continue;
        std::ifstream f(e.path(), std::ios::binary);
        std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        CAPTURE(e.path().filename().string());
        same_events(data);
        ++files;
    }
    CHECK(files > 10);
}

TEST_CASE("hot path: the args-storage decoder on v1/v2/v3, nested args, aborts and bad input") {
    std::string body = "0,10\n20,30";
    std::string s = v3({"get", "/a/long/path/name/beyond/small/strings"}) + v3({"stat", "/x"}) +
                    v3({"readv", "/f"}, &body) + v3({"get"});  // fewer args after more: storage keeps its size
    same_events(s);
    same_events("get\x01/v1/path\nhello\n");
    same_events("bzr request 2\nreadv\x01/f\n4\n0,10done\n");
    same_events(v3({Value("verb"), Value::of_list({"nested", Value::of_int(3)}), Value::of_int(-5)}));
    std::string aborted;
    proto::request::begin_v3({"put", "/f", ""}, aborted);
    proto::request::chunk_v3("data", aborted);
    proto::request::abort_v3(aborted);
    same_events(aborted);
    // Malformed: the same error, at the same point.
    std::string bad = v3({"get", "/x"});
    bad[bad.find("l3:get")] = 'x';
    same_events(bad);
    std::string bad_header = v3({"get", "/x"});
    bad_header[28] = 'l';  // the header dict becomes a list
    same_events(bad_header);
    std::string not_list = v3({"get"});
    not_list.replace(not_list.find("l3:gete"), 7, "3:get  ");
    same_events(not_list);
}

TEST_CASE("hot path: bdecode_flat_list fills in place and agrees with bdecode") {
    Args out;
    size_t n = 0;
    REQUIRE(proto::bdecode_flat_list("l3:get20:/a/long/path/name/xxe", out, n));
    CHECK(n == 2);
    CHECK(out[1].bytes == "/a/long/path/name/xx");
    const char* cap = out[1].bytes.data();
    REQUIRE(proto::bdecode_flat_list("l4:stat6:/shorte", out, n));
    CHECK(n == 2);
    CHECK(out[1].bytes.data() == cap);  // same buffer: no allocation
    CHECK(out.size() == 2);
    REQUIRE(proto::bdecode_flat_list("l1:xe", out, n));
    CHECK(n == 1);
    CHECK(out.size() == 2);  // never shrinks
    for (const char* bad : {"", "le0", "l03:abce", "l3:abe", "li1ee", "l3:abc", "d3:abce", "l-1:e", "l3:abcee"}) {
        CAPTURE(bad);
        CHECK(!proto::bdecode_flat_list(bad, out, n));
    }
    CHECK(proto::bdecode_flat_list("le", out, n));
    CHECK(n == 0);
    bool is_dict = false;
    CHECK(proto::bvalidate("d1:ai1e1:bl1:cee", {}, &is_dict));
    CHECK(is_dict);
    CHECK(!proto::bvalidate("d1:bi1e1:ai2ee", {}, &is_dict));  // unsorted keys
    CHECK(!proto::bvalidate("i01e", {}, &is_dict));
    proto::BencodeLimits shallow;
    shallow.max_depth = 1;
    CHECK(proto::bvalidate("llee", shallow, &is_dict) == proto::bdecode("llee", shallow).ok());
    CHECK(!proto::bvalidate("llleee", shallow, &is_dict));
    CHECK(!proto::bdecode("llleee", shallow).ok());
    // Random inputs: bvalidate agrees with bdecode.
    std::mt19937 rng(7);
    const std::string alphabet = "ilde0123456789:-x";
    for (int i = 0; i < 20000; ++i) {
        std::string s;
        size_t len = rng() % 12;
        for (size_t k = 0; k < len; ++k) s += alphabet[rng() % alphabet.size()];
        CAPTURE(s);
        CHECK(proto::bvalidate(s, {}, &is_dict) == proto::bdecode(s).ok());
    }
}

TEST_CASE("hot path: resolve_path_into agrees with resolve_path") {
    std::vector<std::string> paths = {"", "/", "a", "/a/b/c", "a//b", "a/./b", "a/../b", "../a", "/a/..", "/a/../..",
                                      "a/b/../../..", "%2e%2e/x", "a%2Fb", "a%00b", "%41%42", "%zz", "%4", "x/%",
                                      "./", "a/.", ".../a", "..a/b", "/~", "~", "~/x", "a/~", "~nosuchuser-souk/x",
                                      "/.bzr/repository/packs/0123456789abcdef0123456789abcdef.pack"};
    std::mt19937 rng(11);
    const std::string alphabet = "ab./%2Fe~";
    for (int i = 0; i < 5000; ++i) {
        std::string s;
        size_t len = rng() % 10;
        for (size_t k = 0; k < len; ++k) s += alphabet[rng() % alphabet.size()];
        paths.push_back(s);
    }
    std::string out;
    for (const char* root : {"/srv", "/"}) {
        for (const char* base : {"", "repo/trunk"}) {
            server::PathContext ctx{root, base, {}};
            for (bool vfs : {true, false}) {
                for (const auto& p : paths) {
                    CAPTURE(p);
                    CAPTURE(vfs);
                    CAPTURE(base);
                    auto want = server::resolve_path(p, vfs, ctx);
                    const char* why = server::resolve_path_into(p, vfs, ctx, out);
                    CHECK((why == nullptr) == want.ok());
                    if (want.ok() && !why) CHECK(out == *want);
                    if (!want.ok() && why) CHECK(std::string(why) == want.error());
                }
            }
        }
    }
}

TEST_CASE("hot path: a reused Reply keeps its capacity and closes its file at once") {
    char tmpl[] = "/tmp/souk-hot-XXXXXX";
    REQUIRE(::mkdtemp(tmpl));
    std::string root = tmpl;
    std::ofstream(root + "/f") << "0123456789";
    server::FsStore store(root);
    server::ServerContext ctx;
    ctx.store = &store;
    ctx.root_realpath = store.root_realpath();
    server::Reply r;
    std::string scratch;
    Args a{"get", "/f"};
    server::dispatch(ctx, *proto::find_verb("get"), a, {}, {}, r, &scratch);
    CHECK(r.success);
    CHECK(r.args == Args{"ok"});
    CHECK(r.file.fd.valid());
    CHECK(scratch == "f");
    size_t cap = r.args.capacity();
    int fd = r.file.fd.get();
    r.reset();
    CHECK(!r.file.fd.valid());
    CHECK(::fcntl(fd, F_GETFD) == -1);  // closed now, not at the next request
    CHECK(r.args.capacity() == cap);
    Args st{"stat", "/f"};
    server::dispatch(ctx, *proto::find_verb("stat"), st, {}, {}, r, &scratch);
    CHECK(r.args == Args{"stat", "10", "0o100644"});
    std::filesystem::remove_all(root);
}
