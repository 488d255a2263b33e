// Patience diff's matching blocks (docs/protocol/streams.md#annotating-a-file).
#include "server/bzr/patience.hpp"

#include <algorithm>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace souk::server::bzr::patience {
namespace {

// Breezy's get_matching_blocks starts the recursion with this budget.
constexpr int kMaxRecursion = 10;
constexpr size_t kNone = static_cast<size_t>(-1);

class Matcher {
public:
    Matcher(std::span<const uint32_t> a, std::span<const uint32_t> b, size_t ids)
        : a_(a), b_(b), count_a_(ids, 0), count_b_(ids, 0), where_a_(ids, 0), back_(b.size(), kNone) {}

    std::vector<Block> run() {
        recurse(0, 0, a_.size(), b_.size(), kMaxRecursion);
        out_.push_back(Block{a_.size(), b_.size(), 0});
        return std::move(out_);
    }

private:
    void add(size_t ai, size_t bi) {
        if (!out_.empty() && out_.back().a + out_.back().len == ai && out_.back().b + out_.back().len == bi)
            ++out_.back().len;
        else
            out_.push_back(Block{ai, bi, 1});
    }

    // The longest increasing run of pairs (a index, b index) of lines that
    // occur once in a[alo, ahi) and once in b[blo, bhi), in increasing order.
    std::vector<std::pair<size_t, size_t>> unique_lcs(size_t alo, size_t blo, size_t ahi, size_t bhi) {
        for (size_t i = alo; i < ahi; ++i) {  // bounded: the range
            ++count_a_[a_[i]];
            where_a_[a_[i]] = i;
        }
        for (size_t j = blo; j < bhi; ++j) ++count_b_[b_[j]];  // bounded: the range
        // Patience sorting: stacks_ holds the top a index of each pile
        // (increasing), lasts_ the b index that put it there.
        stacks_.clear();
        lasts_.clear();
        for (size_t j = blo; j < bhi; ++j) {  // bounded: the range
            uint32_t id = b_[j];
            if (count_a_[id] != 1 || count_b_[id] != 1) continue;
            size_t apos = where_a_[id];
            // The a indices are distinct, so lower and upper bound agree
            // (Breezy's bisect_right and the C extension's bisect_left).
            size_t k = static_cast<size_t>(std::lower_bound(stacks_.begin(), stacks_.end(), apos) - stacks_.begin());
            back_[j] = k > 0 ? lasts_[k - 1] : kNone;
            if (k < stacks_.size()) {
                stacks_[k] = apos;
                lasts_[k] = j;
            } else {
                stacks_.push_back(apos);
                lasts_.push_back(j);
            }
        }
        for (size_t i = alo; i < ahi; ++i) count_a_[a_[i]] = 0;  // bounded: the range
        for (size_t j = blo; j < bhi; ++j) count_b_[b_[j]] = 0;  // bounded: the range
        std::vector<std::pair<size_t, size_t>> lcs;
        if (lasts_.empty()) return lcs;
        // bounded: each step goes to an earlier b index of this range
        for (size_t j = lasts_.back(); j != kNone; j = back_[j]) lcs.emplace_back(where_a_[b_[j]], j);
        std::reverse(lcs.begin(), lcs.end());
        return lcs;
    }

    // bounded: depth is capped by `budget` (at most kMaxRecursion + 2
    // frames), and each level works on disjoint ranges.
    void recurse(size_t alo, size_t blo, size_t ahi, size_t bhi, int budget) {
        if (budget < 0) return;  // the C extension's silent stop
        if (alo == ahi || blo == bhi) return;
        auto lcs = unique_lcs(alo, blo, ahi, bhi);
        size_t next_a = alo, next_b = blo;
        for (const auto& [ap, bp] : lcs) {  // bounded: the run found
            if (next_a != ap || next_b != bp) recurse(next_a, next_b, ap, bp, budget - 1);
            add(ap, bp);
            next_a = ap + 1;
            next_b = bp + 1;
        }
        if (!lcs.empty()) {
            recurse(next_a, next_b, ahi, bhi, budget - 1);
        } else if (a_[alo] == b_[blo]) {
            // bounded: both ranges shrink each pass
            while (alo < ahi && blo < bhi && a_[alo] == b_[blo]) add(alo++, blo++);
            recurse(alo, blo, ahi, bhi, budget - 1);
        } else if (a_[ahi - 1] == b_[bhi - 1]) {
            size_t nahi = ahi - 1, nbhi = bhi - 1;
            // bounded: both ends move down each pass
            while (nahi > alo && nbhi > blo && a_[nahi - 1] == b_[nbhi - 1]) {
                --nahi;
                --nbhi;
            }
            recurse(alo, blo, nahi, nbhi, budget - 1);
            for (size_t i = 0; i < ahi - nahi; ++i) add(nahi + i, nbhi + i);  // bounded: the common tail
        }
    }

    std::span<const uint32_t> a_, b_;
    std::vector<uint32_t> count_a_, count_b_;
    std::vector<size_t> where_a_;  // by id: its (last) index in the a range
    std::vector<size_t> back_;     // by b index: the b index of the pair below it in the run
    std::vector<size_t> stacks_, lasts_;
    std::vector<Block> out_;
};

}  // namespace

std::vector<Block> matching_blocks_ids(std::span<const uint32_t> a, std::span<const uint32_t> b, size_t id_count) {
    return Matcher(a, b, id_count).run();
}

std::vector<Block> matching_blocks(std::span<const std::string_view> a, std::span<const std::string_view> b) {
    std::unordered_map<std::string_view, uint32_t> ids;
    ids.reserve(a.size() + b.size());
    auto intern = [&](std::span<const std::string_view> lines) {
        std::vector<uint32_t> out;
        out.reserve(lines.size());
        for (auto l : lines)  // bounded: the lines
            out.push_back(ids.try_emplace(l, static_cast<uint32_t>(ids.size())).first->second);
        return out;
    };
    std::vector<uint32_t> ia = intern(a), ib = intern(b);
    return matching_blocks_ids(ia, ib, ids.size());
}

}  // namespace souk::server::bzr::patience
