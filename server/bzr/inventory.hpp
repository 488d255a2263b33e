// CHK inventories (docs/formats/chk-inventory.md): the inventory text of a
// 2a revision and the entries of its id_to_entry map.
//
//   chkinventory:\n
//   search_key_name: hash-255-way\n           (absent: plain)
//   root_id: <file id>\n
//   parent_id_basename_to_file_id: sha1:<hex>\n
//   revision_id: <revid>\n
//   id_to_entry: sha1:<hex>\n
//
// id_to_entry maps (file_id,) to one entry:
//   file: <id>\n<parent>\n<name>\n<revision>\n<sha1>\n<size>\n<Y|N>
//   dir: <id>\n<parent>\n<name>\n<revision>
//   symlink: <id>\n<parent>\n<name>\n<revision>\n<target>
//   tree: <id>\n<parent>\n<name>\n<revision>\n<reference revision>
// parent_id_basename_to_file_id maps (parent_id, basename) to file_id.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/bzr/chk.hpp"
#include "server/bzr/error.hpp"

namespace souk::server::bzr {

// Most bytes of an inventory text parse_inventory accepts (they are a few
// hundred bytes).
inline constexpr size_t kMaxInventoryText = 64 * 1024;

struct ChkInventory {
    std::string revision_id;
    std::string root_id;
    std::string search_key_name = "plain";        // as written (absent: plain)
    std::string parent_id_basename_to_file_id;    // root page key ("sha1:..."); may be empty
    std::string id_to_entry;                      // root page key
};

// Parse with the checks of Breezy's CHKInventory.deserialise: the header,
// known and unique keys, revision_id, root_id and id_to_entry present,
// both map roots page keys, a known search key function.
Result<ChkInventory> parse_inventory(std::string_view text, size_t max_text = kMaxInventoryText);
// The text Breezy's CHKInventory.to_lines writes.
std::string serialise_inventory(const ChkInventory& inv);
// The search key function of both maps.
Result<chk::SearchKeyKind> inventory_search_key(const ChkInventory& inv);

enum class EntryKind : uint8_t { File, Directory, Symlink, TreeReference };

struct InventoryEntry {
    EntryKind kind = EntryKind::File;
    std::string file_id;
    std::string parent_id;  // "" for the root
    std::string name;       // UTF-8, "" for the root
    std::string revision;   // last-modified revision
    // file
    std::string text_sha1;
    uint64_t text_size = 0;
    bool executable = false;
    std::string symlink_target;      // symlink (UTF-8)
    std::string reference_revision;  // tree reference
    bool operator==(const InventoryEntry&) const = default;
};

// Parse an id_to_entry value (Breezy's _bytes_to_entry, plus a check of
// the line count and of the size and executable fields).
Result<InventoryEntry> parse_entry(std::string_view value);
// Breezy's _entry_to_bytes.
std::string serialise_entry(const InventoryEntry& e);
// (file_id, revision) of an id_to_entry value: the text key get_stream
// sends for a new item (Breezy's _bytes_to_text_key).
Result<std::pair<std::string, std::string>> entry_text_key(std::string_view value);
// The same as views into `value`.
Result<std::pair<std::string_view, std::string_view>> entry_text_key_view(std::string_view value);

// Every CHK page of an inventory's two maps (id_to_entry first), each once.
Result<std::vector<std::string>> inventory_pages(chk::PageSource& src, const ChkInventory& inv,
                                                 const chk::Limits& limits = {});

}  // namespace souk::server::bzr
