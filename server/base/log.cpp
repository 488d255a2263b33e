#include "server/base/log.hpp"

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace souk::server::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::Warn)};
int g_fd = 2;
const char* const kNames[] = {"error", "warn", "info", "debug"};
}  // namespace

bool init(Level level, const std::string& file) {
    g_level = static_cast<int>(level);
    if (file.empty()) return true;
    int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    g_fd = fd;
    return true;
}

bool enabled(Level level) { return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed); }

void write(Level level, const char* fmt, ...) {
    char line[2048];
    struct timeval tv;
    ::gettimeofday(&tv, nullptr);
    struct tm tm;
    ::gmtime_r(&tv.tv_sec, &tm);
    int n = std::snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ soukd[%d] %s: ", tm.tm_year + 1900,
                          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                          static_cast<long>(tv.tv_usec / 1000), static_cast<int>(::getpid()),
                          kNames[static_cast<int>(level)]);
    va_list ap;
    va_start(ap, fmt);
    int m = std::vsnprintf(line + n, sizeof line - static_cast<size_t>(n) - 1, fmt, ap);
    va_end(ap);
    size_t len = static_cast<size_t>(n) + static_cast<size_t>(m < 0 ? 0 : m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    // One write per line: lines from concurrent threads do not interleave.
    ssize_t r = ::write(g_fd, line, len);
    (void)r;
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
