#include "server/base/log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace souk::server::log {
namespace {

// One log's destination. Set up by init*() before threads start; after
// that only reopen_logs() touches it, and only through dup2 on `fd`.
struct Dest {
    Target::Kind kind = Target::Kind::Stderr;
    int fd = 2;
    char file[4096] = "";
    bool journal = false;  // stderr is the journal: lines start with <N>
};

std::atomic<int> g_level{static_cast<int>(Level::Info)};
Dest g_err;
Dest g_acc{Target::Kind::Off, -1, "", false};
bool g_syslog_open = false;
const char* const kNames[] = {"error", "warn", "info", "debug", "trace"};
// syslog(3) and sd-daemon(3) priorities of the levels.
const int kPriority[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG};

// Whether fd 2 is the stream systemd gave us for the journal (JOURNAL_STREAM
// holds its "device:inode", sd_journal_stream_fd(3)).
bool stderr_is_journal() {
    const char* js = std::getenv("JOURNAL_STREAM");
    if (!js) return false;
    struct stat st;
    if (::fstat(2, &st) != 0) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
    return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

bool open_dest(Dest& d, const Target& t, std::string* err) {
    Dest n;
    n.kind = t.kind;
    switch (t.kind) {
    case Target::Kind::Off: n.fd = -1; break;
    case Target::Kind::Stderr:
        n.fd = 2;
        n.journal = stderr_is_journal();
        break;
    case Target::Kind::Syslog:
        n.fd = -1;
        if (!g_syslog_open) ::openlog("soukd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
        g_syslog_open = true;
        break;
    case Target::Kind::File:
        if (t.file.size() >= sizeof n.file) {
            if (err) *err = "log file name too long: " + t.file;
            return false;
        }
        n.fd = ::open(t.file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (n.fd < 0) {
            if (err) *err = "cannot open log file " + t.file + ": " + std::strerror(errno);
            return false;
        }
        std::memcpy(n.file, t.file.c_str(), t.file.size() + 1);
        break;
    }
    if (d.kind == Target::Kind::File && d.fd > 2 && d.fd != n.fd) ::close(d.fd);
    d = n;
    return true;
}

void reopen(Dest& d) {
    if (d.kind != Target::Kind::File || d.fd < 0) return;
    int fd = ::open(d.file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) return;  // keep writing to the old file
    ::dup3(fd, d.fd, O_CLOEXEC);
    ::close(fd);
}

// `line` holds "<N>" in its first three bytes, then the text of `len`
// bytes (newline included). One write(2), or one syslog(3) call.
void emit(const Dest& d, int priority, char* line, size_t len) {
    switch (d.kind) {
    case Target::Kind::Off: return;
    case Target::Kind::Syslog:
        ::syslog(priority, "%.*s", static_cast<int>(len - 1), line + 3);
        return;
    case Target::Kind::Stderr:
    case Target::Kind::File: break;
    }
    char* start = line + 3;
    if (d.journal) {
        line[0] = '<';
        line[1] = static_cast<char>('0' + priority);
        line[2] = '>';
        start = line;
        len += 3;
    }
    ssize_t r = ::write(d.fd, start, len);
    (void)r;
}

// "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 bytes) into p. The date part is cached
// per thread: it changes once a second.
char* put_time(char* p, int64_t unix_ms) {
    thread_local int64_t cached_sec = -1;
    thread_local char cached[64];
    const int64_t sec = unix_ms / 1000;
    if (sec != cached_sec) {
        time_t t = static_cast<time_t>(sec);
        struct tm tm;
        ::gmtime_r(&t, &tm);
        std::snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_sec = sec;
    }
    std::memcpy(p, cached, 19);
    p += 19;
    const int ms = static_cast<int>(unix_ms % 1000);
    *p++ = '.';
    *p++ = static_cast<char>('0' + ms / 100);
    *p++ = static_cast<char>('0' + ms / 10 % 10);
    *p++ = static_cast<char>('0' + ms % 10);
    *p++ = 'Z';
    return p;
}

int64_t now_ms() {
    struct timespec ts;
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// One field of an access line (docs/access-log.md#fields): "-" when empty;
// bytes <= 0x20, '"', '\\', 0x7f and above as \xHH (a lone "-" as \x2d);
// beyond `cap` input bytes, cut and marked with "\...". Needs 4 * cap + 5
// bytes of room.
char* put_field(char* p, std::string_view s, size_t cap) {
    static const char kHex[] = "0123456789abcdef";
    if (s.empty()) {
        *p++ = '-';
        return p;
    }
    if (s == "-") {
        std::memcpy(p, "\\x2d", 4);
        return p + 4;
    }
    const bool cut = s.size() > cap;
    if (cut) s = s.substr(0, cap);
    for (unsigned char c : s) {
        if (c <= 0x20 || c == '"' || c == '\\' || c >= 0x7f) {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = kHex[c >> 4];
            *p++ = kHex[c & 15];
        } else {
            *p++ = static_cast<char>(c);
        }
    }
    if (cut) {
        std::memcpy(p, "\\...", 4);
        p += 4;
    }
    return p;
}

char* put_u64(char* p, uint64_t v) { return std::to_chars(p, p + 20, v).ptr; }

constexpr size_t kCarrierCap = 8, kPeerCap = 128, kUserCap = 256, kVerbCap = 128, kPathCap = 1024, kResultCap = 128;
// The room put_field() may take for a value of at most `cap` bytes.
constexpr size_t field_room(size_t cap) { return 4 * cap + 4; }
// The longest access line: time, ten spaces, the fields, the version, three
// numbers of up to 20 digits, the duration's point and six decimals.
constexpr size_t kAccessMax = 24 + 10 + field_room(kCarrierCap) + field_room(kPeerCap) + field_room(kUserCap) + 20 +
                              field_room(kVerbCap) + field_room(kPathCap) + field_room(kResultCap) + 3 * 20 + 20 + 7;

}  // namespace

Target parse_target(std::string_view spec) {
    Target t;
    if (spec == "off" || spec == "none") t.kind = Target::Kind::Off;
    else if (spec == "stderr" || spec == "-") t.kind = Target::Kind::Stderr;
    else if (spec == "syslog") t.kind = Target::Kind::Syslog;
    else {
        t.kind = Target::Kind::File;
        t.file.assign(spec);
    }
    return t;
}

std::string to_string(const Target& t) {
    switch (t.kind) {
    case Target::Kind::Off: return "off";
    case Target::Kind::Stderr: return "stderr";
    case Target::Kind::Syslog: return "syslog";
    case Target::Kind::File: return t.file;
    }
    return "?";
}

bool init(Level level, const Target& error_log, std::string* err) {
    if (!open_dest(g_err, error_log, err)) return false;
    g_level = static_cast<int>(level);
    return true;
}

bool init_access(const Target& access_log, std::string* err) { return open_dest(g_acc, access_log, err); }

void reopen_logs() {
    reopen(g_err);
    reopen(g_acc);
}

bool enabled(Level level) {
    return g_err.kind != Target::Kind::Off && static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

void write(Level level, const char* fmt, ...) {
    char line[2048];
    char* p = line + 3;  // room for a journal prefix
    const size_t room = sizeof line - 3 - 1;
    int n = 0;
    if (g_err.kind != Target::Kind::Syslog) {  // syslog stamps its own time and pid
        p = put_time(p, now_ms());
        n = 24 + std::snprintf(p, room - 24, " soukd[%d] ", static_cast<int>(::getpid()));
        p = line + 3 + n;
    }
    n += std::snprintf(p, room - static_cast<size_t>(n), "%s: ", kNames[static_cast<int>(level)]);
    va_list ap;
    va_start(ap, fmt);
    int m = std::vsnprintf(line + 3 + n, room - static_cast<size_t>(n), fmt, ap);
    va_end(ap);
    size_t len = static_cast<size_t>(n) + static_cast<size_t>(m < 0 ? 0 : m);
    if (len > room - 1) len = room - 1;
    line[3 + len++] = '\n';
    emit(g_err, kPriority[static_cast<int>(level)], line, len);
}

bool access_enabled() { return g_acc.kind != Target::Kind::Off; }

size_t format_access(char* buf, size_t size, const Access& a, int64_t unix_ms) {
    if (size < kAccessMax) return 0;
    static const Origin kNone;
    const Origin& o = a.origin ? *a.origin : kNone;
    char* p = put_time(buf, unix_ms);
    *p++ = ' ';
    p = put_field(p, o.carrier ? o.carrier : "", kCarrierCap);
    *p++ = ' ';
    p = put_field(p, o.peer ? o.peer : "", kPeerCap);
    *p++ = ' ';
    p = put_field(p, o.user ? o.user : "", kUserCap);
    *p++ = ' ';
    if (a.version > 0) p = put_u64(p, static_cast<uint64_t>(a.version));
    else *p++ = '-';
    *p++ = ' ';
    p = put_field(p, a.verb, kVerbCap);
    *p++ = ' ';
    p = put_field(p, a.path, kPathCap);
    *p++ = ' ';
    p = put_field(p, a.result, kResultCap);
    *p++ = ' ';
    p = put_u64(p, a.bytes_in);
    *p++ = ' ';
    p = put_u64(p, a.bytes_out);
    *p++ = ' ';
    p = put_u64(p, a.duration_us / 1000000);
    *p++ = '.';
    uint64_t us = a.duration_us % 1000000;
    for (int i = 5; i >= 0; --i) {  // six digits: microseconds
        p[i] = static_cast<char>('0' + us % 10);
        us /= 10;
    }
    p += 6;
    return static_cast<size_t>(p - buf);
}

void access(const Access& a) {
    if (g_acc.kind == Target::Kind::Off) return;
    char line[3 + kAccessMax + 1];  // journal prefix, the line, newline
    size_t n = format_access(line + 3, kAccessMax, a, now_ms());
    line[3 + n++] = '\n';
    emit(g_acc, LOG_INFO, line, n);
}

std::string inet_peer() {
    const char* sc = std::getenv("SSH_CONNECTION");
    if (!sc || !*sc) return "stdio";
    std::string_view s(sc);
    const size_t a = s.find(' ');
    if (a == std::string_view::npos) return std::string(s);
    const size_t b = s.find(' ', a + 1);
    std::string host(s.substr(0, a));
    std::string port(s.substr(a + 1, b == std::string_view::npos ? std::string_view::npos : b - a - 1));
    return host + ":" + port;
}

std::string inet_user() {
    const char* u = std::getenv("USER");
    if (!u || !*u) u = std::getenv("LOGNAME");
    return u ? std::string(u) : std::string();
}

bool Every::due(uint64_t& held_back) {
    const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    int64_t next = next_ns_.load(std::memory_order_relaxed);
    if (now < next || !next_ns_.compare_exchange_strong(next, now + interval_ns_)) {
        held_.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    held_back = held_.exchange(0, std::memory_order_relaxed);
    return true;
}

}  // namespace souk::server::log
