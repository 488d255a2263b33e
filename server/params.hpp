// soukd's run-time parameters, declared once (STYLE.md 4): one list gives
// the struct, the command-line options, their range checks and --help.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace souk::server {

// X(field, option, kind, default, min, max, help)
// kind: Bytes and Count are integers; Seconds is a duration (fractions allowed).
#define SOUK_PARAMS(X)                                                                                      \
    X(max_line, "max-line", Bytes, 64 * 1024, 64, 16 * 1024 * 1024,                                         \
      "longest v1/v2 request line")                                                                         \
    X(max_structure, "max-structure", Bytes, 1024 * 1024, 64, 256 * 1024 * 1024,                            \
      "largest v3 header or argument structure")                                                           \
    X(max_body, "max-body", Bytes, 256ull * 1024 * 1024, 0, 1ull << 40,                                      \
      "largest request body (put/append data, readv offsets)")                                              \
    X(max_bencode_depth, "max-bencode-depth", Count, 32, 1, 1024, "deepest nesting of bencoded values")    \
    X(max_readv_ranges, "max-readv-ranges", Count, 4096, 1, 1 << 24, "most ranges in one readv")           \
    X(max_readv_bytes, "max-readv-bytes", Bytes, 1ull << 30, 1, 1ull << 40, "most bytes one readv returns") \
    X(max_connections, "max-connections", Count, 256, 1, 1 << 20, "concurrent TCP connections")            \
    X(idle_timeout, "idle-timeout", Seconds, 300, 0.01, 86400 * 30,                                         \
      "close a connection idle this long between requests")                                                \
    X(request_timeout, "request-timeout", Seconds, 60, 0.01, 86400,                                         \
      "deadline for a request that has started arriving (no slowloris)")                                   \
    X(write_timeout, "write-timeout", Seconds, 300, 0.01, 86400, "deadline for sending one response")

struct Params {
#define SOUK_X(field, opt, kind, def, lo, hi, help) double field = static_cast<double>(def);
    SOUK_PARAMS(SOUK_X)
#undef SOUK_X
};

// If `arg` is "--option=value" or "--option" followed by a value in
// argv[i+1] for a known parameter, parse it into `p` (advancing i) and
// return true. Sets *err for a known option with a bad value.
bool parse_param(int argc, char** argv, int& i, Params& p, std::string* err);
// One "  --option=N  help (default D)" line per parameter.
std::string params_help();

}  // namespace souk::server
