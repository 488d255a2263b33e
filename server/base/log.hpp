// Logging: never on the protocol channel
// (docs/conventions.md#logs-never-on-the-protocol-channel). Two logs:
//  * the error log (SOUK_LOG: start-up, warnings, timeouts, -v detail),
//    level-checked before any formatting;
//  * the access log: one line per request on every carrier, in the format
//    of docs/access-log.md, written by the request pipeline (smart
//    requests) and the web carriers (plain GETs).
// Each goes to a file (O_APPEND), syslog, stderr (with sd-daemon priority
// prefixes when stderr is the journal), or nowhere. A line is formatted on
// the stack and written with one write(2): no lock, no allocation, and
// lines from concurrent threads and processes do not interleave.
#pragma once

#include <atomic>
#include <cstdarg>
#include <cstdint>
#include <string>
#include <string_view>

namespace souk::server::log {

// Error log levels. -q: Error; default: Info; -v: Debug (each connection
// opened and closed, each HTTP exchange); -v -v: Trace (each request's
// arguments and reply).
enum class Level : int { Error = 0, Warn = 1, Info = 2, Debug = 3, Trace = 4 };

// Where a log goes: "off", "stderr", "syslog", or a file path (appended to).
struct Target {
    enum class Kind { Off, Stderr, Syslog, File } kind = Kind::Stderr;
    std::string file;
};
Target parse_target(std::string_view spec);
std::string to_string(const Target& t);

// Configure at start-up (before any thread logs). Return false with *err
// set (and the log unchanged) if a file cannot be opened.
bool init(Level level, const Target& error_log, std::string* err);
bool init_access(const Target& access_log, std::string* err);
// Reopen the error and access logs that are files (logrotate, SIGHUP):
// the new file replaces the old descriptor in place (dup2), so a writer
// never sees a closed descriptor. Async-signal-safe.
void reopen_logs();

bool enabled(Level level);
void write(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// Who a request came from, for both logs; owned by the carrier, outliving
// the requests it serves. `user` nullptr or "" when none.
struct Origin {
    const char* carrier = "-";  // tcp, inet, http, cgi
    const char* peer = "-";     // host:port, or "stdio"
    const char* user = nullptr;
};

// One access-log line (docs/access-log.md). `version` 0 and `verb` the
// HTTP method for a plain HTTP request; empty `path` is written "-".
struct Access {
    const Origin* origin = nullptr;
    int version = 0;
    std::string_view verb;
    std::string_view path;
    std::string_view result;  // "ok" or the error's name
    uint64_t bytes_in = 0, bytes_out = 0;
    uint64_t duration_us = 0;
};
bool access_enabled();
void access(const Access& a);
// Format one access line (no newline) into buf; returns its length. For
// tests and for access().
size_t format_access(char* buf, size_t size, const Access& a, int64_t unix_ms);

// The peer of an `--inet` session: the SSH client from SSH_CONNECTION
// ("client_ip client_port server_ip server_port") as "ip:port", else "stdio".
std::string inet_peer();
// The SSH user of an `--inet` session (USER, else LOGNAME), "" when unset.
std::string inet_user();

// A message that can recur many times a second (accept failing at the
// descriptor limit, connections refused at the cap) is let through at most
// once per interval; due() says whether to log now and how many were held
// back since the last one. Thread-safe.
class Every {
public:
    explicit Every(double interval_seconds) : interval_ns_(static_cast<int64_t>(interval_seconds * 1e9)) {}
    bool due(uint64_t& held_back);

private:
    const int64_t interval_ns_;
    std::atomic<int64_t> next_ns_{0};
    std::atomic<uint64_t> held_{0};
};

}  // namespace souk::server::log

#define SOUK_LOG(level, ...)                                                              \
    do {                                                                                  \
        if (::souk::server::log::enabled(::souk::server::log::Level::level))              \
            ::souk::server::log::write(::souk::server::log::Level::level, __VA_ARGS__);   \
    } while (0)
