#include "server/bzr/revisions.hpp"

#include <errno.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <set>
#include <tuple>
#include <unordered_set>
#include <utility>

#include "protocol/bencode.hpp"
#include "server/bzr/btree.hpp"
#include "server/bzr/control.hpp"
#include "server/bzr/pack_collection.hpp"
#include "server/store/paths.hpp"

namespace souk::server::bzr {
namespace {

constexpr std::string_view kNullRevision = "null:";
constexpr size_t kReadChunk = 64 * 1024;  // compressed bytes read per pread
constexpr size_t kMaxHeader = 4096;       // container + gcb headers of a block
constexpr uint64_t kMaxIndexFile = 1ull << 30;
// A concurrent repack may delete packs between reading pack-names and
// reading the packs; like Breezy (RetryWithNewPacks) reload and retry.
constexpr int kAttempts = 3;

int fail(std::string* why, std::string msg, int err = EINVAL) {
    if (why) *why = std::move(msg);
    return err;
}

// A printable rendering of an identifier for messages.
std::string show(std::string_view s) {
    std::string out;
    for (unsigned char c : s.substr(0, 200)) {
        if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            static const char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    if (s.size() > 200) out += "...";
    return out;
}

bool parse_u64(std::string_view s, uint64_t& v) {
    if (s.empty() || s.size() > 20) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// Base128 little-endian varint (decode_base128_int) of at most max_len
// bytes, value at most 2^63.
bool decode_varint(std::string_view s, size_t& pos, size_t max_len, uint64_t& v) {
    v = 0;
    for (size_t i = 0, shift = 0; i < max_len; ++i, shift += 7) {
        if (pos >= s.size()) return false;
        auto b = static_cast<unsigned char>(s[pos++]);
        uint64_t part = b & 0x7f;
        if (shift >= 63 && part > (shift == 63 ? 1u : 0u)) return false;
        v |= part << shift;
        if (!(b & 0x80)) return true;
    }
    return false;
}

// Python's strict UTF-8 decoder: no overlongs, surrogates or > U+10FFFF.
bool valid_utf8(std::string_view s) {
    size_t i = 0, n = s.size();
    auto cont = [&](size_t k) { return k < n && (static_cast<unsigned char>(s[k]) & 0xc0) == 0x80; };
    while (i < n) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
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
        for (size_t k = 2; k < len; ++k)
            if (!cont(i + k)) return false;
        i += len;
    }
    return true;
}

// Python float() of the timestamp bytes (Breezy writes "%.3f").
bool parse_timestamp(std::string_view s, double& v) {
    auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
    while (!s.empty() && space(s.front())) s.remove_prefix(1);
    while (!s.empty() && space(s.back())) s.remove_suffix(1);
    if (s.size() > 1 && s[0] == '+' && s[1] != '-' && s[1] != '+') s.remove_prefix(1);
    if (s.empty()) return false;
    auto r = std::from_chars(s.data(), s.data() + s.size(), v, std::chars_format::general);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// b'%.3f' % value, as Python formats it.
std::string format_fixed3(double v) {
    if (std::isnan(v)) return "nan";
    char buf[400];
    auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 3);
    if (r.ec != std::errc()) return "nan";
    return std::string(buf, r.ptr);
}

// Where a revision's text lives.
struct Position {
    size_t pack = 0;
    uint64_t block_start = 0, block_length = 0, start = 0, end = 0;
    bool ok = false;  // the index value parsed
};

bool parse_position(std::string_view value, size_t pack, Position& p) {
    p = Position{};
    p.pack = pack;
    uint64_t* fields[] = {&p.block_start, &p.block_length, &p.start, &p.end};
    for (size_t i = 0; i < 4; ++i) {
        size_t sp = value.find(' ');
        if ((sp == std::string_view::npos) != (i == 3)) return false;
        if (!parse_u64(value.substr(0, sp), *fields[i])) return false;
        value = i == 3 ? std::string_view() : value.substr(sp + 1);
    }
    p.ok = true;
    return true;
}

bool valid_pack_name(std::string_view n) {
    return !n.empty() && n.size() <= 255 && n.front() != '.' && n.find('/') == std::string_view::npos &&
           n.find('\0') == std::string_view::npos;
}

// The first line of .bzr/repository/format for the groupcompress formats.
constexpr std::string_view kGcFormats[] = {
    "Bazaar repository format 2a (needs bzr 1.16 or later)\n",
    "Bazaar development format 8\n",  // 2a with subtree support
};

int check_format(Store& store, const std::string& repo, std::string* why) {
    std::string data;
    if (int e = read_file(store, join(repo, "format"), data, 64 * 1024)) return e;
    size_t nl = data.find('\n');
    std::string_view first = std::string_view(data).substr(0, nl == std::string::npos ? data.size() : nl + 1);
    for (std::string_view f : kGcFormats)
        if (first == f) return 0;
    if (!first.empty() && first.back() == '\n') first.remove_suffix(1);
    return fail(why, "revision texts of repository format '" + show(first) + "' are not supported", ENOTSUP);
}

struct IndexEntryData {
    std::vector<std::string> parents;
    Position pos;
};

// The revision indices of every live pack, read once.
struct RevisionIndex {
    std::vector<std::string> packs;
    std::map<std::string, IndexEntryData, std::less<>> entries;
};

// Load the .rix of every pack in pack-names. With `only`, keep just those
// keys (and no parents). *retry is set when a listed index has vanished.
int load_index(Store& store, const std::string& repo, const std::set<std::string, std::less<>>* only,
               RevisionIndex& idx, std::string* why, bool* retry) {
    idx = RevisionIndex{};
    if (int e = pack_names(store, repo, idx.packs, why)) return e;
    std::string data;
    for (size_t i = 0; i < idx.packs.size(); ++i) {
        const std::string& name = idx.packs[i];
        if (!valid_pack_name(name)) return fail(why, "pack-names: bad pack name '" + show(name) + "'");
        if (int e = read_file(store, join(repo, "indices/" + name + ".rix"), data, kMaxIndexFile)) {
            if (e == ENOENT) *retry = true;
            return fail(why, "cannot read index " + name + ".rix", e);
        }
        std::string err = parse_btree(data, [&](const IndexEntry& e) {
            std::string_view key = e.key[0];
            if (only && !only->count(key)) return;
            auto [it, fresh] = idx.entries.try_emplace(std::string(key));
            if (!fresh) return;  // the first pack listing a key serves it
            parse_position(e.value, i, it->second.pos);
            if (!only && !e.refs.empty())
                for (const auto& ref : e.refs[0]) it->second.parents.emplace_back(ref.empty() ? std::string_view() : ref[0]);
        });
        if (!err.empty()) return fail(why, name + ".rix: " + err);
    }
    return 0;
}

// Extract the text of the record at [start, end) of a block's content.
int extract_record(std::string_view content, uint64_t start, uint64_t end, std::string& text, ReadStats& stats,
                   std::string* why) {
    if (start == 0 && end == 0) {
        text.clear();
        return 0;
    }
    if (start >= end || end > content.size()) return fail(why, "record lies outside its block");
    size_t pos = static_cast<size_t>(start) + 1;
    uint64_t len = 0;
    // Breezy reads the length from at most 5 bytes (content[start+1:start+6]).
    std::string_view upto_end = content.substr(0, static_cast<size_t>(end));
    if (!decode_varint(upto_end, pos, 5, len)) return fail(why, "bad record length");
    if (len != end - pos) return fail(why, "record length does not match its index entry");
    std::string_view body = content.substr(pos, static_cast<size_t>(len));
    char kind = content[static_cast<size_t>(start)];
    if (kind == 'f') {
        ++stats.fulltexts;
        text.assign(body);
        return 0;
    }
    if (kind != 'd') return fail(why, "unknown record kind in groupcompress block");
    ++stats.deltas;
    // A delta copies from the content before it (the compressor never
    // references anything later).
    return apply_delta(content.substr(0, static_cast<size_t>(start)), body, text, why);
}

struct Wanted {
    std::string_view revid;
    Position pos;
};

using RevisionFn = std::function<void(std::string_view revid, RevisionInfo&& info)>;

// Parse a block's container and gcb headers; z_offset/z_len locate the
// compressed bytes in the pack.
int block_header(Store& store, OpenFile& f, const Position& p, uint64_t& z_offset, uint64_t& z_len,
                 uint64_t& content_len, std::string* why) {
    std::string hdr(static_cast<size_t>(std::min<uint64_t>(p.block_length, kMaxHeader)), '\0');
    size_t got = 0;
    while (got < hdr.size()) {
        ssize_t r = store.pread(f, hdr.data() + got, hdr.size() - got, p.block_start + got);
        if (r < 0) return fail(why, "cannot read pack", static_cast<int>(-r));
        if (r == 0) break;
        got += static_cast<size_t>(r);
    }
    if (got < hdr.size()) return fail(why, "pack is truncated");
    std::string_view h = hdr;
    // Container Bytes record: "B" <length> "\n" {name "\n"} "\n" <bytes>.
    if (h.empty() || h[0] != 'B') return fail(why, "no pack record at the indexed offset");
    size_t nl = h.find('\n');
    uint64_t record_len = 0;
    if (nl == std::string_view::npos || !parse_u64(h.substr(1, nl - 1), record_len))
        return fail(why, "bad pack record header");
    size_t pos = nl + 1;
    for (;;) {  // names (none for groupcompress blocks), then an empty line
        size_t e = h.find('\n', pos);
        if (e == std::string_view::npos) return fail(why, "bad pack record header");
        bool empty = e == pos;
        pos = e + 1;
        if (empty) break;
    }
    if (record_len != p.block_length - pos) return fail(why, "pack record length does not match its index entry");
    // "gcb1z\n" <z_len> "\n" <content_len> "\n": each number under 14 bytes.
    std::string_view g = h.substr(pos);
    if (g.substr(0, 6) == "gcb1l\n") return fail(why, "lzma-compressed groupcompress blocks are not supported", ENOTSUP);
    if (g.substr(0, 6) != "gcb1z\n") return fail(why, "not a groupcompress block");
    size_t q = 6;
    uint64_t* nums[] = {&z_len, &content_len};
    for (auto* n : nums) {
        size_t e = g.find('\n', q);
        if (e == std::string_view::npos || e - q >= 14 || !parse_u64(g.substr(q, e - q), *n))
            return fail(why, "bad groupcompress block header");
        q = e + 1;
    }
    if (q > record_len || z_len != record_len - q) return fail(why, "groupcompress block length mismatch");
    z_offset = p.block_start + pos + q;
    return 0;
}

// Inflate the first `needed` bytes of the zlib stream at [z_offset, +z_len).
int inflate_prefix(Store& store, OpenFile& f, uint64_t z_offset, uint64_t z_len, size_t needed, std::string& out,
                   std::string* why) {
    out.assign(needed, '\0');
    if (needed == 0) return 0;
    z_stream zs{};
    if (inflateInit(&zs) != Z_OK) return fail(why, "zlib initialisation failed", ENOMEM);
    std::string in(static_cast<size_t>(std::min<uint64_t>(z_len, kReadChunk)), '\0');
    uint64_t read = 0;
    size_t produced = 0;
    int err = 0;
    const char* msg = "";
    auto stop = [&](int e, const char* m) {
        err = e;
        msg = m;
    };
    constexpr const char* kShort = "groupcompress block is shorter than its index entry says";
    while (produced < needed) {
        if (zs.avail_in == 0) {
            if (read >= z_len) {
                stop(EINVAL, kShort);
                break;
            }
            size_t n = static_cast<size_t>(std::min<uint64_t>(z_len - read, in.size()));
            ssize_t r = store.pread(f, in.data(), n, z_offset + read);
            if (r < 0) {
                stop(static_cast<int>(-r), "cannot read pack");
                break;
            }
            if (r == 0) {
                stop(EINVAL, "pack is truncated");
                break;
            }
            read += static_cast<uint64_t>(r);
            zs.next_in = reinterpret_cast<Bytef*>(in.data());
            zs.avail_in = static_cast<uInt>(r);
        }
        size_t room = std::min<size_t>(needed - produced, 1u << 30);
        zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
        zs.avail_out = static_cast<uInt>(room);
        int rc = inflate(&zs, Z_NO_FLUSH);
        produced += room - zs.avail_out;
        if (rc == Z_STREAM_END) {
            if (produced < needed) stop(EINVAL, kShort);
            break;
        }
        if (rc != Z_OK && !(rc == Z_BUF_ERROR && zs.avail_in == 0)) {
            stop(EINVAL, "corrupt zlib data in groupcompress block");
            break;
        }
    }
    inflateEnd(&zs);
    if (err) return fail(why, msg, err);
    return 0;
}

// Read the wanted revisions block by block, calling fn for each. *retry is
// set when a pack has vanished.
int read_blocks(Store& store, const std::string& repo, const std::vector<std::string>& packs,
                std::vector<Wanted>& wanted, const RevisionFn& fn, ReadStats& stats, std::string* why, bool* retry) {
    for (const auto& w : wanted)
        if (!w.pos.ok) return fail(why, "bad index entry for revision " + show(w.revid));
    std::sort(wanted.begin(), wanted.end(), [](const Wanted& a, const Wanted& b) {
        return std::tie(a.pos.pack, a.pos.block_start, a.pos.block_length, a.pos.start) <
               std::tie(b.pos.pack, b.pos.block_start, b.pos.block_length, b.pos.start);
    });
    OpenFile f;
    size_t open_pack = static_cast<size_t>(-1);
    std::string content, text;
    for (size_t i = 0; i < wanted.size();) {
        const Position& p = wanted[i].pos;
        size_t j = i;
        uint64_t needed = 0;
        for (; j < wanted.size() && wanted[j].pos.pack == p.pack && wanted[j].pos.block_start == p.block_start &&
               wanted[j].pos.block_length == p.block_length;
             ++j)
            needed = std::max(needed, wanted[j].pos.end);
        const std::string& name = packs[p.pack];
        std::string where = " (pack " + name + ", block at " + std::to_string(p.block_start) + ")";
        if (open_pack != p.pack) {
            f = OpenFile{};
            open_pack = static_cast<size_t>(-1);
            if (int e = store.open_read(join(repo, "packs/" + name + ".pack"), f)) {
                if (e == ENOENT) *retry = true;
                return fail(why, "cannot open pack " + name, e);
            }
            open_pack = p.pack;
        }
        if (p.block_length == 0 || p.block_start > f.info.size || p.block_length > f.info.size - p.block_start)
            return fail(why, "index entry points beyond the end of the pack" + where);
        if (needed > kMaxBlockContent)
            return fail(why, "groupcompress block content exceeds " + std::to_string(kMaxBlockContent) + " bytes" +
                                 where);
        uint64_t z_offset = 0, z_len = 0, content_len = 0;
        if (int e = block_header(store, f, p, z_offset, z_len, content_len, why)) {
            if (why) *why += where;
            return e;
        }
        if (needed > content_len) return fail(why, "record lies beyond the end of its block" + where);
        if (int e = inflate_prefix(store, f, z_offset, z_len, static_cast<size_t>(needed), content, why)) {
            if (why) *why += where;
            return e;
        }
        ++stats.blocks;
        for (; i < j; ++i) {
            const Wanted& w = wanted[i];
            RevisionInfo info;
            if (int e = extract_record(content, w.pos.start, w.pos.end, text, stats, why)) {
                if (why) *why = "revision " + show(w.revid) + ": " + *why + where;
                return e;
            }
            if (int e = parse_revision(text, info, why)) {
                if (why) *why = "revision " + show(w.revid) + ": " + *why;
                return e;
            }
            fn(w.revid, std::move(info));
        }
    }
    return 0;
}

}  // namespace

int apply_delta(std::string_view source, std::string_view delta, std::string& out, std::string* why) {
    out.clear();
    size_t pos = 0;
    uint64_t target = 0;
    if (!decode_varint(delta, pos, 10, target)) return fail(why, "bad delta target length");
    if (target > kMaxBlockContent) return fail(why, "delta target exceeds " + std::to_string(kMaxBlockContent) + " bytes");
    out.reserve(static_cast<size_t>(target));
    while (pos < delta.size()) {
        auto cmd = static_cast<unsigned char>(delta[pos++]);
        if (cmd & 0x80) {
            uint64_t offset = 0, length = 0;
            for (int bit = 0; bit < 7; ++bit) {
                if (!(cmd & (1u << bit))) continue;
                if (pos >= delta.size()) return fail(why, "truncated delta copy instruction");
                uint64_t b = static_cast<unsigned char>(delta[pos++]);
                if (bit < 4) offset |= b << (8 * bit);
                else length |= b << (8 * (bit - 4));
            }
            if (length == 0) length = 0x10000;
            if (offset > source.size() || length > source.size() - offset)
                return fail(why, "delta copies bytes past the end of its source");
            if (length > target - out.size()) return fail(why, "delta output exceeds its target length");
            out.append(source.substr(static_cast<size_t>(offset), static_cast<size_t>(length)));
        } else {
            if (cmd == 0) return fail(why, "delta instruction 0 is not supported");
            if (cmd > delta.size() - pos) return fail(why, "truncated delta insert");
            if (cmd > target - out.size()) return fail(why, "delta output exceeds its target length");
            out.append(delta.substr(pos, cmd));
            pos += cmd;
        }
    }
    if (out.size() != target) return fail(why, "delta output is shorter than its target length");
    return 0;
}

int parse_revision(std::string_view text, RevisionInfo& out, std::string* why) {
    out = RevisionInfo{};
    out.has_timezone = false;
    auto decoded = proto::bdecode(text);
    if (!decoded) return fail(why, "revision text is not bencode: " + decoded.error());
    const proto::Value& top = *decoded;
    if (!top.is_list()) return fail(why, "invalid revision text");
    // BEncodeRevisionSerializer1._schema; bit i set when key i was seen.
    static constexpr std::string_view kKeys[] = {"format",         "committer",   "timezone",
                                                 "timestamp",      "revision-id", "parent-ids",
                                                 "inventory-sha1", "message",     "properties"};
    unsigned seen = 0;
    for (const auto& item : top.list) {
        if (!item.is_list() || item.list.size() != 2 || !item.list[0].is_bytes())
            return fail(why, "revision text item is not a (key, value) pair");
        const std::string& key = item.list[0].bytes;
        const proto::Value& v = item.list[1];
        size_t k = 0;
        while (k < std::size(kKeys) && kKeys[k] != key) ++k;
        if (k == std::size(kKeys)) return fail(why, "unknown revision key '" + show(key) + "'");
        seen |= 1u << k;
        bool type_ok = true;
        switch (k) {
        case 0:
            type_ok = v.is_int();
            if (type_ok && v.integer != 10) return fail(why, "revision format is not 10");
            break;
        case 1:
            type_ok = v.is_bytes();
            if (type_ok && !valid_utf8(v.bytes)) return fail(why, "committer is not valid UTF-8");
            if (type_ok) out.committer = v.bytes;
            break;
        case 2:
            type_ok = v.is_int();
            out.timezone = v.integer;
            out.has_timezone = true;
            break;
        case 3:
            type_ok = v.is_bytes();
            if (type_ok && !parse_timestamp(v.bytes, out.timestamp)) return fail(why, "bad revision timestamp");
            break;
        case 5:
            type_ok = v.is_list();
            break;
        case 7:
            type_ok = v.is_bytes();
            if (type_ok && !valid_utf8(v.bytes)) return fail(why, "message is not valid UTF-8");
            break;
        case 8:
            type_ok = v.is_dict();
            if (type_ok)
                for (const auto& [name, value] : v.dict)
                    if (!valid_utf8(name)) return fail(why, "revision property name is not valid UTF-8");
            break;
        default:  // revision-id, inventory-sha1
            type_ok = v.is_bytes();
            break;
        }
        if (!type_ok) return fail(why, "revision key '" + key + "' has the wrong type");
    }
    constexpr unsigned kRequired = ((1u << std::size(kKeys)) - 1) & ~(1u << 2);
    if ((seen & kRequired) != kRequired) return fail(why, "revision text is missing expected keys");
    if (!(seen & (1u << 2))) out.timezone = 0;
    return 0;
}

int read_revisions(Store& store, const std::string& repo, const std::vector<std::string>& revids,
                   std::map<std::string, RevisionInfo>& out, std::string* why, ReadStats* stats) {
    std::set<std::string, std::less<>> only(revids.begin(), revids.end());
    ReadStats local;
    int rc = 0;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        bool retry = false;
        local = ReadStats{};
        std::map<std::string, RevisionInfo> got;
        RevisionIndex idx;
        rc = check_format(store, repo, why);
        if (rc == 0) rc = load_index(store, repo, &only, idx, why, &retry);
        if (rc == 0) {
            std::vector<Wanted> wanted;
            wanted.reserve(idx.entries.size());
            for (const auto& [revid, entry] : idx.entries) wanted.push_back({revid, entry.pos});
            rc = read_blocks(
                store, repo, idx.packs, wanted,
                [&](std::string_view revid, RevisionInfo&& info) { got[std::string(revid)] = std::move(info); },
                local, why, &retry);
        }
        if (rc == 0) {
            for (auto& [revid, info] : got) out[revid] = std::move(info);
            break;
        }
        if (!retry) break;
    }
    if (stats) *stats = local;
    return rc;
}

namespace {

int gather_once(Store& store, const std::string& repo, std::string_view revid, bool committers, std::string& body,
                std::string* why, bool* retry) {
    if (int e = check_format(store, repo, why)) return e;
    RevisionIndex idx;
    if (int e = load_index(store, repo, nullptr, idx, why, retry)) return e;
    const auto& entries = idx.entries;
    body.clear();
    if (!revid.empty() && committers && revid == kNullRevision) body += "committers: 0\n";
    if (!revid.empty() && revid != kNullRevision) {
        // graph.iter_ancestry([revid]): generation by generation, each
        // generation's present revisions then its ghosts; "null:" is the
        // parent of parentless revisions and is left out of the list.
        auto root = entries.find(revid);
        if (root == entries.end()) return kNoSuchRevision;
        std::vector<std::string_view> all;       // every non-null revision listed
        std::vector<std::string_view> deepest;   // present ones of the last generation listing any
        bool any_ghost = false, deepest_ghost = false;
        std::unordered_set<std::string_view> processed{revid};
        std::vector<std::string_view> layer{root->first}, next;
        while (!layer.empty()) {
            next.clear();
            std::vector<std::string_view> present;
            bool ghost = false, listed = false;
            for (std::string_view k : layer) {
                if (k == kNullRevision) continue;
                listed = true;
                auto it = entries.find(k);
                if (it == entries.end()) {
                    ghost = any_ghost = true;
                    continue;
                }
                present.push_back(it->first);
                if (it->second.parents.empty()) {
                    if (processed.insert(kNullRevision).second) next.push_back(kNullRevision);
                }
                for (const auto& p : it->second.parents)
                    if (processed.insert(p).second) next.push_back(p);
            }
            if (listed) {
                deepest = present;
                deepest_ghost = ghost;
            }
            all.insert(all.end(), present.begin(), present.end());
            layer.swap(next);
        }
        // Breezy fetches every listed revision (committers) or the first and
        // last; a ghost among them raises NoSuchRevision. Ghosts come last in
        // their generation, so a ghost in the deepest one is the last.
        if (deepest_ghost || (committers && any_ghost)) return kNoSuchRevision;
        std::vector<Wanted> wanted;
        const std::vector<std::string_view>& fetch = committers ? all : deepest;
        for (std::string_view r : fetch) wanted.push_back({r, entries.find(r)->second.pos});
        std::set<std::string_view> candidates(deepest.begin(), deepest.end());
        if (!committers && !candidates.count(root->first)) wanted.push_back({root->first, root->second.pos});
        std::set<std::string> who;
        std::map<std::string_view, RevisionInfo> info;
        size_t seen = 0;
        ReadStats stats;
        if (int e = read_blocks(
                store, repo, idx.packs, wanted,
                [&](std::string_view r, RevisionInfo&& ri) {
                    ++seen;
                    if (committers) who.insert(ri.committer);
                    if (r == revid || candidates.count(r)) info[r] = std::move(ri);
                },
                stats, why, retry))
            return e;
        if (seen != wanted.size()) return fail(why, "revision texts missing from the packs");
        const RevisionInfo& latest = info.at(root->first);
        std::string_view first_id = deepest.front();
        for (std::string_view c : deepest) {
            const RevisionInfo& a = info.at(c);
            const RevisionInfo& b = info.at(first_id);
            if (a.timestamp < b.timestamp || (a.timestamp == b.timestamp && c < first_id)) first_id = c;
        }
        const RevisionInfo& first = info.at(first_id);
        if (!first.has_timezone || !latest.has_timezone)
            return fail(why, "revision " + show(first.has_timezone ? revid : first_id) + " has no timezone");
        if (committers) body += "committers: " + std::to_string(who.size()) + "\n";
        body += "firstrev: " + format_fixed3(first.timestamp) + " " + std::to_string(first.timezone) + "\n";
        body += "latestrev: " + format_fixed3(latest.timestamp) + " " + std::to_string(latest.timezone) + "\n";
    }
    body += "revisions: " + std::to_string(entries.size()) + "\n";
    return 0;
}

}  // namespace

int gather_stats(Store& store, const std::string& repo, std::string_view revid, bool committers, std::string& body,
                 std::string* why) {
    int rc = 0;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        bool retry = false;
        rc = gather_once(store, repo, revid, committers, body, why, &retry);
        if (rc == 0 || !retry) break;
    }
    if (rc != 0) body.clear();
    return rc;
}

}  // namespace souk::server::bzr
