// Bazaar's on-disk formats that the higher-level verbs touch (spec
// Appendix A): control-directory files, B+Tree graph indices, the revision
// graph, and LockDir locks. Everything goes through the Store.
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

// One entry of a B+Tree graph index: key elements, reference lists (each a
// list of keys) and the value.
struct IndexEntry {
    std::vector<std::string_view> key;
    std::vector<std::vector<std::vector<std::string_view>>> refs;
    std::string_view value;
};
// Parse a "B+Tree Graph Index 2" file (Appendix A.4) and call `fn` for
// every leaf entry; the views are valid only during the call. Each node
// inflates to at most max_node bytes (zip-bomb guard). Returns "" or a
// message describing the first problem.
std::string parse_btree(std::string_view file, const std::function<void(const IndexEntry&)>& fn,
                        size_t max_node = 4 * 1024 * 1024);

// The live pack names of a repository (.bzr/repository relative path).
int pack_names(Store& store, const std::string& repo, std::vector<std::string>& names, std::string* why);

// revid -> parent revids, from every pack's .rix index.
using ParentMap = std::map<std::string, std::vector<std::string>, std::less<>>;
int read_parent_map(Store& store, const std::string& repo, ParentMap& out, std::string* why);

// bz2-compress (Repository.get_parent_map answers are bz2, spec 13.9).
std::string bz2_compress(std::string_view data);

// 20 random [a-z0-9], starting with a letter so YAML reads a string (13.6).
std::string random_token();

// LockDir (Appendix A.3) at `lock` (e.g. "b/.bzr/branch/lock").
enum class LockResult { Ok, Contended, TokenMismatch, IoError };
// Take the lock, or re-confirm it when `token` names the held lock.
// On Ok, *nonce is the held lock's nonce.
LockResult lock_acquire(Store& store, const std::string& lock, std::string_view token, std::string* nonce,
                        int* err);
// Ok if the lock is held with nonce `token`, else TokenMismatch (or IoError).
LockResult lock_check(Store& store, const std::string& lock, std::string_view token, int* err);
// Release the lock if `token` matches the held nonce.
LockResult lock_release(Store& store, const std::string& lock, std::string_view token, int* err);

}  // namespace souk::server::bzr
