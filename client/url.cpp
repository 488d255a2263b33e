#include "client/url.hpp"

#include <charconv>

namespace souk::client {
namespace {

bool is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return c - 'A' + 10;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

Error bad(std::string_view text, std::string why) {
    return make_error(ErrorKind::InvalidArgument, "invalid URL '" + std::string(text) + "': " + std::move(why));
}

// IPv6 literal body (inside the brackets): hex digits, ':' and '.', with an
// optional %zone (RFC 6874 writes it %25zone; accept both).
bool valid_ipv6(std::string_view h) {
    size_t pct = h.find('%');
    std::string_view addr = h.substr(0, pct);
    if (addr.size() < 2 || addr.find(':') == std::string_view::npos) return false;
    for (char c : addr)
        if (!is_hex(c) && c != ':' && c != '.') return false;
    if (pct != std::string_view::npos) {
        std::string_view zone = h.substr(pct + 1);
        if (zone.substr(0, 2) == "25") zone.remove_prefix(2);
        if (zone.empty()) return false;
        for (char c : zone)
            if (!is_alnum(c) && c != '-' && c != '_' && c != '.') return false;
    }
    return true;
}

bool valid_hostname(std::string_view h) {
    if (h.empty() || h[0] == '-' || h[0] == '.') return false;
    for (char c : h)
        if (!is_alnum(c) && c != '-' && c != '.' && c != '_') return false;
    return true;
}

}  // namespace

std::string escape_path(std::string_view path) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(path.size());
    for (char ch : path) {
        auto c = static_cast<unsigned char>(ch);
        if (is_alnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '/') {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

std::optional<std::string> unescape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return std::nullopt;
        out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
        i += 2;
    }
    return out;
}

std::string unescape_lenient(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::optional<std::string> join_path(std::string_view base, std::string_view rel) {
    if (base.find('\0') != std::string_view::npos || rel.find('\0') != std::string_view::npos) return std::nullopt;
    std::vector<std::string_view> segs;
    auto push_all = [&](std::string_view p) {
        size_t start = 0;
        while (start <= p.size()) {
            size_t slash = p.find('/', start);
            std::string_view seg = p.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
            if (seg == "..") {
                if (segs.empty()) return false;
                segs.pop_back();
            } else if (!seg.empty() && seg != ".") {
                segs.push_back(seg);
            }
            if (slash == std::string_view::npos) break;
            start = slash + 1;
        }
        return true;
    };
    if (rel.empty() || rel[0] != '/') {
        if (!push_all(base)) return std::nullopt;
    }
    if (!push_all(rel)) return std::nullopt;
    std::string out;
    for (auto s : segs) {
        out += '/';
        out += s;
    }
    if (out.empty()) out.push_back('/');
    return out;
}

std::string relative_path(std::string_view from, std::string_view to) {
    auto segments = [](std::string_view p) {
        std::vector<std::string_view> out;
        size_t start = 0;
        while (start < p.size()) {  // bounded: start grows every pass
            size_t slash = p.find('/', start);
            if (slash == std::string_view::npos) slash = p.size();
            if (slash > start) out.push_back(p.substr(start, slash - start));
            start = slash + 1;
        }
        return out;
    };
    auto a = segments(from), b = segments(to);
    size_t common = 0;
    while (common < a.size() && common < b.size() && a[common] == b[common]) ++common;
    std::string out;
    for (size_t i = common; i < a.size(); ++i) out += out.empty() ? ".." : "/..";
    for (size_t i = common; i < b.size(); ++i) {
        if (!out.empty()) out += '/';
        out += b[i];
    }
    return out.empty() ? "." : out;
}

std::string Url::to_string() const {
    static const char* const names[] = {"bzr://", "bzr+ssh://", "bzr+http://", "bzr+https://", "http://", "https://"};
    std::string out = names[static_cast<int>(scheme)];
    if (!user.empty()) {
        out += escape_path(user);
        out += '@';
    }
    // (appends piecewise: GCC 12 -O3 misreports "x" + str with -Wrestrict)
    bool v6 = host.find(':') != std::string::npos;
    if (v6) out += '[';
    out += host;
    if (v6) out += ']';
    if (port) {
        out += ':';
        out += std::to_string(*port);
    }
    out += escape_path(path);
    return out;
}

Result<Url> parse_url(std::string_view text) {
    for (char c : text) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) return bad(text, "contains a control character");
    }
    size_t sep = text.find("://");
    if (sep == std::string_view::npos)
        return bad(text, "expected bzr://HOST[:PORT]/PATH, bzr+ssh://[USER@]HOST[:PORT]/PATH, "
                         "bzr+http(s)://HOST[:PORT]/PATH or http(s)://HOST[:PORT]/PATH");
    Url url;
    std::string scheme = lower(text.substr(0, sep));
    if (scheme == "bzr") url.scheme = Scheme::Bzr;
    else if (scheme == "bzr+ssh") url.scheme = Scheme::BzrSsh;
    else if (scheme == "bzr+http") url.scheme = Scheme::BzrHttp;
    else if (scheme == "bzr+https") url.scheme = Scheme::BzrHttps;
    else if (scheme == "http") url.scheme = Scheme::Http;
    else if (scheme == "https") url.scheme = Scheme::Https;
    else
        return bad(text, "unsupported scheme '" + std::string(text.substr(0, sep)) +
                             "' (use bzr://, bzr+ssh://, bzr+http(s):// or http(s)://)");

    std::string_view rest = text.substr(sep + 3);
    size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
    if (rest.find_first_of("?#") != std::string_view::npos)
        return bad(text, "'?' and '#' are not allowed (write them as %3F and %23 in file names)");

    size_t at = authority.rfind('@');
    if (at != std::string_view::npos) {
        if (url.scheme != Scheme::BzrSsh) return bad(text, "only bzr+ssh:// URLs take a user name");
        std::string_view userinfo = authority.substr(0, at);
        if (userinfo.find(':') != std::string_view::npos)
            return bad(text, "passwords in URLs are not supported (use ssh keys or an ssh agent)");
        auto user = unescape(userinfo);
        if (!user) return bad(text, "malformed %-escape in the user name");
        if (user->empty()) return bad(text, "empty user name before '@'");
        if ((*user)[0] == '-') return bad(text, "a user name may not start with '-'");
        for (char c : *user)
            if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
                return bad(text, "the user name contains a space or a control character");
        url.user = std::move(*user);
        authority = authority.substr(at + 1);
    }

    std::string_view host, port_text;
    bool has_port = false;
    if (!authority.empty() && authority[0] == '[') {
        size_t close = authority.find(']');
        if (close == std::string_view::npos) return bad(text, "missing ']' after the IPv6 address");
        host = authority.substr(1, close - 1);
        if (!valid_ipv6(host)) return bad(text, "'" + std::string(host) + "' is not an IPv6 address");
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') return bad(text, "unexpected text after ']'");
            has_port = true;
            port_text = after.substr(1);
        }
    } else {
        size_t colon = authority.find(':');
        host = authority.substr(0, colon);
        if (colon != std::string_view::npos) {
            has_port = true;
            port_text = authority.substr(colon + 1);
        }
        if (host.empty()) return bad(text, "missing host name");
        if (!valid_hostname(host)) {
            if (host.find(':') != std::string_view::npos || port_text.find(':') != std::string_view::npos)
                return bad(text, "write IPv6 addresses in brackets, e.g. bzr://[::1]/path");
            return bad(text, "'" + std::string(host) + "' is not a valid host name");
        }
    }
    if (has_port) {
        if (port_text.empty()) return bad(text, "empty port after ':'");
        unsigned value = 0;
        bool digits = port_text.size() <= 5;
        for (char c : port_text) digits = digits && c >= '0' && c <= '9';
        auto r = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
        if (!digits || r.ec != std::errc() || value == 0 || value > 65535)
            return bad(text, "port '" + std::string(port_text) + "' is not a number from 1 to 65535");
        url.port = static_cast<uint16_t>(value);
    }
    url.host = std::string(host);
    if (size_t z = url.host.find("%25"); z != std::string::npos) url.host.erase(z + 1, 2);  // RFC 6874 zone

    auto decoded = unescape(path);
    if (!decoded) return bad(text, "malformed %-escape in the path");
    auto norm = join_path("/", *decoded);
    if (!norm) return bad(text, "the path goes above the root or contains a NUL byte");
    url.path = std::move(*norm);
    return url;
}

}  // namespace souk::client
