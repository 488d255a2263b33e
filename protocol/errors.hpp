// The error table (docs/conventions.md#one-table-many-doors): every failure a
// souk peer sends, its wire name, the HTTP status a web carrier uses for it,
// and whether a v1 client recognises it as a failure (v1 has no status flag,
// docs/protocol/errors.md#v1-failure-words).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/value.hpp"

namespace souk::proto {

// X(id, wire name, http status, v1 failure word)
#define SOUK_ERRORS(X)                                        \
    X(NoSuchFile, "NoSuchFile", 404, true)                    \
    X(FileExists, "FileExists", 409, true)                    \
    X(DirectoryNotEmpty, "DirectoryNotEmpty", 409, true)      \
    X(PermissionDenied, "PermissionDenied", 403, true)        \
    X(ReadError, "ReadError", 403, true)                      \
    X(ShortReadvError, "ShortReadvError", 416, true)          \
    X(ReadOnlyError, "ReadOnlyError", 403, true)              \
    X(UnknownMethod, "UnknownMethod", 501, false)             \
    X(LockContention, "LockContention", 409, true)            \
    X(TokenMismatch, "TokenMismatch", 409, true)              \
    X(LockFailed, "LockFailed", 409, true)                    \
    X(NoBranch, "nobranch", 404, true)                        \
    X(NoRepository, "norepository", 404, true)                \
    X(NoSuchRevisionOld, "nosuchrevision", 404, true)         \
    X(NoSuchRevision, "NoSuchRevision", 404, true)            \
    X(BadSearch, "BadSearch", 400, false)                     \
    X(NotStacked, "NotStacked", 404, false)                   \
    X(AlreadyControlDir, "AlreadyControlDir", 409, false)     \
    X(BranchReference, "BranchReference", 409, false)         \
    X(GhostRevisionsHaveNoRevno, "GhostRevisionsHaveNoRevno", 404, false) \
    X(RevnoOutOfBounds, "revno-outofbounds", 404, false)      \
    X(Generic, "error", 500, false)

enum class Err : uint8_t {
#define SOUK_X(id, ...) id,
    SOUK_ERRORS(SOUK_X)
#undef SOUK_X
};

struct ErrorInfo {
    Err id;
    std::string_view name;
    int http_status;
    bool v1_failure;
};

inline constexpr ErrorInfo kErrors[] = {
#define SOUK_X(id, name, http, v1) {Err::id, name, http, v1},
    SOUK_ERRORS(SOUK_X)
#undef SOUK_X
};

inline const ErrorInfo& error_info(Err e) { return kErrors[static_cast<size_t>(e)]; }
// The table entry for a wire name (the first arg of a failure), or nullptr.
const ErrorInfo* find_error(std::string_view name);

// The one errno -> error map, for every carrier and verb: the wire error a
// failed file operation gets (and through the table, its HTTP status).
// `reading`: a read of something that is not a regular file (a directory,
// a device) is ReadError. Errors with no better name are Generic.
Err err_for_errno(int e, bool reading);

// Build the failure args tuple: (name, extra...).
Args error_args(Err e);
Args error_args(Err e, std::string a);
Args error_args(Err e, std::string a, std::string b);

// ('error', 'Generic bzr smart protocol error: <detail>'), what Breezy sends
// for malformed framing (docs/protocol/framing.md#malformed-framing).
Args protocol_error_args(std::string_view detail);
// The exact v1/v2 reply to an unknown verb, which the client maps to
// UnknownSmartMethod (docs/protocol/framing.md#unknown-verbs).
Args v12_unknown_verb_args(std::string_view verb);

}  // namespace souk::proto
