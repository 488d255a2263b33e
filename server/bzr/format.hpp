// The format strings souk knows, in one table (docs/formats/control-dir.md):
// control directories (.bzr/branch-format), repositories
// (.bzr/repository/format) and branches (.bzr/branch/format). A format
// file's first line is the format string, which is also the format's
// network name on the wire; later lines (feature flags) are ignored here.
#pragma once

#include <span>
#include <string_view>

namespace souk::server::bzr {

struct ControlDirFormat {
    std::string_view format_string;
    std::string_view name;  // Breezy's class
    bool colocated;         // supports colocated branches
};

struct RepositoryFormat {
    std::string_view format_string;  // = network name
    std::string_view name;           // Breezy's class
    bool rich_root;                  // rich_root_data
    bool tree_reference;             // supports_tree_reference
    bool external_lookups;           // supports_external_lookups (stacking)
    bool chk;                        // groupcompress blocks + CHK inventories: souk reads its texts
};

struct BranchFormat {
    std::string_view format_string;  // = network name
    std::string_view name;           // Breezy's class
    int number;                      // 5..8; 0 for a branch reference
    bool reference;                  // a reference to a branch elsewhere (.bzr/branch/location)
    bool tags;                       // supports_tags
    bool stacking;                   // supports_stacking
};

std::span<const ControlDirFormat> control_dir_formats();
std::span<const RepositoryFormat> repository_formats();
std::span<const BranchFormat> branch_formats();

// The first line of a format file, with its "\n" (the whole text if none).
std::string_view format_first_line(std::string_view file);

// The entry whose format string is the first line of `file`, or nullptr.
const ControlDirFormat* find_control_dir_format(std::string_view file);
const RepositoryFormat* find_repository_format(std::string_view file);
const BranchFormat* find_branch_format(std::string_view file);

// The formats souk creates: a metadir, 2a, branch format 7.
const ControlDirFormat& default_control_dir_format();
const RepositoryFormat& default_repository_format();
const BranchFormat& default_branch_format();

}  // namespace souk::server::bzr
