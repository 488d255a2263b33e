// The web front end (server/carriers/web.hpp, handle_web) on a read-only
// tree, driven by a fuzzed method, path and header set; smart POSTs then run
// their fuzzed body through a SmartExchange. Every answer has a real
// status, a Content-Length that matches what would be sent, file pieces
// inside the file, headers without line breaks, no server path, and never
// serves the server's temporary namespace.
#include "fuzz.hpp"
#include "server/carriers/web.hpp"
#include "server/store/paths.hpp"
#include "transport/sink.hpp"

using namespace souk;
using namespace souk::server;

namespace {

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static fuzz::ServedTree tree("web");
    FuzzedDataProvider in(data, size);
    const uint8_t knobs = in.ConsumeIntegral<uint8_t>();
    static const char* const kMethods[] = {"GET", "HEAD", "POST", "PUT", "OPTIONS"};
    std::string method = knobs & 8 ? in.ConsumeRandomLengthString(16) : kMethods[(knobs >> 4) % 5];
    const std::string path = in.ConsumeRandomLengthString(256);
    std::vector<std::pair<std::string, std::string>> headers;
    const size_t nheaders = in.ConsumeIntegralInRange<size_t>(0, 8);
    for (size_t i = 0; i < nheaders; ++i) {
        static const char* const kNames[] = {"Range", "If-None-Match", "If-Modified-Since", "If-Range",
                                             "Accept-Encoding", "Accept", "Content-Length", "User-Agent"};
        std::string name = in.ConsumeBool() ? kNames[in.ConsumeIntegralInRange<size_t>(0, 7)]
                                            : in.ConsumeRandomLengthString(24);
        headers.emplace_back(std::move(name), in.ConsumeRandomLengthString(128));
    }
    const std::string body = in.ConsumeRemainingBytesAsString();

    WebOptions opts;
    if (knobs & 1) opts.prefix = "/bzr";
    if (knobs & 2) opts.stats_path = "/.souk/stats";
    WebRequest req;
    req.method = method;
    req.path = path;
    req.header = [&headers](std::string_view name) {
        for (auto it = headers.rbegin(); it != headers.rend(); ++it)
            if (iequals(it->first, name)) return it->second;
        return std::string();
    };
    const std::string_view input = fuzz::view(data, size);
    WebResponse out;
    handle_web(tree.ctx, opts, req, out);
    FUZZ_CHECK(out.status >= 100 && out.status <= 599);
    for (const auto& [k, v] : out.headers) {
        FUZZ_CHECK(k.find_first_of("\r\n") == std::string::npos && v.find_first_of("\r\n") == std::string::npos);
        FUZZ_CHECK_SHOW(!tree.reveals_root(v, input), v);
    }
    // The stats page names the root on purpose (docs/metrics.md); nothing else may.
    const bool stats = !opts.stats_path.empty() && path.find(opts.stats_path) != std::string::npos;
    if (!stats) FUZZ_CHECK_SHOW(!tree.reveals_root(out.body, input), out.body);
    if (!out.pieces.empty()) {
        FUZZ_CHECK(out.file.fd.valid());
        uint64_t n = 0;
        for (const auto& p : out.pieces) {
            FUZZ_CHECK(p.offset <= out.file.info.size && p.length <= out.file.info.size - p.offset);
            n += p.text.size() + p.length;
        }
        FUZZ_CHECK(out.content_length() == n);
    } else {
        FUZZ_CHECK(out.content_length() == out.body.size());
    }
    if (out.status == 206) FUZZ_CHECK(out.find_header("Content-Range") || out.find_header("Content-Type"));
    if ((out.status == 200 || out.status == 206) && !out.smart && opts.stats_path.empty()) {
        // Whatever was served is not in the temporary namespace.
        auto rel = resolve_path(path, false, PathContext{tree.ctx.root_realpath, "", {}});
        if (rel) FUZZ_CHECK(!in_temp_namespace(*rel));
    }
    if (!out.smart) return 0;

    FUZZ_CHECK(out.status == 200);
    const log::Origin origin{"fuzz", "fuzz", nullptr};
    SmartExchange ex(tree.ctx, origin, req, out.smart_base);
    const size_t chunk = 1 + knobs * 13u;
    for (size_t i = 0; i < body.size(); i += chunk) ex.body(std::string_view(body).substr(i, chunk));
    ex.end();
    std::string reply;
    io::StringSink sink(reply);
    FUZZ_CHECK(ex.write(sink));
    if (!body.empty()) FUZZ_CHECK(!reply.empty());  // a request, even a broken one, is answered
    if (!ex.zstd()) FUZZ_CHECK_SHOW(!tree.reveals_root(reply, input), reply);
    return 0;
}
