#include "server/verbs/call.hpp"

namespace souk::server {

bool find_repository(Call& c, RepoFound& found) {
    std::string d;
    if (!c.bzrdir(d)) return false;
    std::string cur = d;
    for (int ups = 0;; ++ups) {
        std::string fmt;
        if (bzr::read_file(c.store(), join(cur, ".bzr/repository/format"), fmt, 4096) == 0) {
            if (ups && !c.exists(join(cur, ".bzr/repository/shared-storage"))) break;
            for (int i = 0; i < ups; ++i) found.relpath += i ? "/.." : "..";
            static const struct {
                std::string_view format;
                const char *rich, *tree, *ext;
            } kCaps[] = {
                {"Bazaar repository format 2a (needs bzr 1.16 or later)\n", "yes", "yes", "yes"},
                {"Bazaar pack repository format 1 (needs bzr 0.92)\n", "no", "no", "no"},
                {"Bazaar RepositoryFormatKnitPack5 (bzr 1.6)\n", "no", "no", "yes"},
                {"Bazaar RepositoryFormatKnitPack6 (bzr 1.9)\n", "no", "no", "yes"},
                {"Bazaar RepositoryFormatKnitPack6RichRoot (bzr 1.9)\n", "yes", "no", "yes"},
            };
            for (const auto& cap : kCaps)
                if (cap.format == fmt) {
                    found.rich_root = cap.rich;
                    found.tree_ref = cap.tree;
                    found.external = cap.ext;
                }
            found.format = std::move(fmt);
            return true;
        }
        if (cur.empty()) break;
        size_t slash = cur.rfind('/');
        cur = slash == std::string::npos ? std::string() : cur.substr(0, slash);
        if (!c.is_bzrdir(cur)) break;
    }
    c.fail(proto::error_args(Err::NoRepository));
    return false;
}

void lock_failure(Call& c, bzr::LockResult r, int err) {
    switch (r) {
    case bzr::LockResult::Contended: return c.fail(proto::error_args(Err::LockContention));
    case bzr::LockResult::TokenMismatch: return c.fail(proto::error_args(Err::TokenMismatch));
    default: return c.fail_errno(err, c.arg(0));
    }
}

}  // namespace souk::server
