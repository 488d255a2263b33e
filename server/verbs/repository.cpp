// The Repository verbs (docs/protocol/repository.md): graph, stats, locks.
#include "server/verbs/call.hpp"

#include <errno.h>
#include <sys/stat.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <set>

#include "protocol/errors.hpp"
#include "server/base/compress.hpp"
#include "server/bzr/graph.hpp"
#include "server/bzr/pack_collection.hpp"
#include "server/bzr/revisions.hpp"

namespace souk::server {

// ----------------------------------------------------- Repository.* ----

void verb_repo_lock_write(Call& c) {
    RepoFound r;
    if (!find_repository(c, r)) return;
    c.ok({Value("ok"), Value("")});
}

void verb_repo_unlock(Call& c) {
    RepoFound r;
    if (find_repository(c, r)) c.ok({Value("ok")});
}

// The repository directory of the bzrdir named by arg 0, which must hold
// one itself (the client sends the repository's own bzrdir path).
bool repo_dir(Call& c, std::string& repo) {
    std::string d;
    if (!c.bzrdir(d)) return false;
    repo = join(d, ".bzr/repository");
    if (!c.exists(join(repo, "format"))) {
        c.fail(proto::error_args(Err::NoRepository));
        return false;
    }
    return true;
}

void verb_repo_lock_status(Call& c) {
    std::string repo;
    if (repo_dir(c, repo)) c.ok({Value(c.exists(join(repo, "lock/held")) ? "yes" : "no")});
}

void verb_make_working_trees(Call& c) {
    std::string repo;
    if (repo_dir(c, repo)) c.ok({Value(c.exists(join(repo, "no-working-trees")) ? "no" : "yes")});
}

void verb_set_make_working_trees(Call& c) {
    std::string repo;
    if (!repo_dir(c, repo)) return;
    std::string marker = join(repo, "no-working-trees");
    int e = c.arg(1) == "True" ? c.store().unlink(marker) : c.store().put(marker, "", -1);
    if (e && e != ENOENT) return c.fail_errno(e, c.arg(0));
    c.ok({Value("ok")});
}

void verb_repo_is_shared(Call& c) {
    std::string repo;
    if (repo_dir(c, repo)) c.ok({Value(c.exists(join(repo, "shared-storage")) ? "yes" : "no")});
}

// The repository's packs, or false after replying with the error: a
// missing pack-names is an empty repository; other failures to read it are
// the path's errno; anything about the content is a BzrCheckError.
bool load_graph(Call& c, const std::string& repo, bzr::PackCollection& packs) {
    auto pc = bzr::PackCollection::open(c.store(), repo);
    if (pc) {
        packs = std::move(pc).value();
        return true;
    }
    const bzr::Error& e = pc.err();
    if (e.code == bzr::Errc::NotFound) return true;  // no pack-names yet: empty repository
    if (e.code == bzr::Errc::Io) c.fail_errno(e.sys_errno ? e.sys_errno : EIO, c.arg(0));
    else c.generic("BzrCheckError", e.detail);
    return false;
}

// A failure while walking the indices: they are corrupt or unreadable.
void graph_error(Call& c, const bzr::Error& e) { c.generic("BzrCheckError", e.detail); }

void verb_get_parent_map(Call& c) {
    std::string repo;
    if (!repo_dir(c, repo)) return;
    bzr::PackCollection packs;
    if (!load_graph(c, repo, packs)) return;
    std::vector<std::string> asked;
    bool include_missing = false;
    for (size_t i = 2; i < c.args.size(); ++i) {
        if (c.args[i].bytes == "include-missing:") include_missing = true;
        else asked.emplace_back(c.args[i].bytes);
    }
    auto text = bzr::parent_map_text(packs, asked, include_missing, c.body);
    if (!text) return graph_error(c, text.err());
    c.ok_body({Value("ok")}, bz2_compress(*text));
}

void verb_get_revision_graph(Call& c) {
    std::string repo;
    if (!repo_dir(c, repo)) return;
    bzr::PackCollection packs;
    if (!load_graph(c, repo, packs)) return;
    std::string revid = c.args.size() > 2 ? c.arg(1) : std::string();
    auto text = bzr::revision_graph_text(packs, revid);
    if (!text && text.err().code == bzr::Errc::NoSuchRevision) {
        // With an empty body, so old clients that always read one stay in sync.
        c.fail(proto::error_args(Err::NoSuchRevisionOld, revid));
        c.out.body_kind = Reply::Body::Bytes;
        return;
    }
    if (!text) return graph_error(c, text.err());
    c.ok_body({Value("ok")}, std::move(*text));
}

void verb_gather_stats(Call& c) {
    std::string repo;
    if (!repo_dir(c, repo)) return;
    std::string revid = c.args.size() > 2 ? c.arg(1) : std::string();
    bool committers = c.args.size() > 3 && c.arg(2) == "yes";
    std::string body, why;
    int e = bzr::gather_stats(c.store(), repo, revid, committers, body, &why);
    if (e == bzr::kNoSuchRevision) return c.fail(proto::error_args(Err::NoSuchRevisionOld, revid));
    if (e && !why.empty()) return c.generic("BzrCheckError", why);
    if (e) return c.fail_errno(e, c.arg(0));
    c.ok_body({Value("ok")}, std::move(body));
}

}  // namespace souk::server
