#include "client/error.hpp"

namespace souk::client {
namespace {

// Text of one arg for a message: bytes as-is (control characters made
// visible so a hostile server cannot drive the user's terminal), ints in
// decimal, lists in Python form.
std::string arg_text(const proto::Value& v) {
    if (v.is_int()) return std::to_string(v.integer);
    if (!v.is_bytes()) return proto::to_display(v);
    std::string out;
    out.reserve(v.bytes.size());
    for (unsigned char c : v.bytes) {
        if (c < 0x20 || c == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string arg_at(const proto::Args& args, size_t i) { return i < args.size() ? arg_text(args[i]) : std::string(); }

// "a: b: c" of args[from..].
std::string join_from(const proto::Args& args, size_t from) {
    std::string out;
    for (size_t i = from; i < args.size(); ++i) {
        std::string t = arg_text(args[i]);
        if (t.empty()) continue;
        if (!out.empty()) out += ": ";
        out += t;
    }
    return out;
}

}  // namespace

std::string_view kind_name(ErrorKind kind) {
    switch (kind) {
    case ErrorKind::NoSuchFile: return "NoSuchFile";
    case ErrorKind::FileExists: return "FileExists";
    case ErrorKind::DirectoryNotEmpty: return "DirectoryNotEmpty";
    case ErrorKind::PermissionDenied: return "PermissionDenied";
    case ErrorKind::ReadError: return "ReadError";
    case ErrorKind::ShortReadv: return "ShortReadv";
    case ErrorKind::ReadOnly: return "ReadOnly";
    case ErrorKind::UnknownMethod: return "UnknownMethod";
    case ErrorKind::LockContention: return "LockContention";
    case ErrorKind::Other: return "Other";
    case ErrorKind::InvalidArgument: return "InvalidArgument";
    case ErrorKind::Protocol: return "Protocol";
    case ErrorKind::Connection: return "Connection";
    case ErrorKind::Timeout: return "Timeout";
    case ErrorKind::Cancelled: return "Cancelled";
    }
    return "Other";
}

Error make_error(ErrorKind kind, std::string message, std::string path) {
    Error e;
    e.kind = kind;
    e.message = std::move(message);
    e.path = std::move(path);
    return e;
}

Error error_from_reply(std::string_view verb, std::string_view path, const proto::Args& args) {
    Error e;
    e.path = std::string(path);
    e.args = args;
    if (e.args.empty()) e.args.emplace_back("error");  // keep remote() true
    const std::string name = args.empty() || !args[0].is_bytes() ? std::string() : args[0].bytes;
    const std::string p(path);
    auto with_path = [&](ErrorKind k, std::string what) {
        e.kind = k;
        e.message = p.empty() ? std::move(what) : what + ": " + p;
    };
    if (name == "NoSuchFile") {
        with_path(ErrorKind::NoSuchFile, "no such file");
    } else if (name == "FileExists") {
        with_path(ErrorKind::FileExists, "file exists");
    } else if (name == "DirectoryNotEmpty") {
        with_path(ErrorKind::DirectoryNotEmpty, "directory not empty");
    } else if (name == "PermissionDenied") {
        with_path(ErrorKind::PermissionDenied, "permission denied");
        std::string extra = arg_at(args, 2);
        if (!extra.empty()) e.message += " (" + extra + ")";
    } else if (name == "ReadError") {
        with_path(ErrorKind::ReadError, "cannot read (is it a directory?)");
        std::string extra = arg_at(args, 2);
        if (!extra.empty()) e.message += " (" + extra + ")";
    } else if (name == "ShortReadvError") {
        with_path(ErrorKind::ShortReadv, "range past end of file");
        if (args.size() >= 5)
            e.message += " (wanted " + arg_at(args, 3) + " bytes at offset " + arg_at(args, 2) + ", got " +
                         arg_at(args, 4) + ")";
    } else if (name == "ReadOnlyError") {
        e.kind = ErrorKind::ReadOnly;
        e.message = "server is read-only (start it with --allow-writes)";
    } else if (name == "UnknownMethod") {
        e.kind = ErrorKind::UnknownMethod;
        e.message = "server does not support the '" + (args.size() > 1 ? arg_at(args, 1) : std::string(verb)) + "' verb";
    } else if (name == "LockContention") {
        with_path(ErrorKind::LockContention, "lock contention");
    } else if (name == "error") {
        e.kind = ErrorKind::Other;
        std::string detail = join_from(args, 1);
        e.message = "server error" + (detail.empty() ? std::string() : ": " + detail);
    } else {
        e.kind = ErrorKind::Other;
        std::string detail = join_from(args, 1);
        e.message = "server error " + (name.empty() ? std::string("(unnamed)") : arg_text(args[0])) +
                    (detail.empty() ? std::string() : ": " + detail);
    }
    return e;
}

}  // namespace souk::client
