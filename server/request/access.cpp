#include "server/request/access.hpp"

#include <errno.h>

#include "protocol/errors.hpp"
#include "server/store/paths.hpp"

namespace souk::server {
namespace {

// A store in which nothing exists: what an unexported path is served by.
class AbsentStore final : public Store {
public:
    int open_read(const std::string&, OpenFile&) override { return ENOENT; }
    ssize_t pread(OpenFile&, char*, size_t, uint64_t) override { return -EBADF; }
    int stat(const std::string&, FileInfo&) override { return ENOENT; }
    int begin_upload(const std::string&, const WriteSpec&, std::unique_ptr<Upload>&) override { return ENOENT; }
    int mkdir(const std::string&, int) override { return ENOENT; }
    int rmdir(const std::string&) override { return ENOENT; }
    int unlink(const std::string&) override { return ENOENT; }
    int rename(const std::string&, const std::string&) override { return ENOENT; }
    int list_dir(const std::string&, std::vector<std::string>&) override { return ENOENT; }
    int list_files_recursive(const std::string&, std::vector<std::string>&) override { return ENOENT; }
};

AbsentStore g_absent;  // stateless: one for every context

}  // namespace

bool exported(const ServerContext& ctx, std::string_view path) { return exported(ctx, ctx.rules()->access, path); }

bool exported(const ServerContext& ctx, const AccessRules& rules, std::string_view path) {
    if (rules.export_all) return true;
    std::string dir;
    for (size_t at = 0;;) {  // bounded: one pass per component of `path`
        FileInfo fi;
        if (ctx.store->stat(join(dir, kExportMarker), fi) == 0) return true;
        if (at >= path.size()) return false;
        size_t slash = path.find('/', at);
        if (slash == std::string_view::npos) slash = path.size();
        dir.assign(path.substr(0, slash));
        at = slash + 1;
    }
}

void make_unexported_view(ServerContext& ctx) {
    auto view = std::make_shared<ServerContext>(ctx);
    view->store = &g_absent;
    view->unexported.reset();
    ctx.unexported = std::move(view);
}

bool anonymous_writes_allowed(const AccessRules& rules, std::string_view carrier) {
    return rules.allow_anonymous_writes || carrier == "tcp" || carrier == "inet";
}

const ServerContext& select_root(const ServerContext& server, std::string_view path) {
    if (server.roots.empty()) return server;
    for (const auto& r : server.roots)  // bounded: the roots, longest mount first
        if (covers(r.mount, path)) return r;
    return *server.nowhere;
}

const ServerContext& select_root(const ServerContext& server, const proto::VerbInfo& verb,
                                 std::span<const proto::Value> args, std::string_view base) {
    if (server.roots.empty()) return server;
    const proto::PathArgs pa = proto::path_args(verb.id);
    const size_t at = 1 + pa.first;
    // The namespace is the root at "/"'s, where '~' expands (the shortest
    // mount comes last).
    const ServerContext& fallback = server.roots.back();
    if (pa.count == 0 || at >= args.size() || !args[at].is_bytes()) return fallback;
    const PathContext ns{fallback.mount.empty() ? std::string_view(fallback.root_realpath) : std::string_view(), base,
                         {}};
    thread_local std::string rel;  // reused: no allocation per request
    if (resolve_path_into(args[at].bytes, pa.vfs, ns, rel)) return fallback;
    return select_root(server, rel);
}

ServerContext connection_context(const ServerContext& shared, std::vector<std::unique_ptr<Store>>& owned) {
    ServerContext out = shared;
    auto own = [&owned](ServerContext& c) {
        if (!c.store) return;
        if (std::unique_ptr<Store> s = c.store->for_connection()) {
            c.store = s.get();
            owned.push_back(std::move(s));
        }
    };
    own(out);
    for (auto& r : out.roots) own(r);  // bounded: the roots
    return out;
}

std::shared_ptr<const ServerContext> make_nowhere(const Params& params) {
    auto c = std::make_shared<ServerContext>();
    c->params = params;
    c->store = &g_absent;
    c->configured.allow_writes = true;
    c->configured.access.allow_anonymous_writes = true;
    return c;
}

AccessCheck check_access(const ServerContext& ctx, const proto::VerbInfo& verb, std::span<const proto::Value> args,
                         std::string_view base, std::string_view user, std::string_view carrier) {
    AccessCheck out;
    const std::shared_ptr<const RootRules> rules = ctx.rules();  // one snapshot for the whole decision
    const AccessRules& access = rules->access;
    const bool anonymous_ok = anonymous_writes_allowed(access, carrier);
    const bool write = verb.mutating;
    if (write && !rules->allow_writes) {
        out.verdict = AccessCheck::Verdict::Refuse;
        out.why = "writes are not allowed (--allow-writes)";
        out.error = proto::error_args(proto::Err::ReadOnlyError);
        return out;
    }
    // Nothing to look at: no rule can refuse this request.
    if (access.export_all && (!write || (!access.restricts_writes() && (anonymous_ok || !user.empty()))))
        return out;
    const proto::PathArgs pa = proto::path_args(verb.id);
    if (write && pa.count == 0 && user.empty() && !anonymous_ok) {
        out.verdict = AccessCheck::Verdict::Refuse;
        out.why = write_refusal(access, user, "", anonymous_ok);
        out.error = proto::error_args(proto::Err::PermissionDenied, "/", out.why);
        return out;
    }
    const PathContext pc{ctx.root_realpath, base, ctx.mount};
    std::string rel;
    for (size_t i = 0; i < pa.count; ++i) {  // bounded: at most two paths
        const size_t at = 1 + pa.first + i;
        if (at >= args.size() || !args[at].is_bytes()) break;  // dispatch refuses the arguments
        if (resolve_path_into(args[at].bytes, pa.vfs, pc, rel)) continue;  // the verb refuses the path
        if (!exported(ctx, access, rel)) {
            out.verdict = AccessCheck::Verdict::Hide;
            out.why = "not exported (export-all is off and no " + std::string(kExportMarker) +
                      " at or above it)";
            out.path = rel;
            out.decided = true;
            return out;
        }
        if (!write) continue;
        if (std::string why = write_refusal(access, user, rel, anonymous_ok); !why.empty()) {
            out.verdict = AccessCheck::Verdict::Refuse;
            out.why = std::move(why);
            out.path = rel;
            out.decided = true;
            out.error = proto::error_args(proto::Err::PermissionDenied, args[at].bytes, out.why);
            return out;
        }
    }
    return out;
}

}  // namespace souk::server
