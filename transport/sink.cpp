#include "transport/sink.hpp"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>

namespace souk::io {

int64_t Sink::send_file(int file, uint64_t offset, uint64_t n) {
    char buf[64 * 1024];
    uint64_t sent = 0;
    while (sent < n) {  // bounded: each pass sends >= 1 byte or returns
        size_t want = static_cast<size_t>(std::min<uint64_t>(n - sent, sizeof buf));
        ssize_t r = ::pread(file, buf, want, static_cast<off_t>(offset + sent));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return sent > 0 ? static_cast<int64_t>(sent) : -1;
        if (r == 0) break;  // the file ended early
        if (!write(std::string_view(buf, static_cast<size_t>(r)))) return -1;
        sent += static_cast<uint64_t>(r);
    }
    return static_cast<int64_t>(sent);
}

bool StreamSink::write(std::string_view data) {
    if (s_.write_all(data, deadline_) != 0) return false;
    written_ += data.size();
    return true;
}

int64_t StreamSink::send_file(int file, uint64_t offset, uint64_t n) {
    int64_t r = s_.send_file(file, offset, n, deadline_);
    if (r > 0) written_ += static_cast<uint64_t>(r);
    return r;
}

void StreamSink::cork(bool on) {
    if (!corks_) return;
    int v = on ? 1 : 0;
    // Not a TCP socket (a CGI's pipe, a unix socket): no cork, and no
    // more tries.
    if (::setsockopt(s_.out_fd(), IPPROTO_TCP, TCP_CORK, &v, sizeof v) != 0) corks_ = false;
}

bool StringSink::write(std::string_view data) {
    out_.append(data);
    written_ += data.size();
    return true;
}

bool StringSink::take(std::string& buf) {
    if (!out_.empty()) return Sink::take(buf);
    written_ += buf.size();
    out_.swap(buf);
    buf.clear();
    return true;
}

ZstdSink::ZstdSink(Sink& next, int level) : next_(next), cctx_(ZSTD_createCCtx()) {
    if (cctx_) ZSTD_CCtx_setParameter(static_cast<ZSTD_CCtx*>(cctx_), ZSTD_c_compressionLevel, level);
}

ZstdSink::~ZstdSink() { ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(cctx_)); }

bool ZstdSink::pump(std::string_view data, bool end) {
    if (!cctx_) {
        errno = ENOMEM;
        return false;
    }
    if (out_.size() < ZSTD_CStreamOutSize()) out_.resize(ZSTD_CStreamOutSize());
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    for (;;) {  // bounded: each pass consumes input or drains output; ends when both are done
        ZSTD_outBuffer o{out_.data(), out_.size(), 0};
        size_t left = ZSTD_compressStream2(static_cast<ZSTD_CCtx*>(cctx_), &o, &in, end ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(left)) {
            errno = EIO;
            return false;
        }
        if (o.pos > 0 && !next_.write(std::string_view(out_.data(), o.pos))) return false;
        if (end ? left == 0 : in.pos == in.size) return true;
    }
}

bool ZstdSink::write(std::string_view data) {
    if (!pump(data, false)) return false;
    written_ += data.size();
    return true;
}

bool ZstdSink::finish() { return pump({}, true) && next_.finish(); }

}  // namespace souk::io
