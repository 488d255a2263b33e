#include "server/verbs/dispatch.hpp"
#include "server/base/strings.hpp"

#include <charconv>

#include "server/verbs/call.hpp"

namespace souk::server {
namespace {

using Handler = void (*)(Call&);
constexpr Handler kHandlers[] = {
#define SOUK_X(id, ...) &verb_##id,
    SOUK_VERBS(SOUK_X)
#undef SOUK_X
};
static_assert(sizeof(kHandlers) / sizeof(kHandlers[0]) == proto::kVerbCount, "one handler per verb");

}  // namespace

std::string parse_readv_ranges(std::string_view body, const Params& params,
                               std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
    ranges.clear();
    uint64_t total = 0;
    size_t i = 0;
    while (i < body.size()) {
        size_t j = body.find('\n', i);
        if (j == std::string_view::npos) j = body.size();
        std::string_view line = body.substr(i, j - i);
        i = j + 1;
        if (line.empty()) continue;  // Breezy's server ignores empty lines
        size_t comma = line.find(',');
        uint64_t off = 0, len = 0;
        if (comma == std::string_view::npos || !parse_u64(line.substr(0, comma), off) ||
            !parse_u64(line.substr(comma + 1), len))
            return "invalid readv range: " + std::string(line.substr(0, 64));
        if (off > (1ull << 62) || len > (1ull << 62)) return "readv range too large: " + std::string(line);
        if (ranges.size() >= static_cast<size_t>(params.max_readv_ranges))
            return "too many readv ranges (limit " + std::to_string(static_cast<uint64_t>(params.max_readv_ranges)) + ")";
        total += len;
        if (total > static_cast<uint64_t>(params.max_readv_bytes))
            return "readv asks for too many bytes (limit " +
                   std::to_string(static_cast<uint64_t>(params.max_readv_bytes)) + ")";
        ranges.emplace_back(off, len);
    }
    return {};
}

void dispatch(const ServerContext& ctx, const proto::VerbInfo& verb, std::span<const proto::Value> args,
              std::string_view body, std::string_view base, Reply& out, std::string* scratch,
              std::unique_ptr<BodySink>* sink) {
    out.reset();
    size_t nargs = args.size() - 1;
    if (nargs < verb.min_args || (verb.max_args != 255 && nargs > verb.max_args)) {
        std::string want = verb.min_args == verb.max_args ? std::to_string(verb.min_args)
                                                          : std::to_string(verb.min_args) + " to " +
                                                                (verb.max_args == 255 ? std::string("any")
                                                                                      : std::to_string(verb.max_args));
        out.fail({Value("error"), Value("TypeError"),
                  Value(std::string(verb.name) + " takes " + want + " arguments (" + std::to_string(nargs) +
                        " given)")});
        return;
    }
    for (size_t i = 1; i < args.size(); ++i) {
        // The path is always a byte string; a few verbs take ints and lists after it.
        if (!args[i].is_bytes() && (i == 1 || !proto::takes_structured_args(verb.id))) {
            out.fail({Value("error"), Value("TypeError"),
                      Value(std::string(verb.name) + ": argument " + std::to_string(i) + " must be a byte string")});
            return;
        }
    }
    Call call{ctx, args, body, PathContext{ctx.root_realpath, base, ctx.mount}, out, scratch, sink};
    kHandlers[static_cast<size_t>(verb.id)](call);
}

}  // namespace souk::server
