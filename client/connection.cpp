#include "client/connection.hpp"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cstdlib>
#include <optional>
#include <utility>

#include "transport/net.hpp"

namespace souk::client {
namespace {

std::string describe_status(const std::string& program, int status) {
    if (WIFEXITED(status)) return program + " exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return program + " was killed by signal " + std::to_string(WTERMSIG(status));
    return program + " ended";
}

// waitpid with a bound; true and *status if the child was reaped.
bool reap_within(pid_t pid, std::chrono::milliseconds limit, int* status) {
    auto until = std::chrono::steady_clock::now() + limit;
    for (int i = 0; i < 100000; ++i) {  // bounded; ends by time well before
        pid_t r = ::waitpid(pid, status, WNOHANG);
        if (r == pid) return true;
        if (r < 0 && errno != EINTR) return true;  // not our child any more (ECHILD)
        if (std::chrono::steady_clock::now() >= until) return false;
        struct timespec ts = {0, 10 * 1000 * 1000};
        ::nanosleep(&ts, nullptr);
    }
    return false;
}

const char* env_or_null(const char* name) {
    const char* v = std::getenv(name);
    return v;
}

bool blank(std::string_view s) { return s.find_first_not_of(" \t\n") == std::string_view::npos; }

}  // namespace

// ---------------------------------------------------------- ssh command --

Result<std::vector<std::string>> split_command(std::string_view line) {
    std::vector<std::string> words;
    std::string cur;
    bool in_word = false;
    enum { None, Single, Double } quote = None;
    for (size_t i = 0; i < line.size(); ++i) {
        char c = line[i];
        if (quote == Single) {
            if (c == '\'') quote = None;
            else cur += c;
            continue;
        }
        if (quote == Double) {
            if (c == '"') {
                quote = None;
            } else if (c == '\\' && i + 1 < line.size() && (line[i + 1] == '"' || line[i + 1] == '\\')) {
                cur += line[++i];
            } else {
                cur += c;
            }
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\n') {
            if (in_word) words.push_back(std::move(cur));
            cur.clear();
            in_word = false;
            continue;
        }
        in_word = true;
        if (c == '\'') {
            quote = Single;
        } else if (c == '"') {
            quote = Double;
        } else if (c == '\\') {
            if (i + 1 >= line.size())
                return make_error(ErrorKind::InvalidArgument, "command line ends with a backslash: " + std::string(line));
            cur += line[++i];
        } else {
            cur += c;
        }
    }
    if (quote != None)
        return make_error(ErrorKind::InvalidArgument, "unbalanced quote in command line: " + std::string(line));
    if (in_word) words.push_back(std::move(cur));
    return words;
}

Result<std::vector<std::string>> ssh_argv(const Url& url, std::string_view ssh_command,
                                          std::string_view remote_program) {
    std::vector<std::string> argv;
    bool custom = !blank(ssh_command);
    if (custom) {
        auto words = split_command(ssh_command);
        if (!words) {
            Error e = std::move(words).take_error();
            e.message = "SOUK_SSH: " + e.message;
            return e;
        }
        argv = std::move(words).value();
        if (argv.empty() || argv[0].empty()) return make_error(ErrorKind::InvalidArgument, "SOUK_SSH names no command");
    } else {
        argv = {"ssh", "-oForwardX11=no", "-oForwardAgent=no", "-oClearAllForwardings=yes"};
    }
    if (url.port) {
        argv.emplace_back("-p");
        argv.push_back(std::to_string(*url.port));
    }
    if (!url.user.empty()) {
        argv.emplace_back("-l");
        argv.push_back(url.user);
    }
    if (!custom) argv.emplace_back("--");
    argv.push_back(url.host);
    argv.emplace_back(blank(remote_program) ? std::string_view("soukd") : remote_program);
    for (const char* a : {"serve", "--inet", "--directory=/", "--allow-writes"}) argv.emplace_back(a);
    return argv;
}

std::string effective_ssh_command(const Options& opts) {
    if (opts.ssh_command) return *opts.ssh_command;
    const char* v = env_or_null("SOUK_SSH");
    return v ? v : "";
}

std::string effective_remote_program(const Options& opts) {
    if (opts.remote_program && !blank(*opts.remote_program)) return *opts.remote_program;
    const char* v = env_or_null("BZR_REMOTE_PATH");
    return v && !blank(v) ? v : "soukd";
}

// ----------------------------------------------------------- Connection --

Connection::Connection(Connection&& o) noexcept
    : stream_(std::move(o.stream_)),
      pid_(std::exchange(o.pid_, -1)),
      program_(std::move(o.program_)),
      http_(std::move(o.http_)),
      smart_path_(std::move(o.smart_path_)),
      pending_(std::move(o.pending_)),
      http_error_(std::move(o.http_error_)) {}

Connection& Connection::operator=(Connection&& o) noexcept {
    if (this != &o) {
        close();
        stream_ = std::move(o.stream_);
        pid_ = std::exchange(o.pid_, -1);
        program_ = std::move(o.program_);
        http_ = std::move(o.http_);
        smart_path_ = std::move(o.smart_path_);
        pending_ = std::move(o.pending_);
        http_error_ = std::move(o.http_error_);
    }
    return *this;
}

Result<Connection> Connection::open(const Url& url, const Options& opts) {
    Connection c;
    std::string err;
    if (url.is_http()) {
        auto h = HttpCarrier::open(url, opts);
        if (!h) return std::move(h).take_error();
        c.http_ = std::make_unique<HttpCarrier>(std::move(h).value());
        c.smart_path_ = escape_path(url.path);
        if (c.smart_path_.back() != '/') c.smart_path_ += '/';
        c.smart_path_ += ".bzr/smart";
        c.program_ = url.is_tls() ? "https" : "http";
        return c;
    }
    if (url.scheme == Scheme::Bzr) {
        auto ms = std::max<int64_t>(1, opts.connect_timeout.count());
        io::Fd fd = io::connect_tcp(url.host, url.tcp_port(), static_cast<int>(std::min<int64_t>(ms, INT32_MAX)), &err);
        if (!fd) return make_error(ErrorKind::Connection, err.empty() ? "cannot connect to " + url.host : err);
        c.stream_ = io::Stream(std::move(fd));
        c.program_ = "tcp";
        return c;
    }
    auto argv = ssh_argv(url, effective_ssh_command(opts), effective_remote_program(opts));
    if (!argv) return std::move(argv).take_error();
    io::Child child = io::spawn(*argv, &err);
    if (child.pid <= 0) return make_error(ErrorKind::Connection, err.empty() ? "cannot run " + (*argv)[0] : err);
    c.stream_ = std::move(child.stream);
    c.pid_ = child.pid;
    c.program_ = (*argv)[0];
    return c;
}

int Connection::write_all(std::string_view data, std::chrono::milliseconds idle) {
    if (http_) {
        pending_.append(data);
        return 0;
    }
    constexpr size_t kStep = 1 << 20;
    std::optional<io::SigpipeGuard> guard;
    if (is_pipe()) guard.emplace();
    while (!data.empty()) {  // bounded: each pass consumes up to kStep bytes or returns
        size_t n = std::min(kStep, data.size());
        if (stream_.write_all(data.substr(0, n), io::after_ms(idle.count())) < 0) return -1;
        data.remove_prefix(n);
    }
    return 0;
}

ssize_t Connection::read_some(char* buf, size_t n, std::chrono::milliseconds idle) {
    if (http_) {
        auto failed = [this](Error e) {
            errno = e.kind == ErrorKind::Timeout ? ETIMEDOUT : e.kind == ErrorKind::Connection ? ECONNRESET : EPROTO;
            http_error_ = std::move(e);
            return ssize_t{-1};
        };
        if (!pending_.empty()) {  // the request is whole: send it
            http_error_.reset();
            auto r = http_->begin_post(smart_path_, pending_);
            pending_.clear();
            if (!r) return failed(std::move(r).take_error());
        }
        auto k = http_->read_body(buf, n);  // the answer as it arrives; 0 at its end
        if (!k) return failed(std::move(k).take_error());
        return static_cast<ssize_t>(*k);
    }
    return stream_.read_some(buf, n, io::after_ms(idle.count()));
}

bool Connection::peer_gone() {
    if (http_) return false;  // HttpCarrier replaces a closed keep-alive itself
    if (!stream_.valid()) return true;
    struct pollfd p = {stream_.in_fd(), POLLIN, 0};
    int r;
    do r = ::poll(&p, 1, 0);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return r < 0;
    // Readable while idle: EOF, an error, or bytes nobody asked for. None
    // of them leaves a usable connection.
    return true;
}

std::string Connection::close() {
    http_.reset();
    pending_.clear();
    stream_.close_write();
    stream_ = io::Stream();
    if (pid_ <= 0) return {};
    pid_t pid = std::exchange(pid_, -1);
    int status = 0;
    if (reap_within(pid, std::chrono::milliseconds(2000), &status)) return describe_status(program_, status);
    ::kill(pid, SIGTERM);
    if (reap_within(pid, std::chrono::milliseconds(1000), &status)) return describe_status(program_, status);
    ::kill(pid, SIGKILL);
    status = io::wait_child(pid);
    return status < 0 ? std::string() : describe_status(program_, status);
}

}  // namespace souk::client
