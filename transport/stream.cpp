#include "transport/stream.hpp"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <utility>

namespace souk::io {

Stream::Stream(Fd sock) : in_(sock.release()), socket_(true), owned_(true) {
    out_ = in_;
    int flags = ::fcntl(in_, F_GETFL);
    if (flags >= 0) ::fcntl(in_, F_SETFL, flags | O_NONBLOCK);
}

Stream::Stream(int in, int out, bool owned) : in_(in), out_(out), owned_(owned) {}

Stream::Stream(Stream&& o) noexcept
    : in_(std::exchange(o.in_, -1)), out_(std::exchange(o.out_, -1)), socket_(o.socket_), owned_(o.owned_) {}

Stream& Stream::operator=(Stream&& o) noexcept {
    if (this != &o) {
        close_all();
        in_ = std::exchange(o.in_, -1);
        out_ = std::exchange(o.out_, -1);
        socket_ = o.socket_;
        owned_ = o.owned_;
    }
    return *this;
}

Stream::~Stream() { close_all(); }

void Stream::close_all() {
    if (owned_) {
        if (in_ >= 0) ::close(in_);
        if (out_ >= 0 && out_ != in_) ::close(out_);
    }
    in_ = out_ = -1;
}

int Stream::wait(int fd, short events, Deadline deadline) {
    for (;;) {
        int timeout = -1;
        if (deadline != Deadline::max()) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
            if (left <= 0) {
                errno = ETIMEDOUT;
                return 0;
            }
            timeout = static_cast<int>(std::min<int64_t>(left + 1, INT_MAX));
        }
        struct pollfd p = {fd, events, 0};
        int r = ::poll(&p, 1, timeout);
        if (r > 0) return 1;
        if (r == 0) continue;  // re-check the deadline
        if (errno != EINTR) return -1;
    }
}

int Stream::wait_readable(Deadline deadline) { return wait(in_, POLLIN, deadline); }

ssize_t Stream::read_some(char* buf, size_t n, Deadline deadline) {
    // Pipes (stdio) stay blocking, as other processes may share them: poll
    // first so the deadline holds. Sockets are non-blocking.
    if (deadline != Deadline::max() && !socket_) {
        int w = wait(in_, POLLIN, deadline);
        if (w <= 0) {
            if (w == 0) errno = ETIMEDOUT;
            return -1;
        }
    }
    for (;;) {
        ssize_t r = ::read(in_, buf, n);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        int w = wait(in_, POLLIN, deadline);
        if (w <= 0) {
            if (w == 0) errno = ETIMEDOUT;
            return -1;
        }
    }
}

int Stream::write_all(std::string_view data, Deadline deadline) {
    while (!data.empty()) {
        ssize_t r = socket_ ? ::send(out_, data.data(), data.size(), MSG_NOSIGNAL)
                            : ::write(out_, data.data(), data.size());
        if (r > 0) {
            data.remove_prefix(static_cast<size_t>(r));
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = wait(out_, POLLOUT, deadline);
            if (w <= 0) {
                if (w == 0) errno = ETIMEDOUT;
                return -1;
            }
            continue;
        }
        return -1;
    }
    return 0;
}

int64_t Stream::send_file(int file, uint64_t offset, uint64_t n, Deadline deadline) {
    uint64_t sent = 0;
    bool use_sendfile = true;
    char buf[64 * 1024];
    while (sent < n) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(n - sent, 1u << 30));
        if (use_sendfile) {
            off_t off = static_cast<off_t>(offset + sent);
            ssize_t r = ::sendfile(out_, file, &off, want);
            if (r > 0) {
                sent += static_cast<uint64_t>(r);
                continue;
            }
            if (r == 0) return static_cast<int64_t>(sent);  // file ended early
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                int w = wait(out_, POLLOUT, deadline);
                if (w <= 0) {
                    if (w == 0) errno = ETIMEDOUT;
                    return -1;
                }
                continue;
            }
            if (errno == EINVAL || errno == ENOSYS) {
                use_sendfile = false;  // e.g. a tty or an fd sendfile cannot write to
                continue;
            }
            return -1;
        }
        ssize_t r = ::pread(file, buf, std::min(sizeof buf, want), static_cast<off_t>(offset + sent));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) return static_cast<int64_t>(sent);
        if (write_all(std::string_view(buf, static_cast<size_t>(r)), deadline) < 0) return -1;
        sent += static_cast<uint64_t>(r);
    }
    return static_cast<int64_t>(sent);
}

void Stream::close_write() {
    if (out_ < 0) return;
    if (socket_) {
        ::shutdown(out_, SHUT_WR);
    } else if (owned_) {
        if (out_ != in_) ::close(out_);
        out_ = -1;
    }
}

SigpipeGuard::SigpipeGuard() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old_);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
}

SigpipeGuard::~SigpipeGuard() {
    if (!was_pending_) {
        sigset_t pending;
        sigemptyset(&pending);
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE) == 1) {
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, SIGPIPE);
            struct timespec zero = {0, 0};
            int saved = errno;
            while (sigtimedwait(&set, nullptr, &zero) < 0 && errno == EINTR) {
            }
            errno = saved;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

}  // namespace souk::io
