// Errors of the souk client API, as values
// (docs/conventions.md#errors-as-values): every public call returns a
// Result<T> (or Status = Result<void>) holding either the value or a
// client::Error with a kind a program can switch on, a message a person can
// read, the client path involved and the server's raw error args. Nothing in
// libsouk throws, except std::bad_alloc and whatever a caller's callback
// throws.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "protocol/value.hpp"

namespace souk::client {

enum class ErrorKind : uint8_t {
    // Failures the server reported (a protocol failure reply, docs/protocol/errors.md).
    NoSuchFile,         // ('NoSuchFile', path)
    FileExists,         // ('FileExists', path)
    DirectoryNotEmpty,  // ('DirectoryNotEmpty', path)
    PermissionDenied,   // ('PermissionDenied', path[, extra])
    ReadError,          // ('ReadError', path): e.g. get of a directory
    ShortReadv,         // ('ShortReadvError', path, offset, length, actual), or a short readv body
    ReadOnly,           // ('ReadOnlyError',): a write on a read-only server
    UnknownMethod,      // ('UnknownMethod', verb): the server lacks the verb
    LockContention,     // ('LockContention',)
    Other,              // any other failure reply (('error', ...) and the rest)
    // Failures found on this side.
    InvalidArgument,    // bad URL, path, range or option; nothing was sent
    Protocol,           // the server's bytes did not parse, or an unexpected reply
    Connection,         // cannot connect, or the connection broke mid-request
    Timeout,            // no progress within Options::timeout
    Cancelled,          // a caller's callback asked to stop
};

// Stable CamelCase name of a kind ("NoSuchFile"), for logs and --json.
std::string_view kind_name(ErrorKind kind);

struct Error {
    ErrorKind kind = ErrorKind::Other;
    std::string message;   // complete human-readable text, e.g. "no such file: /x"
    std::string path;      // the client-side path the request named ("" if none)
    proto::Args args;      // the server's failure args; empty for local errors

    // True when the server sent this failure (the connection is still fine).
    bool remote() const { return !args.empty(); }
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}       // NOLINT: implicit by design
    Result(Error error) : v_(std::move(error)) {}   // NOLINT
    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &std::get<0>(v_); }
    const T* operator->() const { return &std::get<0>(v_); }
    T& operator*() & { return std::get<0>(v_); }
    const T& operator*() const& { return std::get<0>(v_); }
    const Error& error() const { return std::get<1>(v_); }
    Error&& take_error() && { return std::get<1>(std::move(v_)); }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : e_(std::move(error)) {}   // NOLINT: implicit by design
    bool ok() const { return !e_.has_value(); }
    explicit operator bool() const { return ok(); }
    const Error& error() const { return *e_; }
    Error&& take_error() && { return std::move(*e_); }

private:
    std::optional<Error> e_;
};

using Status = Result<void>;

// Build a local error (no server args).
Error make_error(ErrorKind kind, std::string message, std::string path = {});

// Turn a server failure reply into an Error. `verb` is the wire verb and
// `path` the client path the request named (shown instead of any server
// path, which may reveal the server's layout, docs/protocol/errors.md).
Error error_from_reply(std::string_view verb, std::string_view path, const proto::Args& args);

}  // namespace souk::client
