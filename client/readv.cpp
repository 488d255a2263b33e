#include "client/readv.hpp"

#include <algorithm>
#include <charconv>
#include <numeric>

namespace souk::client {
namespace {

Error invalid(std::string message) { return make_error(ErrorKind::InvalidArgument, std::move(message)); }

std::string range_text(const Range& r) { return std::to_string(r.offset) + ":" + std::to_string(r.length); }

}  // namespace

Result<ReadvPlan> plan_readv(std::span<const Range> ranges, const ReadvLimits& limits) {
    const uint64_t cap = std::max<uint64_t>(limits.max_request_bytes, 1);
    const size_t max_wire = std::max<size_t>(limits.max_request_ranges, 1);
    if (ranges.size() > limits.max_ranges)
        return invalid("readv of " + std::to_string(ranges.size()) + " ranges; the limit is " +
                       std::to_string(limits.max_ranges));
    ReadvPlan plan;
    for (const Range& r : ranges) {
        if (r.offset > kMaxFileOffset || r.length > kMaxFileOffset - r.offset)
            return invalid("range " + range_text(r) + " goes past the largest possible file offset");
        if (r.length > limits.max_total_bytes - plan.total_bytes)
            return invalid("readv asks for more than " + std::to_string(limits.max_total_bytes) +
                           " bytes in one call; ask for fewer or use get");
        plan.total_bytes += r.length;
    }

    std::vector<size_t> order(ranges.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return ranges[a].offset != ranges[b].offset ? ranges[a].offset < ranges[b].offset
                                                    : ranges[a].length < ranges[b].length;
    });

    // Merge into disjoint spans. Touching or overlapping ranges always
    // merge (the wire must not overlap); a gap merges only if the span stays
    // within one request's worth of data.
    std::vector<Range> spans;
    uint64_t s = 0, e = 0;
    bool open = false;
    for (size_t i : order) {
        const Range& r = ranges[i];
        if (r.length == 0) continue;
        uint64_t re = r.offset + r.length;
        if (open && (r.offset <= e || (r.offset - e <= limits.merge_gap && std::max(e, re) - s <= cap))) {
            e = std::max(e, re);
            continue;
        }
        if (open) spans.push_back({s, e - s});
        s = r.offset;
        e = re;
        open = true;
    }
    if (open) spans.push_back({s, e - s});

    // Cut spans into pieces of at most `cap` bytes and pack the pieces into
    // requests.
    std::vector<Range> cur;
    uint64_t cur_bytes = 0;
    auto add_piece = [&](Range p) {
        if (!cur.empty() && (cur_bytes + p.length > cap || cur.size() >= max_wire)) {
            plan.requests.push_back(std::move(cur));
            cur.clear();
            cur_bytes = 0;
        }
        cur.push_back(p);
        cur_bytes += p.length;
    };
    for (const Range& sp : spans) {
        uint64_t off = sp.offset, left = sp.length;
        while (left > 0) {  // bounded: left shrinks by >= 1 each time
            uint64_t n = std::min(left, cap);
            add_piece({off, n});
            off += n;
            left -= n;
        }
    }
    if (!cur.empty()) plan.requests.push_back(std::move(cur));
    return plan;
}

std::string encode_readv_body(std::span<const Range> wire) {
    std::string out;
    out.reserve(wire.size() * 16);
    for (size_t i = 0; i < wire.size(); ++i) {
        if (i) out += '\n';
        out += std::to_string(wire[i].offset);
        out += ',';
        out += std::to_string(wire[i].length);
    }
    return out;
}

uint64_t wire_bytes(std::span<const Range> wire) {
    uint64_t n = 0;
    for (const Range& r : wire) n += r.length;
    return n;
}

// ------------------------------------------------------------ assembler --

ReadvAssembler::ReadvAssembler(std::span<const Range> ranges, const ReadvPlan& plan, Deliver deliver)
    : ranges_(ranges), plan_(plan), deliver_(std::move(deliver)), order_(ranges.size()), bufs_(ranges.size()),
      filled_(ranges.size(), 0), complete_(ranges.size(), false) {
    std::iota(order_.begin(), order_.end(), size_t{0});
    std::sort(order_.begin(), order_.end(), [&](size_t a, size_t b) {
        return ranges_[a].offset != ranges_[b].offset ? ranges_[a].offset < ranges_[b].offset
                                                      : ranges_[a].length < ranges_[b].length;
    });
    for (size_t i = 0; i < ranges_.size(); ++i) complete_[i] = ranges_[i].length == 0;
}

Status ReadvAssembler::flush() {
    while (next_deliver_ < ranges_.size() && complete_[next_deliver_]) {
        size_t i = next_deliver_++;
        std::string data = std::move(bufs_[i]);
        bufs_[i] = std::string();
        if (!deliver_(i, data)) return make_error(ErrorKind::Cancelled, "readv cancelled by the caller");
    }
    return {};
}

Status ReadvAssembler::add_reply(size_t request, std::string_view body) {
    if (request != next_request_ || request >= plan_.requests.size())
        return make_error(ErrorKind::Protocol, "readv replies out of order");
    ++next_request_;
    const auto& wire = plan_.requests[request];
    uint64_t want = wire_bytes(wire);
    if (body.size() < want)
        return make_error(ErrorKind::ShortReadv, "range past end of file (the server sent " +
                                                     std::to_string(body.size()) + " of " + std::to_string(want) +
                                                     " bytes)");
    if (body.size() > want)
        return make_error(ErrorKind::Protocol, "readv reply has " + std::to_string(body.size()) +
                                                   " bytes, expected " + std::to_string(want));
    const size_t n = order_.size();
    size_t pos = 0;
    for (const Range& piece : wire) {
        const uint64_t ps = piece.offset, pe = piece.offset + piece.length;
        // Every range ending at or before ps got all its bytes from earlier
        // pieces (pieces ascend and cover every requested byte).
        while (lo_ < n && complete_[order_[lo_]]) ++lo_;
        for (size_t j = lo_; j < n && ranges_[order_[j]].offset < pe; ++j) {
            size_t idx = order_[j];
            if (complete_[idx]) continue;
            const Range& r = ranges_[idx];
            uint64_t from = std::max(r.offset, ps), to = std::min(r.offset + r.length, pe);
            if (from >= to) continue;
            std::string& buf = bufs_[idx];
            if (buf.size() != r.length) buf.resize(static_cast<size_t>(r.length));
            body.substr(pos + static_cast<size_t>(from - ps), static_cast<size_t>(to - from))
                .copy(buf.data() + (from - r.offset), static_cast<size_t>(to - from));
            filled_[idx] += to - from;
            if (filled_[idx] == r.length) complete_[idx] = true;
        }
        pos += static_cast<size_t>(piece.length);
        if (auto st = flush(); !st) return st;
    }
    return {};
}

Status ReadvAssembler::finish() {
    if (auto st = flush(); !st) return st;
    if (next_request_ != plan_.requests.size() || next_deliver_ != ranges_.size())
        return make_error(ErrorKind::Protocol, "readv ended before every range was received");
    return {};
}

// ------------------------------------------------------------ CLI specs --

Result<Range> parse_range_spec(std::string_view spec) {
    auto fail = [&](std::string why) {
        return invalid("bad range '" + std::string(spec) + "': " + std::move(why) +
                       " (expected START:LENGTH in bytes, e.g. 0:100)");
    };
    size_t colon = spec.find(':');
    if (colon == std::string_view::npos) return fail("missing ':'");
    auto number = [](std::string_view t, uint64_t& out) -> std::string {
        if (t.empty()) return "empty number";
        for (char c : t)
            if (c < '0' || c > '9') {
                std::string why(1, '\'');  // built by appending: GCC 12 -O3 misreports "x" + str
                why.append(t);
                why += "' is not a non-negative decimal number";
                return why;
            }
        auto r = std::from_chars(t.data(), t.data() + t.size(), out);
        if (r.ec != std::errc() || out > kMaxFileOffset) return "number too large";
        return {};
    };
    Range r;
    if (auto why = number(spec.substr(0, colon), r.offset); !why.empty()) return fail("start: " + why);
    if (auto why = number(spec.substr(colon + 1), r.length); !why.empty()) return fail("length: " + why);
    if (r.length > kMaxFileOffset - r.offset) return fail("START + LENGTH is too large");
    return r;
}

}  // namespace souk::client
