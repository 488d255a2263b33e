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
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

#include "server/base/counters.hpp"
#include "server/base/log.hpp"
#include "server/request/access.hpp"
#include "server/request/handler.hpp"
#include "transport/sink.hpp"
#include "transport/stream.hpp"

namespace souk::server {
namespace {

using Clock = io::Clock;

constexpr int kMaxSleepMs = 60 * 1000;  // the waiter's longest sleep with nothing due
constexpr int kRetryWorkerMs = 100;     // a worker thread that could not start is retried this soon

// wake_waiters' eventfd: made by the first waiter, before any stop can
// matter to it (a stop set earlier is seen before the first sleep).
std::atomic<int> g_stop_wake{-1};

int stop_wake_fd() {
    int fd = g_stop_wake.load(std::memory_order_acquire);
    if (fd >= 0) return fd;
    int made = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (made < 0) return -1;
    if (!g_stop_wake.compare_exchange_strong(fd, made)) ::close(made);  // another thread made it first
    return g_stop_wake.load(std::memory_order_acquire);
}

// Where a connection is. Parked and Arriving: registered in epoll
// (edge-triggered: an event per arrival of bytes), watched by the waiter
// thread alone. StreamWait, Queued, Running: not registered.
enum class State : uint8_t {
    Parked,      // between requests, nothing arrived
    Arriving,    // a request has begun arriving and is not whole yet
    StreamWait,  // --arrival-bytes of a request have arrived; waits for a --stream-workers slot
    Queued,      // waits for a worker
    Running,     // a worker has it
};

// How a connection was handed to a worker.
enum class Handover : uint8_t {
    Whole,   // its next request has arrived whole (`arrived` bytes): reading it cannot block
    Stream,  // its next request is large and still arriving: holds a stream slot
};

// A session record: everything a connection keeps while it waits for its
// next request, or for the rest of one. Lives in a "sess" pool item.
struct Conn {
    io::Stream stream;          // owns the socket
    Conn* prev = nullptr;       // parked, arriving, stream-wait list or run queue
    Conn* next = nullptr;
    Conn* all_prev = nullptr;   // every open connection (for shutdown)
    Conn* all_next = nullptr;
    // Parked: when the idle timeout closes it. Arriving, StreamWait and a
    // queued Stream hand-over: when its request must have arrived whole
    // (first byte + --request-timeout, never restarted by a byte).
    Clock::time_point deadline{};
    uint32_t arrived = 0;       // Handover::Whole: the request's length in bytes
    uint32_t requests = 0;      // requests served on it (ConnIo::count_request)
    State state = State::Parked;
    Handover handover = Handover::Whole;
    char peer[INET6_ADDRSTRLEN + 8] = "?";

    int fd() const { return stream.in_fd(); }
};
static_assert(sizeof(Conn) <= 256, "a parked connection must stay small (docs/conventions.md)");

// An intrusive list of connections. parked_ and arriving_ are in deadline
// order by construction (every entry gets the same timeout when it joins);
// stream_wait_ is kept so by insert_by_deadline; the run queue is FIFO.
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
    // Insert before the first entry (from the tail) whose deadline is not
    // later: O(1) when deadlines come in order, as they nearly do.
    void insert_by_deadline(Conn* c) {
        Conn* after = tail;
        while (after && after->deadline > c->deadline) after = after->prev;  // bounded by the list
        c->prev = after;
        c->next = after ? after->next : head;
        if (c->next) c->next->prev = c;
        else tail = c;
        if (after) after->next = c;
        else head = c;
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

// Looks at what has arrived on a socket without consuming it (MSG_PEEK)
// and asks the protocol's Measure whether the next request is whole.
// Nothing is buffered per connection: the kernel holds the bytes (bounded
// by the socket's receive buffer) until a worker reads them. One scanner
// per thread (the waiter's, each worker's); after the first use it
// allocates nothing.
class ArrivalScanner {
public:
    enum class Result : uint8_t {
        Nothing,  // no bytes waiting
        Partial,  // part of a request, less than --arrival-bytes
        Large,    // --arrival-bytes of a request that is not whole within them (or the protocol asks to stream)
        Whole,    // a whole request (or malformed bytes the protocol will answer): `bytes` long
        Closed,   // end of input (nothing waiting) or a socket error
    };
    struct Scan {
        Result result = Result::Nothing;
        size_t bytes = 0;
    };

    ArrivalScanner(const WaiterProtocol& proto, const Params& p, size_t limit)
        : measure_(proto.measure(p)), buf_(limit, '\0') {}

    Scan scan(int fd) {
        ssize_t n;
        do n = ::recv(fd, buf_.data(), buf_.size(), MSG_PEEK | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);  // bounded: signals are finite
        if (n < 0) return {errno == EAGAIN || errno == EWOULDBLOCK ? Result::Nothing : Result::Closed, 0};
        if (n == 0) return {Result::Closed, 0};
        const WaiterProtocol::Look l = measure_->look(std::string_view(buf_.data(), static_cast<size_t>(n)));
        if (l.kind == WaiterProtocol::Look::Whole) return {Result::Whole, l.bytes};
        if (l.kind == WaiterProtocol::Look::Stream) return {Result::Large, static_cast<size_t>(n)};
        return {static_cast<size_t>(n) >= buf_.size() ? Result::Large : Result::Partial, static_cast<size_t>(n)};
    }

private:
    std::unique_ptr<WaiterProtocol::Measure> measure_;
    std::string buf_;
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
    Waiter(const ServerContext& ctx, io::Fd listener, const WaiterProtocol& proto, const WaiterConfig& cfg)
        : ctx_(ctx), proto_(proto), cfg_(cfg), listener_(std::move(listener)) {}
    ~Waiter() {
        for (auto& t : workers_)
            if (t.joinable()) t.join();
    }
    int run(const std::atomic<bool>* stop);

private:
    void accept_all();
    // With mu_ held: make room for one more connection at --max-connections
    // by closing the one idle longest, if idle --idle-reclaim-age. false: none.
    bool reclaim_idle_locked(Clock::time_point now);
    // With mu_ held: one more worker. false when the thread cannot be made
    // (EAGAIN: out of threads, memory or descriptors); the queue is then
    // served by the workers there are, or retried from the event loop.
    bool start_worker();
    // Out of descriptors: take the listener out of epoll until
    // accept_resume_ (it would wake us at once, forever), then put it back.
    void pause_accepting();
    void resume_accepting();
    // Bytes (or the end) arrived on a Parked or Arriving connection: look
    // at them, and hand the connection to a worker once its request has
    // arrived whole, or is large (waiter thread only).
    void on_arrival(Conn* c, uint32_t events);
    // With mu_ held: hand `c` (out of epoll and off its list) to a worker.
    void enqueue_locked(Conn* c, Handover how);
    // With mu_ held: a stream slot, if one is free (--stream-workers).
    bool take_stream_slot_locked();
    // A worker is done streaming a request in: its slot goes to the
    // connection that has waited longest for one.
    void release_stream_slot();
    void expire(Clock::time_point now);
    void worker_main();
    void serve(const ServerContext& wctx, ArrivalScanner& scanner, Conn* c);
    class Io;  // the ConnIo a protocol serves a connection through
    // Park `c` (a worker is done with it for now): back into epoll with the
    // idle deadline. Closes it instead when shutting down.
    void park(Conn* c);
    // Register `c` in epoll (edge-triggered; bytes already there are
    // reported at once). false on failure.
    bool watch(Conn* c);
    void close_conn(Conn* c, bool locked);
    void shutdown_all();

    const ServerContext& ctx_;
    const WaiterProtocol& proto_;
    const WaiterConfig cfg_;
    io::Fd listener_;
    io::Fd epoll_;
    io::Fd work_fd_;  // eventfd: "connections wait for a worker" (ends lingering)
    std::mutex mu_;
    std::condition_variable work_cv_;
    std::condition_variable gone_cv_;
    List parked_;
    List arriving_;
    List stream_wait_;
    List queue_;
    Conn* all_ = nullptr;
    size_t live_ = 0;
    size_t idle_workers_ = 0;
    size_t streams_ = 0;      // stream slots taken (queued or running Stream hand-overs)
    size_t max_streams_ = 1;
    bool stopping_ = false;
    std::atomic<bool> draining_{false};  // stopping_, readable without mu_: no request after the current one
    std::atomic<size_t> queued_{0};
    std::atomic<size_t> stream_waiting_{0};
    std::vector<std::thread> workers_;
    size_t max_workers_ = 1;
    size_t arrival_bytes_ = 16 * 1024;
    Clock::duration idle_timeout_{};
    Clock::duration arrival_timeout_{};
    Clock::duration request_timeout_{};
    Clock::duration reclaim_age_{};
    int linger_ms_ = 0;
    bool accept_paused_ = false;
    Clock::time_point accept_resume_{};
    std::unique_ptr<ArrivalScanner> scanner_;  // the waiter thread's
    log::Every accept_log_{10.0};  // a line per 10 s at most while accept keeps failing
    log::Every refused_log_{10.0};
    log::Every worker_log_{10.0};
    log::Every slow_log_{10.0};
};

int Waiter::run(const std::atomic<bool>* stop) {
    const Params& p = ctx_.params;
    max_workers_ = std::max<size_t>(1, cfg_.workers);
    // Stream slots leave at least one worker to requests that have arrived
    // whole (none can be left with --workers=1).
    max_streams_ = std::clamp<size_t>(static_cast<size_t>(p.stream_workers), 1, std::max<size_t>(1, max_workers_ - 1));
    idle_timeout_ = seconds(cfg_.idle_timeout);
    arrival_timeout_ = seconds(std::min(cfg_.arrival_timeout, cfg_.request_timeout));
    request_timeout_ = seconds(cfg_.request_timeout);
    reclaim_age_ = seconds(p.idle_reclaim_age);
    linger_ms_ = static_cast<int>(std::min(cfg_.linger, cfg_.idle_timeout) * 1000);
    arrival_bytes_ = static_cast<size_t>(p.arrival_bytes);
    {
        // A request must be able to get --arrival-bytes into the kernel's
        // receive buffer before anyone reads it, or it would wait for its
        // deadline; accepted sockets inherit the listener's buffer size.
        int rcvbuf = 0;
        socklen_t len = sizeof rcvbuf;
        if (::getsockopt(listener_.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len) == 0 && rcvbuf > 0 &&
            arrival_bytes_ > static_cast<size_t>(rcvbuf) / 4) {
            size_t fit = std::max<size_t>(1024, static_cast<size_t>(rcvbuf) / 4);
            SOUK_LOG(Warn, "--arrival-bytes=%zu is more than a quarter of the socket receive buffer (%d bytes); using %zu "
                     "(raise net.ipv4.tcp_rmem to allow more)", arrival_bytes_, rcvbuf, fit);
            arrival_bytes_ = fit;
        }
    }
    scanner_ = std::make_unique<ArrivalScanner>(proto_, p, arrival_bytes_);
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

    // The stop flag's wake-up (wake_waiters): one eventfd for the process.
    static int stop_marker;
    epoll_event sev{};
    sev.events = EPOLLIN;
    sev.data.ptr = &stop_marker;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, stop_wake_fd(), &sev) != 0) {
        std::fprintf(stderr, "soukd: epoll_ctl: %s\n", std::strerror(errno));
        return 1;
    }

    epoll_event events[256];
    while (!*stop) {  // bounded: ends at *stop
        // Asleep until the nearest deadline (an idle soukd wakes rarely:
        // each wake-up costs tens of microseconds on a virtual machine).
        int timeout = kMaxSleepMs;
        auto until = [&timeout](Clock::time_point t) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now());
            timeout = std::min(timeout, static_cast<int>(std::clamp<int64_t>(left.count() + 1, 0, kMaxSleepMs)));
        };
        {
            std::lock_guard<std::mutex> lock(mu_);
            for (List* l : {&parked_, &arriving_, &stream_wait_})
                if (l->head) until(l->head->deadline);
            // A worker that could not be started is retried soon.
            if (queue_.head && idle_workers_ == 0 && workers_.empty()) timeout = std::min(timeout, kRetryWorkerMs);
        }
        if (accept_paused_) until(accept_resume_);
        int n = ::epoll_wait(epoll_.get(), events, 256, timeout);
        if (n < 0 && errno != EINTR) {
            SOUK_LOG(Error, "epoll_wait: %s", std::strerror(errno));
            break;
        }
        // Connections first, the listener last: accepting may close an idle
        // connection (--idle-reclaim-age) that has an event further on.
        bool listener_ready = false;
        for (int i = 0; i < n; ++i) {
            if (events[i].data.ptr == nullptr) listener_ready = true;
            else if (events[i].data.ptr == &stop_marker) {
                // Left readable once *stop is set, for every other watcher;
                // drained otherwise (a wake-up left over from an earlier run).
                uint64_t drain;
                if (!*stop) (void)!::read(stop_wake_fd(), &drain, sizeof drain);
            }
            else on_arrival(static_cast<Conn*>(events[i].data.ptr), events[i].events);
        }
        expire(Clock::now());
        if (listener_ready) accept_all();
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
    accept_resume_ = Clock::now() + seconds(live(ctx_.params.accept_backoff));
}

void Waiter::resume_accepting() {
    epoll_event lev{};
    lev.events = EPOLLIN;
    lev.data.ptr = nullptr;  // the listener
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listener_.get(), &lev) != 0) {
        SOUK_LOG(Error, "epoll_ctl (listener): %s", std::strerror(errno));
        accept_resume_ = Clock::now() + seconds(live(ctx_.params.accept_backoff));
        return;
    }
    accept_paused_ = false;
    accept_all();
}

bool Waiter::reclaim_idle_locked(Clock::time_point now) {
    // parked_ is in idle-deadline order, so its head has been idle longest
    // (nginx's reusable connections). Only connections with nothing
    // arrived: a request that has begun is never cut for a newcomer.
    Conn* c = parked_.head;
    for (int looked = 0; c && looked < 8; ++looked, c = c->next) {  // bounded: 8 candidates
        if (now - (c->deadline - idle_timeout_) < reclaim_age_) return false;  // the rest are younger
        // Its first bytes may have come since epoll_wait returned: then it
        // is not idle (the event is on its way).
        char peek;
        if (::recv(c->fd(), &peek, 1, MSG_PEEK | MSG_DONTWAIT) > 0) continue;
        parked_.unlink(c);
        gauge(counters().tcp_conns_parked, -1);
        count(counters().idle_reclaimed);
        SOUK_LOG(Debug, "%s: idle connection closed for a new one (--max-connections)", c->peer);
        close_conn(c, true);
        return true;
    }
    return false;
}

void Waiter::accept_all() {
    const size_t cap = connection_cap(ctx_.params);  // SIGHUP may change it
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
                         live(ctx_.params.accept_backoff),
                         e == EMFILE || e == ENFILE ? ", raise the descriptor limit (ulimit -n)" : "");
            if (held) SOUK_LOG(Warn, "accept: %llu more failures since the last line", static_cast<unsigned long long>(held));
            pause_accepting();
            return;
        }
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (live_ >= cap && !reclaim_idle_locked(Clock::now())) {
                count(counters().connections_refused);
                uint64_t held = 0;
                if (refused_log_.due(held))
                    SOUK_LOG(Warn, "connection refused: %zu connections already, none idle --idle-reclaim-age "
                             "(--max-connections)%s", cap,
                             held ? " (and more since the last line, see connections_refused)" : "");
                ::close(fd);
                continue;
            }
            // The gauges move with live_, under its lock: a reader that sees
            // the connection counted also sees it live, until close_conn.
            ++live_;
            count(counters().connections_accepted);
            gauge(counters().tcp_conns_live, 1);
        }
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        void* mem = sess_pool().get();
        Conn* c = ::new (mem) Conn{};
        c->stream = io::Stream(io::Fd(fd));
        peer_name(fd, c->peer, sizeof c->peer);
        SOUK_LOG(Debug, "%s: connected", c->peer);
        std::lock_guard<std::mutex> lock(mu_);
        c->all_next = all_;
        if (all_) all_->all_prev = c;
        all_ = c;
        // Parked from the start: its first request wakes it.
        c->state = State::Parked;
        c->deadline = Clock::now() + idle_timeout_;
        parked_.push_back(c);
        gauge(counters().tcp_conns_parked, 1);
        if (!watch(c)) {
            SOUK_LOG(Warn, "%s: epoll_ctl: %s", c->peer, std::strerror(errno));
            parked_.unlink(c);
            gauge(counters().tcp_conns_parked, -1);
            close_conn(c, true);
        }
    }
}

bool Waiter::watch(Conn* c) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = c;
    return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, c->fd(), &ev) == 0;
}

void Waiter::on_arrival(Conn* c, uint32_t events) {
    // Only the waiter thread touches a Parked or Arriving connection (and
    // shutdown, which runs on it too), so the look needs no lock.
    const ArrivalScanner::Scan s = scanner_->scan(c->fd());
    const bool ended = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;  // no more bytes will come
    std::lock_guard<std::mutex> lock(mu_);
    const bool arriving = c->state == State::Arriving;
    List& from = arriving ? arriving_ : parked_;
    // The peer is gone, or will send no more: in the middle of a request
    // (bytes of it waiting) that is a truncated request, else the end.
    auto drop = [&](bool truncated) {
        from.unlink(c);
        gauge(arriving ? counters().tcp_conns_arriving : counters().tcp_conns_parked, -1);
        if (truncated) count(counters().truncated_requests);
        SOUK_LOG(Debug, "%s: closed (%s)", c->peer, to_string(truncated ? SessionEnd::Truncated : SessionEnd::Eof));
        close_conn(c, true);
    };
    using R = ArrivalScanner::Result;
    switch (s.result) {
    case R::Nothing:
        if (ended) drop(arriving);
        return;  // a wakeup with nothing new
    case R::Closed: return drop(arriving);
    case R::Partial:
        if (ended) return drop(true);
        if (!arriving) {
            // Its first bytes: the request's deadline starts now and never moves.
            parked_.unlink(c);
            gauge(counters().tcp_conns_parked, -1);
            c->state = State::Arriving;
            c->deadline = Clock::now() + arrival_timeout_;
            arriving_.push_back(c);
            gauge(counters().tcp_conns_arriving, 1);
        }
        return;  // the rest will wake us
    case R::Large:
    case R::Whole: break;
    }
    if (!arriving) c->deadline = Clock::now() + arrival_timeout_;  // it all came at once
    from.unlink(c);
    gauge(arriving ? counters().tcp_conns_arriving : counters().tcp_conns_parked, -1);
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c->fd(), nullptr);
    if (s.result == R::Whole) {
        c->arrived = static_cast<uint32_t>(s.bytes);
        count(counters().tcp_wakeups);
        return enqueue_locked(c, Handover::Whole);
    }
    // Large: it streams to a worker that holds a stream slot; without a
    // free slot it waits here, its bytes in the kernel (TCP flow control
    // slows the sender meanwhile).
    if (take_stream_slot_locked()) return enqueue_locked(c, Handover::Stream);
    c->state = State::StreamWait;
    stream_wait_.insert_by_deadline(c);
    stream_waiting_.fetch_add(1, std::memory_order_relaxed);
    gauge(counters().tcp_conns_arriving, 1);
    count(counters().tcp_stream_waits);
}

bool Waiter::take_stream_slot_locked() {
    if (streams_ >= max_streams_) return false;
    ++streams_;
    return true;
}

void Waiter::enqueue_locked(Conn* c, Handover how) {
    if (how == Handover::Stream) count(counters().tcp_stream_handovers);
    c->handover = how;
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

void Waiter::release_stream_slot() {
    std::lock_guard<std::mutex> lock(mu_);
    --streams_;
    if (stopping_) return;
    const auto now = Clock::now();
    while (Conn* c = stream_wait_.pop_front()) {  // bounded by the list; the first one alive takes the slot
        stream_waiting_.fetch_sub(1, std::memory_order_relaxed);
        gauge(counters().tcp_conns_arriving, -1);
        if (c->deadline <= now) {
            SOUK_LOG(Info, "%s: %s", c->peer, to_string(SessionEnd::RequestTimeout));
            count(counters().request_timeouts);
            close_conn(c, true);
            continue;
        }
        ++streams_;
        enqueue_locked(c, Handover::Stream);
        return;
    }
}

void Waiter::expire(Clock::time_point now) {
    std::lock_guard<std::mutex> lock(mu_);
    while (parked_.head && parked_.head->deadline <= now) {  // bounded by the parked list
        Conn* c = parked_.pop_front();
        gauge(counters().tcp_conns_parked, -1);
        SOUK_LOG(Info, "%s: idle timeout", c->peer);
        count(counters().idle_timeouts);
        close_conn(c, true);
    }
    for (List* l : {&arriving_, &stream_wait_}) {
        while (l->head && l->head->deadline <= now) {  // bounded by the list
            Conn* c = l->pop_front();
            gauge(counters().tcp_conns_arriving, -1);
            if (l == &stream_wait_) stream_waiting_.fetch_sub(1, std::memory_order_relaxed);
            SOUK_LOG(Info, "%s: %s", c->peer, to_string(SessionEnd::RequestTimeout));
            count(counters().request_timeouts);
            close_conn(c, true);
        }
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
    c->deadline = Clock::now() + idle_timeout_;
    parked_.push_back(c);
    gauge(counters().tcp_conns_parked, 1);
    // Bytes already there (the start of the next request) are reported at
    // once, and the waiter watches the rest arrive.
    if (!watch(c)) {
        parked_.unlink(c);
        gauge(counters().tcp_conns_parked, -1);
        close_conn(c, true);
    }
}

void Waiter::worker_main() {
    // A store chain per worker (the readahead layer keeps per-connection
    // state and a thread): bounded by --workers, not by connections.
    std::vector<std::unique_ptr<Store>> own;  // one per root
    const ServerContext wctx = connection_context(ctx_, own);
    ArrivalScanner scanner(proto_, ctx_.params, arrival_bytes_);
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
        serve(wctx, scanner, c);
    }
}

// A connection on a worker, as its protocol reads it: requests that have
// arrived whole are read exactly (a read cannot block), a large one only
// while holding a stream slot, in slices, so that one slower than
// --min-stream-rate gives its worker up when another large request waits.
class Waiter::Io final : public ConnIo {
public:
    Io(Waiter& w, ArrivalScanner& scanner, Conn* c) : w_(w), scanner_(scanner), c_(c) {
        slot_ = c->handover == Handover::Stream;
        whole_ = c->handover == Handover::Whole ? c->arrived : 0;
        // The first request's deadline runs from its first byte, seen by the
        // waiter; its rate (--min-stream-rate) from now, when it got this
        // worker (measured from the clock's epoch, any 100 ms pause of a
        // fast upload read as a rate near 0 and cut it while another waited).
        if (slot_) {
            first_deadline_ = c->deadline - w.arrival_timeout_ + w.request_timeout_;
            stream_from_ = Clock::now();
        }
        c->handover = Handover::Whole;
        c->arrived = 0;
        min_rate_ = live(w.ctx_.params.min_stream_rate);
    }
    ~Io() override { drop_slot(); }

    Next next() override {
        partial_ = false;
        const ArrivalScanner::Scan s = scanner_.scan(c_->fd());
        using R = ArrivalScanner::Result;
        if (s.result == R::Nothing) return Next::Park;
        if (s.result == R::Closed) return Next::Eof;
        if (s.result == R::Whole) {
            whole_ = s.bytes;
            return Next::Go;
        }
        bool taken = false;
        if (s.result == R::Large) {
            std::lock_guard<std::mutex> lock(w_.mu_);
            taken = w_.take_stream_slot_locked();
        }
        if (!taken) {
            partial_ = true;
            return Next::Park;
        }
        count(counters().tcp_stream_handovers);
        start_streaming();
        return Next::Go;
    }
    bool partial() const override { return partial_; }
    bool between() const override { return !slot_ && whole_ == 0; }

    ssize_t read(char* buf, size_t n, io::Deadline deadline, SessionEnd* why) override {
        for (;;) {  // bounded: each pass reads, or waits a slice towards a deadline
            ssize_t got;
            if (!slot_) {
                got = c_->stream.read_some(buf, std::min(n, whole_), Clock::now() + w_.request_timeout_);
            } else {
                const io::Deadline d = std::min(first_deadline_, deadline);
                got = c_->stream.read_some(buf, n, std::min(d, Clock::now() + std::chrono::milliseconds(100)));
                if (got < 0 && errno == ETIMEDOUT) {
                    const auto now = Clock::now();
                    if (now >= d) return timed_out(why);
                    const double secs = std::chrono::duration<double>(now - stream_from_).count();
                    if (min_rate_ > 0 && w_.stream_waiting_.load(std::memory_order_relaxed) > 0 &&
                        static_cast<double>(streamed_) < min_rate_ * secs) {
                        count(counters().tcp_slow_streams_cut);
                        uint64_t held = 0;
                        if (w_.slow_log_.due(held))
                            SOUK_LOG(Info, "%s: request cut: %.0f bytes/s, below --min-stream-rate, while another "
                                     "large request waits for a worker%s", c_->peer, static_cast<double>(streamed_) / secs,
                                     held ? " (and more since the last line, see tcp_slow_streams_cut)" : "");
                        *why = SessionEnd::RequestTimeout;
                        return -1;
                    }
                    continue;
                }
            }
            if (got < 0) {
                // A timeout here only if the bytes the waiter saw went missing.
                if (errno == ETIMEDOUT) return timed_out(why);
                *why = SessionEnd::ReadFailed;
                return -1;
            }
            if (slot_) streamed_ += static_cast<uint64_t>(got);
            else whole_ -= static_cast<size_t>(got);
            return got;
        }
    }

    void request_done(bool nothing_pending) override {
        first_deadline_ = io::no_deadline();
        // The large request is in; what follows must arrive whole (or take
        // a slot again). Bytes of it already read are served on under this slot.
        if (nothing_pending) drop_slot();
    }
    void must_stream() override {
        std::lock_guard<std::mutex> lock(w_.mu_);
        ++w_.streams_;  // over --stream-workers for once: this worker is reading already
        start_streaming();
    }
    uint32_t count_request() override { return ++c_->requests; }
    bool draining() const override { return w_.draining_.load(std::memory_order_relaxed); }
    io::Stream& stream() override { return c_->stream; }
    const char* peer() const override { return c_->peer; }

private:
    void start_streaming() {
        slot_ = true;
        stream_from_ = Clock::now();
        streamed_ = 0;
        // Its first byte came at most now (the protocol's own deadline starts when it is fed).
        first_deadline_ = stream_from_ + w_.request_timeout_;
    }
    void drop_slot() {
        if (slot_) w_.release_stream_slot();
        slot_ = false;
    }
    ssize_t timed_out(SessionEnd* why) {
        SOUK_LOG(Info, "%s: %s", c_->peer, to_string(SessionEnd::RequestTimeout));
        count(counters().request_timeouts);
        *why = SessionEnd::RequestTimeout;
        return -1;
    }

    Waiter& w_;
    ArrivalScanner& scanner_;
    Conn* c_;
    bool slot_ = false;     // holding a stream slot: reading a request that had not arrived whole
    bool partial_ = false;  // next() parked a connection with part of a request there
    size_t whole_ = 0;      // bytes known to belong to requests that arrived whole: reading them cannot block
    io::Deadline first_deadline_ = io::no_deadline();
    Clock::time_point stream_from_{};
    uint64_t streamed_ = 0;  // bytes read since the stream slot was taken
    double min_rate_ = 0;
};

void Waiter::serve(const ServerContext& wctx, ArrivalScanner& scanner, Conn* c) {
    for (;;) {  // bounded: each pass serves requests or ends
        bool partial = false;
        SessionEnd why;
        try {
            Io io(*this, scanner, c);
            why = proto_.serve(wctx, io);
            partial = io.partial();
        } catch (const std::exception& e) {
            // The edge (docs/conventions.md#errors-as-values): nothing
            // below throws but std::bad_alloc; the connection closes and
            // the worker lives on.
            SOUK_LOG(Error, "%s: internal error: %s; connection closed", c->peer, e.what());
            why = SessionEnd::ProtocolError;
        }
        if (why != SessionEnd::Parked) {
            SOUK_LOG(Debug, "%s: closed (%s)", c->peer, to_string(why));
            close_conn(c, false);
            return;
        }
        // Part of the next request is there: the waiter watches the rest
        // arrive, no worker waits for it.
        if (partial) break;
        // Linger: a client in a request loop sends its next request within
        // a round trip; serving it here saves a hand-off. Not while other
        // connections wait for a worker.
        if (linger_ms_ <= 0 || queued_.load(std::memory_order_relaxed) > 0) break;
        pollfd fds[2] = {{c->fd(), POLLIN | POLLRDHUP, 0}, {work_fd_.get(), POLLIN, 0}};
        int r;
        do r = ::poll(fds, 2, linger_ms_); while (r < 0 && errno == EINTR);
        if (r > 0 && (fds[0].revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) && !(fds[1].revents & POLLIN))
            continue;  // the next request (or EOF): serve it here if it has arrived whole
        break;
    }
    park(c);
}

void Waiter::shutdown_all() {
    // Graceful (docs/configuration.md#signals): new connections are refused
    // from here on (the listener closes), idle ones close now, requests a
    // worker has or waits for are served to the end of their reply within
    // --shutdown-grace, then cut.
    listener_.reset();
    std::unique_lock<std::mutex> lock(mu_);
    stopping_ = true;
    draining_.store(true, std::memory_order_relaxed);
    size_t idle = 0, partial = 0;
    while (Conn* c = parked_.pop_front()) {  // bounded: the parked list
        gauge(counters().tcp_conns_parked, -1);
        close_conn(c, true);
        ++idle;
    }
    // A request still arriving has no worker: it is cut (the client may
    // retry against the next server).
    for (List* l : {&arriving_, &stream_wait_})
        while (Conn* c = l->pop_front()) {  // bounded: the list
            gauge(counters().tcp_conns_arriving, -1);
            close_conn(c, true);
            ++partial;
        }
    stream_waiting_.store(0);
    const size_t in_flight = live_;  // queued or on a worker
    work_cv_.notify_all();
    uint64_t one = 1;
    (void)!::write(work_fd_.get(), &one, sizeof one);  // lingering workers park (and so close) at once
    const double grace = ctx_.params.shutdown_grace;
    gone_cv_.wait_for(lock, std::chrono::duration<double>(grace), [this] { return live_ == 0; });
    const size_t cut = live_;
    if (cut != 0) {
        while (Conn* c = queue_.pop_front()) close_conn(c, true);  // bounded: the queue
        queued_.store(0);
        for (Conn* c = all_; c; c = c->all_next) ::shutdown(c->fd(), SHUT_RDWR);  // bounded: open connections
        work_cv_.notify_all();
    }
    if (cut != 0 || partial != 0)
        SOUK_LOG(Warn, "shutdown: stopped accepting; %zu idle connections closed; %zu of %zu requests in flight "
                 "finished within --shutdown-grace=%gs, %zu cut; %zu requests still arriving cut",
                 idle, in_flight - cut, in_flight, grace, cut, partial);
    else
        SOUK_LOG(Info, "shutdown: stopped accepting; %zu idle connections closed; %zu of %zu requests in flight "
                 "finished within --shutdown-grace=%gs, 0 cut", idle, in_flight, in_flight, grace);
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

ssize_t InBuffer::fill(ConnIo& io, size_t n, io::Deadline deadline, SessionEnd* why) {
    if (begin_ > 0 && begin_ == end_) begin_ = end_ = 0;
    if (begin_ > 0 && end_ + n > buf_.size()) {  // move the pending bytes to the front
        std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }
    if (buf_.size() < end_ + n) buf_.resize(end_ + n);
    ssize_t got = io.read(buf_.data() + end_, n, deadline, why);
    if (got > 0) end_ += static_cast<size_t>(got);
    return got;
}

void wake_waiters() {
    const uint64_t one = 1;
    int fd = g_stop_wake.load(std::memory_order_acquire);  // never made here: a signal handler may call this
    if (fd >= 0) (void)!::write(fd, &one, sizeof one);
}

void sleep_until_woken(int timeout_ms) {
    pollfd p{stop_wake_fd(), POLLIN, 0};
    if (p.fd < 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(timeout_ms, kRetryWorkerMs)));
        return;
    }
    (void)!::poll(&p, 1, timeout_ms);
}

WaiterConfig waiter_config(const Params& p) {
    WaiterConfig c;
    c.workers = static_cast<size_t>(p.workers);
    c.idle_timeout = p.idle_timeout;
    c.arrival_timeout = c.request_timeout = p.request_timeout;
    c.linger = p.linger;
    return c;
}

int run_waiter(const ServerContext& ctx, io::Fd listener, const WaiterProtocol& proto, const WaiterConfig& cfg,
               const std::atomic<bool>* stop) {
    configure_pools(ctx.params);
    PoolManager::instance().start();
    int rc;
    {
        Waiter w(ctx, std::move(listener), proto, cfg);
        rc = w.run(stop);
    }
    PoolManager::instance().stop();
    return rc;
}

}  // namespace souk::server
