// The verb table (STYLE.md 1): declared once, shared by every carrier, the
// server's dispatcher and the client. A carrier never knows a verb.
#pragma once

#include <cstdint>
#include <string_view>

namespace souk::proto {

// X(id, wire name, request body, response body, mutating, safe to retry,
//   introduced in, min args, max args)       (args exclude the verb itself)
// "response body" matters only to v1/v2, where bodies are implicit
// (spec 4.2); "safe to retry" is the client's rule after a connection reset
// (spec 3.4). max args 255 = unbounded.
#define SOUK_VERBS(X)                                                                   \
    X(hello, "hello", false, false, false, true, "", 0, 0)                              \
    X(is_readonly, "Transport.is_readonly", false, false, false, true, "", 0, 0)       \
    X(has, "has", false, false, false, true, "", 1, 1)                                  \
    X(get, "get", false, true, false, true, "", 1, 1)                                   \
    X(readv, "readv", true, true, false, true, "", 1, 1)                                \
    X(append, "append", true, false, true, false, "", 2, 2)                             \
    X(put, "put", true, false, true, true, "", 2, 2)                                    \
    X(put_non_atomic, "put_non_atomic", true, false, true, true, "", 4, 4)              \
    X(mkdir, "mkdir", false, false, true, false, "", 2, 2)                              \
    X(rmdir, "rmdir", false, false, true, false, "", 1, 1)                              \
    X(del, "delete", false, false, true, false, "", 1, 1)                               \
    X(rename, "rename", false, false, true, false, "", 2, 2)                            \
    X(move, "move", false, false, true, false, "", 2, 2)                                \
    X(stat, "stat", false, false, false, true, "", 1, 1)                                \
    X(list_dir, "list_dir", false, false, false, true, "", 1, 1)                        \
    X(iter_files_recursive, "iter_files_recursive", false, false, false, true, "", 1, 1) \
    X(bzrdir_open, "BzrDir.open", false, false, false, true, "", 1, 1)                  \
    X(bzrdir_open_2_1, "BzrDir.open_2.1", false, false, false, true, "2.1", 1, 1)       \
    X(open_branch, "BzrDir.open_branch", false, false, false, true, "", 1, 1)           \
    X(open_branch_v2, "BzrDir.open_branchV2", false, false, false, true, "1.13", 1, 1)  \
    X(open_branch_v3, "BzrDir.open_branchV3", false, false, false, true, "2.1", 1, 1)   \
    X(find_repository, "BzrDir.find_repository", false, false, false, true, "", 1, 1)   \
    X(find_repository_v2, "BzrDir.find_repositoryV2", false, false, false, true, "1.13", 1, 1) \
    X(find_repository_v3, "BzrDir.find_repositoryV3", false, false, false, true, "1.13", 1, 1) \
    X(bzrdir_initialize, "BzrDirFormat.initialize", false, false, true, false, "", 1, 1) \
    X(last_revision_info, "Branch.last_revision_info", false, false, false, true, "", 1, 1) \
    X(branch_lock_write, "Branch.lock_write", false, false, true, true, "", 1, 3)      \
    X(branch_unlock, "Branch.unlock", false, false, true, true, "", 2, 3)              \
    X(repo_lock_write, "Repository.lock_write", false, false, true, true, "", 1, 2)    \
    X(repo_unlock, "Repository.unlock", false, false, true, true, "", 1, 2)            \
    X(repo_is_shared, "Repository.is_shared", false, false, false, true, "", 1, 1)     \
    X(get_parent_map, "Repository.get_parent_map", true, true, false, true, "1.2", 1, 255) \
    X(get_revision_graph, "Repository.get_revision_graph", false, true, false, true, "", 1, 2) \
    X(gather_stats, "Repository.gather_stats", false, true, false, true, "", 1, 3)                \
    X(get_stacked_on_url, "Branch.get_stacked_on_url", false, false, false, true, "1.13", 1, 1) \
    X(get_config_file, "Branch.get_config_file", false, true, false, true, "", 1, 1)            \
    X(get_tags_bytes, "Branch.get_tags_bytes", false, false, false, true, "1.13", 1, 1)         \
    X(set_last_revision_info, "Branch.set_last_revision_info", false, false, true, true, "", 5, 5) \
    X(get_parent, "Branch.get_parent", false, false, false, true, "1.13", 1, 1)                 \
    X(get_all_reference_info, "Branch.get_all_reference_info", false, true, false, true, "3.1", 1, 1) \
    X(branch_lock_status, "Branch.get_physical_lock_status", false, false, false, true, "2.5", 1, 1) \
    X(bzrdir_config_file, "BzrDir.get_config_file", false, true, false, true, "1.15", 1, 1)    \
    X(repo_lock_status, "Repository.get_physical_lock_status", false, false, false, true, "2.5", 1, 1) \
    X(make_working_trees, "Repository.make_working_trees", false, false, false, true, "2.5", 1, 1) \
    X(set_make_working_trees, "Repository.set_make_working_trees", false, false, true, true, "2.5", 2, 2)

enum class Verb : uint8_t {
#define SOUK_X(id, ...) id,
    SOUK_VERBS(SOUK_X)
#undef SOUK_X
};

struct VerbInfo {
    Verb id;
    std::string_view name;
    bool request_body;
    bool response_body;
    bool mutating;
    bool safe_retry;
    std::string_view since;
    uint8_t min_args;
    uint8_t max_args;
};

inline constexpr VerbInfo kVerbs[] = {
#define SOUK_X(id, name, rq, rs, mut, safe, since, lo, hi) {Verb::id, name, rq, rs, mut, safe, since, lo, hi},
    SOUK_VERBS(SOUK_X)
#undef SOUK_X
};
inline constexpr size_t kVerbCount = sizeof(kVerbs) / sizeof(kVerbs[0]);

// The table entry for a wire name, or nullptr for a verb souk does not know.
const VerbInfo* find_verb(std::string_view name);
inline const VerbInfo& verb_info(Verb v) { return kVerbs[static_cast<size_t>(v)]; }

}  // namespace souk::proto
