#include "server/carriers/fastcgi.hpp"

#include <errno.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

#include "protocol/fastcgi.hpp"
#include "server/base/counters.hpp"
#include "server/base/log.hpp"
#include "server/carriers/cgi.hpp"
#include "server/carriers/http_server.hpp"
#include "server/carriers/waiter.hpp"
#include "transport/net.hpp"
#include "transport/sink.hpp"
#include "transport/stream.hpp"

namespace souk::server {
namespace fcgi = proto::fcgi;
namespace {

constexpr size_t kReadStep = 64 * 1024;  // bytes asked of the socket per read
// STDOUT content per record: a multiple of 8, so no padding is needed.
constexpr size_t kOutRecord = 65528;
// Bytes of STDOUT records gathered before a write to the socket.
constexpr size_t kOutFlush = 64 * 1024;

fcgi::PairLimits pair_limits(const Params& p) {
    return fcgi::PairLimits{static_cast<size_t>(p.fastcgi_max_params_bytes), static_cast<size_t>(p.fastcgi_max_params)};
}

bool send_bytes(ConnIo& io, std::string_view bytes, io::Deadline deadline) {
    if (io.stream().write_all(bytes, deadline) != 0) return false;
    count(counters().bytes_out, bytes.size());
    return true;
}

// The records of a connection on a worker, read through its ConnIo: a
// request the waiter saw whole is read without waiting; a record of a
// request that has not arrived whole streams in (ConnIo::must_stream).
class Records {
public:
    enum class Got : uint8_t {
        Record,  // `rec` is set; its content stays valid until the next call
        Parked,  // between requests, and the next one has not arrived whole
        Eof,     // the web server closed the connection between records
        Failed,  // *why: not FastCGI, closed inside a record, a read error or timeout
    };
    Records(ConnIo& io, InBuffer& in) : io_(io), in_(in) {}

    // `open`: a request is open (its records must come).
    Got next(fcgi::Record& rec, bool open, io::Deadline deadline, SessionEnd* why) {
        in_.consume(used_);
        used_ = 0;
        for (;;) {  // bounded: each pass takes a record, or reads >= 1 byte, or ends
            const fcgi::Parse p = fcgi::parse_record(in_.pending(), rec, used_);
            if (p == fcgi::Parse::Ok) return Got::Record;
            if (p == fcgi::Parse::Bad) {
                count(counters().protocol_errors);
                *why = SessionEnd::ProtocolError;
                return Got::Failed;
            }
            if (io_.between()) {
                if (open || !in_.pending().empty()) {
                    io_.must_stream();
                } else {
                    const ConnIo::Next n = io_.next();
                    if (n == ConnIo::Next::Park) return Got::Parked;
                    if (n == ConnIo::Next::Eof) return Got::Eof;
                }
            }
            const ssize_t got = in_.fill(io_, kReadStep, deadline, why);
            if (got > 0) {
                count(counters().bytes_in, static_cast<uint64_t>(got));
                continue;
            }
            if (got == 0 && !open && in_.pending().empty()) return Got::Eof;
            if (got == 0) {
                if (open) count(counters().truncated_requests);
                *why = SessionEnd::Truncated;
            }
            return Got::Failed;
        }
    }
    // No bytes beyond the current record have been read.
    bool nothing_pending() const { return in_.pending().size() == used_; }

private:
    ConnIo& io_;
    InBuffer& in_;
    size_t used_ = 0;  // the current record's bytes, consumed at the next call
};

// A management record (request id 0, docs/protocol/fastcgi.md#management-records).
// false: the connection must close.
bool answer_management(const ServerContext& ctx, ConnIo& io, const fcgi::Record& rec) {
    std::string out;
    if (rec.type == fcgi::GetValues) {
        std::string why = fcgi::answer_get_values(rec.content, pair_limits(ctx.params), connection_cap(ctx.params),
                                                  static_cast<uint64_t>(ctx.params.fastcgi_workers), out);
        if (!why.empty()) {
            SOUK_LOG(Info, "fastcgi: bad GET_VALUES: %s", why.c_str());
            count(counters().protocol_errors);
            return false;
        }
    } else {
        fcgi::append_unknown_type(out, rec.type);
    }
    return send_bytes(io, out, io::after_seconds(ctx.params.write_timeout));
}

// STDOUT records for one request, gathered into writes of kOutFlush.
class StdoutSink final : public io::Sink {
public:
    StdoutSink(ConnIo& io, uint16_t id, io::Deadline deadline) : io_(io), id_(id), deadline_(deadline) {}
    bool write(std::string_view data) override {
        while (!data.empty()) {  // bounded: each pass takes up to kOutRecord bytes
            std::string_view part = data.substr(0, kOutRecord);
            data.remove_prefix(part.size());
            fcgi::append_records(buf_, fcgi::Stdout, id_, part);
            written_ += part.size();
            if (buf_.size() >= kOutFlush && !flush()) return false;
        }
        return true;
    }
    // File bytes go out with sendfile, kOutRecord at a time behind their
    // record header (docs/protocol/fastcgi.md#from-params-to-a-request): no copy through
    // user space. A record's padding leaves with the next header.
    bool direct() const override { return true; }
    int64_t send_file(int file, uint64_t offset, uint64_t n) override {
        uint64_t sent = 0;
        while (sent < n) {  // bounded: each pass sends one whole record or fails
            const size_t k = static_cast<size_t>(std::min<uint64_t>(n - sent, kOutRecord));
            const uint8_t pad = fcgi::padding_for(k);
            fcgi::append_header(buf_, fcgi::Stdout, id_, static_cast<uint16_t>(k), pad);
            if (!flush()) return -1;
            const int64_t r = io_.stream().send_file(file, offset + sent, k, deadline_);
            if (r != static_cast<int64_t>(k)) {
                // A record's length already went out: it cannot be completed
                // (the file shrank, or the web server went away).
                if (r >= 0) errno = EIO;
                return -1;
            }
            count(counters().bytes_out, k);
            buf_.append(pad, '\0');
            sent += k;
            written_ += k;
        }
        return static_cast<int64_t>(sent);
    }
    bool finish() override { return flush(); }
    // The end of STDOUT and END_REQUEST.
    bool end(uint32_t app_status) {
        if (written_ > 0) fcgi::append_records(buf_, fcgi::Stdout, id_, {});
        fcgi::append_end_request(buf_, id_, app_status, fcgi::RequestComplete);
        return flush();
    }

private:
    bool flush() {
        if (buf_.empty()) return true;
        bool ok = send_bytes(io_, buf_, deadline_);
        buf_.clear();
        return ok;
    }
    ConnIo& io_;
    uint16_t id_;
    io::Deadline deadline_;
    std::string buf_;
};

// The request of one BEGIN_REQUEST: PARAMS as meta-variables, STDIN
// records as the body, read from the connection as serve_gateway asks.
class FcgiRequest final : public GatewayRequest {
public:
    FcgiRequest(const ServerContext& ctx, ConnIo& io, Records& records, const fcgi::ParamsBlock& params, uint16_t id)
        : ctx_(ctx), io_(io), records_(records), params_(params), id_(id) {}

    std::string var(std::string_view name) const override { return std::string(params_.get(name)); }
    bool has(std::string_view name) const override { return params_.has(name); }
    uint64_t header_bytes() const override {
        uint64_t n = 0;
        for (const auto& [k, v] : params_.pairs())
            if (k.substr(0, 5) == "HTTP_") n += k.size() + v.size() + 2;
        return n;
    }
    ssize_t read_body(char* buf, size_t n, io::Deadline deadline) override {
        for (;;) {  // bounded: each pass consumes a record or returns
            if (!pending_.empty()) {
                const size_t k = std::min(n, pending_.size());
                std::memcpy(buf, pending_.data(), k);
                pending_.remove_prefix(k);
                return static_cast<ssize_t>(k);
            }
            if (stdin_done_) return 0;
            fcgi::Record rec;
            SessionEnd why = SessionEnd::ReadFailed;
            if (records_.next(rec, true, deadline, &why) != Records::Got::Record) {
                // A stalled body (the request's deadline) leaves the
                // records in step: it is answered 408 and the connection
                // may go on.
                broken_ = why != SessionEnd::RequestTimeout;
                errno = broken_ ? ECONNRESET : ETIMEDOUT;
                return -1;
            }
            if (rec.request_id == 0) {
                if (!answer_management(ctx_, io_, rec)) {
                    broken_ = true;
                    errno = ECONNRESET;
                    return -1;
                }
                continue;
            }
            if (rec.request_id != id_) {
                // One request at a time per connection (FCGI_MPXS_CONNS=0).
                if (rec.type == fcgi::BeginRequest) {
                    std::string out;
                    fcgi::append_end_request(out, rec.request_id, 0, fcgi::CantMpxConn);
                    if (!send_bytes(io_, out, io::after_seconds(ctx_.params.write_timeout))) {
                        broken_ = true;
                        return -1;
                    }
                }
                continue;
            }
            if (rec.type == fcgi::AbortRequest) {
                aborted_ = true;
                errno = ECONNABORTED;
                return -1;
            }
            if (rec.type != fcgi::Stdin) continue;  // DATA, or PARAMS again: not ours to read
            if (rec.content.empty()) {
                stdin_done_ = true;
                return 0;
            }
            pending_ = rec.content;
        }
    }
    bool aborted() const { return aborted_; }
    bool broken() const { return broken_; }

private:
    const ServerContext& ctx_;
    ConnIo& io_;
    Records& records_;
    const fcgi::ParamsBlock& params_;
    uint16_t id_;
    std::string_view pending_;  // the rest of the last STDIN record (in the connection's buffer)
    bool stdin_done_ = false, aborted_ = false, broken_ = false;
};

void log_params_ignored(const fcgi::ParamsBlock& params) {
    static std::once_flag once;
    if (params.has("SOUK_ROOT") || params.has("SOUK_ALLOW_WRITES") || params.has("SOUK_PREFIX") ||
        params.has("SOUK_OPTIONS")) {
        std::call_once(once, [] {
            SOUK_LOG(Warn, "fastcgi: the web server passes SOUK_* parameters; soukd --fastcgi ignores them "
                           "(the root, writes and prefix come from its own options)");
        });
    }
}

// FastCGI on the waiter (docs/protocol/fastcgi.md#connections-and-workers):
// a request has arrived whole from its BEGIN_REQUEST to its empty STDIN
// record (fcgi::measure_request); each is answered by the gateway
// (handle_web, SmartExchange), so FastCGI answers exactly what CGI and
// soukd's HTTP server answer.
class FastcgiProtocol final : public WaiterProtocol {
    class Framing final : public Measure {
    public:
        explicit Framing(const Params& p) : params_(pair_limits(p)) {}
        Look look(std::string_view in) override {
            const fcgi::Arrival a = fcgi::measure_request(in, params_);
            if (a.kind == fcgi::Arrival::Whole) return {Look::Whole, a.bytes};
            return {a.kind == fcgi::Arrival::Stream ? Look::Stream : Look::Partial, 0};
        }

    private:
        fcgi::ParamsBlock params_;  // scratch
    };

public:
    explicit FastcgiProtocol(const WebOptions& web) : web_(web) {}
    std::unique_ptr<Measure> measure(const Params& p) const override { return std::make_unique<Framing>(p); }

    SessionEnd serve(const ServerContext& wctx, ConnIo& io) const override {
        thread_local InBuffer in;
        in.clear();
        const Params& p = wctx.params;
        Records records(io, in);
        fcgi::ParamsBlock params(pair_limits(p));
        bool active = false, keep = false;
        uint16_t id = 0;
        // Reads of the open request end at its deadline (from its
        // BEGIN_REQUEST); between requests reads happen only in a stream
        // slot, for the next request read with the last one, and end at a
        // deadline set after each answer, never restarted by a record.
        io::Deadline deadline = io::after_seconds(p.request_timeout);
        GatewayOptions gw;
        gw.path_from_uri = true;
        gw.body_timeout = p.request_timeout;
        gw.carrier = "fastcgi";
        for (;;) {  // one record per pass; bounded by the web server's records and the deadlines
            fcgi::Record rec;
            SessionEnd why = SessionEnd::ReadFailed;
            const Records::Got got = records.next(rec, active, deadline, &why);
            if (got == Records::Got::Parked) return SessionEnd::Parked;
            if (got == Records::Got::Eof) return SessionEnd::Eof;
            if (got == Records::Got::Failed) return why;
            bool done = false;   // an exchange is over: the connection may park or close
            bool ended = false;  // a request was answered (END_REQUEST)
            if (rec.request_id == 0) {
                if (!answer_management(wctx, io, rec)) return SessionEnd::ProtocolError;
                done = !active;
            } else if (rec.type == fcgi::BeginRequest) {
                uint16_t role = 0;
                uint8_t flags = 0;
                if (!fcgi::parse_begin(rec.content, role, flags)) {
                    count(counters().protocol_errors);
                    return SessionEnd::ProtocolError;
                }
                std::string out;
                if (active) {
                    fcgi::append_end_request(out, rec.request_id, 0, fcgi::CantMpxConn);
                } else if (role != fcgi::Responder) {
                    fcgi::append_end_request(out, rec.request_id, 0, fcgi::UnknownRole);
                } else {
                    active = true;
                    id = rec.request_id;
                    keep = (flags & fcgi::kKeepConn) != 0;
                    params.reset();
                    deadline = io::after_seconds(p.request_timeout);
                    io.count_request();
                    continue;
                }
                if (!send_bytes(io, out, io::after_seconds(p.write_timeout))) return SessionEnd::WriteFailed;
                if (!active && !(flags & fcgi::kKeepConn)) return SessionEnd::Eof;
                done = !active;
            } else if (!active || rec.request_id != id) {
                if (!active) {  // a record of no open request: skipped
                    io.request_done(records.nothing_pending());
                    if (io.draining()) return SessionEnd::Parked;
                }
                continue;
            } else if (rec.type == fcgi::AbortRequest) {
                std::string out;
                fcgi::append_end_request(out, id, 1, fcgi::RequestComplete);
                if (!send_bytes(io, out, io::after_seconds(p.write_timeout))) return SessionEnd::WriteFailed;
                active = false;
                done = ended = true;
            } else if (rec.type == fcgi::Params) {
                std::string bad = rec.content.empty() ? params.finish() : params.add(rec.content);
                if (!bad.empty()) {
                    // Answered as HTTP, so the web server shows the client why.
                    SOUK_LOG(Info, "fastcgi: %s: request %u: %s", io.peer(), id, bad.c_str());
                    count(counters().protocol_errors);
                    StdoutSink out(io, id, io::after_seconds(p.write_timeout));
                    (void)(out.write("Status: 431 Request Header Fields Too Large\r\nContent-Type: text/plain; "
                                     "charset=utf-8\r\n\r\nrequest parameters too large or malformed\n") &&
                           out.end(0));
                    return SessionEnd::ProtocolError;  // the rest of the PARAMS stream cannot be trusted
                }
                if (!rec.content.empty()) continue;
                log_params_ignored(params);
                FcgiRequest req(wctx, io, records, params, id);
                StdoutSink out(io, id, io::after_seconds(p.write_timeout));
                const bool ok = serve_gateway(wctx, web_, gw, req, out);
                if (req.broken()) return SessionEnd::ReadFailed;
                if (!(ok || req.aborted()) || !out.end(req.aborted() ? 1 : 0)) {
                    // Part of a response went out: only closing tells the
                    // web server it is incomplete.
                    count(counters().write_failures);
                    return SessionEnd::WriteFailed;
                }
                active = false;
                done = ended = true;
            }
            // Anything else of the open request (STDIN before the PARAMS
            // end, DATA): skipped.
            if (!done) continue;
            // Without FCGI_KEEP_CONN the connection closes after the request.
            if (ended && !keep) return SessionEnd::Eof;
            io.request_done(records.nothing_pending());
            if (io.draining()) return SessionEnd::Parked;  // this reply was the last (the waiter closes it)
            deadline = io::after_seconds(p.request_timeout);
        }
    }

private:
    const WebOptions web_;
};

}  // namespace

std::string parse_fastcgi_address(const std::string& text, FastcgiOptions& out) {
    if (text.rfind("unix:", 0) == 0) {
        out.unix_path = text.substr(5);
        if (out.unix_path.empty() || out.unix_path[0] != '/')
            return "--fastcgi unix:PATH needs an absolute path, got " + text;
        return {};
    }
    out.unix_path.clear();
    std::string why = parse_host_port("--fastcgi", text, out.address, out.port);
    if (why.empty() && out.port == 0) why = "--fastcgi: port must be 1 to 65535 (or unix:/PATH)";
    return why;
}

std::string parse_socket_mode(const std::string& text, unsigned& mode) {
    char* end = nullptr;
    unsigned long m = std::strtoul(text.c_str(), &end, 8);
    if (text.empty() || *end || m > 0777) return "--fastcgi-socket-mode: expected an octal mode such as 0660, got " + text;
    mode = static_cast<unsigned>(m);
    return {};
}

int serve_fastcgi(const ServerContext& ctx, const FastcgiOptions& opts, const std::atomic<bool>* stop) {
    std::string err;
    uint64_t ino = 0;
    // A deep backlog: connections wait in the kernel, not in a thread.
    io::Fd listener = opts.unix_path.empty()
                          ? io::listen_tcp(opts.address, opts.port, 1024, &err)
                          : io::listen_unix(opts.unix_path, opts.socket_mode, 1024, &ino, &err);
    if (!listener) {
        std::fprintf(stderr, "soukd: --fastcgi: %s\n", err.c_str());
        return 1;
    }
    const std::string where = opts.unix_path.empty() ? opts.address + ":" + std::to_string(opts.port)
                                                     : "unix:" + opts.unix_path;
    SOUK_LOG(Info, "serving %s over FastCGI on %s (%s)", ctx.root_realpath.c_str(), where.c_str(),
             ctx.rules()->allow_writes ? "read-write" : "read-only");
    if (opts.on_listening) opts.on_listening();
    const FastcgiProtocol fastcgi(opts.web);
    WaiterConfig cfg = waiter_config(ctx.params);
    cfg.workers = static_cast<size_t>(ctx.params.fastcgi_workers);
    int rc = run_waiter(ctx, std::move(listener), fastcgi, cfg, stop);
    if (*stop) io::notify_service_manager("STOPPING=1");
    if (!opts.unix_path.empty()) io::remove_unix_socket(opts.unix_path, ino);
    return rc;
}

}  // namespace souk::server
