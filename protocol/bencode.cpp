#include "protocol/bencode.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

namespace souk::proto {
namespace {

struct Decoder {
    std::string_view in;
    size_t pos = 0;
    size_t items = 0;
    const BencodeLimits& limits;
    std::string err;

    bool fail(const char* why) {
        if (err.empty()) err = why;
        return false;
    }

    bool is_digit(char c) const { return c >= '0' && c <= '9'; }

    // Canonical decimal: no leading zeros (except "0"), no "-0", no empty.
    bool parse_int(size_t end, bool allow_negative, int64_t& out) {
        std::string_view digits = in.substr(pos, end - pos);
        if (digits.empty()) return fail("empty integer");
        bool neg = digits[0] == '-';
        if (neg && !allow_negative) return fail("negative length");
        std::string_view mag = neg ? digits.substr(1) : digits;
        if (mag.empty()) return fail("empty integer");
        for (char c : mag)
            if (!is_digit(c)) return fail("bad integer digit");
        if (mag.size() > 1 && mag[0] == '0') return fail("integer with leading zero");
        if (neg && mag == "0") return fail("negative zero");
        auto r = std::from_chars(digits.data(), digits.data() + digits.size(), out);
        if (r.ec != std::errc() || r.ptr != digits.data() + digits.size())
            return fail("integer out of range");
        return true;
    }

    bool value(Value& out, size_t depth) {
        if (depth > limits.max_depth) return fail("bencode nesting too deep");
        if (++items > limits.max_items) return fail("too many bencode items");
        if (pos >= in.size()) return fail("truncated bencode");
        char c = in[pos];
        if (c == 'i') {
            size_t end = in.find('e', pos + 1);
            if (end == std::string_view::npos) return fail("unterminated integer");
            ++pos;
            out.kind = Value::Kind::Int;
            if (!parse_int(end, true, out.integer)) return false;
            pos = end + 1;
            return true;
        }
        if (c == 'l') {
            ++pos;
            out.kind = Value::Kind::List;
            while (true) {
                if (pos >= in.size()) return fail("unterminated list");
                if (in[pos] == 'e') { ++pos; return true; }
                out.list.emplace_back();
                if (!value(out.list.back(), depth + 1)) return false;
            }
        }
        if (c == 'd') {
            ++pos;
            out.kind = Value::Kind::Dict;
            while (true) {
                if (pos >= in.size()) return fail("unterminated dict");
                if (in[pos] == 'e') { ++pos; return true; }
                if (!is_digit(in[pos])) return fail("dict key is not a string");
                Value key;
                if (!value(key, depth + 1)) return false;
                if (!out.dict.empty() && !(out.dict.back().first < key.bytes))
                    return fail("dict keys not sorted");
                out.dict.emplace_back(std::move(key.bytes), Value{});
                if (!value(out.dict.back().second, depth + 1)) return false;
            }
        }
        if (is_digit(c)) {
            size_t colon = in.find(':', pos);
            if (colon == std::string_view::npos) return fail("unterminated string length");
            int64_t n = 0;
            if (!parse_int(colon, false, n)) return false;
            if (static_cast<uint64_t>(n) > in.size() - (colon + 1)) return fail("string overruns input");
            out.kind = Value::Kind::Bytes;
            out.bytes.assign(in.substr(colon + 1, static_cast<size_t>(n)));
            pos = colon + 1 + static_cast<size_t>(n);
            return true;
        }
        return fail("bad bencode type byte");
    }
};

void encode_to(const Value& v, std::string& out) {
    switch (v.kind) {
    case Value::Kind::Bytes:
        out += std::to_string(v.bytes.size());
        out += ':';
        out += v.bytes;
        break;
    case Value::Kind::Int:
        out += 'i';
        out += std::to_string(v.integer);
        out += 'e';
        break;
    case Value::Kind::List:
        out += 'l';
        for (const auto& item : v.list) encode_to(item, out);
        out += 'e';
        break;
    case Value::Kind::Dict: {
        std::vector<const std::pair<std::string, Value>*> items;
        items.reserve(v.dict.size());
        for (const auto& kv : v.dict) items.push_back(&kv);
        std::sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
        out += 'd';
        for (auto* kv : items) {
            encode_to(Value(kv->first), out);
            encode_to(kv->second, out);
        }
        out += 'e';
        break;
    }
    }
}

void display_to(const Value& v, std::string& out) {
    switch (v.kind) {
    case Value::Kind::Bytes:
        out += '\'';
        for (unsigned char c : v.bytes) {
            if (c == '\\' || c == '\'') { out += '\\'; out += static_cast<char>(c); }
            else if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
            else if (c == '\n') out += "\\n";
            else {
                static const char hex[] = "0123456789abcdef";
                out += "\\x";
                out += hex[c >> 4];
                out += hex[c & 15];
            }
        }
        out += '\'';
        break;
    case Value::Kind::Int:
        out += std::to_string(v.integer);
        break;
    case Value::Kind::List:
        out += '(';
        for (size_t i = 0; i < v.list.size(); ++i) {
            if (i) out += ", ";
            display_to(v.list[i], out);
        }
        out += ')';
        break;
    case Value::Kind::Dict:
        out += '{';
        for (size_t i = 0; i < v.dict.size(); ++i) {
            if (i) out += ", ";
            display_to(Value(v.dict[i].first), out);
            out += ": ";
            display_to(v.dict[i].second, out);
        }
        out += '}';
        break;
    }
}

}  // namespace

Result<Value> bdecode(std::string_view in, const BencodeLimits& limits) {
    Decoder d{in, 0, 0, limits, {}};
    Value v;
    if (!d.value(v, 0)) return make_error(d.err);
    if (d.pos != in.size()) return make_error("trailing bytes after bencode");
    return v;
}

void bencode(const Value& v, std::string& out) { encode_to(v, out); }

std::string bencode(const Value& v) {
    std::string out;
    encode_to(v, out);
    return out;
}

std::string to_display(const Value& v) {
    std::string out;
    display_to(v, out);
    return out;
}

std::string to_display(const Args& args) {
    return to_display(Value::of_list(args));
}

}  // namespace souk::proto
