// The one error type of the Bazaar format library (docs/formats/README.md):
// what went wrong, the errno behind it when there is one, and a message for
// logs. Verb adapters map it to a wire error; the library never does.
#pragma once

#include <cstdint>
#include <string>

#include "protocol/result.hpp"
#include "server/base/work_budget.hpp"

namespace souk::server::bzr {

enum class Errc : uint8_t {
    Io,              // the Store failed (sys_errno says how)
    NotFound,        // a file or key the caller named is not there
    Corrupt,         // the bytes on disk are not what the format says
    LimitExceeded,   // a named bound (size, count, depth, work budget) was hit
    Unsupported,     // a format or feature souk does not implement
    NoSuchRevision,  // a revision the request needs is absent (or a ghost)
    LockContended,   // a LockDir is held by someone else
    TokenMismatch,   // a lock token does not match the held lock
};

struct Error {
    Errc code = Errc::Io;
    int sys_errno = 0;   // for Errc::Io (and NotFound from the filesystem)
    std::string detail;  // human-readable, never a server path
};

inline Error io_error(int e, std::string detail) { return Error{Errc::Io, e, std::move(detail)}; }
inline Error corrupt(std::string detail) { return Error{Errc::Corrupt, 0, std::move(detail)}; }
inline Error limit_exceeded(std::string detail) { return Error{Errc::LimitExceeded, 0, std::move(detail)}; }

// A value or a bzr::Error. Result<void> is spelled Status.
template <typename T>
using Result = BasicResult<T, Error>;
struct Ok {};
using Status = BasicResult<Ok, Error>;

// Charge `bytes` just inflated to the request's work budget
// (server/base/work_budget.hpp); LimitExceeded once it is spent.
inline Status charge_inflated(uint64_t bytes) {
    uint64_t max = 0;
    if (server::charge_inflated(bytes, max)) return Ok{};
    return limit_exceeded("the request inflated more than its work budget of " + std::to_string(max) +
                          " bytes (--request-inflate-budget)");
}

}  // namespace souk::server::bzr
