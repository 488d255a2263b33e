// Revision numbers (docs/protocol/branch.md#revision-numbers): walks down
// the left-hand (mainline) ancestry over the packs' revision indices, for
// Branch.revision_id_to_revno and Repository.get_rev_id_for_revno.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "server/bzr/error.hpp"
#include "server/bzr/pack_collection.hpp"

namespace souk::server::bzr {

// Revisions one walk may step through before failing with LimitExceeded.
inline constexpr size_t kMaxMainlineSteps = 8 * 1000 * 1000;

// Repository.get_rev_id_for_revno: the revision `revno` steps below the
// known (known_revno, known_revid) pair on its left-hand history, as
// Breezy's Repository.get_rev_id_for_revno answers it.
struct RevidForRevno {
    enum Kind : uint8_t {
        Found,              // revid
        HistoryIncomplete,  // the history ran out first: revno/revid are the earliest reached
        OutOfBounds,        // revno > known_revno
        NoSuchRevision,     // known_revid is not in the repository
    } kind = Found;
    int64_t revno = 0;
    std::string revid;
};
Result<RevidForRevno> rev_id_for_revno(PackCollection& packs, int64_t revno, int64_t known_revno,
                                       std::string_view known_revid, size_t max_steps = kMaxMainlineSteps);

// Branch.revision_id_to_revno: where `revid` is on the mainline of a branch
// whose tip is (tip_revno, tip_revid).
struct MainlineRevno {
    enum Kind : uint8_t {
        Found,          // revno
        NotOnMainline,  // in the repository but not on the mainline (it has a dotted revno, or none)
        Absent,         // neither on the mainline nor in the repository
        Ghost,          // the walk met a revision absent from the repository: ghost names it
    } kind = Found;
    int64_t revno = 0;
    std::string ghost;
};
Result<MainlineRevno> mainline_revno(PackCollection& packs, int64_t tip_revno, std::string_view tip_revid,
                                     std::string_view revid, size_t max_steps = kMaxMainlineSteps);

}  // namespace souk::server::bzr
