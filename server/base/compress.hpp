// Compression helpers for reply bodies.
#pragma once

#include <string>
#include <string_view>

namespace souk::server {

// bz2-compress at level 9 (Repository.get_parent_map answers are bz2,
// docs/protocol/repository.md). "" on failure.
std::string bz2_compress(std::string_view data);

}  // namespace souk::server
