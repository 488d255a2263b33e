// Byte carriers over file descriptors with deadlines: a stdio pair (SSH,
// `serve --inet`), a socket (TCP), or a child process's pipes (the client's
// ssh). Knows nothing of the protocol.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "transport/fd.hpp"

namespace souk::io {

using Clock = std::chrono::steady_clock;
// A point in time after which an operation fails with ETIMEDOUT;
// Clock::time_point::max() means "no deadline".
using Deadline = Clock::time_point;
inline Deadline no_deadline() { return Deadline::max(); }
inline Deadline after_ms(int64_t ms) { return Clock::now() + std::chrono::milliseconds(ms); }
inline Deadline after_seconds(double s) {
    return Clock::now() + std::chrono::microseconds(static_cast<int64_t>(s * 1e6));
}

class Stream {
public:
    Stream() = default;
    // A socket: reads and writes on the same fd (send with MSG_NOSIGNAL).
    explicit Stream(Fd sock);
    // A pipe pair (stdin/stdout, or a child's pipes). Either may be the
    // borrowed standard descriptors; `owned` says whether to close them.
    Stream(int in, int out, bool owned);
    Stream(Stream&&) noexcept;
    Stream& operator=(Stream&&) noexcept;
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    ~Stream();

    // Read up to n bytes. Returns > 0 bytes read, 0 at EOF, -1 on error with
    // errno set (ETIMEDOUT when the deadline passed first).
    ssize_t read_some(char* buf, size_t n, Deadline deadline);
    // Wait until readable (data or EOF) or the deadline: 1 ready, 0 timeout, -1 error.
    int wait_readable(Deadline deadline);
    // Write every byte or fail (-1, errno set: EPIPE, ETIMEDOUT, ...). Never
    // raises SIGPIPE.
    int write_all(std::string_view data, Deadline deadline);
    // Send n bytes of `file` from `offset` without copying through user
    // space where the kernel allows (sendfile to sockets and pipes); falls
    // back to pread+write. Returns bytes sent (< n means the file ended
    // early) or -1 with errno.
    int64_t send_file(int file, uint64_t offset, uint64_t n, Deadline deadline);
    // Half-close the writing side (sockets: shutdown(SHUT_WR); pipes: close).
    void close_write();
    bool valid() const { return in_ >= 0; }
    int in_fd() const { return in_; }
    int out_fd() const { return out_; }

private:
    int wait(int fd, short events, Deadline deadline);
    void close_all();
    int in_ = -1;
    int out_ = -1;
    bool socket_ = false;
    bool owned_ = false;
};

// Blocks SIGPIPE in this thread for its lifetime; on exit consumes a
// SIGPIPE that a write raised meanwhile (unless one was already pending),
// then restores the mask. For writes that cannot say MSG_NOSIGNAL (pipes,
// OpenSSL's socket writes): a library never kills the process on a dead
// peer and never changes process-wide signal dispositions.
class SigpipeGuard {
public:
    SigpipeGuard();
    ~SigpipeGuard();
    SigpipeGuard(const SigpipeGuard&) = delete;
    SigpipeGuard& operator=(const SigpipeGuard&) = delete;

private:
    sigset_t old_;
    bool was_pending_ = false;
};

}  // namespace souk::io
