// LockDir locks (docs/formats/lockdir.md): a directory renamed into place,
// with the holder's nonce in held/info.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "server/store/store.hpp"

namespace souk::server::bzr {

// 20 random [a-z0-9], starting with a letter so YAML reads a string.
std::string random_token();

enum class LockResult { Ok, Contended, TokenMismatch, IoError };
// Take the lock at `lock` (e.g. "b/.bzr/branch/lock"), or re-confirm it
// when `token` names the held lock. On Ok, *nonce is the held lock's nonce.
LockResult lock_acquire(Store& store, const std::string& lock, std::string_view token, std::string* nonce,
                        int* err);
// Ok if the lock is held with nonce `token`, else TokenMismatch (or IoError).
LockResult lock_check(Store& store, const std::string& lock, std::string_view token, int* err);
// Release the lock if `token` matches the held nonce.
LockResult lock_release(Store& store, const std::string& lock, std::string_view token, int* err);

}  // namespace souk::server::bzr
