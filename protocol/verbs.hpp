// The verb table (docs/conventions.md#one-table-many-doors): declared once,
// shared by every carrier, the server's dispatcher and the client. A carrier
// never knows a verb.
#pragma once

#include <cstdint>
#include <string_view>

namespace souk::proto {

// X(id, wire name, request body, response body, mutating, safe to retry,
//   min args, max args)       (args exclude the verb itself)
// The Breezy release that introduced each verb is in docs/protocol/ (the
// client's version gates); the server needs no such column.
// "request body": None (a body sent anyway is discarded), Whole (the pipeline
// buffers it, up to --max-body, and hands it to the verb) or Streamed (the
// verb takes it chunk by chunk as it arrives, up to --max-upload, never held
// whole in memory). "mutating": refused with ReadOnlyError by the pipeline,
// before any body is read, unless writes are allowed. "response body" matters
// only to v1/v2, where bodies are implicit
// (docs/protocol/framing.md#v1-and-v2-bodies); "safe to retry" is the client's
// rule after a connection reset
// (docs/protocol/framing.md#retries-after-a-reset). max args 255 = unbounded.
#define SOUK_VERBS(X)                                                                   \
    X(hello, "hello", None, false, false, true, 0, 0)                              \
    X(is_readonly, "Transport.is_readonly", None, false, false, true, 0, 0)       \
    X(has, "has", None, false, false, true, 1, 1)                                  \
    X(get, "get", None, true, false, true, 1, 1)                                   \
    X(readv, "readv", Whole, true, false, true, 1, 1)                                \
    X(append, "append", Streamed, false, true, false, 2, 2)                             \
    X(put, "put", Streamed, false, true, true, 2, 2)                                    \
    X(put_non_atomic, "put_non_atomic", Streamed, false, true, true, 4, 4)              \
    X(mkdir, "mkdir", None, false, true, false, 2, 2)                              \
    X(rmdir, "rmdir", None, false, true, false, 1, 1)                              \
    X(del, "delete", None, false, true, false, 1, 1)                               \
    X(rename, "rename", None, false, true, false, 2, 2)                            \
    X(move, "move", None, false, true, false, 2, 2)                                \
    X(stat, "stat", None, false, false, true, 1, 1)                                \
    X(list_dir, "list_dir", None, false, false, true, 1, 1)                        \
    X(iter_files_recursive, "iter_files_recursive", None, false, false, true, 1, 1) \
    X(bzrdir_open, "BzrDir.open", None, false, false, true, 1, 1)                  \
    X(bzrdir_open_2_1, "BzrDir.open_2.1", None, false, false, true, 1, 1)       \
    X(open_branch, "BzrDir.open_branch", None, false, false, true, 1, 1)           \
    X(open_branch_v2, "BzrDir.open_branchV2", None, false, false, true, 1, 1)  \
    X(open_branch_v3, "BzrDir.open_branchV3", None, false, false, true, 1, 1)   \
    X(find_repository, "BzrDir.find_repository", None, false, false, true, 1, 1)   \
    X(find_repository_v2, "BzrDir.find_repositoryV2", None, false, false, true, 1, 1) \
    X(find_repository_v3, "BzrDir.find_repositoryV3", None, false, false, true, 1, 1) \
    X(bzrdir_initialize, "BzrDirFormat.initialize", None, false, true, false, 1, 1) \
    X(last_revision_info, "Branch.last_revision_info", None, false, false, true, 1, 1) \
    X(branch_lock_write, "Branch.lock_write", None, false, true, true, 1, 3)      \
    X(branch_unlock, "Branch.unlock", None, false, true, true, 2, 3)              \
    X(repo_lock_write, "Repository.lock_write", None, false, true, true, 1, 2)    \
    X(repo_unlock, "Repository.unlock", None, false, true, true, 1, 2)            \
    X(repo_is_shared, "Repository.is_shared", None, false, false, true, 1, 1)     \
    X(get_parent_map, "Repository.get_parent_map", Whole, true, false, true, 1, 255) \
    X(get_revision_graph, "Repository.get_revision_graph", None, true, false, true, 1, 2) \
    X(gather_stats, "Repository.gather_stats", None, true, false, true, 1, 3)                \
    X(get_stacked_on_url, "Branch.get_stacked_on_url", None, false, false, true, 1, 1) \
    X(get_config_file, "Branch.get_config_file", None, true, false, true, 1, 1)            \
    X(get_tags_bytes, "Branch.get_tags_bytes", None, false, false, true, 1, 1)         \
    X(set_last_revision_info, "Branch.set_last_revision_info", None, false, true, true, 5, 5) \
    X(get_parent, "Branch.get_parent", None, false, false, true, 1, 1)                 \
    X(get_all_reference_info, "Branch.get_all_reference_info", None, true, false, true, 1, 1) \
    X(branch_lock_status, "Branch.get_physical_lock_status", None, false, false, true, 1, 1) \
    X(bzrdir_config_file, "BzrDir.get_config_file", None, true, false, true, 1, 1)    \
    X(repo_lock_status, "Repository.get_physical_lock_status", None, false, false, true, 1, 1) \
    X(make_working_trees, "Repository.make_working_trees", None, false, false, true, 1, 1) \
    X(set_make_working_trees, "Repository.set_make_working_trees", None, false, true, true, 2, 2) \
    X(get_stream_1_19, "Repository.get_stream_1.19", Whole, true, false, true, 2, 2) \
    X(get_stream, "Repository.get_stream", Whole, true, false, true, 2, 2) \
    X(get_stream_missing, "Repository.get_stream_for_missing_keys", Whole, true, false, true, 2, 2) \
    X(iter_revisions, "Repository.iter_revisions", Whole, true, false, true, 1, 1) \
    X(get_inventories, "VersionedFileRepository.get_inventories", Whole, true, false, true, 2, 2) \
    X(iter_files_bytes, "Repository.iter_files_bytes", Whole, true, false, true, 1, 1) \
    X(annotate_file_revision, "Repository.annotate_file_revision", None, true, false, true, 3, 5) \
    X(initialize_ex, "BzrDirFormat.initialize_ex_1.16", None, false, true, false, 10, 10) \
    X(create_repository, "BzrDir.create_repository", None, false, true, false, 3, 3) \
    X(create_branch, "BzrDir.create_branch", None, false, true, false, 2, 2) \
    X(cloning_metadir, "BzrDir.cloning_metadir", None, false, false, true, 2, 2) \
    X(checkout_metadir, "BzrDir.checkout_metadir", None, false, false, true, 1, 1) \
    X(has_workingtree, "BzrDir.has_workingtree", None, false, false, true, 1, 1) \
    X(get_branches, "BzrDir.get_branches", None, true, false, true, 1, 1) \
    X(set_parent_location, "Branch.set_parent_location", None, false, true, true, 4, 4) \
    X(set_tags_bytes, "Branch.set_tags_bytes", Whole, false, true, true, 3, 3) \
    X(put_config_file, "Branch.put_config_file", Whole, false, true, true, 3, 3) \
    X(revision_id_to_revno, "Branch.revision_id_to_revno", None, false, false, true, 2, 2) \
    X(get_rev_id_for_revno, "Repository.get_rev_id_for_revno", None, false, false, true, 3, 3) \
    X(insert_stream_1_19, "Repository.insert_stream_1.19", Streamed, false, true, false, 2, 3) \
    X(insert_stream_locked, "Repository.insert_stream_locked", Streamed, false, true, false, 3, 3) \
    X(insert_stream, "Repository.insert_stream", Streamed, false, true, false, 2, 2) \
    X(start_write_group, "Repository.start_write_group", None, false, true, false, 2, 2) \
    X(commit_write_group, "Repository.commit_write_group", None, false, true, false, 3, 3) \
    X(abort_write_group, "Repository.abort_write_group", None, false, true, false, 3, 3) \
    X(check_write_group, "Repository.check_write_group", None, false, false, true, 3, 3) \
    X(autopack, "PackRepository.autopack", None, false, true, true, 1, 1)

enum class Verb : uint8_t {
#define SOUK_X(id, ...) id,
    SOUK_VERBS(SOUK_X)
#undef SOUK_X
};

enum class BodyKind : uint8_t { None, Whole, Streamed };

struct VerbInfo {
    Verb id;
    std::string_view name;
    BodyKind body;
    bool response_body;
    bool mutating;
    bool safe_retry;
    uint8_t min_args;
    uint8_t max_args;
    bool request_body() const { return body != BodyKind::None; }
};

inline constexpr VerbInfo kVerbs[] = {
#define SOUK_X(id, name, rq, rs, mut, safe, lo, hi) {Verb::id, name, BodyKind::rq, rs, mut, safe, lo, hi},
    SOUK_VERBS(SOUK_X)
#undef SOUK_X
};
inline constexpr size_t kVerbCount = sizeof(kVerbs) / sizeof(kVerbs[0]);

// The table entry for a wire name, or nullptr for a verb souk does not know.
const VerbInfo* find_verb(std::string_view name);
inline const VerbInfo& verb_info(Verb v) { return kVerbs[static_cast<size_t>(v)]; }
// Verbs whose arguments after the path may be integers or lists
// (Repository.get_rev_id_for_revno: an int and an [int, revid] pair); the
// dispatcher requires byte strings of every other verb.
constexpr bool takes_structured_args(Verb v) {
    return v == Verb::get_rev_id_for_revno || v == Verb::commit_write_group || v == Verb::abort_write_group ||
           v == Verb::check_write_group;
}

// The arguments of a verb that name paths it reads or writes (access
// control checks each, docs/access-control.md): `count` of them from
// argument `first` (0 is the one after the verb). None for hello and
// Transport.is_readonly; from and to for rename and move; the path after
// the format of BzrDirFormat.initialize_ex_1.16; else the first. `vfs`:
// the path is URL-escaped (docs/protocol/paths.md#vfs-paths-are-ascii).
struct PathArgs {
    uint8_t first = 0, count = 0;
    bool vfs = false;
};
constexpr PathArgs path_args(Verb v) {
    switch (v) {
    case Verb::hello:
    case Verb::is_readonly: return {0, 0, false};
    case Verb::rename:
    case Verb::move: return {0, 2, true};
    case Verb::has:
    case Verb::get:
    case Verb::readv:
    case Verb::append:
    case Verb::put:
    case Verb::put_non_atomic:
    case Verb::mkdir:
    case Verb::rmdir:
    case Verb::del:
    case Verb::stat:
    case Verb::list_dir:
    case Verb::iter_files_recursive: return {0, 1, true};
    case Verb::initialize_ex: return {1, 1, false};
    default: return {0, 1, false};
    }
}

}  // namespace souk::proto
