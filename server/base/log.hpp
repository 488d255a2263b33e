// Logging: never on the protocol channel
// (docs/conventions.md#logs-never-on-the-protocol-channel). Lines go to stderr
// or to a file, level-checked before any formatting.
#pragma once

#include <atomic>
#include <cstdarg>
#include <cstdint>
#include <string>

namespace souk::server::log {

enum class Level : int { Error = 0, Warn = 1, Info = 2, Debug = 3 };

// Configure once at start-up: the threshold and an optional file (append).
// Returns false (and keeps stderr) if the file cannot be opened.
bool init(Level level, const std::string& file);
bool enabled(Level level);
void write(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

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
