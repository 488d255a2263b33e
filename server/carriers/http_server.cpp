#include "server/carriers/http_server.hpp"

#include <httplib.h>

#include <errno.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <memory>
#include <thread>
#include <utility>

#include "server/base/log.hpp"
#include "server/carriers/waiter.hpp"
#include "transport/net.hpp"
#include "transport/sink.hpp"

namespace souk::server {
namespace {

// The exchange this worker thread is serving (httplib serves each on one
// thread, from routing to the logger): when it began, and whether the
// pipeline answered it (then it writes the access line).
struct Exchange {
    io::Clock::time_point started{};
    bool smart = false;
};
thread_local Exchange t_exchange;

std::string http_peer(const httplib::Request& req) { return req.remote_addr + ":" + std::to_string(req.remote_port); }

// Bytes handed to the socket per content-provider call.
constexpr size_t kProviderStep = 256 * 1024;

std::pair<time_t, time_t> split_seconds(double s) {
    double whole = std::floor(s);
    return {static_cast<time_t>(whole), static_cast<time_t>((s - whole) * 1e6)};
}

// Stream a piece-list body (web.hpp) from `offset` on; false if the file
// shrank or the peer went away (httplib then drops the connection).
bool provide(const ServerContext& ctx, WebResponse& r, size_t offset, httplib::DataSink& sink, std::string& buf) {
    uint64_t at = 0;
    for (const auto& p : r.pieces) {
        if (offset < at + p.text.size()) {
            size_t from = static_cast<size_t>(offset - at);
            return sink.write(p.text.data() + from, p.text.size() - from);
        }
        at += p.text.size();
        if (offset < at + p.length) {
            uint64_t from = offset - at;
            size_t n = static_cast<size_t>(std::min<uint64_t>(kProviderStep, p.length - from));
            buf.resize(n);
            ssize_t got = ctx.store->pread(r.file, buf.data(), n, p.offset + from);
            if (got <= 0) {
                SOUK_LOG(Warn, "http: file shrank or failed while being sent; dropping the connection");
                return false;
            }
            return sink.write(buf.data(), static_cast<size_t>(got));
        }
        at += p.length;
    }
    return false;
}

// A reply written into httplib's response stream.
class HttpSink final : public io::Sink {
public:
    explicit HttpSink(httplib::DataSink& sink) : sink_(sink) {}
    bool write(std::string_view data) override {
        if (!sink_.write(data.data(), data.size())) {
            errno = EPIPE;
            return false;
        }
        written_ += data.size();
        return true;
    }

private:
    httplib::DataSink& sink_;
};

}  // namespace

std::string parse_host_port(const char* option, const std::string& text, std::string& address, uint16_t& port_out) {
    const std::string opt = option;
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) return opt + ": expected ADDR:PORT, got " + text;
    std::string host = text.substr(0, colon), port = text.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    else if (host.find(':') != std::string::npos) return opt + ": write IPv6 addresses in brackets, e.g. [::1]:8080";
    char* end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end || p < 0 || p > 65535) return opt + ": port must be 0 to 65535, got " + port;
    address = host.empty() ? "0.0.0.0" : host;
    port_out = static_cast<uint16_t>(p);
    return {};
}

std::string parse_http_address(const std::string& text, HttpOptions& out) {
    return parse_host_port("--http", text, out.address, out.port);
}

int serve_http(const ServerContext& ctx, const HttpOptions& opts, const volatile sig_atomic_t* stop) {
    httplib::Server svr;
    const size_t workers = static_cast<size_t>(ctx.params.http_workers);
    svr.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
    svr.set_tcp_nodelay(true);
    svr.set_keep_alive_max_count(static_cast<size_t>(ctx.params.http_keepalive_requests));
    svr.set_keep_alive_timeout(static_cast<time_t>(std::ceil(ctx.params.http_keepalive_timeout)));
    auto [rs, rus] = split_seconds(ctx.params.http_read_timeout);
    svr.set_read_timeout(rs, rus);
    auto [ws, wus] = split_seconds(ctx.params.write_timeout);
    svr.set_write_timeout(ws, wus);
    // POST bodies are smart requests, streamed through the pipeline: their
    // cap is --max-upload (other methods' bodies are never read).
    svr.set_payload_max_length(static_cast<size_t>(ctx.params.max_upload));

    // Nothing internal reaches a response (docs/conventions.md#errors-as-values).
    svr.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        const char* what = "unknown exception";
        std::string msg;
        try {
            if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            msg = e.what();
            what = msg.c_str();
        } catch (...) {
        }
        SOUK_LOG(Error, "http: %s:%d: %s %s: internal error: %s", req.remote_addr.c_str(), req.remote_port,
                 req.method.c_str(), req.path.c_str(), what);
        res = httplib::Response{};
        res.status = 500;
        res.set_content("internal server error\n", "text/plain; charset=utf-8");
    });
    // Statuses httplib produces itself (400, 413, 416, 404...) get a text body.
    svr.set_error_handler(httplib::Server::HandlerWithResponse(
        [](const httplib::Request&, httplib::Response& res) {
            if (res.body.empty() && !res.content_provider_) {
                res.set_content(std::to_string(res.status) + " " + status_text(res.status) + "\n",
                                "text/plain; charset=utf-8");
            }
            return httplib::Server::HandlerResponse::Unhandled;
        }));
    const uint64_t max_header = static_cast<uint64_t>(ctx.params.http_max_header_bytes);
    svr.set_pre_routing_handler([max_header](const httplib::Request& req, httplib::Response& res) {
        t_exchange = Exchange{io::Clock::now(), false};
        uint64_t n = req.target.size();
        for (const auto& [k, v] : req.headers) n += k.size() + v.size() + 4;
        if (n <= max_header) return httplib::Server::HandlerResponse::Unhandled;
        res.status = 431;
        res.set_content("request header fields too large\n", "text/plain; charset=utf-8");
        return httplib::Server::HandlerResponse::Handled;
    });
    // Called once the response is sent: the access line of an exchange the
    // pipeline did not answer (its own lines are the smart requests').
    svr.set_logger([](const httplib::Request& req, const httplib::Response& res) {
        SOUK_LOG(Debug, "http: %s:%d %s %s -> %d", req.remote_addr.c_str(), req.remote_port, req.method.c_str(),
                 req.path.c_str(), res.status);
        const Exchange ex = std::exchange(t_exchange, Exchange{});
        if (ex.smart || !log::access_enabled()) return;
        const std::string peer = http_peer(req);
        const log::Origin origin{"http", peer.c_str(), nullptr};
        const uint64_t out = req.method == "HEAD" ? 0 : res.body.empty() ? res.content_length_ : res.body.size();
        // An exchange httplib refused before routing (a malformed request
        // line) has no start time: its duration is written 0.
        const auto took = ex.started == io::Clock::time_point{} ? io::Clock::duration{} : io::Clock::now() - ex.started;
        log_web_access(origin, req.method, req.path, res.status, req.body.size(), out,
                       static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(took).count()));
    });

    const WebOptions web = opts.web;
    // Route and answer; for a smart POST, stream its body through a
    // SmartExchange (the request pipeline) when `reader` is given.
    auto serve = [&ctx, web](const httplib::Request& creq, httplib::Response& res,
                             const httplib::ContentReader* reader) {
        // Ranges are ours to apply (handle_web): stop httplib from slicing
        // the body again. The object is httplib's non-const local.
        const_cast<httplib::Request&>(creq).ranges.clear();
        auto wr = std::make_shared<WebRequest>();
        auto hdr = std::make_shared<httplib::Headers>(creq.headers);
        wr->method = creq.method;
        wr->header = [hdr](std::string_view name) {
            auto it = hdr->find(std::string(name));
            return it == hdr->end() ? std::string() : it->second;
        };
        auto path = std::make_shared<std::string>(creq.path);
        wr->path = *path;
        auto out = std::make_shared<WebResponse>();
        handle_web(ctx, web, *wr, *out);
        res.status = out->status;
        std::string content_type = "application/octet-stream";
        for (const auto& [k, v] : out->headers) {
            if (k == "Content-Type") content_type = v;
            else res.set_header(k, v);
        }
        if (out->smart) {
            t_exchange.smart = true;  // its access line is the pipeline's
            const std::string peer = http_peer(creq);
            const log::Origin origin{"http", peer.c_str(), nullptr};
            auto ex = std::make_shared<SmartExchange>(ctx, origin, *wr, out->smart_base);
            if (reader) {
                (*reader)([&ex](const char* data, size_t n) {
                    ex->body(std::string_view(data, n));
                    return true;
                });
            }
            ex->end();
            if (ex->zstd()) res.set_header("Content-Encoding", "zstd");
            if (ex->small()) {
                std::string body;
                io::StringSink s(body);
                if (!ex->write(s)) {
                    res.status = 500;
                    res.set_content("the file changed while it was read; try again\n", "text/plain; charset=utf-8");
                    return;
                }
                res.set_content(std::move(body), content_type);
                return;
            }
            // Streamed as the pipeline produces it (chunked).
            res.set_chunked_content_provider(
                content_type, [ex, wr, hdr, path](size_t, httplib::DataSink& sink) {
                    HttpSink body(sink);
                    bool ok = ex->write(body);
                    if (ok) sink.done();
                    return ok;
                });
            return;
        }
        if (out->pieces.empty()) {
            if (out->status == 304) return;
            res.set_content(std::move(out->body), content_type);
            return;
        }
        size_t length = static_cast<size_t>(out->content_length());
        auto buf = std::make_shared<std::string>();
        res.set_content_provider(length, content_type,
                                 [&ctx, out, buf](size_t offset, size_t, httplib::DataSink& sink) {
                                     return provide(ctx, *out, offset, sink, *buf);
                                 });
    };
    auto handler = [serve](const httplib::Request& req, httplib::Response& res) { serve(req, res, nullptr); };
    auto with_body = [serve](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
        serve(req, res, &reader);
    };
    const std::string any = ".*";
    svr.Get(any, handler);
    svr.Post(any, with_body);
    svr.Put(any, handler);
    svr.Patch(any, handler);
    svr.Delete(any, handler);
    svr.Options(any, handler);

    int port = opts.port;
    if (opts.port == 0) {
        port = svr.bind_to_any_port(opts.address);
        if (port <= 0) {
            std::fprintf(stderr, "soukd: cannot listen for HTTP on %s (any port)\n", opts.address.c_str());
            return 1;
        }
    } else if (!svr.bind_to_port(opts.address, opts.port)) {
        std::fprintf(stderr, "soukd: cannot listen for HTTP on %s:%u\n", opts.address.c_str(), opts.port);
        return 1;
    }
    if (!opts.port_file.empty() && !io::write_port_file(opts.port_file, static_cast<uint16_t>(port))) {
        std::fprintf(stderr, "soukd: cannot write --http-port-file %s\n", opts.port_file.c_str());
        return 1;
    }
    SOUK_LOG(Info, "serving %s on http://%s:%d/ (%s)", ctx.root_realpath.c_str(), opts.address.c_str(), port,
             ctx.allow_writes ? "read-write" : "read-only");
    std::thread loop([&svr] { svr.listen_after_bind(); });
    // Wait (bounded) for the loop to come up, then until told to stop.
    for (int i = 0; i < 250 && !svr.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (opts.on_listening) opts.on_listening();  // bound: connections queue in the kernel until the loop runs
    while (!*stop && svr.is_running()) sleep_until_woken(1000);  // bounded: until *stop or the loop ends
    if (*stop) io::notify_service_manager("STOPPING=1");
    svr.stop();
    loop.join();
    return 0;
}

}  // namespace souk::server
