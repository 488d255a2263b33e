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
#include <vector>

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
bool anonymous_writes_allowed(const AccessRules& rules, std::string_view carrier);

// Whether root-relative `path` is served under `rules`: export-all, or a
// directory from the root down to `path` (inclusive) holds kExportMarker.
bool exported(const ServerContext& ctx, const AccessRules& rules, std::string_view path);
// The same under the rules in force now.
bool exported(const ServerContext& ctx, std::string_view path);

// The root a request is served by (docs/configuration.md#roots). `server`
// is a carrier's context: with no `roots` it is the one root. Otherwise
// the root whose mount is the longest whole-component prefix of the
// namespace path `path` ("pub/x" is under "pub", not under "pu"), or
// server.nowhere when none is. Never nullptr.
const ServerContext& select_root(const ServerContext& server, std::string_view path);
// The root a request is served by from its arguments: its first path
// argument resolved in the namespace (relative ones from `base`); a verb
// without a path, or a path that does not resolve (the verb refuses it),
// gets the root with the shortest mount ("/" where there is one).
const ServerContext& select_root(const ServerContext& server, const proto::VerbInfo& verb,
                                 std::span<const proto::Value> args, std::string_view base);

// A connection's (or a worker's) copy of `shared`: each root's store is the
// root chain's for_connection() (its own readahead), kept alive in
// `owned`; a store without one is shared.
ServerContext connection_context(const ServerContext& shared, std::vector<std::unique_ptr<Store>>& owned);

// The context of a server of several roots that answers paths under no
// root: `params` over a store where nothing exists, writable, so that
// every verb, reading or writing, answers as for a missing path.
std::shared_ptr<const ServerContext> make_nowhere(const Params& params);

// The context an unexported path is served with: `ctx` over a store in
// which nothing exists (every call fails with ENOENT), so a verb answers
// exactly as for a missing path. Stored in ctx.unexported.
void make_unexported_view(ServerContext& ctx);

}  // namespace souk::server
