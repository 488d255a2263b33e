// The fetch side of repository streams (docs/protocol/streams.md#get_stream):
// which revisions a search names, and the records of a 2a stream for them
// (signatures, revisions, inventories, the CHK pages the new inventories
// add, the texts their new entries name), produced piece by piece from the
// packs on disk. Stored groupcompress blocks go out as they are (a range of
// the pack file, or its bytes when a small pack was read whole) when the
// keys sent use at least three quarters of them; otherwise the block is
// trimmed after its last used entry or rebuilt from its texts
// (docs/formats/groupcompress.md#blocks-on-the-wire).
//
// The library knows the Store and the formats, never the wire: the verb
// adapter (server/verbs/repository.cpp) turns the pieces into a reply body.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "server/bzr/chk.hpp"
#include "server/bzr/error.hpp"
#include "server/bzr/groupcompress.hpp"
#include "server/bzr/pack_collection.hpp"
#include "server/store/store.hpp"

namespace souk::server::bzr {

// Every bound a stream applies (each a hard limit: LimitExceeded).
struct StreamLimits {
    size_t max_revisions = 4 * 1000 * 1000;   // revisions one search may select or visit
    size_t max_keys = 16 * 1000 * 1000;       // keys of one substream (pages, texts)
    size_t block_cache_bytes = 64 << 20;      // inflated block contents kept while reading pages and texts
    size_t max_rewrite_content = 16 << 20;    // content bytes of a block trimmed or rebuilt; larger go as stored
    uint64_t stored_use_percent = 75;         // a block goes as stored when the keys sent use this much of it
    int rewrite_level = 4;                    // zlib level of a trimmed or rebuilt block (Breezy's: the default, 6)
    bool whole_repository = true;             // every revision asked: send every index's keys, no inventory walk
    size_t max_record_header = 4096;          // bytes read to parse a stored block's framing
    size_t compress_header_bytes = 512;       // a record's key header shorter than this goes uncompressed
    uint64_t whole_pack_bytes = 1 << 20;      // packs up to this size are read whole, once, on first use
    uint64_t resident_pack_bytes = 32 << 20;  // bytes of whole packs one reader holds; later packs are read by record
    gc::Limits gc;                            // block reading
    chk::Limits chk;                          // CHK walks
};

// ---- the search -------------------------------------------------------------

enum class SearchKind : uint8_t { AncestryOf, Search, Everything };
struct SearchSpec {
    SearchKind kind = SearchKind::Everything;
    std::vector<std::string> heads;    // ancestry-of heads, or the search's start keys
    std::vector<std::string> exclude;  // search only
    uint64_t count = 0;                // search only (ignored by get_stream)
};
// Parse a request body: "ancestry-of\n<head>...", "search\n<start keys>\n
// <exclude keys>\n<count>" or "everything". Errc::Unsupported for any other
// first line or a malformed search (the verb answers BadSearch).
Result<SearchSpec> parse_search(std::string_view body);

// A revision found in a pack's .rix: where its text lives and its parents.
struct RecordPos {
    uint32_t pack = 0;
    uint64_t offset = 0, length = 0;  // the container record holding the block
    uint64_t start = 0, end = 0;      // the entry in the block's content
};
// Parse an index value "offset length start end"; false when malformed.
bool parse_record_pos(std::string_view value, uint32_t pack, RecordPos& out);

// The revisions a search selects, as Breezy's server recreates it:
// ancestry-of: every present revision in the ancestry of the heads;
// search: a breadth-first walk from the start keys that never steps onto an
// excluded key; everything: every revision. Ghosts and null: are left out.
// In the order found (heads first).
Result<std::vector<std::string>> search_revisions(PackCollection& packs, const SearchSpec& spec,
                                                  const StreamLimits& limits = {});

// ---- reading records ---------------------------------------------------------

// Reads records of a repository's packs: index lookups across the packs
// (PackCollection::find: the first pack in pack-names order that has a key
// answers for it), the framing of stored blocks, and texts (inflated block
// contents are kept in an LRU of limits.block_cache_bytes). A small pack
// (limits.whole_pack_bytes) is read whole on first use, so its records cost
// no further reads. One per request; not thread-safe.
class PackReader {
public:
    PackReader(Store& store, std::string repo, PackCollection packs, const StreamLimits& limits = {});

    PackCollection& packs() { return packs_; }
    Store& store() { return store_; }

    // fn(key, parents (the first reference list, "" when the index has
    // none: has_parents false), pos) for each of `keys` found, once each.
    using FoundFn = std::function<void(std::string_view key, std::string_view parents, bool has_parents,
                                       const RecordPos& pos)>;
    Status lookup(IndexKind kind, std::span<const std::string_view> keys, const FoundFn& fn);
    // The same for every key of every pack's index of `kind`, once each
    // (the first pack in pack-names order answers for a key several hold).
    Status lookup_all(IndexKind kind, const FoundFn& fn);
    // Keys in the packs' indices of `kind`, summed (a key two packs hold
    // counts twice).
    Result<uint64_t> key_count(IndexKind kind);

    // The open pack file of pack `pack` (opened on first use, then kept).
    Result<OpenFile*> pack_file(uint32_t pack);

    // The framing of the stored block at `pos`: bytes of the container
    // record's header (before the block), the block's header fields, and
    // the stored block itself when its bytes are in memory (a pack read
    // whole, or a record no longer than what was read for its framing;
    // else empty), valid until the next frame() or content().
    struct BlockFrame {
        size_t record_header = 0;
        gc::BlockHeader block;
        std::string_view stored;
    };
    Result<BlockFrame> frame(const RecordPos& pos);

    // The first `want` content bytes of the block at `pos` (cached whole
    // when it fits the cache; else valid until the next content()).
    Result<std::string_view> content(const RecordPos& pos, uint64_t want);
    // The text of the record at `pos`.
    Result<std::string> text(const RecordPos& pos);
    // The same as a view: into the cached block content for a fulltext,
    // else into `scratch` (a delta's result); valid until the next
    // content() or text_view() and as long as `scratch` is unchanged.
    Result<std::string_view> text_view(const RecordPos& pos, std::string& scratch);

    uint64_t blocks_inflated() const { return inflated_; }

private:
    struct Pack {
        std::unique_ptr<OpenFile> file;
        // The whole pack, when it is small enough (whole_pack_bytes); not a
        // std::string, which would zero the bytes before reading them.
        std::unique_ptr<char[]> bytes;
        bool whole = false;
    };
    struct BlockId {
        uint32_t pack = 0;
        uint64_t offset = 0;
        bool operator==(const BlockId&) const = default;
    };
    struct BlockIdHash {
        size_t operator()(const BlockId& b) const { return std::hash<uint64_t>{}(b.offset * 1000003u ^ b.pack); }
    };
    struct Cached {
        std::string content;
        uint64_t used = 0;
    };
    Result<Pack*> pack(uint32_t pack);

    Store& store_;
    std::string repo_;
    PackCollection packs_;
    StreamLimits limits_;
    std::vector<Pack> files_;
    uint64_t whole_bytes_ = 0;  // held in Pack::bytes
    std::string head_;          // the bytes frame() read last (packs not held whole)
    std::unordered_map<BlockId, Cached, BlockIdHash> cache_;  // whole contents
    size_t cache_bytes_ = 0;
    uint64_t tick_ = 0, inflated_ = 0;
    std::string scratch_;  // a block too big for the cache
};

// ---- the stream --------------------------------------------------------------

// One piece of a stream body: bytes (valid until the next call), or a
// range of an open pack file.
struct StreamPiece {
    std::string_view bytes;
    OpenFile* file = nullptr;
    uint64_t offset = 0, length = 0;
};

// Produces a reply body piece by piece (a stream, or the bodies of the
// read verbs in server/bzr/repo_read.hpp).
class PieceSource {
public:
    virtual ~PieceSource() = default;
    // The next piece: true, or false at the end; an error ends the body.
    virtual Result<bool> next(StreamPiece& out) = 0;
};

// zlib's one-shot deflate at `level`: the default is Breezy's
// zlib.compress; 0 writes stored blocks directly (no deflate state).
Result<std::string> zlib_compress(std::string_view in, int level = -1);

// The CHK pages of a repository's packs, remembering where each one lives.
class PackPages final : public chk::PageSource {
public:
    PackPages(PackReader& r, std::unordered_map<std::string, RecordPos>& where) : r_(r), where_(where) {}
    Result<std::string> page(std::string_view key) override;
    // Without a copy: a view into the block's cached content, or into this
    // source's scratch for a page stored as a delta.
    Result<std::string_view> page_view(std::string_view key) override;
    // Locate the pages not yet in `where` with one batched index lookup.
    Status prefetch(std::span<const std::string> keys) override;

private:
    Result<RecordPos> locate(std::string_view key);
    PackReader& r_;
    std::unordered_map<std::string, RecordPos>& where_;
    std::string key_;      // reused to look `where` up
    std::string scratch_;  // a page rebuilt from a delta
};

// What a stream sent, for tests, logs and benchmarks.
struct StreamStats {
    uint64_t records = 0;          // container records after the format record
    uint64_t blocks_as_stored = 0; // blocks sent as a range of the pack
    uint64_t blocks_trimmed = 0;
    uint64_t blocks_rebuilt = 0;
    uint64_t revisions = 0, inventories = 0, chk_pages = 0, texts = 0, signatures = 0;
    bool whole_repository = false;  // every revision asked: the indices were sent whole, no walk
};

// A 2a stream: the pack container a get_stream reply body carries.
class StreamSource final : public PieceSource {
public:
    // The stream of `revisions` (search_revisions' answer): signatures,
    // revisions, inventories, the CHK pages reachable from their roots and
    // not from the roots of their parents outside the set, the texts of the
    // new id_to_entry items. `format` is the repository's format string
    // (the stream's first record).
    static std::unique_ptr<StreamSource> for_revisions(std::unique_ptr<PackReader> reader, std::string format,
                                                       std::vector<std::string> revisions,
                                                       const StreamLimits& limits = {});
    // get_stream_for_missing_keys: the inventories of `revids` that exist,
    // then every CHK page of both their maps; no texts.
    static std::unique_ptr<StreamSource> for_inventories(std::unique_ptr<PackReader> reader, std::string format,
                                                         std::vector<std::string> revids,
                                                         const StreamLimits& limits = {});
    ~StreamSource() override;

    // The next piece: true, or false at the end. An error ends the stream
    // (NoSuchRevision for a revision whose inventory is missing, Corrupt,
    // Io, LimitExceeded).
    Result<bool> next(StreamPiece& out) override;
    const StreamStats& stats() const;

    struct State;

private:
    explicit StreamSource(std::unique_ptr<State> s);
    std::unique_ptr<State> s_;
};

}  // namespace souk::server::bzr
