// CHK inventory texts and id_to_entry values (docs/formats/chk-inventory.md).
#include "server/bzr/inventory.hpp"
#include "server/base/strings.hpp"

#include <array>

#include "server/bzr/revision.hpp"

namespace souk::server::bzr {
namespace {

constexpr std::string_view kHeader = "chkinventory:\n";
constexpr size_t kMaxEntryLines = 7;

// Split on "\n" into at most max_parts parts (the last keeps the rest).
std::vector<std::string_view> split_n(std::string_view s, size_t max_parts) {
    std::vector<std::string_view> out;
    while (out.size() + 1 < max_parts) {  // bounded: max_parts
        size_t nl = s.find('\n');
        if (nl == std::string_view::npos) break;
        out.push_back(s.substr(0, nl));
        s.remove_prefix(nl + 1);
    }
    out.push_back(s);
    return out;
}

}  // namespace

Result<ChkInventory> parse_inventory(std::string_view text, size_t max_text) {
    if (text.size() > max_text) return limit_exceeded("inventory text exceeds " + std::to_string(max_text) + " bytes");
    if (text.substr(0, kHeader.size()) != kHeader) return corrupt("not a CHK inventory (no chkinventory: header)");
    if (text.back() != '\n') return corrupt("CHK inventory does not end with a newline");
    static constexpr std::array<std::string_view, 5> kKeys = {"root_id", "revision_id", "parent_id_basename_to_file_id",
                                                              "search_key_name", "id_to_entry"};
    std::array<bool, kKeys.size()> seen{};
    ChkInventory inv;
    std::string* fields[] = {&inv.root_id, &inv.revision_id, &inv.parent_id_basename_to_file_id, &inv.search_key_name,
                             &inv.id_to_entry};
    std::string_view rest = text.substr(kHeader.size());
    while (!rest.empty()) {  // bounded: one line consumed per pass
        size_t nl = rest.find('\n');
        std::string_view line = rest.substr(0, nl);
        rest.remove_prefix(nl + 1);
        size_t sep = line.find(": ");
        if (sep == std::string_view::npos) return corrupt("bad line in CHK inventory");
        std::string_view key = line.substr(0, sep);
        size_t k = 0;
        while (k < kKeys.size() && kKeys[k] != key) ++k;  // bounded: 5 keys
        if (k == kKeys.size()) return corrupt("unknown key in CHK inventory");
        if (seen[k]) return corrupt("duplicate key in CHK inventory");
        seen[k] = true;
        *fields[k] = std::string(line.substr(sep + 2));
    }
    if (!seen[0] || !seen[1] || !seen[4]) return corrupt("CHK inventory lacks root_id, revision_id or id_to_entry");
    if (!seen[2]) return corrupt("CHK inventory lacks parent_id_basename_to_file_id");
    if (!chk::valid_page_key(inv.id_to_entry) || !chk::valid_page_key(inv.parent_id_basename_to_file_id))
        return corrupt("CHK inventory map root is not a page key");
    if (!chk::search_key_kind(inv.search_key_name)) return corrupt("CHK inventory has an unknown search key function");
    return inv;
}

std::string serialise_inventory(const ChkInventory& inv) {
    std::string out(kHeader);
    if (inv.search_key_name != "plain") {
        out += "search_key_name: " + inv.search_key_name + "\n";
        out += "root_id: " + inv.root_id + "\n";
        out += "parent_id_basename_to_file_id: " + inv.parent_id_basename_to_file_id + "\n";
        out += "revision_id: " + inv.revision_id + "\n";
    } else {
        out += "revision_id: " + inv.revision_id + "\n";
        out += "root_id: " + inv.root_id + "\n";
        if (!inv.parent_id_basename_to_file_id.empty())
            out += "parent_id_basename_to_file_id: " + inv.parent_id_basename_to_file_id + "\n";
    }
    out += "id_to_entry: " + inv.id_to_entry + "\n";
    return out;
}

Result<chk::SearchKeyKind> inventory_search_key(const ChkInventory& inv) {
    return chk::search_key_kind(inv.search_key_name);
}

Result<InventoryEntry> parse_entry(std::string_view value) {
    auto lines = split_n(value, kMaxEntryLines + 1);
    InventoryEntry e;
    std::string_view first = lines[0];
    size_t want = 0;
    if (first.starts_with("file: ")) {
        e.kind = EntryKind::File;
        e.file_id = first.substr(6);
        want = 7;
    } else if (first.starts_with("dir: ")) {
        e.kind = EntryKind::Directory;
        e.file_id = first.substr(5);
        want = 4;
    } else if (first.starts_with("symlink: ")) {
        e.kind = EntryKind::Symlink;
        e.file_id = first.substr(9);
        want = 5;
    } else if (first.starts_with("tree: ")) {
        e.kind = EntryKind::TreeReference;
        e.file_id = first.substr(6);
        want = 5;
    } else {
        return corrupt("not a serialised inventory entry");
    }
    if (lines.size() != want) return corrupt("inventory entry has the wrong number of lines");
    e.parent_id = lines[1];
    e.name = lines[2];
    e.revision = lines[3];
    if (!valid_utf8(e.name)) return corrupt("inventory entry name is not valid UTF-8");
    switch (e.kind) {
    case EntryKind::File:
        e.text_sha1 = lines[4];
        if (!parse_u64(lines[5], e.text_size)) return corrupt("bad inventory entry text size");
        if (lines[6] != "Y" && lines[6] != "N") return corrupt("bad inventory entry executable flag");
        e.executable = lines[6] == "Y";
        break;
    case EntryKind::Symlink:
        e.symlink_target = lines[4];
        if (!valid_utf8(e.symlink_target)) return corrupt("symlink target is not valid UTF-8");
        break;
    case EntryKind::TreeReference: e.reference_revision = lines[4]; break;
    case EntryKind::Directory: break;
    }
    return e;
}

std::string serialise_entry(const InventoryEntry& e) {
    std::string common = e.file_id + "\n" + e.parent_id + "\n" + e.name + "\n" + e.revision;
    switch (e.kind) {
    case EntryKind::File:
        return "file: " + common + "\n" + e.text_sha1 + "\n" + std::to_string(e.text_size) + "\n" +
               (e.executable ? "Y" : "N");
    case EntryKind::Directory: return "dir: " + common;
    case EntryKind::Symlink: return "symlink: " + common + "\n" + e.symlink_target;
    default: return "tree: " + common + "\n" + e.reference_revision;
    }
}

Result<std::pair<std::string_view, std::string_view>> entry_text_key_view(std::string_view value) {
    // "<kind>: <file id>\n<parent>\n<name>\n<revision>[\n...]"
    std::string_view line[4];
    for (size_t i = 0; i < 4; ++i) {  // bounded: four lines
        size_t nl = value.find('\n');
        if (nl == std::string_view::npos && i < 3) return corrupt("not a serialised inventory entry");
        line[i] = value.substr(0, nl);
        value.remove_prefix(nl == std::string_view::npos ? value.size() : nl + 1);
    }
    size_t sep = line[0].find(": ");
    if (sep == std::string_view::npos) return corrupt("not a serialised inventory entry");
    return std::pair<std::string_view, std::string_view>{line[0].substr(sep + 2), line[3]};
}

Result<std::pair<std::string, std::string>> entry_text_key(std::string_view value) {
    auto v = entry_text_key_view(value);
    if (!v) return v.err();
    return std::pair<std::string, std::string>{std::string(v->first), std::string(v->second)};
}

Result<std::vector<std::string>> inventory_pages(chk::PageSource& src, const ChkInventory& inv,
                                                 const chk::Limits& limits) {
    std::vector<std::string> roots{inv.id_to_entry};
    if (!inv.parent_id_basename_to_file_id.empty()) roots.push_back(inv.parent_id_basename_to_file_id);
    return chk::reachable_pages(src, roots, limits);
}

}  // namespace souk::server::bzr
