#include "client/client.hpp"

#include <errno.h>
#include <string.h>

#include <algorithm>
#include <charconv>
#include <utility>

#include "protocol/message.hpp"

namespace souk::client {
namespace {

using proto::Verb;

const proto::VerbInfo* info(Verb v) { return &proto::verb_info(v); }

std::string mode_arg(std::optional<uint32_t> mode) { return mode ? std::to_string(*mode) : std::string(); }

std::string seconds_text(std::chrono::milliseconds ms) {
    auto s = ms.count() / 1000;
    auto rest = ms.count() % 1000;
    return rest == 0 ? std::to_string(s) + " s" : std::to_string(ms.count()) + " ms";
}

// How one attempt ended when it did not produce a reply.
struct AttemptFailure {
    Error error;
    bool reset = false;      // EOF / EPIPE / ECONNRESET: retrying may help
    bool sink_used = false;  // body bytes already went to the caller's sink
};

bool is_reset_errno(int e) { return e == EPIPE || e == ECONNRESET || e == ECONNABORTED || e == ENOTCONN; }

Error unexpected(std::string_view verb, const proto::Args& args, std::string_view path) {
    Error e = make_error(ErrorKind::Protocol,
                         "unexpected response to " + std::string(verb) + ": " + proto::to_display(args), std::string(path));
    return e;
}

bool is_word(const proto::Args& a, size_t i, std::string_view w) { return a.size() > i && a[i].is_bytes() && a[i].bytes == w; }

}  // namespace

// ------------------------------------------------------------- parsing --

std::optional<uint32_t> parse_mode(std::string_view text) {
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'o' || text[1] == 'O')) text.remove_prefix(2);
    if (text.empty() || text.size() > 11) return std::nullopt;
    uint64_t v = 0;
    for (char c : text) {
        if (c < '0' || c > '7') return std::nullopt;
        v = v * 8 + static_cast<uint64_t>(c - '0');
    }
    if (v > 0xffffffffu) return std::nullopt;
    return static_cast<uint32_t>(v);
}

std::optional<uint64_t> parse_decimal(std::string_view text) {
    if (text.empty() || text.size() > 19) return std::nullopt;
    for (char c : text)
        if (c < '0' || c > '9') return std::nullopt;
    uint64_t v = 0;
    auto r = std::from_chars(text.data(), text.data() + text.size(), v);
    if (r.ec != std::errc() || v > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return v;
}

// -------------------------------------------------------------- Client --

Client::Client(Url url, Options opts, Connection conn)
    : url_(std::move(url)), opts_(std::move(opts)), conn_(std::move(conn)), fresh_(true) {
    stats_.connects = 1;
}

Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;  // Connection's destructor closes and reaps

Result<Client> Client::connect(std::string_view text, Options opts) {
    auto url = parse_url(text);
    if (!url) return std::move(url).take_error();
    auto conn = Connection::open(*url, opts);
    if (!conn) return std::move(conn).take_error();
    return Client(std::move(url).value(), std::move(opts), std::move(conn).value());
}

Result<Client> connect(std::string_view url, Options opts) { return Client::connect(url, std::move(opts)); }

void Client::close() { drop(); }

std::string Client::drop() {
    fresh_ = false;
    return conn_.close();
}

Status Client::ensure_connected() {
    if (conn_.valid() && (fresh_ || !conn_.peer_gone())) return {};
    // Closed by the server while idle (idle timeout, restart) or never
    // opened: nothing of the coming request was sent, so reconnecting is
    // safe for every verb.
    drop();
    auto c = Connection::open(url_, opts_);
    if (!c) return std::move(c).take_error();
    conn_ = std::move(c).value();
    fresh_ = true;
    ++stats_.connects;
    return {};
}

Result<HttpCarrier*> Client::plain_http(std::string_view verb) {
    if (auto st = ensure_connected(); !st) return std::move(st).take_error();
    if (!conn_.http())
        return make_error(ErrorKind::Connection, "no HTTP connection for " + url_.to_string());
    (void)verb;
    ++stats_.requests;
    return conn_.http();
}

Error Client::plain_http_status(int status, const std::string& shown) const {
    switch (status) {
    case 404: return make_error(ErrorKind::NoSuchFile, "no such file: " + shown, shown);
    case 401:
    case 403: return make_error(ErrorKind::PermissionDenied, "permission denied (HTTP " + std::to_string(status) + "): " + shown, shown);
    default:
        return make_error(ErrorKind::Protocol, "unexpected HTTP status " + std::to_string(status) + " for " + shown, shown);
    }
}

namespace {
Error read_only_http(std::string_view verb, std::string_view shown) {
    return make_error(ErrorKind::InvalidArgument,
                      "plain http(s):// URLs only read (get, readv, stat, has); use bzr+http(s):// for " +
                          std::string(verb),
                      std::string(shown));
}
}  // namespace

Result<Client::Target> Client::target(std::string_view path) const {
    auto abs = join_path(url_.path, path);
    if (!abs)
        return make_error(ErrorKind::InvalidArgument,
                          "invalid path '" + std::string(path) + "': it goes above '/' or contains a NUL byte",
                          std::string(path));
    Target t;
    // bzr+http: requests are POSTed to <URL path>/.bzr/smart, and paths are
    // relative to the URL path (docs/protocol/http.md#post-to-bzrsmart), so a
    // server under a URL prefix works too. Elsewhere (and for plain http GETs)
    // paths are absolute.
    t.wire = url_.is_http() && !url_.is_plain_http() ? escape_path(relative_path(url_.path, *abs)) : escape_path(*abs);
    t.shown = std::move(*abs);
    return t;
}

Result<std::string> Client::resolve(std::string_view path) const {
    auto t = target(path);
    if (!t) return std::move(t).take_error();
    return std::move(t->shown);
}

Result<Reply> Client::exchange(const proto::VerbInfo* verb, const proto::Args& args,
                               std::optional<std::string_view> body, const BodySink* sink,
                               std::string_view err_path) {
    const std::string verb_name = !args.empty() && args[0].is_bytes() ? args[0].bytes : std::string("?");
    if (url_.is_plain_http()) return read_only_http(verb_name, err_path);
    const bool may_retry = opts_.retry && verb != nullptr && verb->safe_retry;
    const auto idle = std::max(opts_.timeout, std::chrono::milliseconds(1));

    // One attempt: write the request, read the whole response.
    auto attempt = [&](bool& sink_used) -> std::variant<Reply, AttemptFailure> {
        auto fail = [&](ErrorKind k, std::string msg, bool reset) {
            AttemptFailure f;
            f.error = make_error(k, std::move(msg), std::string(err_path));
            f.reset = reset;
            f.sink_used = sink_used;
            return f;
        };
        auto io_fail = [&](bool writing, int err) {
            if (err == ETIMEDOUT)
                return fail(ErrorKind::Timeout,
                            std::string("no progress ") + (writing ? "sending to" : "waiting for") + " the server for " +
                                seconds_text(idle),
                            false);
            if (is_reset_errno(err))
                return fail(ErrorKind::Connection, "connection closed by the server before the response was complete",
                            true);
            return fail(ErrorKind::Connection, std::string(writing ? "write" : "read") + " failed: " + ::strerror(err),
                        false);
        };

        ++stats_.requests;
        fresh_ = false;
        std::string out;
        proto::request::begin_v3(args, out);
        int werr = 0;
        // A request without a body, or with a small one, goes out in one
        // write: brz serve answers a body-less request as soon as its args
        // arrive, and if the final 'e' then arrives together with the next
        // request, brz keeps that request in its push-back buffer and waits
        // on the socket for bytes that never come (Breezy 3.3
        // SmartServerStreamMedium._build_protocol).
        if (!body || body->size() <= (256u << 10)) {
            if (body) proto::request::chunk_v3(*body, out);
            proto::request::end_v3(out);
            if (conn_.write_all(out, idle) < 0) werr = errno;
        } else {
            if (conn_.write_all(out, idle) < 0) werr = errno;
            std::string_view rest = body ? *body : std::string_view();
            // v3 parts hold at most 4 GiB; 1 MiB parts keep the header
            // overhead negligible and let the server stream.
            while (werr == 0 && !rest.empty()) {
                size_t n = std::min<size_t>(rest.size(), 1u << 20);
                const char head_bytes[5] = {'b', static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                                            static_cast<char>(n >> 8), static_cast<char>(n)};
                std::string_view head(head_bytes, 5);  // a v3 'b' part header (docs/protocol/framing.md#v3-messages)
                if (conn_.write_all(head, idle) < 0 || conn_.write_all(rest.substr(0, n), idle) < 0) werr = errno;
                rest.remove_prefix(n);
                if (werr == 0 && opts_.upload_progress) opts_.upload_progress(body->size() - rest.size());
            }
            if (werr == 0) {
                std::string end;
                proto::request::end_v3(end);
                if (conn_.write_all(end, idle) < 0) werr = errno;
            }
        }

        proto::DecoderLimits limits;
        limits.max_body = opts_.max_response_body;
        limits.max_structure = opts_.max_response_args;
        limits.bencode.max_items = std::max<size_t>(limits.bencode.max_items, opts_.max_response_args / 2);
        proto::ResponseDecoder dec(3, false, limits);
        Reply reply;
        bool have_args = false, success = true;
        std::optional<proto::Args> stream_error;
        // After a failed write, a server may still have answered before it
        // closed (e.g. "body too large"): read what is there, briefly.
        const auto read_idle = werr ? std::min(idle, std::chrono::milliseconds(1000)) : idle;
        if (werr && !is_reset_errno(werr)) return io_fail(true, werr);

        char buf[64 * 1024];
        for (;;) {  // bounded: each pass reads >= 1 byte or returns
            ssize_t n = conn_.read_some(buf, sizeof buf, read_idle);
            if (n == 0 || (n < 0 && werr)) {
                if (werr) return io_fail(true, werr);
                return fail(ErrorKind::Connection, "connection closed by the server before the response was complete",
                            true);
            }
            if (n < 0 && conn_.http_error()) {
                const Error& he = *conn_.http_error();
                return fail(he.kind, he.message, is_reset_errno(errno));
            }
            if (n < 0) return io_fail(false, errno);
            std::string_view in(buf, static_cast<size_t>(n));
            for (;;) {
                proto::Event ev = dec.next(in);
                switch (ev.kind) {
                case proto::Ev::NeedMore: break;
                case proto::Ev::ArgsReady:
                    have_args = true;
                    success = ev.success;
                    reply.args = std::move(ev.args);
                    continue;
                case proto::Ev::BodyChunk:
                    if (!success || stream_error) continue;  // a failure's body is discarded (docs/protocol/framing.md#responses)
                    if (sink) {
                        sink_used = true;
                        if (!(*sink)(ev.chunk)) return fail(ErrorKind::Cancelled, "cancelled by the caller", false);
                    } else {
                        // One allocation for a body whose length HTTP
                        // announced, not one per doubling: each fresh
                        // buffer is page-faulted in again (a 1 MiB get took
                        // ~260 faults, several ms, on this project's machines).
                        if (reply.body.empty())
                            reply.body.reserve(ev.chunk.size() + in.size() +
                                               static_cast<size_t>(std::min<uint64_t>(conn_.answer_left(), limits.max_body)));
                        reply.body.append(ev.chunk);
                    }
                    continue;
                case proto::Ev::StreamError:
                    stream_error = std::move(ev.args);
                    continue;
                case proto::Ev::Abort: continue;  // not produced by a response decoder
                case proto::Ev::End: {
                    if (!in.empty() || werr) drop();  // unsolicited bytes: do not reuse
                    if (!have_args) return fail(ErrorKind::Protocol, "response without args", false);
                    if (!success) {
                        AttemptFailure f;
                        f.error = error_from_reply(verb_name, err_path, reply.args);
                        return f;
                    }
                    if (stream_error) {
                        AttemptFailure f;
                        f.error = error_from_reply(verb_name, err_path, *stream_error);
                        f.error.message = "failed during the transfer: " + f.error.message;
                        return f;
                    }
                    return reply;
                }
                case proto::Ev::Error:
                    return fail(ErrorKind::Protocol,
                                "malformed response from the server: " + ev.error +
                                    (ev.error == "bad v3 marker" ? " (is it a Bazaar smart server?)" : ""),
                                false);
                }
                break;  // NeedMore
            }
        }
    };

    for (int round = 0; round < 2; ++round) {
        if (auto st = ensure_connected(); !st) {
            Error e = std::move(st).take_error();
            if (e.path.empty()) e.path = std::string(err_path);
            return e;
        }
        bool sink_used = false;
        auto r = attempt(sink_used);
        if (auto* rep = std::get_if<Reply>(&r)) return std::move(*rep);
        AttemptFailure f = std::get<AttemptFailure>(std::move(r));
        if (f.error.remote()) return std::move(f.error);  // the connection is fine
        std::string ended = drop();
        if (f.reset && may_retry && round == 0 && !f.sink_used) {
            ++stats_.retries;
            continue;
        }
        if (!ended.empty() && f.error.kind == ErrorKind::Connection) f.error.message += " (" + ended + ")";
        return std::move(f.error);
    }
    return make_error(ErrorKind::Connection, "connection failed", std::string(err_path));  // not reached
}

Result<Reply> Client::call(const proto::Args& args, std::optional<std::string_view> body) {
    if (args.empty() || !args[0].is_bytes())
        return make_error(ErrorKind::InvalidArgument, "call: args[0] must be the verb");
    return exchange(proto::find_verb(args[0].bytes), args, body, nullptr, "");
}

// -------------------------------------------------------------- verbs --

#define SOUK_TARGET(var, path)                         \
    auto var##_r = target(path);                       \
    if (!var##_r) return std::move(var##_r).take_error(); \
    const Target& var = *var##_r

Result<std::string> Client::get(std::string_view path) {
    SOUK_TARGET(t, path);
    if (url_.is_plain_http()) {
        auto h = plain_http("get");
        if (!h) return std::move(h).take_error();
        auto r = (*h)->get(t.wire, "", false);
        if (!r) {
            Error e = std::move(r).take_error();
            e.path = t.shown;
            return e;
        }
        if (r->status != 200) return plain_http_status(r->status, t.shown);
        return std::move(r->body);
    }
    auto r = exchange(info(Verb::get), {"get", t.wire}, std::nullopt, nullptr, t.shown);
    if (!r) return std::move(r).take_error();
    if (!is_word(r->args, 0, "ok")) return unexpected("get", r->args, t.shown);
    return std::move(r->body);
}

Result<uint64_t> Client::get_to(std::string_view path, const BodySink& sink) {
    SOUK_TARGET(t, path);
    if (url_.is_plain_http()) {
        auto r = get(path);
        if (!r) return std::move(r).take_error();
        if (!sink(*r)) return make_error(ErrorKind::Cancelled, "cancelled by the caller", t.shown);
        return static_cast<uint64_t>(r->size());
    }
    uint64_t total = 0;
    BodySink counting = [&](std::string_view chunk) {
        total += chunk.size();
        return sink(chunk);
    };
    auto r = exchange(info(Verb::get), {"get", t.wire}, std::nullopt, &counting, t.shown);
    if (!r) return std::move(r).take_error();
    if (!is_word(r->args, 0, "ok")) return unexpected("get", r->args, t.shown);
    return total;
}

Status Client::readv_each(std::string_view path, std::span<const Range> ranges,
                          const ReadvAssembler::Deliver& deliver) {
    SOUK_TARGET(t, path);
    ReadvLimits limits = opts_.readv;
    // Web servers cap ranges per request (Apache 200, soukd 256): stay under.
    if (url_.is_plain_http()) limits.max_request_ranges = std::min<size_t>(limits.max_request_ranges, 128);
    auto plan = plan_readv(ranges, limits);
    if (!plan) {
        Error e = std::move(plan).take_error();
        e.path = t.shown;
        return e;
    }
    ReadvAssembler assembler(ranges, *plan, deliver);
    if (url_.is_plain_http()) {
        // One GET with a multi-range Range header per planned request.
        for (size_t i = 0; i < plan->requests.size(); ++i) {
            auto h = plain_http("readv");
            if (!h) return std::move(h).take_error();
            auto r = (*h)->get(t.wire, range_header(plan->requests[i]), false);
            if (!r) {
                Error e = std::move(r).take_error();
                e.path = t.shown;
                return e;
            }
            if (r->status != 200 && r->status != 206 && r->status != 416) return plain_http_status(r->status, t.shown);
            auto bytes = extract_ranges(*r, plan->requests[i]);
            if (!bytes) {
                Error e = std::move(bytes).take_error();
                e.path = t.shown;
                e.message += ": " + t.shown;
                return e;
            }
            if (auto st = assembler.add_reply(i, *bytes); !st) {
                Error e = std::move(st).take_error();
                e.path = t.shown;
                return e;
            }
        }
        if (auto st = assembler.finish(); !st) {
            Error e = std::move(st).take_error();
            e.path = t.shown;
            return e;
        }
        return {};
    }
    for (size_t i = 0; i < plan->requests.size(); ++i) {
        std::string body = encode_readv_body(plan->requests[i]);
        auto r = exchange(info(Verb::readv), {"readv", t.wire}, body, nullptr, t.shown);
        if (!r) return std::move(r).take_error();
        if (!is_word(r->args, 0, "readv")) return unexpected("readv", r->args, t.shown);
        if (auto st = assembler.add_reply(i, r->body); !st) {
            Error e = std::move(st).take_error();
            e.path = t.shown;
            if (e.kind == ErrorKind::ShortReadv) e.message = e.message + ": " + t.shown;
            return e;
        }
    }
    if (auto st = assembler.finish(); !st) {
        Error e = std::move(st).take_error();
        e.path = t.shown;
        return e;
    }
    return {};
}

Result<std::vector<std::string>> Client::readv(std::string_view path, std::span<const Range> ranges) {
    std::vector<std::string> out(ranges.size());
    auto st = readv_each(path, ranges, [&](size_t i, std::string_view data) {
        out[i].assign(data);
        return true;
    });
    if (!st) return std::move(st).take_error();
    return out;
}

Result<uint64_t> Client::append(std::string_view path, std::string_view data, std::optional<uint32_t> mode) {
    SOUK_TARGET(t, path);
    auto r = exchange(info(Verb::append), {"append", t.wire, mode_arg(mode)}, data, nullptr, t.shown);
    if (!r) return std::move(r).take_error();
    if (!is_word(r->args, 0, "appended") || r->args.size() != 2 || !r->args[1].is_bytes())
        return unexpected("append", r->args, t.shown);
    auto n = parse_decimal(r->args[1].bytes);
    if (!n) return unexpected("append", r->args, t.shown);
    return *n;
}

namespace {
Status expect_ok(Result<Reply>&& r, std::string_view verb, std::string_view shown) {
    if (!r) return std::move(r).take_error();
    if (!is_word(r->args, 0, "ok")) return unexpected(verb, r->args, shown);
    return {};
}
}  // namespace

Status Client::put(std::string_view path, std::string_view data, std::optional<uint32_t> mode) {
    SOUK_TARGET(t, path);
    return expect_ok(exchange(info(Verb::put), {"put", t.wire, mode_arg(mode)}, data, nullptr, t.shown), "put", t.shown);
}

Status Client::put_non_atomic(std::string_view path, std::string_view data, std::optional<uint32_t> mode,
                              bool create_parent, std::optional<uint32_t> dir_mode) {
    SOUK_TARGET(t, path);
    proto::Args args{"put_non_atomic", t.wire, mode_arg(mode), create_parent ? "T" : "F", mode_arg(dir_mode)};
    return expect_ok(exchange(info(Verb::put_non_atomic), args, data, nullptr, t.shown), "put_non_atomic", t.shown);
}

Status Client::mkdir(std::string_view path, std::optional<uint32_t> mode) {
    SOUK_TARGET(t, path);
    return expect_ok(exchange(info(Verb::mkdir), {"mkdir", t.wire, mode_arg(mode)}, std::nullopt, nullptr, t.shown),
                     "mkdir", t.shown);
}

Status Client::rmdir(std::string_view path) {
    SOUK_TARGET(t, path);
    return expect_ok(exchange(info(Verb::rmdir), {"rmdir", t.wire}, std::nullopt, nullptr, t.shown), "rmdir", t.shown);
}

Status Client::remove(std::string_view path) {
    SOUK_TARGET(t, path);
    return expect_ok(exchange(info(Verb::del), {"delete", t.wire}, std::nullopt, nullptr, t.shown), "delete", t.shown);
}

Status Client::rename(std::string_view from, std::string_view to) {
    SOUK_TARGET(a, from);
    SOUK_TARGET(b, to);
    std::string shown = a.shown + " -> " + b.shown;
    return expect_ok(exchange(info(Verb::rename), {"rename", a.wire, b.wire}, std::nullopt, nullptr, shown), "rename",
                     shown);
}

Status Client::move(std::string_view from, std::string_view to) {
    SOUK_TARGET(a, from);
    SOUK_TARGET(b, to);
    std::string shown = a.shown + " -> " + b.shown;
    return expect_ok(exchange(info(Verb::move), {"move", a.wire, b.wire}, std::nullopt, nullptr, shown), "move", shown);
}

Result<FileStat> Client::stat(std::string_view path) {
    SOUK_TARGET(t, path);
    if (url_.is_plain_http()) {
        auto h = plain_http("stat");
        if (!h) return std::move(h).take_error();
        auto r = (*h)->get(t.wire, "", true);
        if (!r) return std::move(r).take_error();
        if (r->status != 200) return plain_http_status(r->status, t.shown);
        return FileStat{r->content_length, 0100444};  // HTTP says nothing of permissions
    }
    auto r = exchange(info(Verb::stat), {"stat", t.wire}, std::nullopt, nullptr, t.shown);
    if (!r) return std::move(r).take_error();
    const auto& a = r->args;
    if (!is_word(a, 0, "stat") || a.size() != 3 || !a[1].is_bytes() || !a[2].is_bytes())
        return unexpected("stat", a, t.shown);
    auto size = parse_decimal(a[1].bytes);
    auto mode = parse_mode(a[2].bytes);
    if (!size || !mode) return unexpected("stat", a, t.shown);
    return FileStat{*size, *mode};
}

namespace {
Result<std::vector<std::string>> names_reply(Result<Reply>&& r, std::string_view verb, std::string_view shown) {
    if (!r) return std::move(r).take_error();
    const auto& a = r->args;
    if (!is_word(a, 0, "names")) return unexpected(verb, a, shown);
    std::vector<std::string> names;
    names.reserve(a.size() - 1);
    for (size_t i = 1; i < a.size(); ++i) {
        if (!a[i].is_bytes()) return unexpected(verb, a, shown);
        names.push_back(unescape_lenient(a[i].bytes));
    }
    return names;
}
}  // namespace

Result<std::vector<std::string>> Client::list_dir(std::string_view path) {
    SOUK_TARGET(t, path);
    return names_reply(exchange(info(Verb::list_dir), {"list_dir", t.wire}, std::nullopt, nullptr, t.shown), "list_dir",
                       t.shown);
}

Result<std::vector<std::string>> Client::iter_files_recursive(std::string_view path) {
    SOUK_TARGET(t, path);
    return names_reply(exchange(info(Verb::iter_files_recursive), {"iter_files_recursive", t.wire}, std::nullopt,
                                nullptr, t.shown),
                       "iter_files_recursive", t.shown);
}

Result<bool> Client::has(std::string_view path) {
    SOUK_TARGET(t, path);
    if (url_.is_plain_http()) {
        auto h = plain_http("has");
        if (!h) return std::move(h).take_error();
        auto r = (*h)->get(t.wire, "", true);
        if (!r) return std::move(r).take_error();
        if (r->status == 404) return false;
        if (r->status == 200 || r->status == 403) return true;  // 403: there, but not for us (a directory)
        return plain_http_status(r->status, t.shown);
    }
    auto r = exchange(info(Verb::has), {"has", t.wire}, std::nullopt, nullptr, t.shown);
    if (!r) return std::move(r).take_error();
    if (is_word(r->args, 0, "yes")) return true;
    if (is_word(r->args, 0, "no")) return false;
    return unexpected("has", r->args, t.shown);
}

Result<bool> Client::is_readonly() {
    if (url_.is_plain_http()) return true;
    auto r = exchange(info(Verb::is_readonly), {"Transport.is_readonly"}, std::nullopt, nullptr, "");
    if (!r) {
        if (r.error().kind == ErrorKind::UnknownMethod) return false;  // assume writable (docs/protocol/vfs.md)
        return std::move(r).take_error();
    }
    if (is_word(r->args, 0, "yes")) return true;
    if (is_word(r->args, 0, "no")) return false;
    return unexpected("Transport.is_readonly", r->args, "");
}

#undef SOUK_TARGET

}  // namespace souk::client
