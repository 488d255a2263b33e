// Revision numbers (docs/protocol/branch.md#revision-numbers).
#include "server/bzr/revno.hpp"

#include <functional>
#include <map>
#include <vector>

namespace souk::server::bzr {
namespace {

constexpr std::string_view kNull = "null:";

// Left-hand parents looked up so far, with the other revisions of the leaf
// pages read (the next steps of a walk are usually among them).
class LeftParents {
public:
    explicit LeftParents(PackCollection& packs) : packs_(packs) {}

    // *present: whether `revid` is in the repository; *left: its first
    // parent ("" when it has none).
    Status get(std::string_view revid, bool* present, std::string* left) {
        auto it = known_.find(revid);
        if (it == known_.end()) {
            std::string_view key = revid;
            auto st = packs_.lookup_revisions_nearby(
                std::span<const std::string_view>(&key, 1), [&](std::string_view r, std::string_view parents, bool) {
                    if (known_.find(r) != known_.end()) return;
                    size_t cr = parents.find('\r');
                    known_.emplace(std::string(r), std::string(parents.substr(0, cr)));
                });
            if (!st) return st;
            it = known_.find(revid);
        }
        *present = it != known_.end();
        if (*present) *left = it->second;
        return Ok{};
    }

private:
    PackCollection& packs_;
    std::map<std::string, std::string, std::less<>> known_;
};

Error too_long(size_t max_steps) {
    return limit_exceeded("mainline walk longer than " + std::to_string(max_steps) + " revisions");
}

}  // namespace

Result<RevidForRevno> rev_id_for_revno(PackCollection& packs, int64_t revno, int64_t known_revno,
                                       std::string_view known_revid, size_t max_steps) {
    RevidForRevno out;
    if (revno > known_revno) {
        out.kind = RevidForRevno::OutOfBounds;
        return out;
    }
    // The number of steps down from the known revision, as Breezy counts:
    // a revno below 1 can only run out of history.
    uint64_t distance = static_cast<uint64_t>(known_revno) - static_cast<uint64_t>(revno);
    LeftParents parents(packs);
    std::vector<std::string> history{std::string(known_revid)};
    if (known_revid != kNull) {
        bool present = false;
        std::string left;
        if (auto st = parents.get(known_revid, &present, &left); !st) return st.err();
        if (!present) {
            out.kind = RevidForRevno::NoSuchRevision;
            out.revid = std::string(known_revid);
            return out;
        }
        std::string next = left;
        while (history.size() <= distance) {  // bounded: distance steps, and max_steps
            if (next.empty() || next == kNull) break;
            if (history.size() > max_steps) return too_long(max_steps);
            if (auto st = parents.get(next, &present, &left); !st) return st.err();
            history.push_back(next);  // a ghost is still the next step of this history
            if (!present) break;
            next = left;
        }
    }
    if (history.size() <= distance) {
        out.kind = RevidForRevno::HistoryIncomplete;
        out.revno = known_revno - static_cast<int64_t>(history.size()) + 1;
        out.revid = history.back();
        return out;
    }
    out.revid = history.back();
    out.revno = revno;
    return out;
}

Result<MainlineRevno> mainline_revno(PackCollection& packs, int64_t tip_revno, std::string_view tip_revid,
                                     std::string_view revid, size_t max_steps) {
    MainlineRevno out;
    if (revid == kNull) {
        out.revno = 0;
        return out;
    }
    LeftParents parents(packs);
    std::string cur(tip_revid);
    int64_t n = tip_revno;
    for (size_t steps = 0; !cur.empty() && cur != kNull; ++steps) {  // bounded: max_steps
        if (steps > max_steps) return too_long(max_steps);
        if (cur == revid) {
            out.revno = n;
            return out;
        }
        bool present = false;
        std::string left;
        if (auto st = parents.get(cur, &present, &left); !st) return st.err();
        if (!present) {
            out.kind = MainlineRevno::Ghost;
            out.ghost = cur;
            return out;
        }
        cur = left;
        --n;
    }
    bool present = false;
    std::string left;
    if (auto st = parents.get(revid, &present, &left); !st) return st.err();
    out.kind = present ? MainlineRevno::NotOnMainline : MainlineRevno::Absent;
    return out;
}

}  // namespace souk::server::bzr
