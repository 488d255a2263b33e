#include "server/bzr/btree.hpp"

#include <errno.h>
#include <zlib.h>

#include <charconv>

#include "server/base/strings.hpp"

namespace souk::server::bzr {
namespace {

// Inflate one zlib stream; false if corrupt or larger than max.
bool inflate_node(std::string_view in, std::string& out, size_t max) {
    out.clear();
    z_stream zs{};
    if (inflateInit(&zs) != Z_OK) return false;
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs.avail_in = static_cast<uInt>(in.size());
    char buf[16384];
    int rc;
    do {
        zs.next_out = reinterpret_cast<Bytef*>(buf);
        zs.avail_out = sizeof buf;
        rc = inflate(&zs, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) break;
        out.append(buf, sizeof buf - zs.avail_out);
        if (out.size() > max) { rc = Z_MEM_ERROR; break; }
    } while (rc != Z_STREAM_END && (zs.avail_in > 0 || zs.avail_out == 0));
    inflateEnd(&zs);
    return rc == Z_STREAM_END;
}

bool header_field(std::string_view& rest, std::string_view name, size_t& value) {
    size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) return false;
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    if (line.substr(0, name.size()) != name || line.size() <= name.size() || line[name.size()] != '=') return false;
    line.remove_prefix(name.size() + 1);
    if (name == "row_lengths") return true;
    auto r = std::from_chars(line.data(), line.data() + line.size(), value);
    return r.ec == std::errc() && r.ptr == line.data() + line.size();
}

}  // namespace

std::string parse_btree(std::string_view file, const std::function<void(const IndexEntry&)>& fn, size_t max_node) {
    static constexpr std::string_view kSig = "B+Tree Graph Index 2\n";
    static constexpr size_t kPage = 4096;
    if (file.substr(0, kSig.size()) != kSig) return "bad B+Tree index signature";
    std::string_view rest = file.substr(kSig.size());
    size_t ref_lists = 0, key_elements = 0, len = 0, unused = 0;
    if (!header_field(rest, "node_ref_lists", ref_lists) || !header_field(rest, "key_elements", key_elements) ||
        !header_field(rest, "len", len) || !header_field(rest, "row_lengths", unused))
        return "bad B+Tree index header";
    if (key_elements == 0 || key_elements > 16 || ref_lists > 16) return "unsupported B+Tree index shape";
    size_t first = file.size() - rest.size();
    std::string node;
    for (size_t start = first, page = 0; start < file.size(); start = ++page * kPage) {
        size_t end = std::min(file.size(), (page + 1) * kPage);
        if (start >= end) break;
        if (!inflate_node(file.substr(start, end - start), node, max_node)) return "corrupt B+Tree node";
        std::string_view body = node;
        if (body.substr(0, 10) != "type=leaf\n") continue;  // internal nodes only guide lookups
        body.remove_prefix(10);
        for (std::string_view line : split(body, '\n')) {
            if (line.empty()) continue;
            // key1 \0 ... keyK \0 refs \0 value
            auto parts = split(line, '\0');
            if (parts.size() < key_elements + 2) return "bad B+Tree leaf line";
            IndexEntry e;
            e.key.assign(parts.begin(), parts.begin() + static_cast<long>(key_elements));
            e.value = parts.back();
            // The refs field may itself hold \0 (multi-element keys): rejoin.
            size_t refs_begin = static_cast<size_t>(parts[key_elements].data() - line.data());
            size_t refs_end = static_cast<size_t>(parts.back().data() - line.data()) - 1;
            std::string_view refs = line.substr(refs_begin, refs_end - refs_begin);
            if (ref_lists) {
                for (std::string_view list : split(refs, '\t')) {
                    auto& keys = e.refs.emplace_back();
                    if (list.empty()) continue;
                    for (std::string_view ref : split(list, '\r')) keys.push_back(split(ref, '\0'));
                }
            }
            fn(e);
        }
    }
    return {};
}

}  // namespace souk::server::bzr
