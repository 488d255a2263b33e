// Path handling on both sides of the wire. Server (server/store/paths.hpp):
// the allocation-free resolver agrees with the general one, and what either
// returns is a normal root-relative path that resolves to itself again.
// Client (client/url.hpp): escaping round-trips, joined paths are normal
// and absolute, relative_path inverts join_path, and a parsed URL parses
// back from its canonical text to the same URL.
#include "client/url.hpp"
#include "fuzz.hpp"
#include "server/store/paths.hpp"

using namespace souk;

namespace {

std::vector<std::string_view> segments(std::string_view p) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i <= p.size()) {  // bounded: each pass moves past a '/'
        size_t j = p.find('/', i);
        if (j == std::string_view::npos) j = p.size();
        out.push_back(p.substr(i, j - i));
        i = j + 1;
    }
    return out;
}

// "" or "a/b/c": no empty, "." or ".." segment, no NUL.
void check_root_relative(std::string_view p) {
    FUZZ_CHECK(p.find('\0') == std::string_view::npos);
    if (p.empty()) return;
    for (auto s : segments(p)) FUZZ_CHECK(!s.empty() && s != "." && s != "..");
}

// "/" or "/a/b": absolute, otherwise as above.
void check_absolute(std::string_view p) {
    FUZZ_CHECK(!p.empty() && p[0] == '/');
    check_root_relative(p.substr(1));
}

void server_side(std::string_view client, bool vfs, std::string_view root, std::string_view base) {
    const server::PathContext ctx{root, base, {}};
    auto general = server::resolve_path(client, vfs, ctx);
    std::string fast = "left over";
    const char* why = server::resolve_path_into(client, vfs, ctx, fast);
    FUZZ_CHECK(general.ok() == (why == nullptr));
    if (!general.ok()) return;
    FUZZ_CHECK(fast == *general);
    check_root_relative(fast);
    // A resolved path is its own resolution (literally, from the root),
    // unless its first segment asks for a home directory again.
    if (fast.empty() || fast[0] != '~') {
        auto again = server::resolve_path(fast, false, server::PathContext{root, "", {}});
        FUZZ_CHECK(again.ok() && *again == fast);
        // Escaped for the wire, it decodes back to the same path.
        auto escaped = server::resolve_path(server::percent_encode(fast, true), true, server::PathContext{root, "", {}});
        FUZZ_CHECK(escaped.ok() && *escaped == fast);
    }
    bool temp = false;
    if (!fast.empty())
        for (auto s : segments(fast)) temp = temp || s.substr(0, server::kTempPrefix.size()) == server::kTempPrefix;
    FUZZ_CHECK(server::in_temp_namespace(fast) == temp);
    // Under a mount (a root of several, docs/configuration.md#roots) both
    // agree too, and the result is the namespace path less the mount.
    const server::PathContext mounted{root, base, "a"};
    auto general_m = server::resolve_path(client, vfs, mounted);
    std::string fast_m = "left over";
    const char* why_m = server::resolve_path_into(client, vfs, mounted, fast_m);
    FUZZ_CHECK(general_m.ok() == (why_m == nullptr));
    if (general_m.ok()) {
        FUZZ_CHECK(fast_m == *general_m);
        check_root_relative(fast_m);
    }
}

void client_side(std::string_view a, std::string_view b) {
    const std::string esc = client::escape_path(a);
    for (char c : esc)
        FUZZ_CHECK((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '%' ||
                   std::string_view("-._~/").find(c) != std::string_view::npos);
    auto un = client::unescape(esc);
    FUZZ_CHECK(un && *un == a);
    FUZZ_CHECK(client::unescape_lenient(esc) == a);
    if (auto strict = client::unescape(a)) FUZZ_CHECK(client::unescape_lenient(a) == *strict);

    auto base = client::join_path("/", a);
    if (!base) return;
    check_absolute(*base);
    FUZZ_CHECK(client::join_path(*base, "") == *base);
    FUZZ_CHECK(client::join_path(*base, ".") == *base);
    FUZZ_CHECK(client::join_path("/", *base) == *base);
    auto joined = client::join_path(*base, b);
    if (!joined) return;
    check_absolute(*joined);
    const std::string rel = client::relative_path(*base, *joined);
    auto back = client::join_path(*base, rel);
    FUZZ_CHECK(back && *back == *joined);
}

void url(std::string_view text) {
    auto u = client::parse_url(text);
    if (!u) return;
    check_absolute(u->path);
    auto again = client::parse_url(u->to_string());
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(again->scheme == u->scheme && again->user == u->user && again->host == u->host &&
               again->port == u->port && again->path == u->path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    const uint8_t mode = in.ConsumeIntegral<uint8_t>();
    const std::string base_raw = in.ConsumeRandomLengthString(64);
    const std::string b = in.ConsumeRandomLengthString(256);
    const std::string a = in.ConsumeRemainingBytesAsString();

    // The served root as the resolver sees it: one that holds no home
    // directory, and "/" (every home lies inside it).
    const std::string_view root = mode & 1 ? "/" : "/nonexistent/souk-fuzz-root";
    // HTTP's base is itself a resolved path.
    std::string base;
    if (mode & 2) {
        auto r = server::resolve_path(base_raw, false, server::PathContext{root, "", {}});
        if (r) base = *r;
    }
    server_side(a, mode & 4, root, base);
    server_side(a, !(mode & 4), root, base);
    FUZZ_CHECK(server::percent_decode(server::percent_encode(a, mode & 8)) == a);
    bool ascii = true;
    for (unsigned char c : a) ascii = ascii && c < 0x80;
    FUZZ_CHECK(server::non_ascii_url_error(a).empty() == ascii);

    client_side(a, b);
    url(a);
    return 0;
}
