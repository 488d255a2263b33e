// The pack container (docs/formats/packs.md). Reader: a state machine fed
// slices of the input; writer: Breezy's ContainerSerialiser framing.
#include "server/bzr/pack.hpp"

#include <algorithm>

namespace souk::server::bzr {
namespace {

constexpr size_t kMaxLengthDigits = 20;  // a uint64 in decimal

// Breezy's _check_name: no whitespace in a name element.
bool bad_name_char(char c) { return c == '\t' || c == '\n' || c == '\x0b' || c == '\x0c' || c == '\r' || c == ' '; }

bool parse_decimal(std::string_view s, uint64_t& v) {
    if (s.empty() || s.size() > kMaxLengthDigits) return false;
    v = 0;
    for (char c : s) {  // bounded: at most kMaxLengthDigits characters
        if (c < '0' || c > '9') return false;
        uint64_t d = static_cast<uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    return true;
}

Status check_names(const std::vector<RecordName>& names) {
    for (const auto& name : names) {  // bounded: the caller's names
        if (name.empty() || (name.size() == 1 && name[0].empty()))
            return corrupt("pack record name is empty (its line would end the names)");
        for (const auto& element : name)  // bounded: the name's elements
            for (char c : element)        // bounded: the element's bytes
                if (bad_name_char(c) || c == '\0')
                    return corrupt("pack record name element holds whitespace or a NUL byte");
    }
    return Ok{};
}

}  // namespace

Result<ContainerReader::Event> ContainerReader::fail(Error e) {
    state_ = State::Failed;
    error_ = e;
    return e;
}

Result<bool> ContainerReader::take_line(std::string_view& in, size_t max) {
    size_t nl = in.find('\n');
    size_t n = nl == std::string_view::npos ? in.size() : nl;
    if (line_.size() + n > max)
        return limit_exceeded("pack container header line longer than " + std::to_string(max) + " bytes");
    line_.append(in.substr(0, n));
    size_t used = nl == std::string_view::npos ? n : n + 1;
    in.remove_prefix(used);
    consumed_ += used;
    return nl != std::string_view::npos;
}

Result<ContainerReader::Event> ContainerReader::next(std::string_view& in) {
    // bounded: every pass either consumes input, returns, or moves from
    // Names/Length to a later state; a record's header lines are capped by
    // max_line and max_names.
    for (;;) {
        switch (state_) {
        case State::Failed: return error_;
        case State::Ended:
            if (!in.empty()) {
                if (limits_.strict_end) return fail(corrupt("pack container has data after its end marker"));
                consumed_ += in.size();
                in = {};
            }
            return Event::End;
        case State::Magic: {
            auto got = take_line(in, kContainerMagic.size());
            if (!got) return fail(corrupt("not a Bazaar pack container (unknown format line)"));
            if (!*got) return Event::NeedMore;
            if (line_.size() + 1 != kContainerMagic.size() || kContainerMagic.substr(0, line_.size()) != line_)
                return fail(corrupt("not a Bazaar pack container (unknown format line)"));
            line_.clear();
            state_ = State::Kind;
            break;
        }
        case State::Kind: {
            if (in.empty()) return Event::NeedMore;
            char kind = in.front();
            in.remove_prefix(1);
            ++consumed_;
            if (kind == 'E') {
                state_ = State::Ended;
                return Event::End;
            }
            if (kind != 'B') return fail(corrupt("unknown pack record type (not 'B' or 'E')"));
            record_offset_ = consumed_ - 1;
            names_.clear();
            state_ = State::Length;
            break;
        }
        case State::Length: {
            auto got = take_line(in, kMaxLengthDigits);
            if (!got) return fail(corrupt("bad pack record length"));
            if (!*got) return Event::NeedMore;
            if (!parse_decimal(line_, length_)) return fail(corrupt("bad pack record length"));
            if (length_ > limits_.max_record)
                return fail(limit_exceeded("pack record of " + std::to_string(length_) + " bytes exceeds the limit of " +
                                           std::to_string(limits_.max_record)));
            line_.clear();
            state_ = State::Names;
            break;
        }
        case State::Names: {
            auto got = take_line(in, limits_.max_line);
            if (!got) return fail(got.err());
            if (!*got) return Event::NeedMore;
            if (line_.empty()) {
                state_ = State::Body;
                remaining_ = length_;
                data_offset_ = consumed_;
                data_ = {};
                ++records_;
                return Event::Begin;
            }
            if (names_.size() >= limits_.max_names)
                return fail(limit_exceeded("pack record has more than " + std::to_string(limits_.max_names) + " names"));
            RecordName name;
            std::string_view rest = line_;
            for (;;) {  // bounded: each pass takes one element off a max_line line
                if (name.size() >= limits_.max_name_elements)
                    return fail(limit_exceeded("pack record name has more than " +
                                               std::to_string(limits_.max_name_elements) + " elements"));
                size_t z = rest.find('\0');
                std::string_view element = rest.substr(0, z);
                if (std::any_of(element.begin(), element.end(), bad_name_char))
                    return fail(corrupt("pack record name holds whitespace"));
                name.emplace_back(element);
                if (z == std::string_view::npos) break;
                rest.remove_prefix(z + 1);
            }
            names_.push_back(std::move(name));
            line_.clear();
            break;
        }
        case State::Body: {
            if (remaining_ == 0) {
                state_ = State::Kind;
                data_ = {};
                return Event::RecordEnd;
            }
            if (in.empty()) return Event::NeedMore;
            size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size()));
            data_ = in.substr(0, n);
            in.remove_prefix(n);
            consumed_ += n;
            remaining_ -= n;
            return Event::Data;
        }
        }
    }
}

Status ContainerReader::finish() const {
    switch (state_) {
    case State::Ended: return Ok{};
    case State::Failed: return error_;
    case State::Magic: return corrupt("pack container is truncated in its format line");
    case State::Kind: return corrupt("pack container ends without its end marker");
    case State::Body:
        return corrupt("pack container is truncated inside a record (" + std::to_string(remaining_) +
                       " bytes missing)");
    default: return corrupt("pack container is truncated inside a record header");
    }
}

Result<std::vector<ContainerRecord>> read_container(std::string_view bytes, const ContainerLimits& limits,
                                                    uint64_t max_total) {
    ContainerLimits strict = limits;
    strict.strict_end = true;
    ContainerReader reader(strict);
    std::vector<ContainerRecord> out;
    uint64_t total = 0;
    // bounded: every event consumes input or completes a record; the input is finite.
    for (;;) {
        auto ev = reader.next(bytes);
        if (!ev) return ev.err();
        switch (*ev) {
        case ContainerReader::Event::NeedMore: {
            Status st = reader.finish();
            if (!st) return st.err();
            return out;
        }
        case ContainerReader::Event::Begin:
            if (reader.length() > max_total - total)
                return limit_exceeded("pack container holds more than " + std::to_string(max_total) + " data bytes");
            total += reader.length();
            out.push_back({reader.names(), {}, reader.record_offset(), 0});
            out.back().data.reserve(static_cast<size_t>(reader.length()));
            break;
        case ContainerReader::Event::Data: out.back().data.append(reader.data()); break;
        case ContainerReader::Event::RecordEnd: out.back().size = reader.offset() - out.back().offset; break;
        case ContainerReader::Event::End:
            if (!bytes.empty()) return corrupt("pack container has data after its end marker");
            return out;
        }
    }
}

Result<RecordHeader> parse_record_header(std::string_view prefix, const ContainerLimits& limits) {
    ContainerReader reader(limits);
    reader.state_ = ContainerReader::State::Kind;  // a record on its own: no magic before it
    auto ev = reader.next(prefix);
    if (!ev) return ev.err();
    if (*ev == ContainerReader::Event::End) return corrupt("pack end marker where a record was expected");
    if (*ev != ContainerReader::Event::Begin) return corrupt("pack record header is truncated");
    return RecordHeader{reader.names(), static_cast<size_t>(reader.data_offset()), reader.length()};
}

Result<RecordView> parse_record(std::string_view bytes, const ContainerLimits& limits) {
    auto h = parse_record_header(bytes, limits);
    if (!h) return h.err();
    if (h->length != bytes.size() - h->header_size)
        return corrupt("pack record length " + std::to_string(h->length) + " does not match its index entry");
    return RecordView{std::move(h->names), h->header_size, bytes.substr(h->header_size)};
}

Result<std::string> record_header(uint64_t length, const std::vector<RecordName>& names) {
    Status st = check_names(names);
    if (!st) return st.err();
    std::string out = "B" + std::to_string(length) + "\n";
    for (const auto& name : names) {  // bounded: the caller's names
        for (size_t i = 0; i < name.size(); ++i) {
            if (i) out += '\0';
            out += name[i];
        }
        out += '\n';
    }
    out += '\n';
    return out;
}

Status ContainerWriter::write(std::string_view bytes) {
    if (failed_) return error_;
    Status st = sink_(bytes);
    if (!st) {
        failed_ = true;
        error_ = st.err();
        return st;
    }
    offset_ += bytes.size();
    return Ok{};
}

Status ContainerWriter::begin() { return write(kContainerMagic); }

Status ContainerWriter::end() { return write("E"); }

Result<std::pair<uint64_t, uint64_t>> ContainerWriter::add_bytes_record(std::string_view data,
                                                                        const std::vector<RecordName>& names) {
    std::string_view one[] = {data};
    return add_bytes_record(std::span<const std::string_view>(one), names);
}

Result<std::pair<uint64_t, uint64_t>> ContainerWriter::add_bytes_record(std::span<const std::string_view> chunks,
                                                                        const std::vector<RecordName>& names) {
    if (failed_) return error_;
    uint64_t length = 0;
    for (auto c : chunks) length += c.size();  // bounded: the caller's chunks
    auto header = record_header(length, names);
    if (!header) return header.err();
    uint64_t start = offset_;
    if (Status st = write(*header); !st) return st.err();
    for (auto c : chunks)  // bounded: the caller's chunks
        if (!c.empty())
            if (Status st = write(c); !st) return st.err();
    ++records_;
    return std::pair<uint64_t, uint64_t>{start, offset_ - start};
}

}  // namespace souk::server::bzr
