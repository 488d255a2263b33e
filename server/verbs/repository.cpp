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
#include "server/bzr/pack_collection.hpp"
#include "server/bzr/revisions.hpp"

namespace souk::server {

// How far get_parent_map fleshes out the ancestry beyond the asked ids
// (uncompressed bytes); Breezy aims at ~64 KiB compressed.
constexpr size_t kParentMapExtraBytes = 192 * 1024;

// ----------------------------------------------------- Repository.* ----

void verb_repo_lock_write(Call& c) {
    RepoFound r;
    if (!c.writable() || !find_repository(c, r)) return;
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
    if (!c.writable() || !repo_dir(c, repo)) return;
    std::string marker = join(repo, "no-working-trees");
    int e = c.arg(1) == "True" ? c.store().unlink(marker) : c.store().put(marker, "", -1);
    if (e && e != ENOENT) return c.fail_errno(e, c.arg(0));
    c.ok({Value("ok")});
}

void verb_repo_is_shared(Call& c) {
    std::string repo;
    if (repo_dir(c, repo)) c.ok({Value(c.exists(join(repo, "shared-storage")) ? "yes" : "no")});
}

bool load_graph(Call& c, const std::string& repo, bzr::ParentMap& graph) {
    std::string why;
    if (int e = bzr::read_parent_map(c.store(), repo, graph, &why)) {
        if (e == ENOENT && why.empty()) return true;  // no pack-names yet: empty repository
        if (!why.empty()) c.generic("BzrCheckError", why);
        else c.fail_errno(e, c.arg(0));
        return false;
    }
    return true;
}

void verb_get_parent_map(Call& c) {
    std::string repo;
    if (!repo_dir(c, repo)) return;
    bzr::ParentMap graph;
    if (!load_graph(c, repo, graph)) return;
    std::set<std::string, std::less<>> asked;
    bool include_missing = false;
    for (size_t i = 2; i < c.args.size(); ++i) {
        if (c.args[i].bytes == "include-missing:") include_missing = true;
        else asked.insert(c.args[i].bytes);
    }
    // The body is the client's search recipe: "start keys\nexclude keys\ncount".
    // What it reaches is what the client already has (Breezy's
    // _expand_requested_revs); we don't resend those, except asked ids.
    std::set<std::string, std::less<>> seen;
    {
        std::vector<std::string_view> lines;
        size_t i = 0;
        while (i <= c.body.size() && lines.size() < 3) {
            size_t j = c.body.find('\n', i);
            if (j == std::string_view::npos) j = c.body.size();
            lines.push_back(c.body.substr(i, j - i));
            i = j + 1;
        }
        auto words = [](std::string_view s, std::set<std::string, std::less<>>& into) {
            size_t k = 0;
            while (k < s.size()) {
                size_t e = s.find(' ', k);
                if (e == std::string_view::npos) e = s.size();
                if (e > k) into.emplace(s.substr(k, e - k));
                k = e + 1;
            }
        };
        std::set<std::string, std::less<>> start, exclude;
        if (lines.size() >= 2) {
            words(lines[0], start);
            words(lines[1], exclude);
        }
        std::vector<std::string> todo(start.begin(), start.end());
        while (!todo.empty()) {
            std::string r = std::move(todo.back());
            todo.pop_back();
            if (exclude.count(r) || !seen.insert(r).second) continue;
            if (auto it = graph.find(r); it != graph.end())
                for (const auto& p : it->second) todo.push_back(p);
        }
        for (const auto& a : asked) seen.erase(a);
    }
    std::map<std::string, std::string, std::less<>> result;  // sorted lines compress well
    size_t bytes = 0;
    std::set<std::string, std::less<>> queried;
    std::vector<std::string> level(asked.begin(), asked.end());
    for (bool first = true; !level.empty(); first = false) {
        if (!first && bytes > kParentMapExtraBytes) break;
        std::vector<std::string> next;
        for (const auto& r : level) {
            if (!queried.insert(r).second) continue;
            auto it = graph.find(r);
            bool missing = it == graph.end();
            if (seen.count(r) || (missing && !include_missing)) {
                if (!missing)
                    for (const auto& p : it->second) next.push_back(p);
                continue;
            }
            std::string line = missing ? "missing:" + r : r;
            if (!missing)
                for (const auto& p : it->second) {
                    if (p == "null:") continue;
                    line += ' ';
                    line += p;
                    next.push_back(p);
                }
            bytes += line.size() + 1;
            result.emplace(missing ? "missing:" + r : r, std::move(line));
        }
        level = std::move(next);
    }
    std::string text;
    for (const auto& [key, line] : result) {
        if (!text.empty()) text += '\n';
        text += line;
    }
    c.ok_body({Value("ok")}, bz2_compress(text));
}

void verb_get_revision_graph(Call& c) {
    std::string repo;
    if (!repo_dir(c, repo)) return;
    bzr::ParentMap graph;
    if (!load_graph(c, repo, graph)) return;
    std::string revid = c.args.size() > 2 ? c.arg(1) : std::string();
    std::vector<const std::string*> keep;
    if (revid.empty()) {
        for (const auto& kv : graph) keep.push_back(&kv.first);
    } else {
        if (!graph.count(revid)) {
            // With an empty body, so old clients that always read one stay in sync.
            c.fail(proto::error_args(Err::NoSuchRevisionOld, revid));
            c.out.body_kind = Reply::Body::Bytes;
            return;
        }
        std::set<std::string_view> done;
        std::vector<std::string_view> todo{revid};
        while (!todo.empty()) {
            std::string_view r = todo.back();
            todo.pop_back();
            auto it = graph.find(r);
            if (it == graph.end() || !done.insert(r).second) continue;
            keep.push_back(&it->first);
            for (const auto& p : it->second) todo.push_back(p);
        }
    }
    std::string text;
    for (const auto* r : keep) {
        if (!text.empty()) text += '\n';
        text += *r;
        for (const auto& p : graph.find(*r)->second) {
            if (p == "null:" || !graph.count(p)) continue;  // ghosts stripped, as Breezy does
            text += ' ';
            text += p;
        }
    }
    c.ok_body({Value("ok")}, std::move(text));
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
