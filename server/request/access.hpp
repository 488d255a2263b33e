// Access control (docs/access-control.md): the one decision every
// request passes, on every carrier, made by the pipeline when a request's
// arguments have arrived and before any byte of its body is read.
//
//  * a write (a mutating verb) needs --allow-writes; over the web carriers
//    (HTTP, CGI, FastCGI) then a user (REMOTE_USER) unless
//    --allow-anonymous-writes, as git's http-backend asks; bzr:// and
//    --inet keep `brz serve --allow-writes`'s meaning (anyone who reaches
//    them writes); then no read-only rule over its path, then, where a
//    writers rule covers the path, a user it names;
//  * with export-all off, a path at or below no directory holding
//    .bzr/souk-export-ok is not served: the request is answered as if
//    nothing existed there (the same reply as for a missing path).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "protocol/value.hpp"
#include "protocol/verbs.hpp"
#include "server/verbs/context.hpp"

namespace souk::server {

struct AccessCheck {
    enum class Verdict : uint8_t { Allow, Refuse, Hide };
    Verdict verdict = Verdict::Allow;
    proto::Args error;  // Refuse: the reply
    std::string why;    // Refuse, Hide: for the error log
    std::string path;   // the root-relative path decided on ("" for the root)
    bool decided = false;  // `path` is set
};

// Decide one request. `args` as decoded (args[0] is the verb), `base` the
// directory relative paths start from (HTTP), `user` "" when anonymous,
// `carrier` the origin's ("tcp", "inet", "http", ...). Paths that do not
// resolve are allowed through: the verb refuses them.
AccessCheck check_access(const ServerContext& ctx, const proto::VerbInfo& verb, std::span<const proto::Value> args,
                         std::string_view base, std::string_view user, std::string_view carrier);

// Whether a write with no user may pass on `carrier` (before path rules):
// --allow-anonymous-writes, or a carrier of `brz serve`'s (bzr://, --inet).
bool anonymous_writes_allowed(const ServerContext& ctx, std::string_view carrier);

// Whether root-relative `path` is served: export-all, or a directory from
// the root down to `path` (inclusive) holds kExportMarker.
bool exported(const ServerContext& ctx, std::string_view path);

// The context an unexported path is served with: `ctx` over a store in
// which nothing exists (every call fails with ENOENT), so a verb answers
// exactly as for a missing path. Stored in ctx.unexported.
void make_unexported_view(ServerContext& ctx);

}  // namespace souk::server
