// Where a reply's bytes go: a stream carrier's socket or pipe, an HTTP
// response body, CGI's stdout, or memory. The reply writer
// (server/request/reply.cpp) writes to a Sink and never knows which.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "transport/stream.hpp"

namespace souk::io {

class Sink {
public:
    virtual ~Sink() = default;
    // Write every byte of `data`, or fail (false, errno set: EPIPE,
    // ETIMEDOUT, ...): the peer went away or the deadline passed.
    virtual bool write(std::string_view data) = 0;
    // write(buf), leaving buf empty. A sink that keeps the bytes in memory
    // takes the buffer itself instead of a copy: each page of a fresh copy
    // costs a page fault, and a reply gathered whole (a readv of 256 KiB)
    // would be copied again only to be written once.
    virtual bool take(std::string& buf) {
        const bool ok = write(buf);
        buf.clear();
        return ok;
    }
    // Whether send_file() sends without a copy through user space.
    virtual bool direct() const { return false; }
    // Whether the process behind this sink serves one request and exits
    // (CGI): every page of a buffer it copies into is then a first-touch
    // fault, so a direct sink gets even small file ranges with send_file.
    virtual bool one_shot() const { return false; }
    // Send n bytes of `file` from `offset`: the bytes sent (fewer than n: the
    // file ended early) or -1 with errno. Without direct(), the default
    // reads and writes through a buffer.
    virtual int64_t send_file(int file, uint64_t offset, uint64_t n);
    // Many small pieces follow (on): gather them into full segments
    // (TCP_CORK on sockets; a no-op elsewhere).
    virtual void cork(bool on) { (void)on; }
    // The body is complete: flush what is held back (compression).
    virtual bool finish() { return true; }
    // Bytes accepted so far (before any compression below this sink).
    uint64_t written() const { return written_; }

protected:
    uint64_t written_ = 0;
};

// Sink::cork for a scope, when `on`: many pieces leave in full segments.
class CorkScope {
public:
    explicit CorkScope(Sink& s, bool on = true) : s_(s), on_(on) {
        if (on_) s_.cork(true);
    }
    ~CorkScope() {
        if (on_) s_.cork(false);
    }
    CorkScope(const CorkScope&) = delete;
    CorkScope& operator=(const CorkScope&) = delete;

private:
    Sink& s_;
    bool on_;
};

// A Stream with one deadline for the whole reply.
class StreamSink final : public Sink {
public:
    StreamSink(Stream& s, Deadline deadline, bool one_shot = false)
        : s_(s), deadline_(deadline), one_shot_(one_shot) {}
    bool write(std::string_view data) override;
    bool direct() const override { return true; }
    bool one_shot() const override { return one_shot_; }
    int64_t send_file(int file, uint64_t offset, uint64_t n) override;
    void cork(bool on) override;

private:
    Stream& s_;
    Deadline deadline_;
    bool one_shot_;
    bool corks_ = true;  // false once TCP_CORK failed: not a TCP socket
};

// Appends to a string (tests, and replies small enough to send whole).
class StringSink final : public Sink {
public:
    explicit StringSink(std::string& out) : out_(out) {}
    bool write(std::string_view data) override;
    bool take(std::string& buf) override;

private:
    std::string& out_;
};

// Compresses everything written into a zstd frame written to `next`
// (HTTP Content-Encoding: zstd). finish() ends the frame.
class ZstdSink final : public Sink {
public:
    ZstdSink(Sink& next, int level);
    ~ZstdSink() override;
    ZstdSink(const ZstdSink&) = delete;
    ZstdSink& operator=(const ZstdSink&) = delete;
    bool write(std::string_view data) override;
    bool finish() override;

private:
    bool pump(std::string_view data, bool end);
    Sink& next_;
    void* cctx_;  // ZSTD_CCtx
    std::string out_;
};

}  // namespace souk::io
