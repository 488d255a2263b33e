#include "server/carriers/tcp_server.hpp"

#include <cstdio>
#include <string>
#include <vector>

#include "protocol/message.hpp"
#include "server/base/log.hpp"
#include "server/carriers/waiter.hpp"
#include "server/request/handler.hpp"
#include "server/request/pipeline.hpp"
#include "transport/net.hpp"
#include "transport/sink.hpp"

namespace souk::server {
namespace {

// The Bazaar smart protocol on the waiter: a request has arrived whole
// when the request decoder reaches its end over the bytes that are there.
class BzrProtocol final : public WaiterProtocol {
    class Decoder final : public Measure {
    public:
        explicit Decoder(const Params& p) {
            decoder_.set_limits(decoder_limits(p));
            decoder_.set_args_storage(&args_);
        }
        Look look(std::string_view in) override {
            const size_t n = in.size();
            decoder_.reset();
            for (;;) {  // bounded: each event consumes input, or ends the look
                proto::Event ev = decoder_.next(in);
                if (ev.kind == proto::Ev::End) return {Look::Whole, n - in.size()};
                // Malformed: the pipeline meets the same error within the
                // same bytes (the decoder is incremental, so however they
                // are cut up), answers it and closes. The decoder may stop
                // short of the bytes that showed the error (a line over
                // --max-line is refused unconsumed), so the worker reads
                // all there is.
                if (ev.kind == proto::Ev::Error) return {Look::Whole, n};
                if (ev.kind == proto::Ev::NeedMore) return {Look::Partial, 0};
            }
        }

    private:
        proto::RequestDecoder decoder_;
        proto::Args args_;  // the decoder's argument storage (allocation-free mode)
    };

public:
    std::unique_ptr<Measure> measure(const Params& p) const override { return std::make_unique<Decoder>(p); }

    // The requests that have arrived whole, and (holding a stream slot) a
    // large one as it streams in, through one Pipeline.
    SessionEnd serve(const ServerContext& wctx, ConnIo& io) const override {
        IoBuffer buf;
        const log::Origin origin{"tcp", io.peer(), nullptr};
        Pipeline p(wctx, origin);
        std::string_view pending;  // bytes read but not yet decoded (in buf)
        for (;;) {  // one pass per read; bounded by the peer's bytes and the deadlines
            if (pending.empty()) {
                if (io.between()) {
                    // Between requests: serve the next one here only if it
                    // has arrived whole, or is large and a stream slot is free.
                    ConnIo::Next next = io.next();
                    if (next == ConnIo::Next::Park) return SessionEnd::Parked;
                    if (next == ConnIo::Next::Eof) return SessionEnd::Eof;
                }
                buf.acquire();
                SessionEnd why = SessionEnd::ReadFailed;
                ssize_t n = io.read(buf.data(), buf.size(), p.deadline(), &why);
                if (n == 0) {
                    if (!p.mid_request()) return SessionEnd::Eof;
                    p.truncated();
                    return SessionEnd::Truncated;
                }
                if (n < 0) return why;
                pending = std::string_view(buf.data(), static_cast<size_t>(n));
            }
            while (p.feed(pending) == Pipeline::Step::Ready) {  // bounded: each reply consumes a request's bytes
                io::StreamSink out(io.stream(), io::after_seconds(wctx.params.write_timeout));
                if (!p.write_reply(out)) return SessionEnd::WriteFailed;
                if (p.closing()) return SessionEnd::ProtocolError;
                io.request_done(pending.empty());
                // Shutting down: this reply was the last (the waiter closes it).
                if (io.draining()) return SessionEnd::Parked;
            }
            if (io.between() && p.mid_request()) io.must_stream();
        }
    }
};

}  // namespace

int serve_tcp(const ServerContext& ctx, const TcpOptions& opts, const std::atomic<bool>* stop) {
    std::string err;
    // A deep backlog: connections wait in the kernel, not in a thread.
    io::Fd listener = opts.passed_fd >= 0 ? io::Fd(opts.passed_fd) : io::listen_tcp(opts.address, opts.port, 1024, &err);
    if (!listener) {
        std::fprintf(stderr, "soukd: %s\n", err.c_str());
        return 1;
    }
    uint16_t port = io::bound_port(listener.get());
    if (!opts.port_file.empty() && !io::write_port_file(opts.port_file, port)) {
        std::fprintf(stderr, "soukd: cannot write --port-file %s\n", opts.port_file.c_str());
        return 1;
    }
    SOUK_LOG(Info, "serving %s on bzr://%s:%u/ (%s%s)", ctx.root_realpath.c_str(),
             opts.passed_fd >= 0 ? "*" : opts.address.c_str(), port, ctx.rules()->allow_writes ? "read-write" : "read-only",
             opts.passed_fd >= 0 ? ", socket from systemd" : "");
    if (opts.on_listening) opts.on_listening();
    // Acceptor, epoll waiter and worker pool (server/carriers/waiter.hpp).
    static const BzrProtocol bzr;
    int rc = run_waiter(ctx, std::move(listener), bzr, waiter_config(ctx.params), stop);
    if (*stop) io::notify_service_manager("STOPPING=1");
    return rc;
}

}  // namespace souk::server
