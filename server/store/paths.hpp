// Client paths to paths beneath the served root (docs/protocol/paths.md). Purely lexical:
// the store then opens the result without following symlinks, so no
// spelling and no link can leave the root.
#pragma once

#include <string>
#include <string_view>

#include "protocol/result.hpp"

namespace souk::server {

// Views: whoever builds one keeps the strings alive while it is used.
struct PathContext {
    // The root's real path ("/srv/bzr"), used only to decide whether a home
    // directory lies inside it for '~' expansion (docs/protocol/paths.md#home-directories).
    std::string_view root_realpath;
    // HTTP: the directory the request was posted to, relative to the root
    // ("" elsewhere); relative client paths start there.
    std::string_view base;
    // The root's URL prefix in a server of several roots ("" for "/",
    // else "pub/x"; docs/configuration.md#roots): a client path resolves
    // in the server's namespace, must lie at or below it, and loses it.
    // No '~' expansion under a non-empty mount.
    std::string_view mount;
};

// Map a client path to a root-relative path: "" for the root itself,
// otherwise "a/b/c" (no leading or trailing '/', no '.' or '..').
// VFS paths are percent-decoded once; higher-level verb paths are taken
// literally. Fails for NUL bytes, for paths that climb above the root and
// for paths outside ctx.mount.
Result<std::string> resolve_path(std::string_view client, bool vfs, const PathContext& ctx);
// The same, into `out` (reusing its capacity: no allocation on the request
// hot path). Returns nullptr, or why the path is refused.
const char* resolve_path_into(std::string_view client, bool vfs, const PathContext& ctx, std::string& out);

// VFS paths are URL-escaped ASCII (docs/protocol/paths.md#vfs-paths-are-ascii).
// For a path with raw bytes over 0x7f: the message of brz serve's
// InvalidURL error (": URL was not a plain ASCII url: ..."); "" for a
// plain ASCII path.
std::string non_ascii_url_error(std::string_view client);

// Percent-decode (invalid escapes are kept literally, as Python's unquote).
std::string percent_decode(std::string_view s);
// Percent-encode for list_dir/iter_files_recursive names (Python's quote,
// safe="/" when keep_slash).
std::string percent_encode(std::string_view s, bool keep_slash);

// The server's temporary namespace (docs/store-chain.md#temporary-files):
// names beginning with this are put's temporary files, append's intent
// records and the sweep marker. No verb sees them, and no client may
// create one.
inline constexpr std::string_view kTempPrefix = ".souk-tmp.";
// Whether any component of `path` ("a/b/c", a leading '/' allowed) begins
// with kTempPrefix. No allocation (the hot verbs call it).
bool in_temp_namespace(std::string_view path);

// Strip `mount` ("" or "a/b") from the namespace path `path` in place:
// false when `path` is not `mount` or below it (whole components).
bool strip_mount(std::string_view mount, std::string& path);

// Join a root-relative directory and a child name.
std::string join(std::string_view dir, std::string_view name);

}  // namespace souk::server
