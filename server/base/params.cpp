#include "server/base/params.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace souk::server {
namespace {

struct ParamInfo {
    const char* option;
    ParamKind kind;
    double def, lo, hi;
    const char* help;
    double Params::*field;
};

const ParamInfo kParams[] = {
#define SOUK_X(field, opt, kind, def, lo, hi, help)                                                          \
    {opt, ParamKind::kind, static_cast<double>(def), static_cast<double>(lo), static_cast<double>(hi), help, \
     &Params::field},
    SOUK_PARAMS(SOUK_X)
#undef SOUK_X
};

const ParamInfo* find(std::string_view name) {
    for (const auto& info : kParams)  // bounded: the list
        if (name == info.option) return &info;
    return nullptr;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The largest whole number a Bytes or Count value may have: every
// parameter's maximum is far below it, and a double holds it exactly.
constexpr uint64_t kMaxWhole = 1ull << 53;

const char* what(ParamKind kind) {
    switch (kind) {
    case ParamKind::Bytes: return "not a size";
    case ParamKind::Count: return "not a whole number";
    case ParamKind::Seconds: return "not a duration";
    }
    return "";
}

const char* expected(ParamKind kind) {
    switch (kind) {
    case ParamKind::Bytes: return "a size in bytes: a whole number, optionally with K, M, G or T (1K = 1024)";
    case ParamKind::Count: return "a whole number";
    case ParamKind::Seconds: return "a duration: a number of seconds, optionally with ms, s, m, h or d";
    }
    return "";
}

}  // namespace

std::string parse_quantity(ParamKind kind, std::string_view text, double& out) {
    size_t digits = 0;
    while (digits < text.size() && is_digit(text[digits])) ++digits;  // bounded: the text
    if (digits == 0) return text.empty() ? "empty value" : what(kind);
    std::string_view rest = text.substr(digits);
    if (kind != ParamKind::Seconds) {
        uint64_t n = 0;
        for (size_t i = 0; i < digits; ++i) {  // bounded: the digits
            n = n * 10 + static_cast<uint64_t>(text[i] - '0');
            if (n > kMaxWhole) return "too large";
        }
        unsigned shift = 0;
        if (kind == ParamKind::Bytes && rest.size() == 1) {
            const char* units = "KMGT";
            if (const char* u = std::strchr(units, rest[0] & ~0x20); u && *u) {
                shift = 10 * static_cast<unsigned>(u - units + 1);
                rest.remove_prefix(1);
            }
        }
        if (!rest.empty()) {
            if (rest[0] == '.') return "no fractions: write a whole number (1536K, not 1.5M)";
            return what(kind);
        }
        if (n > (kMaxWhole >> shift)) return "too large";
        out = static_cast<double>(n << shift);
        return {};
    }
    // Seconds: digits [. digits] [unit]
    size_t end = digits;
    if (end < text.size() && text[end] == '.') {
        size_t frac = end + 1;
        while (frac < text.size() && is_digit(text[frac])) ++frac;  // bounded: the text
        if (frac == end + 1) return what(kind);
        end = frac;
    }
    rest = text.substr(end);
    double mult = 1;
    if (rest == "ms") mult = -1000;  // divided: "50ms" is exactly 0.05 s
    else if (rest == "s" || rest.empty()) mult = 1;
    else if (rest == "m") mult = 60;
    else if (rest == "h") mult = 3600;
    else if (rest == "d") mult = 86400;
    else return what(kind);
    const std::string number(text.substr(0, end));
    const double n = std::strtod(number.c_str(), nullptr);
    const double v = mult < 0 ? n / -mult : n * mult;
    if (!std::isfinite(v) || v > 1e15) return "too large";
    out = v;
    return {};
}

std::string format_quantity(ParamKind kind, double v) {
    char b[48];
    if (kind == ParamKind::Seconds) {
        struct Unit {
            double seconds;
            const char* name;
        };
        for (const Unit& u : {Unit{86400, "d"}, Unit{3600, "h"}, Unit{60, "m"}, Unit{1, "s"}}) {  // bounded: 4 units
            if (v >= u.seconds && std::fmod(v, u.seconds) == 0) {
                std::snprintf(b, sizeof b, "%.0f%s", v / u.seconds, u.name);
                return b;
            }
        }
        if (v == 0) return "0";
        const double ms = v * 1000;
        if (ms == std::floor(ms) && ms < 1e15) std::snprintf(b, sizeof b, "%.0fms", ms);
        else
            for (int digits = 4; digits <= 30; ++digits) {  // bounded: 30 digits; the fewest that read back exactly
                std::snprintf(b, sizeof b, "%.*f", digits, v);
                if (std::strtod(b, nullptr) == v) break;
            }
        return b;
    }
    auto n = static_cast<uint64_t>(v);
    if (kind == ParamKind::Bytes && n != 0) {
        const char* units = "TGMK";
        for (int i = 0; i < 4; ++i) {  // bounded: 4 units
            const unsigned shift = 10 * static_cast<unsigned>(4 - i);
            if ((n & ((1ull << shift) - 1)) == 0) {
                std::snprintf(b, sizeof b, "%llu%c", static_cast<unsigned long long>(n >> shift), units[i]);
                return b;
            }
        }
    }
    return std::to_string(n);
}

bool is_param(std::string_view name) { return find(name) != nullptr; }

bool is_reloadable(std::string_view name) {
    const ParamInfo* info = find(name);
    if (!info) return false;
#define SOUK_R(f) \
    if (info->field == &Params::f) return true;
    SOUK_RELOADABLE_PARAMS(SOUK_R)
#undef SOUK_R
    return false;
}

std::vector<std::string> apply_reloadable(Params& to, const Params& from) {
    std::vector<std::string> changed;
#define SOUK_R(f)                                                                \
    if (live(to.f) != from.f) {                                                  \
        std::atomic_ref<double>(to.f).store(from.f, std::memory_order_relaxed);  \
        for (const auto& info : kParams) /* bounded: the list */                 \
            if (info.field == &Params::f) changed.emplace_back(info.option);    \
    }
    SOUK_RELOADABLE_PARAMS(SOUK_R)
#undef SOUK_R
    return changed;
}

std::string set_param(Params& p, std::string_view name, std::string_view text) {
    const ParamInfo* info = find(name);
    const std::string shown = "--" + std::string(name) + "=" + std::string(text);
    if (!info) return shown + ": unknown option";
    double v = 0;
    std::string why = parse_quantity(info->kind, text, v);
    if (why.empty() && (v < info->lo || v > info->hi))
        why = "out of range";
    if (!why.empty())
        return shown + ": " + why + " (expected " + expected(info->kind) + ", from " + format_quantity(info->kind, info->lo) +
               " to " + format_quantity(info->kind, info->hi) + ")";
    p.*info->field = v;
    return {};
}

std::string params_help() {
    std::string out;
    for (const auto& info : kParams) {
        std::string opt = std::string("  --") + info.option + "=" +
                          (info.kind == ParamKind::Seconds ? "DURATION" : info.kind == ParamKind::Bytes ? "SIZE" : "N");
        if (opt.size() < 30) opt.resize(30, ' ');
        out += opt + " " + info.help + " (default " + format_quantity(info.kind, info.def) + ")\n";
    }
    return out;
}

std::string params_settings(const Params& p) {
    std::string out;
    for (const auto& info : kParams)
        out += std::string(info.option) + " = " + format_quantity(info.kind, p.*info.field) + "\n";
    return out;
}

size_t connection_cap(const Params& p) {
    const double set = live(p.max_connections);
    if (set > 0) return static_cast<size_t>(set);
    rlimit rl{};
    double limit = ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? static_cast<double>(rl.rlim_cur)
                                                                                       : double(1 << 20);
    return static_cast<size_t>(std::max(1.0, limit - live(p.fd_reserve)));
}

}  // namespace souk::server
