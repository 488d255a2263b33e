#include "server/carriers/web.hpp"
#include "server/base/strings.hpp"

#include <errno.h>
#include <time.h>
#include <zstd.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "protocol/errors.hpp"
#include "protocol/message.hpp"
#include "server/base/log.hpp"
#include "server/request/access.hpp"
#include "server/store/paths.hpp"
#include "server/store/shm_stats.hpp"

namespace souk::server {
namespace {

constexpr std::string_view kSmartSuffix = "/.bzr/smart";
constexpr const char* kOctets = "application/octet-stream";

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Split on `sep`, calling f(piece) for each (bounded by the input length).
template <typename F>
void split(std::string_view s, char sep, F&& f) {
    for (;;) {
        size_t at = s.find(sep);
        f(s.substr(0, at));
        if (at == std::string_view::npos) return;
        s.remove_prefix(at + 1);
    }
}

void text(WebResponse& out, int status, std::string_view msg) {
    out.status = status;
    out.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    out.body.assign(msg);
    out.body += '\n';
    out.pieces.clear();
    out.file = OpenFile{};
}

// Replace `body` by its zstd frame when the client accepts zstd and it
// saves bytes. Returns true if it did.
bool maybe_zstd(const ServerContext& ctx, const WebRequest& req, std::string& body) {
    if (body.size() < 64 || body.size() > static_cast<uint64_t>(ctx.params.zstd_max_bytes)) return false;
    if (!accepts_coding(req.header("Accept-Encoding"), "zstd")) return false;
    std::string z(ZSTD_compressBound(body.size()), '\0');
    size_t n = ZSTD_compress(z.data(), z.size(), body.data(), body.size(), static_cast<int>(ctx.params.zstd_level));
    if (ZSTD_isError(n) || n >= body.size()) return false;
    z.resize(n);
    body.swap(z);
    return true;
}

// Whether a file larger than a probe is worth a trial compression: its
// first kZstdProbe bytes must shrink by an eighth at zstd's fastest level.
// A repository's packs and indices (zlib and groupcompress already) do
// not, and are then sent as they are (with sendfile) instead of being read
// whole and compressed on every GET (15 ms for 1 MiB here, against 0.25 ms
// sent).
constexpr size_t kZstdProbe = 64 * 1024;

bool worth_zstd(const ServerContext& ctx, OpenFile& f, uint64_t size) {
    if (size <= kZstdProbe) return true;  // the trial compression decides
    std::string sample(kZstdProbe, '\0');
    if (ctx.store->read_full(f, sample.data(), kZstdProbe, 0) != static_cast<ssize_t>(kZstdProbe)) return false;
    std::string z(ZSTD_compressBound(kZstdProbe), '\0');
    const size_t n = ZSTD_compress(z.data(), z.size(), sample.data(), sample.size(), 1);
    return !ZSTD_isError(n) && n < kZstdProbe - kZstdProbe / 8;
}

std::string hex(uint64_t v) {
    char b[17];
    std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v));
    return b;
}

std::string range_text(uint64_t off, uint64_t len, uint64_t size) {
    return "bytes " + std::to_string(off) + "-" + std::to_string(off + len - 1) + "/" + std::to_string(size);
}

// A boundary that cannot be guessed from the content: a process-wide
// counter mixed with the clock, as 20 decimal digits (nginx uses digits too).
std::string make_boundary() {
    static std::atomic<uint64_t> counter{0};
    uint64_t v = counter.fetch_add(1, std::memory_order_relaxed) * 0x9E3779B97F4A7C15ull ^
                 static_cast<uint64_t>(::time(nullptr)) * 0xBF58476D1CE4E5B9ull;
    char b[24];
    std::snprintf(b, sizeof b, "%020llu", static_cast<unsigned long long>(v));
    return b;
}

// If-None-Match: "*" or a list of entity tags, compared weakly.
bool none_match_hits(std::string_view list, const std::string& etag, const std::string& etag_z) {
    bool hit = false;
    split(list, ',', [&](std::string_view t) {
        t = trim(t);
        if (t == "*") hit = true;
        if (t.substr(0, 2) == "W/") t.remove_prefix(2);
        if (t == etag || t == etag_z) hit = true;
    });
    return hit;
}

void serve_file(const ServerContext& server, const WebRequest& req, std::string_view path, WebResponse& out) {
    auto rel = resolve_path(path, false, PathContext{server.root_realpath, {}, {}});
    if (!rel) return text(out, 404, "not found");
    // The root it lies under (docs/configuration.md#roots); none: missing.
    const ServerContext& ctx = select_root(server, *rel);
    if (!strip_mount(ctx.mount, *rel)) return text(out, 404, "not found");
    if (!exported(ctx, *rel)) {  // invisible: the answer a missing file gets (docs/access-control.md)
        SOUK_LOG(Info, "%s /%s hidden: not exported", printable(req.method).c_str(), printable(*rel).c_str());
        return text(out, 404, "not found");
    }
    OpenFile f;
    if (int e = ctx.store->open_read(*rel, f)) {
        // The one errno -> error map, and the error table's HTTP status.
        const proto::Err err = proto::err_for_errno(e, true);
        const char* msg = "cannot read the file";
        if (err == proto::Err::NoSuchFile) msg = "not found";
        else if (err == proto::Err::ReadError) msg = "forbidden: not a regular file (no listings)";
        else if (err == proto::Err::PermissionDenied)
            msg = e == EACCES || e == EPERM ? "forbidden: permission denied" : "forbidden: symbolic links are not followed";
        else SOUK_LOG(Warn, "http: open %s: %s", rel->c_str(), std::strerror(e));
        return text(out, proto::error_info(err).http_status, msg);
    }
    const uint64_t size = f.info.size;
    const int64_t mtime = f.info.mtime_ns / 1000000000;
    const std::string tag = hex(f.info.ino) + "-" + hex(size) + "-" + hex(static_cast<uint64_t>(f.info.mtime_ns));
    const std::string etag = "\"" + tag + "\"", etag_z = "\"" + tag + "-zstd\"";
    const std::string last_modified = format_http_date(mtime);

    // Conditional requests (RFC 9110 13.2.2): If-None-Match wins over
    // If-Modified-Since.
    std::string inm = req.header("If-None-Match");
    bool not_modified = false;
    if (!inm.empty()) {
        not_modified = none_match_hits(inm, etag, etag_z);
    } else if (std::string ims = req.header("If-Modified-Since"); !ims.empty()) {
        int64_t t = parse_http_date(ims);
        not_modified = t >= 0 && mtime <= t;
    }
    if (not_modified) {
        out.status = 304;
        out.headers.emplace_back("ETag", etag);
        out.headers.emplace_back("Last-Modified", last_modified);
        return;
    }
    out.headers.emplace_back("Accept-Ranges", "bytes");
    out.headers.emplace_back("Last-Modified", last_modified);

    std::string range = req.header("Range");
    if (!range.empty()) {
        std::string if_range = req.header("If-Range");
        if (!if_range.empty()) {
            bool same = (if_range[0] == '"') ? if_range == etag : parse_http_date(if_range) == mtime;
            if (!same) range.clear();  // changed since: send the whole new file
        }
    }
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    int r = range.empty() ? 0 : parse_range_header(range, size, static_cast<size_t>(ctx.params.http_max_ranges), ranges);
    if (r == 416) {
        text(out, 416, "range not satisfiable");
        out.headers.emplace_back("Content-Range", "bytes */" + std::to_string(size));
        return;
    }
    if (r == 1) {
        uint64_t total = 0;
        for (const auto& x : ranges) total += x.second;
        // More bytes than the file (overlapping ranges): the whole file,
        // as nginx does; no amplification.
        if (total > size) r = 0;
    }
    out.headers.emplace_back("ETag", etag);
    if (r == 1 && ranges.size() == 1) {
        out.status = 206;
        out.headers.emplace_back("Content-Type", kOctets);
        out.headers.emplace_back("Content-Range", range_text(ranges[0].first, ranges[0].second, size));
        out.pieces.push_back({{}, ranges[0].first, ranges[0].second});
        out.file = std::move(f);
        out.store = ctx.store;
        return;
    }
    if (r == 1) {
        std::string boundary = make_boundary();
        out.status = 206;
        out.headers.emplace_back("Content-Type", "multipart/byteranges; boundary=" + boundary);
        for (const auto& [off, len] : ranges) {
            out.pieces.push_back({"\r\n--" + boundary + "\r\nContent-Type: " + kOctets +
                                      "\r\nContent-Range: " + range_text(off, len, size) + "\r\n\r\n",
                                  off, len});
        }
        out.pieces.push_back({"\r\n--" + boundary + "--\r\n", 0, 0});
        out.file = std::move(f);
        out.store = ctx.store;
        return;
    }
    out.status = 200;
    out.headers.emplace_back("Content-Type", kOctets);
    if (ctx.params.zstd_max_bytes > 0) out.headers.emplace_back("Vary", "Accept-Encoding");
    if (size > 0 && size <= static_cast<uint64_t>(ctx.params.zstd_max_bytes) && req.method != "HEAD" &&
        accepts_coding(req.header("Accept-Encoding"), "zstd") && worth_zstd(ctx, f, size)) {
        std::string data(size, '\0');
        const ssize_t got = ctx.store->read_full(f, data.data(), size, 0);
        if (got == static_cast<ssize_t>(size) && maybe_zstd(ctx, req, data)) {
            out.body = std::move(data);
            out.headers.emplace_back("Content-Encoding", "zstd");
            for (auto& h : out.headers)
                if (h.first == "ETag") h.second = etag_z;
            return;
        }
    }
    out.pieces.push_back({{}, 0, size});
    out.file = std::move(f);
    out.store = ctx.store;
}

}  // namespace

uint64_t WebResponse::content_length() const {
    if (pieces.empty()) return body.size();
    uint64_t n = 0;
    for (const auto& p : pieces) n += p.text.size() + p.length;
    return n;
}

const std::string* WebResponse::find_header(std::string_view name) const {
    for (const auto& h : headers)
        if (iequals(h.first, name)) return &h.second;
    return nullptr;
}

const char* status_text(int status) {
    switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

bool accepts_coding(std::string_view accept_encoding, std::string_view coding) {
    bool yes = false;
    split(accept_encoding, ',', [&](std::string_view item) {
        std::string_view name = trim(item.substr(0, item.find(';')));
        if (!iequals(name, coding)) return;
        bool q_zero = false;
        if (size_t semi = item.find(';'); semi != std::string_view::npos) {
            split(item.substr(semi + 1), ';', [&](std::string_view param) {
                param = trim(param);
                if (param.size() >= 2 && lower(param[0]) == 'q' && param[1] == '=') {
                    std::string_view q = trim(param.substr(2));
                    q_zero = !q.empty() && q.find_first_not_of("0.") == std::string_view::npos;
                }
            });
        }
        yes = !q_zero;
    });
    return yes;
}

namespace {
const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

int month_index(const char* m) {
    for (int i = 0; i < 12; ++i)
        if (std::strncmp(m, kMonths[i], 3) == 0 && m[3] == '\0') return i;
    return -1;
}
}  // namespace

std::string format_http_date(int64_t t) {
    time_t tt = static_cast<time_t>(t);
    struct tm tm{};
    if (!::gmtime_r(&tt, &tm)) return {};
    char b[40];
    std::snprintf(b, sizeof b, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7], tm.tm_mday,
                  kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return b;
}

int64_t parse_http_date(std::string_view s) {
    if (s.size() > 64) return -1;
    std::string z(s);
    char wd[16] = {}, mon[8] = {}, tz[8] = {};
    int d = 0, y = 0, hh = 0, mm = 0, ss = 0, used = 0;
    struct tm tm{};
    if (std::sscanf(z.c_str(), "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d %3s%n", wd, &d, mon, &y, &hh, &mm, &ss, tz,
                    &used) == 8 &&
        std::strcmp(tz, "GMT") == 0) {
    } else if (std::sscanf(z.c_str(), "%15[A-Za-z], %2d-%3[A-Za-z]-%2d %2d:%2d:%2d %3s%n", wd, &d, mon, &y, &hh, &mm,
                           &ss, tz, &used) == 8 &&
               std::strcmp(tz, "GMT") == 0) {
        y += y < 70 ? 2000 : 1900;
    } else if (std::sscanf(z.c_str(), "%3[A-Za-z] %3[A-Za-z] %2d %2d:%2d:%2d %4d%n", wd, mon, &d, &hh, &mm, &ss, &y,
                           &used) == 7) {
    } else {
        return -1;
    }
    if (static_cast<size_t>(used) != z.size()) return -1;
    int m = month_index(mon);
    if (m < 0 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 || y < 1970 || y > 9999) return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = m;
    tm.tm_mday = d;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    time_t t = ::timegm(&tm);
    return t < 0 ? -1 : static_cast<int64_t>(t);
}

int parse_range_header(std::string_view value, uint64_t size, size_t max_ranges,
                       std::vector<std::pair<uint64_t, uint64_t>>& out) {
    out.clear();
    value = trim(value);
    if (value.size() < 6 || !iequals(value.substr(0, 6), "bytes=")) return 416;  // no other unit exists
    value.remove_prefix(6);
    size_t count = 0;
    bool bad = false, too_many = false, whole = false;
    split(value, ',', [&](std::string_view spec) {
        if (bad || too_many || whole) return;
        spec = trim(spec);
        size_t dash = spec.find('-');
        if (dash == std::string_view::npos) {
            bad = true;
            return;
        }
        if (++count > max_ranges) {
            too_many = true;
            return;
        }
        std::string_view a = spec.substr(0, dash), b = spec.substr(dash + 1);
        uint64_t first = 0, last = 0;
        if (a.empty()) {  // suffix: the last `b` bytes
            if (!parse_u64(b, last)) {
                bad = true;
                return;
            }
            if (size == 0) whole = true;      // an empty file: serve it whole (as nginx)
            if (last == 0 || size == 0) return;  // unsatisfiable
            uint64_t n = last < size ? last : size;
            out.emplace_back(size - n, n);
            return;
        }
        if (!parse_u64(a, first) || (!b.empty() && !parse_u64(b, last)) || (!b.empty() && last < first)) {
            bad = true;
            return;
        }
        if (size == 0 && first == 0) whole = true;  // as nginx
        if (first >= size) return;  // unsatisfiable
        if (b.empty() || last >= size) last = size - 1;
        out.emplace_back(first, last - first + 1);
    });
    if (bad) {
        out.clear();
        return 416;
    }
    if (too_many || whole) {
        out.clear();
        return 0;
    }
    return out.empty() ? 416 : 1;
}

SmartExchange::SmartExchange(const ServerContext& ctx, const log::Origin& origin, const WebRequest& req,
                             std::string base)
    : ctx_(ctx),
      req_(req),
      base_(std::move(base)),
      peer_(origin.peer ? origin.peer : ""),
      user_(origin.user ? origin.user : ""),
      origin_{origin.carrier, peer_.c_str(), user_.c_str()},
      pipe_(ctx, origin_, base_) {}

void log_web_access(const log::Origin& origin, std::string_view method, std::string_view path, int status,
                    uint64_t bytes_in, uint64_t bytes_out, uint64_t duration_us) {
    if (!log::access_enabled()) return;
    char result[16] = "ok";
    if (status >= 400) std::snprintf(result, sizeof result, "http%d", status);
    log::Access a;
    a.origin = &origin;
    a.verb = method;
    a.path = path;
    a.result = result;
    a.bytes_in = bytes_in;
    a.bytes_out = bytes_out;
    a.duration_us = duration_us;
    log::access(a);
}

void SmartExchange::body(std::string_view chunk) {
    // One request per exchange: bytes after it are ignored.
    if (!ready_ && pipe_.feed(chunk) == Pipeline::Step::Ready) ready_ = true;
}

void SmartExchange::end() {
    if (!ready_) {
        pipe_.incomplete();
        ready_ = true;
    }
    body_size_ = pipe_.settle_reply(kInlineReply);
    const uint64_t n = body_size_;
    zstd_ = n >= 64 && n <= static_cast<uint64_t>(ctx_.params.zstd_max_bytes) &&
            accepts_coding(req_.header("Accept-Encoding"), "zstd");
    // File ranges (get, readv) are probed as a GET's file is: a pack or an
    // index does not shrink, and is sent as it is (with sendfile when large).
    if (zstd_ && pipe_.reply().body_kind == Reply::Body::File) {
        Reply& r = pipe_.reply();
        zstd_ = worth_zstd(pipe_.serving(), r.file, r.file.info.size);
    }
}

bool SmartExchange::zstd() const { return zstd_; }

uint64_t SmartExchange::length(bool direct) const { return zstd_ ? UINT64_MAX : pipe_.reply_length(direct); }

bool SmartExchange::small() const { return body_size_ <= kInlineReply; }

bool SmartExchange::write(io::Sink& out) {
    if (!zstd()) return pipe_.write_reply(out);
    io::ZstdSink z(out, static_cast<int>(ctx_.params.zstd_level));
    return pipe_.write_reply(z);
}

void handle_web(const ServerContext& ctx, const WebOptions& opts, const WebRequest& req, WebResponse& out) {
    out = WebResponse{};
    out.head = req.method == "HEAD";
    std::string_view path = req.path.empty() ? std::string_view("/") : req.path;
    if (path.find('\0') != std::string_view::npos) return text(out, 400, "bad request: NUL in the path");
    if (path[0] != '/') return text(out, 400, "bad request: the path must start with '/'");
    if (!opts.prefix.empty()) {
        std::string_view p = opts.prefix;
        while (!p.empty() && p.back() == '/') p.remove_suffix(1);
        if (path.substr(0, p.size()) != p || (path.size() > p.size() && path[p.size()] != '/'))
            return text(out, 404, "not found: outside the served prefix");
        path.remove_prefix(p.size());
        if (path.empty()) path = "/";
    }
    if (!opts.stats_path.empty() && path == opts.stats_path && (req.method == "GET" || req.method == "HEAD")) {
        std::string accept = req.header ? req.header("Accept") : std::string();
        bool prom = accept.find("text/plain") != std::string::npos || accept.find("openmetrics") != std::string::npos;
        std::string note;
        out.body = stats_report(ctx.root_realpath, prom, &note);
        out.headers.emplace_back("Content-Type", prom ? "text/plain; version=0.0.4" : "application/json");
        out.headers.emplace_back("Cache-Control", "no-store");
        return;
    }
    bool smart = path.size() >= kSmartSuffix.size() && path.substr(path.size() - kSmartSuffix.size()) == kSmartSuffix;
    if (smart) {
        if (req.method != "POST") {
            text(out, 405, "method not allowed: the smart endpoint takes POST");
            out.headers.emplace_back("Allow", "POST");
            return;
        }
        // Relative client paths start at the URL's directory; the jail
        // stays the served root (docs/protocol/http.md).
        auto base = resolve_path(path.substr(0, path.size() - kSmartSuffix.size()), false,
                                 PathContext{ctx.root_realpath, {}, {}});
        if (!base) return text(out, 404, "not found: the path is outside the served root");
        out.smart = true;
        out.smart_base = std::move(*base);
        out.headers.emplace_back("Content-Type", kOctets);
        out.headers.emplace_back("Cache-Control", "no-store");
        return;
    }
    if (req.method == "GET" || req.method == "HEAD") return serve_file(ctx, req, path, out);
    text(out, 405, "method not allowed: files take GET and HEAD; the smart endpoint is <path>/.bzr/smart");
    out.headers.emplace_back("Allow", "GET, HEAD");
}

}  // namespace souk::server
