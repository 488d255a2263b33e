#include "server/carriers/fastcgi.hpp"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

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

constexpr size_t kReadChunk = 64 * 1024;
// STDOUT content per record: a multiple of 8, so no padding is needed.
constexpr size_t kOutRecord = 65528;
// Bytes of STDOUT records gathered before a write to the socket.
constexpr size_t kOutFlush = 64 * 1024;

fcgi::PairLimits pair_limits(const Params& p) {
    return fcgi::PairLimits{static_cast<size_t>(p.fastcgi_max_params_bytes), static_cast<size_t>(p.fastcgi_max_params)};
}

// One web-server connection: records in (buffered), bytes out.
class Conn {
public:
    explicit Conn(io::Fd fd) : s_(std::move(fd)) {}

    // The next record; its content stays valid until the next call.
    // 1: a record. 0: the web server closed the connection between records.
    // -1: errno ETIMEDOUT, EPROTO (not FastCGI), ECONNRESET (closed
    // inside a record), or a read error.
    int next(fcgi::Record& rec, io::Deadline deadline) {
        pos_ += consumed_;
        consumed_ = 0;
        for (;;) {  // bounded: each pass returns or reads >= 1 byte into a buffer of at most two records
            size_t used = 0;
            fcgi::Parse p = fcgi::parse_record(std::string_view(in_).substr(pos_), rec, used);
            if (p == fcgi::Parse::Ok) {
                consumed_ = used;
                return 1;
            }
            if (p == fcgi::Parse::Bad) {
                errno = EPROTO;
                return -1;
            }
            if (pos_ > 0) {
                in_.erase(0, pos_);
                pos_ = 0;
            }
            const size_t old = in_.size();
            in_.resize(old + kReadChunk);
            ssize_t n = s_.read_some(in_.data() + old, kReadChunk, deadline);
            in_.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
            if (n > 0) {
                count(counters().bytes_in, static_cast<uint64_t>(n));
                continue;
            }
            if (n == 0 && in_.empty()) return 0;
            if (n == 0) errno = ECONNRESET;
            return -1;
        }
    }

    bool send(std::string_view bytes, io::Deadline deadline) {
        if (s_.write_all(bytes, deadline) != 0) return false;
        count(counters().bytes_out, bytes.size());
        return true;
    }

    int fd() const { return s_.in_fd(); }

private:
    io::Stream s_;
    std::string in_;
    size_t pos_ = 0, consumed_ = 0;
};

// A management record (request id 0, docs/protocol/fastcgi.md#management-records).
// false: the connection must close.
bool answer_management(const ServerContext& ctx, Conn& conn, const fcgi::Record& rec) {
    std::string out;
    if (rec.type == fcgi::GetValues) {
        const uint64_t workers = static_cast<uint64_t>(ctx.params.fastcgi_workers);
        std::string why = fcgi::answer_get_values(rec.content, pair_limits(ctx.params), workers, workers, out);
        if (!why.empty()) {
            SOUK_LOG(Info, "fastcgi: bad GET_VALUES: %s", why.c_str());
            count(counters().protocol_errors);
            return false;
        }
    } else {
        fcgi::append_unknown_type(out, rec.type);
    }
    return conn.send(out, io::after_seconds(ctx.params.write_timeout));
}

// STDOUT records for one request, gathered into writes of kOutFlush.
class StdoutSink final : public io::Sink {
public:
    StdoutSink(Conn& conn, uint16_t id, io::Deadline deadline) : conn_(conn), id_(id), deadline_(deadline) {}
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
        bool ok = conn_.send(buf_, deadline_);
        buf_.clear();
        return ok;
    }
    Conn& conn_;
    uint16_t id_;
    io::Deadline deadline_;
    std::string buf_;
};

// The request of one BEGIN_REQUEST: PARAMS as meta-variables, STDIN
// records as the body, read from the connection as serve_gateway asks.
class FcgiRequest final : public GatewayRequest {
public:
    FcgiRequest(const ServerContext& ctx, Conn& conn, const fcgi::ParamsBlock& params, uint16_t id)
        : ctx_(ctx), conn_(conn), params_(params), id_(id) {}

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
            int r = conn_.next(rec, deadline);
            if (r <= 0) {
                if (r == 0) errno = ECONNRESET;
                // A stalled body (ETIMEDOUT) leaves the records in step:
                // it is answered 408 and the connection may go on.
                broken_ = errno != ETIMEDOUT;
                return -1;
            }
            if (rec.request_id == 0) {
                if (!answer_management(ctx_, conn_, rec)) {
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
                    if (!conn_.send(out, io::after_seconds(ctx_.params.write_timeout))) {
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
    Conn& conn_;
    const fcgi::ParamsBlock& params_;
    uint16_t id_;
    std::string_view pending_;  // the rest of the last STDIN record (in conn_'s buffer)
    bool stdin_done_ = false, aborted_ = false, broken_ = false;
};

// The connections being served (for a stop and for reclaiming idle ones)
// and the queue of accepted ones waiting for a worker.
struct Shared {
    struct Live {
        int fd;
        bool idle;  // between requests
        std::chrono::steady_clock::time_point idle_since;
    };
    std::mutex mu;
    std::condition_variable cv;
    std::deque<io::Fd> queue;
    std::vector<Live> live;
    bool stopping = false;

    void set_idle(int fd, bool idle) {
        for (auto& l : live)
            if (l.fd == fd) {
                l.idle = idle;
                l.idle_since = std::chrono::steady_clock::now();
            }
    }
    // Every worker busy and a connection waiting: end the connection idle
    // longest if it has idled `min_age` seconds (its worker then takes the
    // next from the queue). Called under `mu`.
    void reclaim_idle(size_t workers, double min_age) {
        if (queue.empty() || live.size() < workers) return;
        Live* oldest = nullptr;
        for (auto& l : live)
            if (l.idle && (!oldest || l.idle_since < oldest->idle_since)) oldest = &l;
        if (!oldest || std::chrono::steady_clock::now() - oldest->idle_since < std::chrono::duration<double>(min_age))
            return;
        ::shutdown(oldest->fd, SHUT_RDWR);
        oldest->idle = false;  // ending: never chosen twice
        count(counters().idle_reclaimed);
    }
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

// Serve one web-server connection until it closes, misbehaves, idles past
// --idle-timeout, or the server stops.
void serve_connection(const ServerContext& ctx, const FastcgiOptions& opts, Shared& sh, io::Fd fd) {
    Conn conn(std::move(fd));
    fcgi::ParamsBlock params(pair_limits(ctx.params));
    bool active = false, keep = false;
    uint16_t id = 0;
    io::Deadline deadline = io::after_seconds(ctx.params.idle_timeout);
    GatewayOptions gw;
    gw.path_from_uri = true;
    gw.body_timeout = ctx.params.request_timeout;
    gw.carrier = "fastcgi";
    for (;;) {  // bounded: each pass consumes one record or returns; the deadlines end a silent peer
        fcgi::Record rec;
        int r = conn.next(rec, deadline);
        if (r == 0) return;
        if (r < 0) {
            if (errno == ETIMEDOUT) count(counters().idle_timeouts);
            else if (errno == EPROTO) count(counters().protocol_errors);
            else if (active) count(counters().truncated_requests);
            SOUK_LOG(Debug, "fastcgi: connection closed: %s", std::strerror(errno));
            return;
        }
        if (rec.request_id == 0) {
            if (!answer_management(ctx, conn, rec)) return;
            continue;
        }
        if (rec.type == fcgi::BeginRequest) {
            uint16_t role = 0;
            uint8_t flags = 0;
            std::string out;
            if (!fcgi::parse_begin(rec.content, role, flags)) {
                count(counters().protocol_errors);
                return;
            }
            if (active) {
                fcgi::append_end_request(out, rec.request_id, 0, fcgi::CantMpxConn);
            } else if (role != fcgi::Responder) {
                fcgi::append_end_request(out, rec.request_id, 0, fcgi::UnknownRole);
            } else {
                active = true;
                id = rec.request_id;
                keep = (flags & fcgi::kKeepConn) != 0;
                params.reset();
                deadline = io::after_seconds(ctx.params.request_timeout);
                std::lock_guard<std::mutex> lock(sh.mu);
                sh.set_idle(conn.fd(), false);
                continue;
            }
            if (!conn.send(out, io::after_seconds(ctx.params.write_timeout))) return;
            if (!(flags & fcgi::kKeepConn) && !active) return;
            continue;
        }
        if (!active || rec.request_id != id) continue;  // records of a finished request: skipped
        bool answer = false;
        if (rec.type == fcgi::AbortRequest) {
            std::string out;
            fcgi::append_end_request(out, id, 1, fcgi::RequestComplete);
            if (!conn.send(out, io::after_seconds(ctx.params.write_timeout))) return;
        } else if (rec.type == fcgi::Params) {
            std::string why = rec.content.empty() ? params.finish() : params.add(rec.content);
            if (!why.empty()) {
                // Answered as HTTP, so the web server shows the client why.
                SOUK_LOG(Info, "fastcgi: request %u: %s", id, why.c_str());
                count(counters().protocol_errors);
                StdoutSink out(conn, id, io::after_seconds(ctx.params.write_timeout));
                std::string text = "Status: 431 Request Header Fields Too Large\r\nContent-Type: text/plain; "
                                   "charset=utf-8\r\n\r\nrequest parameters too large or malformed\n";
                if (!out.write(text) || !out.end(0)) return;
                return;  // the rest of the PARAMS stream cannot be trusted
            }
            if (!rec.content.empty()) continue;
            answer = true;
        } else {
            continue;  // STDIN before the PARAMS end, DATA: ignored
        }
        if (answer) {
            log_params_ignored(params);
            FcgiRequest req(ctx, conn, params, id);
            StdoutSink out(conn, id, io::after_seconds(ctx.params.write_timeout));
            bool ok = serve_gateway(ctx, opts.web, gw, req, out);
            if (req.broken()) return;
            if (!ok && !req.aborted()) {
                // Part of a response went out: only closing tells the web
                // server it is incomplete.
                count(counters().write_failures);
                return;
            }
            if (!out.end(req.aborted() ? 1 : 0)) {
                count(counters().write_failures);
                return;
            }
        }
        active = false;
        {
            std::lock_guard<std::mutex> lock(sh.mu);
            sh.set_idle(conn.fd(), true);
            // Connections waiting for a worker go first: a kept-alive one
            // must not hold its worker while another waits.
            if (sh.stopping || !sh.queue.empty()) return;
        }
        if (!keep) return;
        deadline = io::after_seconds(ctx.params.idle_timeout);
    }
}

void worker(const ServerContext& ctx, const FastcgiOptions& opts, Shared& sh) {
    for (;;) {  // bounded: ends when the server stops and the queue is empty
        io::Fd fd;
        {
            std::unique_lock<std::mutex> lock(sh.mu);
            sh.cv.wait(lock, [&] { return sh.stopping || !sh.queue.empty(); });
            if (sh.stopping) return;  // queued connections are closed by serve_fastcgi
            fd = std::move(sh.queue.front());
            sh.queue.pop_front();
            sh.live.push_back({fd.get(), true, std::chrono::steady_clock::now()});
        }
        const int raw = fd.get();
        serve_connection(ctx, opts, sh, std::move(fd));  // closes it
        std::lock_guard<std::mutex> lock(sh.mu);
        sh.live.erase(std::remove_if(sh.live.begin(), sh.live.end(), [raw](const auto& l) { return l.fd == raw; }),
                      sh.live.end());
    }
}

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
    io::Fd listener = opts.unix_path.empty()
                          ? io::listen_tcp(opts.address, opts.port, 1024, &err)
                          : io::listen_unix(opts.unix_path, opts.socket_mode, 1024, &ino, &err);
    if (!listener) {
        std::fprintf(stderr, "soukd: --fastcgi: %s\n", err.c_str());
        return 1;
    }
    int wake[2];
    if (::pipe2(wake, O_CLOEXEC) != 0) {
        std::fprintf(stderr, "soukd: --fastcgi: pipe: %s\n", std::strerror(errno));
        return 1;
    }
    io::Fd wake_r(wake[0]), wake_w(wake[1]);
    const std::string where = opts.unix_path.empty() ? opts.address + ":" + std::to_string(opts.port)
                                                     : "unix:" + opts.unix_path;
    SOUK_LOG(Info, "serving %s over FastCGI on %s (%s)", ctx.root_realpath.c_str(), where.c_str(),
             ctx.allow_writes ? "read-write" : "read-only");

    Shared sh;
    std::vector<std::thread> workers;
    const size_t nworkers = static_cast<size_t>(ctx.params.fastcgi_workers);
    for (size_t i = 0; i < nworkers; ++i) workers.emplace_back(worker, std::cref(ctx), std::cref(opts), std::ref(sh));

    const size_t max_queue = connection_cap(ctx.params);
    std::thread acceptor([&] {
        for (;;) {  // bounded: ends when the wake pipe is written (stop)
            int timeout = -1;
            {
                // While connections wait, look again for an idle one to end.
                std::lock_guard<std::mutex> lock(sh.mu);
                sh.reclaim_idle(nworkers, ctx.params.idle_reclaim_age);
                if (!sh.queue.empty()) timeout = static_cast<int>(ctx.params.idle_reclaim_age * 1000) + 10;
            }
            struct pollfd p[2] = {{listener.get(), POLLIN, 0}, {wake_r.get(), POLLIN, 0}};
            int r = ::poll(p, 2, timeout);
            if (r == 0) continue;
            if (r < 0 && errno == EINTR) continue;
            if (r < 0 || p[1].revents) return;
            io::Fd c(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (!c) {
                if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
                count(counters().accept_failures);
                SOUK_LOG(Warn, "fastcgi: accept: %s (pausing %.3fs)", std::strerror(errno), ctx.params.accept_backoff);
                struct pollfd w = {wake_r.get(), POLLIN, 0};
                if (::poll(&w, 1, static_cast<int>(ctx.params.accept_backoff * 1000)) > 0) return;
                continue;
            }
            count(counters().connections_accepted);
            std::lock_guard<std::mutex> lock(sh.mu);
            if (sh.queue.size() >= max_queue) {
                count(counters().connections_refused);
                continue;  // closed: the web server reports a bad gateway
            }
            sh.queue.push_back(std::move(c));
            sh.cv.notify_one();
            sh.reclaim_idle(nworkers, ctx.params.idle_reclaim_age);
        }
    });

    if (opts.on_listening) opts.on_listening();
    while (!*stop) sleep_until_woken(1000);  // bounded: until *stop
    io::notify_service_manager("STOPPING=1");
    char one = 1;
    (void)!::write(wake_w.get(), &one, 1);
    acceptor.join();
    {
        std::lock_guard<std::mutex> lock(sh.mu);
        sh.stopping = true;
        sh.queue.clear();
        // Idle connections end now; busy ones after their request.
        for (const auto& l : sh.live)
            if (l.idle) ::shutdown(l.fd, SHUT_RD);
        sh.cv.notify_all();
    }
    for (auto& t : workers) t.join();
    if (!opts.unix_path.empty()) io::remove_unix_socket(opts.unix_path, ino);
    return 0;
}

}  // namespace souk::server
