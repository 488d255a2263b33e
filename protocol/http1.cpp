#include "protocol/http1.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>

namespace souk::proto::http1 {
namespace {

constexpr unsigned kMaxChunkExt = 4096;       // bytes of one chunk-size line's extensions
constexpr unsigned kMaxTrailerLine = 8192;    // bytes of one trailer line
constexpr unsigned kMaxSizeDigits = 15;       // a chunk of at most 2^60 - 1 bytes

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

// A token character (HTTP's tchar).
bool is_tchar(char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '.':
    case '^': case '_': case '`': case '|': case '~': return true;
    default: return false;
    }
}

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!is_tchar(c)) return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// The next line of `s` (without its CRLF or LF), advancing `s` past it.
std::string_view take_line(std::string_view& s) {
    size_t nl = s.find('\n');
    std::string_view line = s.substr(0, nl);
    s.remove_prefix(nl == std::string_view::npos ? s.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
}

// Whether a comma-separated header value lists `token`.
bool lists(std::string_view value, std::string_view token) {
    while (!value.empty()) {
        size_t comma = value.find(',');
        if (iequals(trim(value.substr(0, comma)), token)) return true;
        value.remove_prefix(comma == std::string_view::npos ? value.size() : comma + 1);
    }
    return false;
}

int bad(const char** why, const char* text, int status = 400) {
    if (why) *why = text;
    return status;
}

}  // namespace

size_t head_length(std::string_view buf) {
    size_t pos = 0;
    bool seen = false;  // a non-empty line: empty lines before the request line are skipped
    for (;;) {  // bounded: each pass consumes a line of `buf`
        size_t nl = buf.find('\n', pos);
        if (nl == std::string_view::npos) return 0;
        bool empty = nl == pos || (nl == pos + 1 && buf[pos] == '\r');
        pos = nl + 1;
        if (!empty) seen = true;
        else if (seen) return pos;
    }
}

std::string_view Fields::header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return v;
    return {};
}

namespace {

// The header lines of `rest` up to the blank line, into `out` (framing and
// keep-alive); `on_field` sees each (name, value) and may refuse it with a
// status. Returns 0 or the status to answer.
template <class OnField>
int parse_fields(std::string_view rest, Fields& out, const char** why, OnField on_field) {
    out.headers.clear();
    out.chunked = out.has_length = false;
    out.content_length = 0;
    bool te = false;
    std::string_view connection;
    for (;;) {  // bounded: each pass consumes a line of `rest`
        std::string_view line = take_line(rest);
        if (line.empty()) break;
        if (line[0] == ' ' || line[0] == '\t') return bad(why, "folded header line");
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) return bad(why, "header line without a colon");
        std::string_view name = line.substr(0, colon);
        if (!is_token(name)) return bad(why, "malformed header name");
        std::string_view value = trim(line.substr(colon + 1));
        for (char c : value)
            if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f)
                return bad(why, "control bytes in a header value");
        out.headers.emplace_back(name, value);
        if (iequals(name, "Content-Length")) {
            if (out.has_length) return bad(why, "Content-Length given twice");
            uint64_t v = 0;
            auto r = std::from_chars(value.data(), value.data() + value.size(), v);
            if (value.empty() || r.ec != std::errc() || r.ptr != value.data() + value.size() || value[0] == '+' ||
                v > (uint64_t{1} << 62))
                return bad(why, "malformed Content-Length");
            out.has_length = true;
            out.content_length = v;
        } else if (iequals(name, "Transfer-Encoding")) {
            if (te) return bad(why, "Transfer-Encoding given twice");
            te = true;
            if (!iequals(value, "chunked")) return bad(why, "unsupported Transfer-Encoding", 501);
            out.chunked = true;
        } else if (iequals(name, "Connection")) {
            connection = value;
        } else if (int st = on_field(name, value); st != 0) {
            return st;
        }
    }
    if (out.chunked && out.has_length) return bad(why, "both Content-Length and Transfer-Encoding");
    out.keep_alive = out.minor == 1 ? !lists(connection, "close") : lists(connection, "keep-alive");
    return 0;
}

// "HTTP/1.N" at the start of `s`: N, or -1.
int version_minor(std::string_view s) {
    if (s.size() != 8 || s.substr(0, 7) != "HTTP/1." || s[7] < '0' || s[7] > '9') return -1;
    return s[7] - '0';
}

}  // namespace

int parse_head(std::string_view head, Head& out, const char** why) {
    out.expect_continue = false;
    std::string_view rest = head;
    std::string_view line;
    do line = take_line(rest);
    while (line.empty() && !rest.empty());  // bounded by `head`
    // Request line: method SP request-target SP HTTP-version.
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
        return bad(why, "malformed request line");
    out.method = line.substr(0, sp1);
    out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    if (!is_token(out.method)) return bad(why, "malformed method");
    if (out.target.empty()) return bad(why, "empty request target");
    for (char c : out.target)
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return bad(why, "control bytes in the request target");
    out.minor = version_minor(version);
    if (out.minor < 0) {
        if (version.size() >= 5 && version.substr(0, 5) == "HTTP/") return bad(why, "HTTP version not supported", 505);
        return bad(why, "malformed HTTP version");
    }
    if (out.minor > 1) return bad(why, "HTTP version not supported", 505);
    // Absolute form (a proxy's request): keep the path.
    for (std::string_view scheme : {"http://", "https://"}) {
        if (out.target.size() > scheme.size() && iequals(out.target.substr(0, scheme.size()), scheme)) {
            size_t slash = out.target.find('/', scheme.size());
            out.target = slash == std::string_view::npos ? std::string_view("/") : out.target.substr(slash);
        }
    }
    if (out.target[0] != '/' && !(out.target == "*" && out.method == "OPTIONS"))
        return bad(why, "the request target is not a path");

    bool host = false;
    int st = parse_fields(rest, out, why, [&](std::string_view name, std::string_view value) {
        if (iequals(name, "Host")) {
            if (host) return bad(why, "Host given twice");
            host = true;
        } else if (iequals(name, "Expect")) {
            out.expect_continue = iequals(value, "100-continue");
        }
        return 0;
    });
    if (st != 0) return st;
    if (out.minor == 1 && !host) return bad(why, "HTTP/1.1 request without Host");
    if (out.minor == 0) out.expect_continue = false;  // HTTP/1.0 clients do not wait for it (docs/protocol/http.md#framing)
    return 0;
}

bool parse_response_head(std::string_view head, ResponseHead& out, const char** why) {
    std::string_view rest = head;
    std::string_view line = take_line(rest);
    // Status line: HTTP-version SP 3DIGIT [SP reason-phrase].
    size_t sp = line.find(' ');
    out.minor = version_minor(line.substr(0, sp));
    if (out.minor < 0 || out.minor > 1) {
        bad(why, "not an HTTP/1.x status line");
        return false;
    }
    std::string_view code = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1, 3);
    if (code.size() != 3 || code[0] < '1' || code[0] > '9' || code[1] < '0' || code[1] > '9' || code[2] < '0' ||
        code[2] > '9' || (line.size() > sp + 4 && line[sp + 4] != ' ')) {
        bad(why, "malformed status code");
        return false;
    }
    out.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
    return parse_fields(rest, out, why, [](std::string_view, std::string_view) { return 0; }) == 0;
}

ChunkedDecoder::Status ChunkedDecoder::feed(std::string_view& in, std::vector<std::string_view>& out) {
    while (!in.empty()) {  // bounded: each pass consumes at least one byte, or ends
        char c = in.front();
        switch (state_) {
        case State::Size: {
            int digit = c >= '0' && c <= '9' ? c - '0' : (lower(c) >= 'a' && lower(c) <= 'f') ? lower(c) - 'a' + 10 : -1;
            if (digit >= 0) {
                if (++digits_ > kMaxSizeDigits) return Status::Bad;
                left_ = left_ * 16 + static_cast<uint64_t>(digit);
            } else if (digits_ == 0) {
                return Status::Bad;
            } else if (c == ';' || c == ' ' || c == '\t') {
                state_ = State::Ext;
                trailer_bytes_ = 0;
            } else if (c == '\r') {
                state_ = State::SizeLf;
            } else if (c == '\n') {
                state_ = left_ == 0 ? State::Trailer : State::Data;
                trailer_bytes_ = 0;
                trailer_empty_ = true;
            } else {
                return Status::Bad;
            }
            in.remove_prefix(1);
            break;
        }
        case State::Ext:
            if (c == '\r') state_ = State::SizeLf;
            else if (c == '\n') {
                state_ = left_ == 0 ? State::Trailer : State::Data;
                trailer_bytes_ = 0;
                trailer_empty_ = true;
            } else if (++trailer_bytes_ > kMaxChunkExt) return Status::Bad;
            in.remove_prefix(1);
            break;
        case State::SizeLf:
            if (c != '\n') return Status::Bad;
            state_ = left_ == 0 ? State::Trailer : State::Data;
            trailer_bytes_ = 0;
            trailer_empty_ = true;
            in.remove_prefix(1);
            break;
        case State::Data: {
            size_t n = static_cast<size_t>(std::min<uint64_t>(left_, in.size()));
            out.push_back(in.substr(0, n));
            in.remove_prefix(n);
            left_ -= n;
            decoded_ += n;
            if (left_ == 0) state_ = State::DataCr;
            break;
        }
        case State::DataCr:
            if (c == '\r') state_ = State::DataLf;
            else if (c == '\n') state_ = State::Size, digits_ = 0;
            else return Status::Bad;
            in.remove_prefix(1);
            break;
        case State::DataLf:
            if (c != '\n') return Status::Bad;
            state_ = State::Size;
            digits_ = 0;
            in.remove_prefix(1);
            break;
        case State::Trailer:
            // Trailer fields until an empty line; each dropped.
            if (c == '\r') state_ = State::TrailerLf;
            else if (c == '\n') {
                if (trailer_empty_) state_ = State::Done;
                trailer_bytes_ = 0;
                trailer_empty_ = true;
            } else {
                trailer_empty_ = false;
                if (++trailer_bytes_ > kMaxTrailerLine) return Status::Bad;
            }
            in.remove_prefix(1);
            if (state_ == State::Done) return Status::Done;
            break;
        case State::TrailerLf:
            if (c != '\n') return Status::Bad;
            in.remove_prefix(1);
            if (trailer_empty_) {
                state_ = State::Done;
                return Status::Done;
            }
            state_ = State::Trailer;
            trailer_bytes_ = 0;
            trailer_empty_ = true;
            break;
        case State::Done: return Status::Done;
        }
    }
    return state_ == State::Done ? Status::Done : Status::More;
}

size_t request_length(std::string_view buf, bool* expect_continue) {
    *expect_continue = false;
    const size_t hl = head_length(buf);
    if (hl == 0) return 0;
    thread_local Head head;  // keeps its header vector's capacity: no allocation per look
    if (parse_head(buf.substr(0, hl), head, nullptr) != 0) return SIZE_MAX;
    if (!head.has_body()) return hl;
    std::string_view body = buf.substr(hl);
    if (!head.chunked) {
        if (body.size() >= head.content_length) return hl + static_cast<size_t>(head.content_length);
        *expect_continue = head.expect_continue && body.empty();
        return 0;
    }
    ChunkedDecoder dec;
    thread_local std::vector<std::string_view> sink;
    std::string_view in = body;
    ChunkedDecoder::Status s = ChunkedDecoder::Status::More;
    while (!in.empty() && s == ChunkedDecoder::Status::More) {  // bounded: feed consumes `in`
        sink.clear();
        s = dec.feed(in, sink);
    }
    if (s == ChunkedDecoder::Status::Bad) return SIZE_MAX;
    if (s == ChunkedDecoder::Status::Done) return buf.size() - in.size();
    *expect_continue = head.expect_continue && body.empty();
    return 0;
}

}  // namespace souk::proto::http1
