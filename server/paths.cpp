#include "server/paths.hpp"

#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

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
bool relative_inside(const std::string& home, const std::string& root, std::string& rel) {
    if (home.empty() || root.empty()) return false;
    if (root == "/") {
        rel = home.substr(1);
        return true;
    }
    if (home == root) {
        rel.clear();
        return true;
    }
    if (home.size() > root.size() && home.compare(0, root.size(), root) == 0 && home[root.size()] == '/') {
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

std::string join(std::string_view dir, std::string_view name) {
    if (dir.empty()) return std::string(name);
    std::string out(dir);
    out += '/';
    out += name;
    return out;
}

Result<std::string> resolve_path(std::string_view client, bool vfs, const PathContext& ctx) {
    std::string raw = vfs ? percent_decode(client) : std::string(client);
    if (raw.find('\0') != std::string::npos) return make_error("path contains a NUL byte");
    std::vector<std::string> given;
    split_into(raw, given);
    // '~' or '~user' as the first segment of the path as received: expand
    // to that home directory when it lies inside the root (spec 5.3).
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

}  // namespace souk::server
