// The FastCGI record codec (docs/protocol/fastcgi.md).
#include "protocol/fastcgi.hpp"

namespace souk::proto::fcgi {
namespace {

uint8_t byte_at(std::string_view s, size_t i) { return static_cast<uint8_t>(s[i]); }

// One length of a name-value pair at `pos` (docs/protocol/fastcgi.md#name-value-pairs).
bool read_length(std::string_view s, size_t& pos, uint32_t& len) {
    if (pos >= s.size()) return false;
    uint8_t b0 = byte_at(s, pos);
    if (b0 < 0x80) {
        len = b0;
        pos += 1;
        return true;
    }
    if (s.size() - pos < 4) return false;
    len = (static_cast<uint32_t>(b0 & 0x7f) << 24) | (static_cast<uint32_t>(byte_at(s, pos + 1)) << 16) |
          (static_cast<uint32_t>(byte_at(s, pos + 2)) << 8) | byte_at(s, pos + 3);
    pos += 4;
    return true;
}

void append_length(std::string& out, size_t n) {
    if (n < 0x80) {
        out += static_cast<char>(n);
        return;
    }
    out += static_cast<char>(((n >> 24) & 0x7f) | 0x80);
    out += static_cast<char>((n >> 16) & 0xff);
    out += static_cast<char>((n >> 8) & 0xff);
    out += static_cast<char>(n & 0xff);
}

}  // namespace

Parse parse_record(std::string_view buf, Record& out, size_t& used) {
    used = 0;
    if (buf.size() < kHeaderSize) return Parse::NeedMore;
    if (byte_at(buf, 0) != kVersion) return Parse::Bad;
    const size_t clen = (static_cast<size_t>(byte_at(buf, 4)) << 8) | byte_at(buf, 5);
    const size_t plen = byte_at(buf, 6);
    if (buf.size() < kHeaderSize + clen + plen) return Parse::NeedMore;
    out.type = byte_at(buf, 1);
    out.request_id = static_cast<uint16_t>((byte_at(buf, 2) << 8) | byte_at(buf, 3));
    out.content = buf.substr(kHeaderSize, clen);
    used = kHeaderSize + clen + plen;
    return Parse::Ok;
}

bool parse_begin(std::string_view content, uint16_t& role, uint8_t& flags) {
    if (content.size() != 8) return false;
    role = static_cast<uint16_t>((byte_at(content, 0) << 8) | byte_at(content, 1));
    flags = byte_at(content, 2);
    return true;
}

std::string decode_pairs(std::string_view block, size_t max_pairs,
                         std::vector<std::pair<std::string_view, std::string_view>>& out) {
    size_t pos = 0;
    size_t count = 0;
    while (pos < block.size()) {  // bounded: each pass consumes >= 2 bytes or returns
        uint32_t nlen = 0, vlen = 0;
        if (!read_length(block, pos, nlen) || !read_length(block, pos, vlen))
            return "a name-value pair's length is cut short";
        // Compared as sizes, so a 31-bit length cannot wrap an offset.
        if (nlen > block.size() - pos || vlen > block.size() - pos - nlen)
            return "a name-value pair runs past the end of its block";
        if (++count > max_pairs) return "too many name-value pairs (limit " + std::to_string(max_pairs) + ")";
        out.emplace_back(block.substr(pos, nlen), block.substr(pos + nlen, vlen));
        pos += nlen + vlen;
    }
    return {};
}

std::string ParamsBlock::add(std::string_view content) {
    if (done_) return "PARAMS after the end of the PARAMS stream";
    if (content.size() > limits_.max_bytes - block_.size())
        return "the PARAMS block is too large (limit " + std::to_string(limits_.max_bytes) + " bytes)";
    block_.append(content);
    return {};
}

std::string ParamsBlock::finish() {
    if (done_) return "PARAMS after the end of the PARAMS stream";
    done_ = true;
    pairs_.clear();
    return decode_pairs(block_, limits_.max_pairs, pairs_);
}

std::string_view ParamsBlock::get(std::string_view name) const {
    for (size_t i = pairs_.size(); i-- > 0;)  // bounded: the pair count
        if (pairs_[i].first == name) return pairs_[i].second;
    return {};
}

bool ParamsBlock::has(std::string_view name) const {
    for (const auto& p : pairs_)
        if (p.first == name) return true;
    return false;
}

void ParamsBlock::reset() {
    block_.clear();
    pairs_.clear();
    done_ = false;
}

Arrival measure_request(std::string_view in, ParamsBlock& params) {
    Record rec;
    size_t pos = 0, used = 0;
    for (;;) {  // bounded: each pass takes a record of `in`; records of no open request lead
        const Parse p = parse_record(in.substr(pos), rec, used);
        if (p == Parse::Bad) return {Arrival::Whole, in.size()};
        if (p == Parse::NeedMore) return pos ? Arrival{Arrival::Whole, pos} : Arrival{};
        if (rec.request_id == 0 || rec.type == BeginRequest) break;
        pos += used;
    }
    if (pos > 0) return {Arrival::Whole, pos};
    pos = used;
    uint16_t role = 0;
    uint8_t flags = 0;
    if (rec.request_id == 0 || !parse_begin(rec.content, role, flags) || role != Responder) return {Arrival::Whole, pos};
    const uint16_t id = rec.request_id;
    params.reset();
    for (;;) {  // bounded: each pass takes a record of `in`
        const Parse p = parse_record(in.substr(pos), rec, used);
        if (p == Parse::Bad) return {Arrival::Whole, in.size()};
        if (p == Parse::NeedMore) return {};
        pos += used;
        if (rec.request_id == 0 || rec.type == BeginRequest) return {Arrival::Stream, pos};
        if (rec.request_id != id) continue;  // another request's: skipped
        if (rec.type == AbortRequest) return {Arrival::Whole, pos};
        if (rec.type == Params && !params.done()) {
            if (!(rec.content.empty() ? params.finish() : params.add(rec.content)).empty()) return {Arrival::Whole, pos};
        } else if (rec.type == Stdin && params.done() && rec.content.empty()) {
            return {Arrival::Whole, pos};
        }
    }
}

void append_header(std::string& out, uint8_t type, uint16_t request_id, uint16_t content_length,
                   uint8_t padding_length) {
    const char h[kHeaderSize] = {static_cast<char>(kVersion),
                                 static_cast<char>(type),
                                 static_cast<char>(request_id >> 8),
                                 static_cast<char>(request_id & 0xff),
                                 static_cast<char>(content_length >> 8),
                                 static_cast<char>(content_length & 0xff),
                                 static_cast<char>(padding_length),
                                 0};
    out.append(h, kHeaderSize);
}

void append_records(std::string& out, uint8_t type, uint16_t request_id, std::string_view content) {
    do {  // bounded: each pass takes up to kMaxContent bytes; an empty content makes one pass
        std::string_view part = content.substr(0, kMaxContent);
        content.remove_prefix(part.size());
        const uint8_t pad = padding_for(part.size());
        append_header(out, type, request_id, static_cast<uint16_t>(part.size()), pad);
        out.append(part);
        out.append(pad, '\0');
    } while (!content.empty());
}

void append_pair(std::string& out, std::string_view name, std::string_view value) {
    append_length(out, name.size());
    append_length(out, value.size());
    out.append(name);
    out.append(value);
}

void append_begin_request(std::string& out, uint16_t request_id, uint16_t role, uint8_t flags) {
    const char body[8] = {static_cast<char>(role >> 8), static_cast<char>(role & 0xff), static_cast<char>(flags),
                          0, 0, 0, 0, 0};
    append_records(out, BeginRequest, request_id, std::string_view(body, 8));
}

void append_end_request(std::string& out, uint16_t request_id, uint32_t app_status, uint8_t protocol_status) {
    const char body[8] = {static_cast<char>(app_status >> 24),
                          static_cast<char>((app_status >> 16) & 0xff),
                          static_cast<char>((app_status >> 8) & 0xff),
                          static_cast<char>(app_status & 0xff),
                          static_cast<char>(protocol_status),
                          0,
                          0,
                          0};
    append_records(out, EndRequest, request_id, std::string_view(body, 8));
}

void append_unknown_type(std::string& out, uint8_t type) {
    const char body[8] = {static_cast<char>(type), 0, 0, 0, 0, 0, 0, 0};
    append_records(out, UnknownType, 0, std::string_view(body, 8));
}

std::string answer_get_values(std::string_view query, const PairLimits& limits, uint64_t max_conns,
                              uint64_t max_reqs, std::string& out) {
    if (query.size() > limits.max_bytes) return "GET_VALUES query too large";
    std::vector<std::pair<std::string_view, std::string_view>> names;
    if (std::string why = decode_pairs(query, limits.max_pairs, names); !why.empty()) return why;
    std::string body;
    for (const auto& [name, value] : names) {
        (void)value;
        if (name == "FCGI_MAX_CONNS") append_pair(body, name, std::to_string(max_conns));
        else if (name == "FCGI_MAX_REQS") append_pair(body, name, std::to_string(max_reqs));
        else if (name == "FCGI_MPXS_CONNS") append_pair(body, name, "0");
    }
    // The answer to a bounded query of at most three known names fits one record.
    if (body.size() > kMaxContent) return "GET_VALUES answer too large";
    append_records(out, GetValuesResult, 0, body);
    return {};
}

}  // namespace souk::proto::fcgi
