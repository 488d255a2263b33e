#include "server/carriers/waiter.hpp"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

#include "server/base/counters.hpp"
#include "server/request/handler.hpp"
#include "server/base/log.hpp"
#include "server/request/pipeline.hpp"
#include "transport/stream.hpp"

namespace souk::server {
namespace {

using Clock = io::Clock;

enum class State : uint8_t { Parked, Queued, Running };

// A session record: everything a connection keeps while it waits for its
// next request. Lives in a "sess" pool item.
struct Conn {
    io::Stream stream;          // owns the socket
    Conn* prev = nullptr;       // parked list or run queue
    Conn* next = nullptr;
    Conn* all_prev = nullptr;   // every open connection (for shutdown)
    Conn* all_next = nullptr;
    Clock::time_point idle_deadline{};
    State state = State::Parked;
    char peer[INET6_ADDRSTRLEN + 8] = "?";

    int fd() const { return stream.in_fd(); }
};
static_assert(sizeof(Conn) <= 256, "a parked connection must stay small (docs/conventions.md)");

// An intrusive FIFO of connections (parked: oldest deadline first, since
// every connection parks with the same idle timeout; run queue: arrival order).
struct List {
    Conn* head = nullptr;
    Conn* tail = nullptr;
    size_t size = 0;
    void push_back(Conn* c) {
        c->next = nullptr;
        c->prev = tail;
        if (tail) tail->next = c;
        else head = c;
        tail = c;
        ++size;
    }
    void unlink(Conn* c) {
        if (c->prev) c->prev->next = c->next;
        else head = c->next;
        if (c->next) c->next->prev = c->prev;
        else tail = c->prev;
        c->prev = c->next = nullptr;
        --size;
    }
    Conn* pop_front() {
        Conn* c = head;
        if (c) unlink(c);
        return c;
    }
};

void peer_name(int fd, char* out, size_t len) {
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &sl) != 0) return;
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
    }
    std::snprintf(out, len, "%s:%u", host, port);
}

Clock::duration seconds(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

void gauge(std::atomic<uint64_t>& g, int delta) {
    g.fetch_add(static_cast<uint64_t>(static_cast<int64_t>(delta)), std::memory_order_relaxed);
}

class Waiter {
public:
    Waiter(const ServerContext& ctx, io::Fd listener) : ctx_(ctx), listener_(std::move(listener)) {}
    ~Waiter() {
        for (auto& t : workers_)
            if (t.joinable()) t.join();
    }
    int run(const volatile sig_atomic_t* stop);

private:
    void accept_all();
    // With mu_ held: one more worker. false when the thread cannot be made
    // (EAGAIN: out of threads, memory or descriptors); the queue is then
    // served by the workers there are, or retried from the event loop.
    bool start_worker();
    // Out of descriptors: take the listener out of epoll until
    // accept_resume_ (it would wake us at once, forever), then put it back.
    void pause_accepting();
    void resume_accepting();
    void wake(Conn* c);
    void expire(Clock::time_point now);
    void worker_main();
    void serve(const ServerContext& wctx, Conn* c);
    // Park `c` (a worker is done with it for now): back into epoll with the
    // idle deadline. Closes it instead when shutting down.
    void park(Conn* c);
    void close_conn(Conn* c, bool locked);
    void shutdown_all();

    const ServerContext& ctx_;
    io::Fd listener_;
    io::Fd epoll_;
    io::Fd work_fd_;  // eventfd: "connections wait for a worker" (ends lingering)
    std::mutex mu_;
    std::condition_variable work_cv_;
    std::condition_variable gone_cv_;
    List parked_;
    List queue_;
    Conn* all_ = nullptr;
    size_t live_ = 0;
    size_t idle_workers_ = 0;
    bool stopping_ = false;
    std::atomic<size_t> queued_{0};
    std::vector<std::thread> workers_;
    size_t max_workers_ = 1;
    Clock::duration idle_timeout_{};
    int linger_ms_ = 0;
    bool accept_paused_ = false;
    Clock::time_point accept_resume_{};
    log::Every accept_log_{10.0};  // a line per 10 s at most while accept keeps failing
    log::Every refused_log_{10.0};
    log::Every worker_log_{10.0};
};

int Waiter::run(const volatile sig_atomic_t* stop) {
    const Params& p = ctx_.params;
    max_workers_ = std::max<size_t>(1, static_cast<size_t>(p.workers));
    idle_timeout_ = seconds(p.idle_timeout);
    linger_ms_ = static_cast<int>(std::min(p.linger, p.idle_timeout) * 1000);
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    work_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!epoll_ || !work_fd_) {
        std::fprintf(stderr, "soukd: epoll/eventfd: %s\n", std::strerror(errno));
        return 1;
    }
    int lflags = ::fcntl(listener_.get(), F_GETFL);
    ::fcntl(listener_.get(), F_SETFL, lflags | O_NONBLOCK);
    epoll_event lev{};
    lev.events = EPOLLIN;
    lev.data.ptr = nullptr;  // the listener
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listener_.get(), &lev) != 0) {
        std::fprintf(stderr, "soukd: epoll_ctl: %s\n", std::strerror(errno));
        return 1;
    }

    epoll_event events[256];
    while (!*stop) {  // bounded: ends at *stop
        int timeout = 200;
        auto until = [&timeout](Clock::time_point t) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now());
            timeout = std::min(timeout, static_cast<int>(std::clamp<int64_t>(left.count() + 1, 0, 200)));
        };
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (parked_.head) until(parked_.head->idle_deadline);
        }
        if (accept_paused_) until(accept_resume_);
        int n = ::epoll_wait(epoll_.get(), events, 256, timeout);
        if (n < 0 && errno != EINTR) {
            SOUK_LOG(Error, "epoll_wait: %s", std::strerror(errno));
            break;
        }
        for (int i = 0; i < n; ++i) {
            if (events[i].data.ptr == nullptr) accept_all();
            else wake(static_cast<Conn*>(events[i].data.ptr));
        }
        expire(Clock::now());
        if (accept_paused_ && Clock::now() >= accept_resume_) resume_accepting();
        {
            // A worker that could not be started: try again, or nobody
            // serves the queue.
            std::lock_guard<std::mutex> lock(mu_);
            if (queue_.head && idle_workers_ == 0 && workers_.empty()) start_worker();
        }
    }
    shutdown_all();
    return 0;
}

bool Waiter::start_worker() {
    try {
        workers_.emplace_back([this] { worker_main(); });
    } catch (const std::system_error& e) {
        uint64_t held = 0;
        if (worker_log_.due(held))
            SOUK_LOG(Warn, "cannot start a worker thread (%s); %zu running", e.what(), workers_.size());
        return false;
    }
    count(counters().tcp_workers);
    return true;
}

void Waiter::pause_accepting() {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, listener_.get(), nullptr);
    accept_paused_ = true;
    accept_resume_ = Clock::now() + seconds(ctx_.params.accept_backoff);
}

void Waiter::resume_accepting() {
    epoll_event lev{};
    lev.events = EPOLLIN;
    lev.data.ptr = nullptr;  // the listener
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listener_.get(), &lev) != 0) {
        SOUK_LOG(Error, "epoll_ctl (listener): %s", std::strerror(errno));
        accept_resume_ = Clock::now() + seconds(ctx_.params.accept_backoff);
        return;
    }
    accept_paused_ = false;
    accept_all();
}

void Waiter::accept_all() {
    const size_t cap = static_cast<size_t>(ctx_.params.max_connections);
    for (int i = 0; i < 1024; ++i) {  // bounded per wakeup; the rest next time
        int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            const int e = errno;
            if (e == EINTR || e == ECONNABORTED) continue;
            if (e == EAGAIN || e == EWOULDBLOCK) return;
            count(counters().accept_failures);
            uint64_t held = 0;
            if (accept_log_.due(held))
                SOUK_LOG(Warn, "accept: %s; not accepting for %gs (--accept-backoff)%s", std::strerror(e),
                         ctx_.params.accept_backoff,
                         e == EMFILE || e == ENFILE ? ", raise the descriptor limit (ulimit -n)" : "");
            if (held) SOUK_LOG(Warn, "accept: %llu more failures since the last line", static_cast<unsigned long long>(held));
            pause_accepting();
            return;
        }
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (live_ >= cap) {
                count(counters().connections_refused);
                uint64_t held = 0;
                if (refused_log_.due(held))
                    SOUK_LOG(Warn, "connection refused: %zu connections already (--max-connections)%s", cap,
                             held ? " (and more since the last line, see connections_refused)" : "");
                ::close(fd);
                continue;
            }
            ++live_;
        }
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        void* mem = sess_pool().get();
        Conn* c = ::new (mem) Conn{};
        c->stream = io::Stream(io::Fd(fd));
        peer_name(fd, c->peer, sizeof c->peer);
        count(counters().connections_accepted);
        gauge(counters().tcp_conns_live, 1);
        SOUK_LOG(Debug, "%s: connected", c->peer);
        std::lock_guard<std::mutex> lock(mu_);
        c->all_next = all_;
        if (all_) all_->all_prev = c;
        all_ = c;
        // Parked from the start: its first request wakes it.
        c->state = State::Parked;
        c->idle_deadline = Clock::now() + idle_timeout_;
        parked_.push_back(c);
        gauge(counters().tcp_conns_parked, 1);
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
        ev.data.ptr = c;
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
            SOUK_LOG(Warn, "%s: epoll_ctl: %s", c->peer, std::strerror(errno));
            parked_.unlink(c);
            gauge(counters().tcp_conns_parked, -1);
            close_conn(c, true);
        }
    }
}

void Waiter::wake(Conn* c) {
    std::lock_guard<std::mutex> lock(mu_);
    // One-shot: a parked connection reports once until a worker re-arms it.
    if (c->state != State::Parked) return;
    parked_.unlink(c);
    gauge(counters().tcp_conns_parked, -1);
    count(counters().tcp_wakeups);
    c->state = State::Queued;
    queue_.push_back(c);
    queued_.fetch_add(1, std::memory_order_relaxed);
    if (idle_workers_ > 0) {
        work_cv_.notify_one();
    } else if (workers_.size() < max_workers_) {
        start_worker();
    } else {
        // Every worker is busy or lingering: ask the lingering ones to park.
        uint64_t one = 1;
        (void)!::write(work_fd_.get(), &one, sizeof one);
    }
}

void Waiter::expire(Clock::time_point now) {
    std::lock_guard<std::mutex> lock(mu_);
    while (parked_.head && parked_.head->idle_deadline <= now) {  // bounded by the parked list
        Conn* c = parked_.pop_front();
        gauge(counters().tcp_conns_parked, -1);
        SOUK_LOG(Info, "%s: idle timeout", c->peer);
        count(counters().idle_timeouts);
        close_conn(c, true);
    }
}

void Waiter::close_conn(Conn* c, bool locked) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c->fd(), nullptr);
    std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
    if (!locked) lock.lock();
    if (c->all_prev) c->all_prev->all_next = c->all_next;
    else if (all_ == c) all_ = c->all_next;
    if (c->all_next) c->all_next->all_prev = c->all_prev;
    --live_;
    if (live_ == 0) gone_cv_.notify_all();
    // The socket closes while the lock is held: shutdown_all never touches
    // a descriptor number that was reused.
    c->~Conn();
    sess_pool().put(c);
    gauge(counters().tcp_conns_live, -1);
}

void Waiter::park(Conn* c) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
        close_conn(c, true);
        return;
    }
    c->state = State::Parked;
    c->idle_deadline = Clock::now() + idle_timeout_;
    parked_.push_back(c);
    gauge(counters().tcp_conns_parked, 1);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    ev.data.ptr = c;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c->fd(), &ev) != 0) {
        parked_.unlink(c);
        gauge(counters().tcp_conns_parked, -1);
        close_conn(c, true);
    }
}

void Waiter::worker_main() {
    // A store chain per worker (the readahead layer keeps per-connection
    // state and a thread): bounded by --workers, not by connections.
    std::unique_ptr<Store> own = ctx_.store ? ctx_.store->for_connection() : nullptr;
    ServerContext wctx = ctx_;
    if (own) wctx.store = own.get();
    for (;;) {  // until shutdown
        Conn* c;
        {
            std::unique_lock<std::mutex> lock(mu_);
            ++idle_workers_;
            work_cv_.wait(lock, [this] { return stopping_ || queue_.head; });
            --idle_workers_;
            c = queue_.pop_front();
            if (!c) return;  // stopping and nothing left
            queued_.fetch_sub(1, std::memory_order_relaxed);
            if (!queue_.head) {
                uint64_t drain;
                (void)!::read(work_fd_.get(), &drain, sizeof drain);
            }
            c->state = State::Running;
        }
        serve(wctx, c);
    }
}

void Waiter::serve(const ServerContext& wctx, Conn* c) {
    for (;;) {  // bounded: each pass serves requests or ends
        SessionEnd why = serve_requests(wctx, c->stream, c->peer, ServeMode::Park);
        if (why != SessionEnd::Parked) {
            SOUK_LOG(Debug, "%s: closed (%s)", c->peer, to_string(why));
            close_conn(c, false);
            return;
        }
        // Linger: a client in a request loop sends its next request within
        // a round trip; serving it here saves a hand-off. Not while other
        // connections wait for a worker.
        if (linger_ms_ <= 0 || queued_.load(std::memory_order_relaxed) > 0) break;
        pollfd fds[2] = {{c->fd(), POLLIN | POLLRDHUP, 0}, {work_fd_.get(), POLLIN, 0}};
        int r;
        do r = ::poll(fds, 2, linger_ms_); while (r < 0 && errno == EINTR);
        if (r > 0 && (fds[0].revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) && !(fds[1].revents & POLLIN))
            continue;  // the next request (or EOF): serve it here
        break;
    }
    park(c);
}

void Waiter::shutdown_all() {
    listener_.reset();
    std::unique_lock<std::mutex> lock(mu_);
    stopping_ = true;
    // Parked and queued connections close now; running ones see EOF.
    while (Conn* c = parked_.pop_front()) {
        gauge(counters().tcp_conns_parked, -1);
        close_conn(c, true);
    }
    while (Conn* c = queue_.pop_front()) close_conn(c, true);
    queued_.store(0);
    for (Conn* c = all_; c; c = c->all_next) ::shutdown(c->fd(), SHUT_RDWR);
    work_cv_.notify_all();
    uint64_t one = 1;
    (void)!::write(work_fd_.get(), &one, sizeof one);
    gone_cv_.wait_for(lock, std::chrono::seconds(10), [this] { return live_ == 0; });
    if (live_ != 0) {
        SOUK_LOG(Warn, "%zu connections still open at shutdown", live_);
        std::_Exit(0);  // workers still use this frame: do not unwind under them
    }
    lock.unlock();
    for (auto& t : workers_) t.join();
    workers_.clear();
}

}  // namespace

int run_waiter(const ServerContext& ctx, io::Fd listener, const volatile sig_atomic_t* stop) {
    configure_pools(ctx.params);
    PoolManager::instance().start();
    int rc;
    {
        Waiter w(ctx, std::move(listener));
        rc = w.run(stop);
    }
    PoolManager::instance().stop();
    return rc;
}

}  // namespace souk::server
