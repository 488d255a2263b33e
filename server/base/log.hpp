// Logging: never on the protocol channel
// (docs/conventions.md#logs-never-on-the-protocol-channel). Lines go to stderr
// or to a file, level-checked before any formatting.
#pragma once

#include <cstdarg>
#include <string>

namespace souk::server::log {

enum class Level : int { Error = 0, Warn = 1, Info = 2, Debug = 3 };

// Configure once at start-up: the threshold and an optional file (append).
// Returns false (and keeps stderr) if the file cannot be opened.
bool init(Level level, const std::string& file);
bool enabled(Level level);
void write(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace souk::server::log

#define SOUK_LOG(level, ...)                                                              \
    do {                                                                                  \
        if (::souk::server::log::enabled(::souk::server::log::Level::level))              \
            ::souk::server::log::write(::souk::server::log::Level::level, __VA_ARGS__);   \
    } while (0)
