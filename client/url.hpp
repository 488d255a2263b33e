// souk URLs and paths: parsing bzr:// and bzr+ssh:// URLs, percent-encoding of
// VFS paths (docs/protocol/paths.md#two-path-styles: the server
// percent-decodes VFS paths once, so the client sends every path escaped), and
// joining a caller's relative path onto the URL's path. Pure functions, no
// I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/error.hpp"

namespace souk::client {

inline constexpr uint16_t kDefaultTcpPort = 4155;  // IANA port of bzr (docs/protocol/README.md#over-tcp)

// Bzr: TCP; BzrSsh: an ssh child; BzrHttp(s): smart requests POSTed to
// <path>/.bzr/smart (docs/protocol/http.md); Http(s): plain GETs of files (reads only,
// any web server).
enum class Scheme : uint8_t { Bzr, BzrSsh, BzrHttp, BzrHttps, Http, Https };

struct Url {
    Scheme scheme = Scheme::Bzr;
    std::string user;               // bzr+ssh only; percent-decoded; "" = none
    std::string host;               // a name or an IP literal, without [brackets]
    std::optional<uint16_t> port;   // as written in the URL
    std::string path = "/";         // percent-decoded, absolute, normalised ("/" at least)

    // The TCP port to connect to: the URL's, else 4155 (bzr://), 80 or 443.
    uint16_t tcp_port() const {
        if (port) return *port;
        if (scheme == Scheme::BzrHttp || scheme == Scheme::Http) return 80;
        if (scheme == Scheme::BzrHttps || scheme == Scheme::Https) return 443;
        return kDefaultTcpPort;
    }
    // Whether requests travel over HTTP(S), and whether it is the smart
    // protocol (bzr+http) or plain GETs (http).
    bool is_http() const { return scheme >= Scheme::BzrHttp; }
    bool is_plain_http() const { return scheme == Scheme::Http || scheme == Scheme::Https; }
    bool is_tls() const { return scheme == Scheme::BzrHttps || scheme == Scheme::Https; }
    // Canonical text ("bzr+ssh://user@[::1]:22/a%20b"), for messages.
    std::string to_string() const;
    bool same_server(const Url& o) const {
        return scheme == o.scheme && user == o.user && host == o.host && port == o.port;
    }
};

// Parse `bzr://host[:port]/path`, `bzr+ssh://[user@]host[:port]/path`,
// `bzr+http(s)://host[:port]/path` or `http(s)://host[:port]/path`.
// IPv6 literals are written in brackets (`bzr://[::1]:4155/x`). The path is
// percent-decoded and normalised ('.' and '..' resolved; going above '/' is
// an error). Fails with InvalidArgument and a message naming the problem.
Result<Url> parse_url(std::string_view text);

// Percent-encode a path for the wire: everything but A-Z a-z 0-9 and
// "-._~/" becomes %XX (what Breezy's urlutils.escape does).
std::string escape_path(std::string_view path);

// Percent-decode. Fails (nullopt) on a malformed escape ("%4", "%zz").
std::optional<std::string> unescape(std::string_view s);
// Percent-decode leniently (a malformed escape stays as written): for names
// from list_dir / iter_files_recursive.
std::string unescape_lenient(std::string_view s);

// Resolve `rel` against the absolute directory-or-file path `base`:
// "" or "." is `base` itself; a leading '/' makes `rel` absolute on the
// server; '.' and '..' are resolved. Returns a normalised absolute path
// without a trailing '/' (except "/"), or nullopt if it would go above "/"
// or contains a NUL byte.
std::optional<std::string> join_path(std::string_view base, std::string_view rel);

// The relative path from the absolute normalised path `from` to the
// absolute normalised path `to` ("." when equal, "../x" and so on).
std::string relative_path(std::string_view from, std::string_view to);

}  // namespace souk::client
