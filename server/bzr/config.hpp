// Branch configuration files (branch.conf, docs/formats/control-dir.md#branch-configuration):
// the configobj "key = value" text Breezy reads and writes, edited in place.
#pragma once

#include <string>
#include <string_view>

namespace souk::server::bzr {

// `conf` with top-level option `key` set to `value`, as Breezy's config
// store writes it: an existing top-level assignment is replaced in place,
// a new one is appended after the last top-level line (before the first
// [section]); the value is quoted when configobj would quote it. Other
// lines are kept byte for byte (Breezy would also re-space them).
std::string config_set(std::string_view conf, std::string_view key, std::string_view value);

// configobj's rendering of one value: bare, "..." or '...', or triple-quoted.
std::string config_quote(std::string_view value);

}  // namespace souk::server::bzr
