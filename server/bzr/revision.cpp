// Revision texts (docs/formats/revisions.md): Breezy's
// BEncodeRevisionSerializer1, read and written.
#include "server/bzr/revision.hpp"
#include "server/base/strings.hpp"

#include <charconv>

#include "protocol/bencode.hpp"

namespace souk::server::bzr {
namespace {

// Python float() of the timestamp bytes (Breezy writes "%.3f").
bool parse_timestamp(std::string_view s, double& v) {
    auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
    while (!s.empty() && space(s.front())) s.remove_prefix(1);  // bounded: shrinks s
    while (!s.empty() && space(s.back())) s.remove_suffix(1);   // bounded: shrinks s
    if (s.size() > 1 && s[0] == '+' && s[1] != '-' && s[1] != '+') s.remove_prefix(1);
    if (s.empty()) return false;
    auto r = std::from_chars(s.data(), s.data() + s.size(), v, std::chars_format::general);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// BEncodeRevisionSerializer1._schema, in the order bits are numbered.
constexpr std::string_view kKeys[] = {"format",      "committer",  "timezone",       "timestamp", "revision-id",
                                      "parent-ids",  "inventory-sha1", "message",    "properties"};
enum Key : unsigned { kFormat, kCommitter, kTimezone, kTimestamp, kRevisionId, kParents, kInvSha1, kMessage, kProps };

}  // namespace

bool valid_utf8(std::string_view s) {
    size_t i = 0, n = s.size();
    auto cont = [&](size_t k) { return k < n && (static_cast<unsigned char>(s[k]) & 0xc0) == 0x80; };
    while (i < n) {  // bounded: i advances by 1..4 per pass
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        } else {
            return false;
        }
        if (i + 1 >= n) return false;
        auto c1 = static_cast<unsigned char>(s[i + 1]);
        if (c1 < lo || c1 > hi) return false;
        for (size_t k = 2; k < len; ++k)  // bounded: at most 2 more bytes
            if (!cont(i + k)) return false;
        i += len;
    }
    return true;
}

Result<Revision> parse_revision(std::string_view text, size_t max_text) {
    if (text.size() > max_text)
        return limit_exceeded("revision text of " + std::to_string(text.size()) + " bytes exceeds the limit of " +
                              std::to_string(max_text) + " bytes");
    auto decoded = proto::bdecode(text);
    if (!decoded) return corrupt("revision text is not bencode: " + decoded.error());
    const proto::Value& top = *decoded;
    if (!top.is_list()) return corrupt("invalid revision text");
    Revision out;
    unsigned seen = 0;
    for (const auto& item : top.list) {  // bounded: the decoded list (bdecode caps its items)
        if (!item.is_list() || item.list.size() != 2 || !item.list[0].is_bytes())
            return corrupt("revision text item is not a (key, value) pair");
        const std::string& key = item.list[0].bytes;
        const proto::Value& v = item.list[1];
        unsigned k = 0;
        while (k < std::size(kKeys) && kKeys[k] != key) ++k;  // bounded: 9 keys
        if (k == std::size(kKeys)) return corrupt("unknown revision key '" + printable(key) + "'");
        seen |= 1u << k;
        bool type_ok = true;
        switch (k) {
        case kFormat:
            type_ok = v.is_int();
            if (type_ok && v.integer != 10) return corrupt("revision format is not 10");
            break;
        case kCommitter:
            type_ok = v.is_bytes();
            if (type_ok && !valid_utf8(v.bytes)) return corrupt("committer is not valid UTF-8");
            if (type_ok) out.committer = v.bytes;
            break;
        case kTimezone:
            type_ok = v.is_int();
            out.timezone = v.integer;
            out.has_timezone = true;
            break;
        case kTimestamp:
            type_ok = v.is_bytes();
            if (type_ok && !parse_timestamp(v.bytes, out.timestamp)) return corrupt("bad revision timestamp");
            if (type_ok) out.timestamp_text = v.bytes;
            break;
        case kRevisionId:
            type_ok = v.is_bytes();
            if (type_ok) out.revision_id = v.bytes;
            break;
        case kParents:
            type_ok = v.is_list();
            if (type_ok) {
                out.parent_ids.clear();
                for (const auto& p : v.list) {  // bounded: the decoded list
                    if (!p.is_bytes()) return corrupt("revision parent id is not a byte string");
                    out.parent_ids.push_back(p.bytes);
                }
            }
            break;
        case kInvSha1:
            type_ok = v.is_bytes();
            if (type_ok) out.inventory_sha1 = v.bytes;
            break;
        case kMessage:
            type_ok = v.is_bytes();
            if (type_ok && !valid_utf8(v.bytes)) return corrupt("message is not valid UTF-8");
            if (type_ok) out.message = v.bytes;
            break;
        default:  // kProps
            type_ok = v.is_dict();
            if (type_ok) {
                out.properties.clear();
                for (const auto& [name, value] : v.dict) {  // bounded: the decoded dict
                    if (!valid_utf8(name)) return corrupt("revision property name is not valid UTF-8");
                    if (!value.is_bytes()) return corrupt("revision property value is not a byte string");
                    out.properties.emplace_back(name, value.bytes);
                }
            }
            break;
        }
        if (!type_ok) return corrupt("revision key '" + key + "' has the wrong type");
    }
    constexpr unsigned kRequired = ((1u << std::size(kKeys)) - 1) & ~(1u << kTimezone);
    if ((seen & kRequired) != kRequired) return corrupt("revision text is missing expected keys");
    if (!(seen & (1u << kTimezone))) out.timezone = 0;
    return out;
}

std::string serialise_revision(const Revision& rev) {
    using proto::Value;
    auto pair = [](const char* k, Value v) { return Value::of_list({Value(k), std::move(v)}); };
    std::vector<Value> items;
    items.push_back(pair("format", Value::of_int(10)));
    items.push_back(pair("committer", Value(rev.committer)));
    if (rev.has_timezone) items.push_back(pair("timezone", Value::of_int(rev.timezone)));
    std::vector<std::pair<std::string, Value>> props;
    for (const auto& [name, value] : rev.properties) props.emplace_back(name, Value(value));  // bounded: the caller's
    items.push_back(pair("properties", Value::of_dict(std::move(props))));
    items.push_back(pair("timestamp", Value(rev.timestamp_text)));
    items.push_back(pair("revision-id", Value(rev.revision_id)));
    std::vector<Value> parents;
    for (const auto& p : rev.parent_ids) parents.emplace_back(p);  // bounded: the caller's
    items.push_back(pair("parent-ids", Value::of_list(std::move(parents))));
    items.push_back(pair("inventory-sha1", Value(rev.inventory_sha1)));
    items.push_back(pair("message", Value(rev.message)));
    return proto::bencode(Value::of_list(std::move(items)));
}

}  // namespace souk::server::bzr
