#include "server/verbs/call.hpp"

#include "server/bzr/controldir.hpp"
#include "server/bzr/format.hpp"

#include <errno.h>

namespace souk::server {

Args errno_args(int e, const std::string& client_path, bool reading) {
    Err err = proto::err_for_errno(e, reading);
    switch (err) {
    case Err::NoSuchFile:
    case Err::FileExists:
    case Err::DirectoryNotEmpty:
    case Err::ReadError: return proto::error_args(err, client_path);
    case Err::PermissionDenied:
        if (e == EACCES && in_temp_namespace(percent_decode(client_path)))
            return proto::error_args(err, client_path, "names beginning with .souk-tmp. are reserved for soukd's temporary files");
        return proto::error_args(err, client_path,
                                 e == ELOOP || e == EXDEV ? "symbolic links are not followed" : std::strerror(e));
    case Err::ReadOnlyError: return proto::error_args(err);
    default:
        return {Value("error"), Value("TransportError"),
                Value(std::string("Transport error: ") + std::strerror(e) + ": " + client_path)};
    }
}

bool find_repository(Call& c, RepoFound& found) {
    std::string d;
    if (!c.bzrdir(d)) return false;
    // Its own, or a shared one above (docs/protocol/bzrdir.md#bzrdirfind_repository-v2-v3).
    bzr::RepositoryLocation loc;
    int err = 0;
    if (!bzr::find_repository(c.store(), d, loc, &err)) {
        if (err) c.fail_errno(err, c.arg(0));
        else c.fail(proto::error_args(Err::NoRepository));
        return false;
    }
    found.relpath = loc.relpath();
    // The format table (server/bzr/format.hpp); an unknown format answers
    // "no" to every capability and its raw text as the name.
    if (const bzr::RepositoryFormat* f = loc.format) {
        found.rich_root = f->rich_root ? "yes" : "no";
        found.tree_ref = f->tree_reference ? "yes" : "no";
        found.external = f->external_lookups ? "yes" : "no";
    }
    found.format = std::move(loc.format_string);
    return true;
}

void take_body(Call& c, std::unique_ptr<BodySink> s) {
    if (c.sink) {
        *c.sink = std::move(s);
        return;
    }
    s->write(c.body);
    s->finish(c.out);
}

void lock_failure(Call& c, bzr::LockResult r, int err) {
    switch (r) {
    case bzr::LockResult::Contended: return c.fail(proto::error_args(Err::LockContention));
    case bzr::LockResult::TokenMismatch: return c.fail(proto::error_args(Err::TokenMismatch));
    default: return c.fail_errno(err, c.arg(0));
    }
}

}  // namespace souk::server
