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

// A bencode checker that builds nothing (bvalidate, bdecode_flat_list).
struct Checker {
    std::string_view in;
    size_t pos = 0;
    size_t items = 0;
    const BencodeLimits& limits;

    // A canonical non-negative length/integer ending at `end`.
    bool canonical(size_t end, bool allow_negative, int64_t* value) const {
        std::string_view d = in.substr(pos, end - pos);
        bool neg = !d.empty() && d[0] == '-';
        if (neg && !allow_negative) return false;
        std::string_view mag = neg ? d.substr(1) : d;
        if (mag.empty() || (mag.size() > 1 && mag[0] == '0') || (neg && mag == "0")) return false;
        for (char c : mag)
            if (c < '0' || c > '9') return false;
        int64_t v = 0;
        auto r = std::from_chars(d.data(), d.data() + d.size(), v);
        if (r.ec != std::errc() || r.ptr != d.data() + d.size()) return false;
        if (value) *value = v;
        return true;
    }

    // A byte string at pos: its view, pos advanced.
    bool string(std::string_view& s) {
        size_t colon = in.find(':', pos);
        if (colon == std::string_view::npos) return false;
        int64_t n = 0;
        if (!canonical(colon, false, &n)) return false;
        if (static_cast<uint64_t>(n) > in.size() - (colon + 1)) return false;
        s = in.substr(colon + 1, static_cast<size_t>(n));
        pos = colon + 1 + static_cast<size_t>(n);
        return true;
    }

    bool value(size_t depth) {
        if (depth > limits.max_depth || ++items > limits.max_items || pos >= in.size()) return false;
        char c = in[pos];
        if (c == 'i') {
            size_t end = in.find('e', pos + 1);
            if (end == std::string_view::npos) return false;
            ++pos;
            if (!canonical(end, true, nullptr)) return false;
            pos = end + 1;
            return true;
        }
        if (c == 'l' || c == 'd') {
            ++pos;
            std::string_view last;
            bool first = true;
            for (;;) {  // bounded: each pass consumes input or returns
                if (pos >= in.size()) return false;
                if (in[pos] == 'e') {
                    ++pos;
                    return true;
                }
                if (c == 'd') {
                    std::string_view key;
                    if (pos >= in.size() || in[pos] < '0' || in[pos] > '9') return false;
                    if (++items > limits.max_items || !string(key)) return false;
                    if (!first && !(last < key)) return false;
                    last = key;
                    first = false;
                }
                if (!value(depth + 1)) return false;
            }
        }
        if (c >= '0' && c <= '9') {
            std::string_view s;
            return string(s);
        }
        return false;
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

bool bdecode_flat_list(std::string_view in, std::vector<Value>& out, size_t& n, const BencodeLimits& limits) {
    Checker c{in, 0, 0, limits};
    n = 0;
    if (in.empty() || in[0] != 'l' || limits.max_depth < 1) return false;
    c.pos = 1;
    ++c.items;
    for (;;) {  // bounded: each pass consumes input or returns
        if (c.pos >= in.size()) return false;
        if (in[c.pos] == 'e') return c.pos + 1 == in.size();
        if (in[c.pos] < '0' || in[c.pos] > '9') return false;  // not a flat list of strings
        if (++c.items > limits.max_items) return false;
        std::string_view s;
        if (!c.string(s)) return false;
        if (n >= out.size()) out.emplace_back();
        Value& v = out[n++];
        v.kind = Value::Kind::Bytes;
        v.bytes.assign(s);
        v.integer = 0;
        v.list.clear();
        v.dict.clear();
    }
}

bool bvalidate(std::string_view in, const BencodeLimits& limits, bool* is_dict) {
    Checker c{in, 0, 0, limits};
    if (is_dict) *is_dict = !in.empty() && in[0] == 'd';
    return c.value(0) && c.pos == in.size();
}

void bencode_list(const Value* items, size_t count, std::string& out) {
    out += 'l';
    for (size_t i = 0; i < count; ++i) encode_to(items[i], out);
    out += 'e';
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
