#include "server/base/params.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace souk::server {
namespace {

enum class Kind { Bytes, Count, Seconds };

struct ParamInfo {
    const char* option;
    Kind kind;
    double def, lo, hi;
    const char* help;
    double Params::*field;
};

const ParamInfo kParams[] = {
#define SOUK_X(field, opt, kind, def, lo, hi, help) \
    {opt, Kind::kind, static_cast<double>(def), static_cast<double>(lo), static_cast<double>(hi), help, &Params::field},
    SOUK_PARAMS(SOUK_X)
#undef SOUK_X
};

std::string render(double v, Kind k) {
    if (k == Kind::Seconds) {
        char b[32];
        std::snprintf(b, sizeof b, "%g", v);
        return b;
    }
    return std::to_string(static_cast<unsigned long long>(v));
}

}  // namespace

bool parse_param(int argc, char** argv, int& i, Params& p, std::string* err) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) return false;
    std::string name = arg.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name.resize(eq);
        inline_value = true;
    }
    for (const auto& info : kParams) {
        if (name != info.option) continue;
        if (!inline_value) {
            if (i + 1 >= argc) {
                *err = "--" + name + " needs a value";
                return true;
            }
            value = argv[++i];
        }
        char* end = nullptr;
        double v = std::strtod(value.c_str(), &end);
        bool integral = info.kind != Kind::Seconds;
        if (value.empty() || *end != '\0' || !std::isfinite(v) || (integral && v != std::floor(v)) ||
            v < info.lo || v > info.hi) {
            *err = "--" + name + "=" + value + ": expected " + (integral ? "an integer" : "a number of seconds") +
                   " from " + render(info.lo, info.kind) + " to " + render(info.hi, info.kind);
            return true;
        }
        p.*info.field = v;
        return true;
    }
    return false;
}

std::string params_help() {
    std::string out;
    for (const auto& info : kParams) {
        std::string opt = std::string("  --") + info.option + "=" +
                          (info.kind == Kind::Seconds ? "SECONDS" : info.kind == Kind::Bytes ? "BYTES" : "N");
        if (opt.size() < 30) opt.resize(30, ' ');
        out += opt + " " + info.help + " (default " + render(info.def, info.kind) + ")\n";
    }
    return out;
}

}  // namespace souk::server
