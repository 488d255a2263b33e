#include "server/store/paths.hpp"

#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

namespace souk::server {
namespace {

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void split_into(std::string_view p, std::vector<std::string>& segs) {
    size_t i = 0;
    while (i <= p.size()) {
        size_t j = p.find('/', i);
        if (j == std::string_view::npos) j = p.size();
        std::string_view seg = p.substr(i, j - i);
        if (!seg.empty()) segs.emplace_back(seg);
        i = j + 1;
    }
}

// The home directory of "~" (the server's user) or "~name", or "".
std::string home_of(std::string_view tilde) {
    std::string user(tilde.substr(1));
    struct passwd pw{}, *res = nullptr;
    std::vector<char> buf(16384);
    if (user.empty()) ::getpwuid_r(::getuid(), &pw, buf.data(), buf.size(), &res);
    else ::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &res);
    if (!res || !res->pw_dir) return {};
    std::unique_ptr<char, decltype(&::free)> real(::realpath(res->pw_dir, nullptr), &::free);
    return real ? std::string(real.get()) : std::string();
}

// If `home` lies inside `root`, its path relative to root ("" = root).
bool relative_inside(const std::string& home, std::string_view root, std::string& rel) {
    if (home.empty() || root.empty()) return false;
    if (root == "/") {
        rel = home.substr(1);
        return true;
    }
    if (home == root) {
        rel.clear();
        return true;
    }
    if (home.size() > root.size() && std::string_view(home).substr(0, root.size()) == root && home[root.size()] == '/') {
        rel = home.substr(root.size() + 1);
        return true;
    }
    return false;
}

}  // namespace

std::string percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out += static_cast<char>(hi * 16 + lo);
                i += 2;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}

std::string percent_encode(std::string_view s, bool keep_slash) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        bool safe = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.' || c == '-' || c == '~' || (keep_slash && c == '/');
        if (safe) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

bool in_temp_namespace(std::string_view path) {
    for (size_t at = path.find(kTempPrefix); at != std::string_view::npos;  // bounded: each pass moves past `at`
         at = path.find(kTempPrefix, at + 1))
        if (at == 0 || path[at - 1] == '/') return true;
    return false;
}

std::string join(std::string_view dir, std::string_view name) {
    if (dir.empty()) return std::string(name);
    std::string out(dir);
    out += '/';
    out += name;
    return out;
}

bool strip_mount(std::string_view mount, std::string& path) {
    if (mount.empty()) return true;
    if (path.size() < mount.size() || std::string_view(path).substr(0, mount.size()) != mount) return false;
    if (path.size() == mount.size()) {
        path.clear();
        return true;
    }
    if (path[mount.size()] != '/') return false;
    path.erase(0, mount.size() + 1);
    return true;
}

namespace {

constexpr const char* kOutsideMount = "path is outside the served root";

}  // namespace

// resolve_path without the mount (the namespace path), '~' expanded
// against ctx.root_realpath: the general algorithm, which the fast one
// (resolve_namespace) must agree with (tests/fuzz/fuzz_paths.cpp).
static Result<std::string> resolve_general(std::string_view client, bool vfs, const PathContext& ctx) {
    std::string raw = vfs ? percent_decode(client) : std::string(client);
    if (raw.find('\0') != std::string::npos) return make_error("path contains a NUL byte");
    std::vector<std::string> given;
    split_into(raw, given);
    // '~' or '~user' as the first segment of the path as received: expand to
    // that home directory when it lies inside the root
    // (docs/protocol/paths.md#home-directories).
    std::vector<std::string> segs;
    bool absolute = !raw.empty() && raw[0] == '/';
    if (!absolute) split_into(ctx.base, segs);
    size_t first = 0;
    if (!given.empty() && given[0][0] == '~') {
        std::string rel;
        if (relative_inside(home_of(given[0]), ctx.root_realpath, rel)) {
            segs.clear();
            split_into(rel, segs);
            first = 1;
        }
    }
    for (size_t i = first; i < given.size(); ++i) {
        const std::string& seg = given[i];
        if (seg == ".") continue;
        if (seg == "..") {
            if (segs.empty()) return make_error("path is outside the served root");
            segs.pop_back();
            continue;
        }
        segs.push_back(seg);
    }
    std::string out;
    for (const auto& s : segs) {
        if (!out.empty()) out += '/';
        out += s;
    }
    return out;
}

// resolve_path_into before the mount is stripped.
static const char* resolve_namespace(std::string_view client, bool vfs, const PathContext& ctx, std::string& out) {
    // Segments are appended to `out` as they are decoded; "." and empty
    // segments are dropped and ".." removes the last one. A leading '~'
    // segment (home expansion, rare) takes the general path.
    out.clear();
    // Absolute if the *decoded* path starts with '/' ("%2F..." too).
    bool absolute = !client.empty() && client[0] == '/';
    if (vfs && client.size() >= 3 && client[0] == '%' && hexval(client[1]) * 16 + hexval(client[2]) == '/' &&
        hexval(client[1]) >= 0 && hexval(client[2]) >= 0)
        absolute = true;
    if (!absolute) {
        for (size_t i = 0; i < ctx.base.size();) {  // base is already normal, but be safe
            size_t j = ctx.base.find('/', i);
            if (j == std::string_view::npos) j = ctx.base.size();
            if (j > i) {
                if (!out.empty()) out += '/';
                out.append(ctx.base.substr(i, j - i));
            }
            i = j + 1;
        }
    }
    size_t seg_start = out.size();  // where the current segment's text begins
    bool first_segment = true;
    auto end_segment = [&]() -> const char* {
        std::string_view seg(out.data() + seg_start, out.size() - seg_start);
        if (first_segment && !seg.empty() && seg[0] == '~') return "~";
        if (!seg.empty()) first_segment = false;
        if (seg.empty() || seg == "." || seg == "..") {
            bool up = seg == "..";
            // Drop the segment and its separator.
            size_t cut = seg_start > 0 ? seg_start - 1 : 0;
            out.resize(cut);
            if (up) {
                if (out.empty()) return "path is outside the served root";
                size_t slash = out.rfind('/');
                out.resize(slash == std::string::npos ? 0 : slash);
            }
        }
        if (!out.empty()) out += '/';
        seg_start = out.size();
        return nullptr;
    };
    if (!out.empty()) {
        out += '/';
        seg_start = out.size();
    }
    for (size_t i = 0; i < client.size(); ++i) {
        char c = client[i];
        if (vfs && c == '%' && i + 2 < client.size()) {
            int hi = hexval(client[i + 1]), lo = hexval(client[i + 2]);
            if (hi >= 0 && lo >= 0) {
                c = static_cast<char>(hi * 16 + lo);
                i += 2;
            }
        }
        if (c == '\0') return "path contains a NUL byte";
        if (c == '/') {
            if (const char* why = end_segment()) {
                if (why[0] != '~') return why;
                goto general;
            }
            continue;
        }
        out += c;
    }
    if (const char* why = end_segment()) {
        if (why[0] != '~') return why;
        goto general;
    }
    if (!out.empty() && out.back() == '/') out.pop_back();
    return nullptr;
general:
    auto r = resolve_general(client, vfs, ctx);
    if (!r) {
        // The general path's messages are static text; map them back.
        return r.error() == "path contains a NUL byte" ? "path contains a NUL byte" : "path is outside the served root";
    }
    out = std::move(r).value();
    return nullptr;
}

Result<std::string> resolve_path(std::string_view client, bool vfs, const PathContext& ctx) {
    if (ctx.mount.empty()) return resolve_general(client, vfs, ctx);
    auto r = resolve_general(client, vfs, PathContext{{}, ctx.base, {}});  // no '~' under a mount
    if (!r) return r;
    std::string out = std::move(r).value();
    if (!strip_mount(ctx.mount, out)) return make_error(kOutsideMount);
    return out;
}

const char* resolve_path_into(std::string_view client, bool vfs, const PathContext& ctx, std::string& out) {
    if (ctx.mount.empty()) return resolve_namespace(client, vfs, ctx, out);
    // Under a mount: no '~' expansion (a home directory names a place in
    // the root at "/", docs/protocol/paths.md#home-directories).
    const PathContext ns{{}, ctx.base, {}};
    if (const char* why = resolve_namespace(client, vfs, ns, out)) return why;
    return strip_mount(ctx.mount, out) ? nullptr : kOutsideMount;
}

std::string non_ascii_url_error(std::string_view client) {
    // Decode UTF-8 into code points, noting the first run of non-ASCII ones
    // (Python's ascii encoder reports a run: "characters in position 3-4").
    size_t first = std::string_view::npos;
    for (unsigned char ch : client)
        if (ch >= 0x80) {
            first = 0;
            break;
        }
    if (first == std::string_view::npos) return {};
    const std::string prefix = ": URL was not a plain ASCII url: ";
    std::vector<uint32_t> cps;
    for (size_t i = 0; i < client.size();) {  // bounded: each pass consumes >= 1 byte
        const auto c = static_cast<unsigned char>(client[i]);
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + static_cast<size_t>(len) > client.size())
            return prefix + "not valid UTF-8 at byte " + std::to_string(i);
        uint32_t cp = len == 1 ? c : c & (0x7f >> len);
        for (int k = 1; k < len; ++k) {
            const auto cc = static_cast<unsigned char>(client[i + static_cast<size_t>(k)]);
            if ((cc >> 6) != 2) return prefix + "not valid UTF-8 at byte " + std::to_string(i);
            cp = (cp << 6) | (cc & 0x3f);
        }
        // Strict UTF-8, as Python decodes: an overlong form ("\xc0\xaf" for
        // '/'), a surrogate or a code point past U+10FFFF is not a character.
        static constexpr uint32_t kShortest[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < kShortest[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return prefix + "not valid UTF-8 at byte " + std::to_string(i);
        cps.push_back(cp);
        i += static_cast<size_t>(len);
    }
    // Some code point is >= 0x80: a byte >= 0x80 began a valid sequence.
    size_t start = 0;
    while (cps[start] < 0x80) ++start;
    size_t end = start;
    while (end < cps.size() && cps[end] >= 0x80) ++end;
    char buf[160];
    if (end - start == 1) {
        const uint32_t cp = cps[start];
        char esc[16];
        if (cp < 0x100) std::snprintf(esc, sizeof esc, "\\x%02x", cp);
        else if (cp < 0x10000) std::snprintf(esc, sizeof esc, "\\u%04x", cp);
        else std::snprintf(esc, sizeof esc, "\\U%08x", cp);
        std::snprintf(buf, sizeof buf, "'ascii' codec can't encode character '%s' in position %zu: ordinal not in range(128)",
                      esc, start);
    } else {
        std::snprintf(buf, sizeof buf, "'ascii' codec can't encode characters in position %zu-%zu: ordinal not in range(128)",
                      start, end - 1);
    }
    return prefix + buf;
}

}  // namespace souk::server
