// The format table (docs/formats/control-dir.md). Capabilities are those
// of Breezy 3.3's format classes (RepositoryFormat2a, RepositoryFormatKnitPack*,
// BzrBranchFormat5..8, BranchReferenceFormat, BzrDirMetaFormat1*).
#include "server/bzr/format.hpp"

#include "server/bzr/control.hpp"

namespace souk::server::bzr {
namespace {

constexpr ControlDirFormat kControlDirs[] = {
    {kMetaDirFormat, "BzrDirMetaFormat1", false},
    {"Bazaar meta directory, format 1 (with colocated branches)\n", "BzrDirMetaFormat1Colo", true},
};

//  format string                                                     class                               rich  tree  ext   chk
constexpr RepositoryFormat kRepositories[] = {
    {"Bazaar repository format 2a (needs bzr 1.16 or later)\n", "RepositoryFormat2a", true, true, true, true},
    {"Bazaar development format 8\n", "RepositoryFormat2aSubtree", true, true, true, true},
    {"Bazaar pack repository format 1 (needs bzr 0.92)\n", "RepositoryFormatKnitPack1", false, false, false, false},
    {"Bazaar pack repository format 1 with subtree support (needs bzr 0.92)\n", "RepositoryFormatKnitPack3", true,
     true, false, false},
    {"Bazaar pack repository format 1 with rich root (needs bzr 1.0)\n", "RepositoryFormatKnitPack4", true, false,
     false, false},
    {"Bazaar RepositoryFormatKnitPack5 (bzr 1.6)\n", "RepositoryFormatKnitPack5", false, false, true, false},
    {"Bazaar RepositoryFormatKnitPack5RichRoot (bzr 1.6.1)\n", "RepositoryFormatKnitPack5RichRoot", true, false, true,
     false},
    {"Bazaar RepositoryFormatKnitPack5RichRoot (bzr 1.6)\n", "RepositoryFormatKnitPack5RichRootBroken", true, false,
     true, false},
    {"Bazaar RepositoryFormatKnitPack6 (bzr 1.9)\n", "RepositoryFormatKnitPack6", false, false, true, false},
    {"Bazaar RepositoryFormatKnitPack6RichRoot (bzr 1.9)\n", "RepositoryFormatKnitPack6RichRoot", true, false, true,
     false},
    {"Bazaar development format 2 with subtree support (needs bzr.dev from before 1.8)\n",
     "RepositoryFormatPackDevelopment2Subtree", true, true, true, false},
};

constexpr BranchFormat kBranches[] = {
    {"Bazaar-NG branch format 5\n", "BzrBranchFormat5", 5, false, false, false},
    {"Bazaar Branch Format 6 (bzr 0.15)\n", "BzrBranchFormat6", 6, false, true, false},
    {"Bazaar Branch Format 7 (needs bzr 1.6)\n", "BzrBranchFormat7", 7, false, true, true},
    {"Bazaar Branch Format 8 (needs bzr 1.15)\n", "BzrBranchFormat8", 8, false, true, true},
    {kBranchReferenceFormat, "BranchReferenceFormat", 0, true, true, false},
};

template <typename T>
const T* find(std::span<const T> table, std::string_view file) {
    std::string_view first = format_first_line(file);
    for (const T& f : table)  // bounded: the table
        if (f.format_string == first) return &f;
    return nullptr;
}

}  // namespace

std::span<const ControlDirFormat> control_dir_formats() { return kControlDirs; }
std::span<const RepositoryFormat> repository_formats() { return kRepositories; }
std::span<const BranchFormat> branch_formats() { return kBranches; }

std::string_view format_first_line(std::string_view file) {
    size_t nl = file.find('\n');
    return nl == std::string_view::npos ? file : file.substr(0, nl + 1);
}

const ControlDirFormat* find_control_dir_format(std::string_view file) { return find(control_dir_formats(), file); }
const RepositoryFormat* find_repository_format(std::string_view file) { return find(repository_formats(), file); }
const BranchFormat* find_branch_format(std::string_view file) { return find(branch_formats(), file); }

const ControlDirFormat& default_control_dir_format() { return kControlDirs[0]; }
const RepositoryFormat& default_repository_format() { return kRepositories[0]; }
const BranchFormat& default_branch_format() { return kBranches[2]; }

}  // namespace souk::server::bzr
