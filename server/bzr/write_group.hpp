// A write group of a 2a repository (docs/formats/packs.md#write-groups):
// the new pack written into .bzr/repository/upload/ as records arrive, its
// five B+Tree indices, the checks Breezy runs before committing (missing
// parent inventories -> missing-basis; inventories, CHK pages and texts the
// new revisions need), and publication: indices into indices/, the pack
// renamed into packs/, pack-names rewritten under the repository LockDir.
//
// RAII: a group that is neither committed nor suspended removes its
// upload/ file when destroyed. Nothing a reader looks at changes before
// pack-names is replaced (one atomic rename), so a process killed at any
// point leaves the repository as it was; what it leaves in upload/ (or,
// killed mid-publication, unlisted in packs/ and indices/) is removed by a
// later write group once it is older than a bound.
//
// Autopack (Breezy's rule: at most the sum of the digits of the revision
// count packs) combines packs by copying their container records whole
// and rebuilding the indices with the new offsets.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/bzr/chk.hpp"
#include "server/bzr/error.hpp"
#include "server/bzr/groupcompress.hpp"
#include "server/bzr/md5.hpp"
#include "server/bzr/pack_collection.hpp"
#include "server/store/store.hpp"

namespace souk::server::bzr {

struct WriteGroupLimits {
    uint64_t max_pack_bytes = 64ull << 30;  // bytes of one new pack
    size_t max_keys = 4'000'000;            // index entries of one write group (held in memory until commit)
    double lock_wait = 15;                  // seconds to wait for the repository LockDir around pack-names
    double stale_upload = 3600;             // upload/ leftovers, unlisted pack files older than this (seconds) are removed
    chk::Limits chk;
    gc::Limits gc;
};

// Where a record of a stream goes: the index it is listed in.
// (Same order as IndexKind.)
using Substream = IndexKind;

// One index entry of the group. Keys and references are joined ('\0'
// between elements).
struct GroupEntry {
    std::vector<std::string> parents;  // the one reference list (revisions, inventories, texts)
    uint32_t slot = 0;                 // 0: the new pack; i > 0: resumed pack i - 1
    uint64_t offset = 0, length = 0;   // the container record in its pack
    uint64_t start = 0, end = 0;       // the entry within the block's content
};

// Missing keys (kind, key) of a suspended write group, sorted.
using MissingKeys = std::vector<std::pair<std::string, std::string>>;

// Where a failure of a write group comes from (verb adapters pick the
// error Breezy sends by it).
enum class GroupPhase : uint8_t {
    Resume,   // a resume token is malformed or names no suspended pack
    Data,     // writing or indexing the data
    Check,    // the commit checks failed (Breezy's BzrCheckError)
    Publish,  // renames, indices, pack-names, the repository lock
};

class WriteGroup {
public:
    // Start a write group in `repo` (the root-relative .bzr/repository
    // directory), resuming the suspended packs named by `resume_tokens`
    // (32 lower-case hex digits each, with their pack and five indices in
    // upload/). Removes upload/ leftovers older than limits.stale_upload.
    static Result<std::unique_ptr<WriteGroup>> start(Store& store, std::string repo,
                                                     std::span<const std::string> resume_tokens,
                                                     const WriteGroupLimits& limits);
    ~WriteGroup();
    WriteGroup(const WriteGroup&) = delete;
    WriteGroup& operator=(const WriteGroup&) = delete;

    // One container record of the new pack (no names), of `length` data
    // bytes given in pieces to record_data. `offset`/`size` are what the
    // index stores for it (Breezy's memo: the "B" and the whole record).
    Status begin_record(uint64_t length, uint64_t& offset, uint64_t& size);
    Status record_data(std::string_view data);
    Status end_record();
    // A whole container record (header and data) copied from another pack,
    // `size` bytes given to record_data (autopack).
    Status begin_raw_record(uint64_t size, uint64_t& offset);

    // Index `key` (joined) in `kind`. A key the group has already is left
    // as it was (the first wins, as Breezy's index does).
    Status add_entry(Substream kind, std::string key, GroupEntry entry);

    // Whether the group holds any data (new or resumed).
    bool has_data() const;
    size_t keys(Substream kind) const { return entries_[static_cast<size_t>(kind)].size(); }

    // Finish the new pack's content (the "E"); call once, after the last
    // record and before missing_basis / suspend / commit.
    Status finish_data();

    // Breezy's get_missing_parent_inventories: the parents of the group's
    // revisions that are neither revisions of the repository nor have an
    // inventory in it. With check_texts (a resumed insert) they count only
    // if a text that a revision referring to them introduces is missing.
    Result<MissingKeys> missing_basis(bool check_texts);

    // Keep the group for a later insert: the new pack and its indices go to
    // upload/<md5>.*; returns every token (resumed ones first).
    Result<std::vector<std::string>> suspend();

    // The commit checks, then publish. `lock_token`: a repository lock the
    // client holds (used as is when it matches the held LockDir).
    Status commit(std::string_view lock_token);

    GroupPhase failed_phase() const { return phase_; }
    // The pack name the commit published ("" when it added none).
    const std::string& published() const { return published_; }

    struct Impl;

private:
    WriteGroup(Store& store, std::string repo, const WriteGroupLimits& limits);
    Status flush();
    Status write_indices(const std::string& dir, const std::string& name, std::array<uint64_t, 5>& sizes);
    Status check_commit();
    Status publish(std::string_view lock_token, const std::vector<std::string>& removed);
    Status prune_existing();
    Result<std::string> text(Substream kind, const std::string& key);
    friend Result<bool> autopack(Store& store, const std::string& repo, const WriteGroupLimits& limits);

    Store& store_;
    std::string repo_;
    WriteGroupLimits limits_;
    std::vector<std::string> resumed_;  // tokens
    std::array<std::map<std::string, GroupEntry, std::less<>>, 5> entries_;
    size_t total_keys_ = 0;
    // the new pack
    std::string upload_name_;  // upload/<random>.pack, "" until the first record
    std::string buffer_;       // bytes not yet appended to the upload file
    uint64_t written_ = 0;     // bytes of the pack so far (buffered included)
    uint64_t record_left_ = 0;
    bool in_record_ = false;
    bool finished_ = false;
    bool done_ = false;  // committed or suspended: the destructor leaves the files
    Md5 md5_;
    std::string md5_hex_;
    std::string published_;
    GroupPhase phase_ = GroupPhase::Data;
    std::unique_ptr<Impl> impl_;  // the repository's packs and read caches, opened on first use
};

// Breezy's autopack rule (RepositoryPackCollection._max_pack_count,
// pack_distribution, plan_autopack_combinations).
size_t max_pack_count(uint64_t total_revisions);
std::vector<uint64_t> pack_distribution(uint64_t total_revisions);
// Which packs to combine into one, given (revision count, pack) pairs:
// the packs' indices into `packs` (empty: nothing to do).
std::vector<size_t> plan_autopack(const std::vector<uint64_t>& revision_counts, std::vector<uint64_t> distribution);

// Autopack `repo` if it has more packs than the rule allows: combine the
// planned packs into one (records copied whole, indices rebuilt), publish
// it under the repository LockDir and move the old packs to
// obsolete_packs/. Returns whether it packed.
Result<bool> autopack(Store& store, const std::string& repo, const WriteGroupLimits& limits);

// Rewrite pack-names under the repository LockDir: add `added` (name ->
// the five index sizes), drop `removed`. Fails (nothing written) when a
// name of `removed` is no longer listed. `lock_token`: a lock the caller
// holds already. Waits for the lock at most limits.lock_wait seconds
// (LockContended after).
Status update_pack_names(Store& store, const std::string& repo,
                         const std::vector<std::pair<std::string, std::array<uint64_t, 5>>>& added,
                         const std::vector<std::string>& removed, std::string_view lock_token,
                         const WriteGroupLimits& limits);

}  // namespace souk::server::bzr
