// Control directories (docs/formats/control-dir.md): the format marker
// files and small control files, read through the Store.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "server/store/store.hpp"

namespace souk::server::bzr {

inline constexpr std::string_view kMetaDirFormat = "Bazaar-NG meta directory, format 1\n";
inline constexpr std::string_view kBranchReferenceFormat = "Bazaar-NG Branch Reference Format 1\n";

// Read a whole small file (at most max bytes, else EFBIG). 0 or errno.
int read_file(Store& store, const std::string& path, std::string& out, size_t max = 16 * 1024 * 1024);

}  // namespace souk::server::bzr
