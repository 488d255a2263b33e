#include "protocol/errors.hpp"

#include <errno.h>

namespace souk::proto {

const ErrorInfo* find_error(std::string_view name) {
    for (const auto& e : kErrors)
        if (e.name == name) return &e;
    return nullptr;
}

Err err_for_errno(int e, bool reading) {
    switch (e) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG: return Err::NoSuchFile;
    case EEXIST: return Err::FileExists;
    case ENOTEMPTY: return Err::DirectoryNotEmpty;
    case EACCES:
    case EPERM:
    case ELOOP:  // a symbolic link: never followed
    case EXDEV: return Err::PermissionDenied;
    case EROFS: return Err::ReadOnlyError;
    case EISDIR:
    case EINVAL: return reading ? Err::ReadError : Err::Generic;
    default: return Err::Generic;
    }
}

Args error_args(Err e) { return {Value(error_info(e).name)}; }
Args error_args(Err e, std::string a) { return {Value(error_info(e).name), Value(std::move(a))}; }
Args error_args(Err e, std::string a, std::string b) {
    return {Value(error_info(e).name), Value(std::move(a)), Value(std::move(b))};
}

Args protocol_error_args(std::string_view detail) {
    std::string msg = "Generic bzr smart protocol error: ";
    msg += detail;
    return {Value("error"), Value(std::move(msg))};
}

Args v12_unknown_verb_args(std::string_view verb) {
    std::string msg = "Generic bzr smart protocol error: bad request '";
    msg += verb;
    msg += '\'';
    return {Value("error"), Value(std::move(msg))};
}

}  // namespace souk::proto
