// A repository's pack collection (docs/formats/packs.md): pack-names (itself
// a B+Tree index: key = pack name, value = the five index sizes), the live
// packs, and their indices, opened lazily through the Store.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "server/bzr/btree.hpp"
#include "server/bzr/error.hpp"
#include "server/store/store.hpp"

namespace souk::server::bzr {

// The five indices of a pack, in pack-names' value order.
enum class IndexKind : uint8_t { Revisions, Inventories, Texts, Signatures, Chk };
// ".rix", ".iix", ".tix", ".six", ".cix"
std::string_view index_suffix(IndexKind kind);

struct PackInfo {
    std::string name;                    // validated: a plain file name
    std::array<uint64_t, 5> sizes{};     // index sizes from pack-names (0 when unparsable)
};

// revid -> parent revids.
using ParentMap = std::map<std::string, std::vector<std::string>, std::less<>>;

class PackCollection {
public:
    PackCollection() = default;  // an empty collection (a repository with no pack-names yet)
    PackCollection(PackCollection&&) noexcept = default;
    PackCollection& operator=(PackCollection&&) noexcept = default;

    // Read `repo`/pack-names (repo: the root-relative .bzr/repository
    // directory). Errors: NotFound (sys_errno ENOENT) when pack-names is
    // absent, Io for other failures to read it (both with an empty detail:
    // the caller names the file), Corrupt/LimitExceeded for its content
    // ("bad pack name ..." for a name that is not a plain file name).
    static Result<PackCollection> open(Store& store, const std::string& repo, const BTreeLimits& limits = {});

    const std::vector<PackInfo>& packs() const { return packs_; }

    // The index of kind `kind` of pack `pack` (opened on first use, then
    // kept). Errors as BTreeReader::open, with "cannot read index N.rix" or
    // "N.rix: <problem>" as the detail.
    Result<BTreeReader*> index(size_t pack, IndexKind kind);

    // For each of `keys` (joined; any order, duplicates allowed) that some
    // pack's index of kind `kind` holds: fn(entry, pack, true), once per
    // key, from the first pack (in pack-names order) that has it, in no
    // particular order. With `nearby`, also every other entry of the leaf
    // pages read in the packs whose index has more than one page (asked
    // false; such an entry may come more than once, from several packs).
    // The views are valid during the call only.
    //
    // One lookup for all packs: on the first find of a kind, every pack's
    // index of that kind is opened, and those that are a single page (a
    // small pack's) go whole into one table: a key costs one hash lookup
    // however many packs there are. Larger indices are searched after, one
    // batched descent per pack for the keys no earlier pack answered.
    using FindFn = std::function<void(const BTreeEntry& e, size_t pack, bool asked)>;
    Status find(IndexKind kind, std::span<const std::string_view> keys, const FindFn& fn, bool nearby = false);

    // For each revision of `revids` present in some pack's .rix: fn(revid,
    // parents list (references joined by '\r'), value, pack). The first pack
    // (in pack-names order) that has a revision answers for it; each
    // revision is reported once.
    using RevisionFn =
        std::function<void(std::string_view revid, std::string_view parents, std::string_view value, size_t pack)>;
    Status lookup_revisions(std::span<const std::string_view> revids, const RevisionFn& fn);
    // As lookup_revisions, but also report the other revisions on the leaf
    // pages read (their `asked` is false): an ancestry walk finds most
    // parents there without another descent. A revision may be reported
    // more than once (from different packs); the first report wins.
    using NearbyFn = std::function<void(std::string_view revid, std::string_view parents, bool asked)>;
    Status lookup_revisions_nearby(std::span<const std::string_view> revids, const NearbyFn& fn);
    // Every .rix entry of every pack, pack by pack, each in key order
    // (duplicates across packs included; the first pack's comes first).
    Status iter_revisions(const RevisionFn& fn);

    // revid -> parents for `revids` (absent ones are left out).
    Status get_parent_map(std::span<const std::string_view> revids, ParentMap& out);

    // Page reads and bytes read by every index opened so far.
    BTreeReadStats stats() const;

private:
    // The single-page indices of one kind, merged (key -> the first pack
    // that has it and its entry), and the packs whose index is larger.
    struct Combined {
        bool built = false;
        std::unordered_map<std::string_view, std::pair<uint32_t, const BTreeEntry*>> table;
        std::vector<uint32_t> large;  // in pack-names order
    };
    Status combine(IndexKind kind);

    Store* store_ = nullptr;
    std::string repo_;
    BTreeLimits limits_;
    std::vector<PackInfo> packs_;
    std::vector<std::array<std::unique_ptr<BTreeReader>, 5>> readers_;
    BTreeReadStats names_stats_;
    std::array<Combined, 5> combined_;
};

// Parents of one .rix reference list, as strings.
std::vector<std::string> split_parents(std::string_view list);

// The live pack names of a repository (.bzr/repository relative path):
// 0 or an errno (ENOENT when there is no pack-names), *why set for content
// problems. (PackCollection::open in errno form, for older callers.)
int pack_names(Store& store, const std::string& repo, std::vector<std::string>& names, std::string* why);

}  // namespace souk::server::bzr
