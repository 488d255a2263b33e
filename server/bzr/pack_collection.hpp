// A repository's pack collection (docs/formats/packs.md): pack-names and
// the indices of every live pack.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "server/store/store.hpp"

namespace souk::server::bzr {

// The live pack names of a repository (.bzr/repository relative path).
int pack_names(Store& store, const std::string& repo, std::vector<std::string>& names, std::string* why);

// revid -> parent revids, from every pack's .rix index.
using ParentMap = std::map<std::string, std::vector<std::string>, std::less<>>;
int read_parent_map(Store& store, const std::string& repo, ParentMap& out, std::string* why);

}  // namespace souk::server::bzr
