// Groupcompress blocks (docs/formats/groupcompress.md): how 2a stores every
// text (revisions, inventories, CHK pages, file texts).
//
//   block   := "gcb1z\n" <decimal Z> "\n" <decimal N> "\n" <Z bytes: zlib(content)>
//   content := entry*       an entry is addressed by [start, end) from an index
//   entry   := 'f' <base128 n> <n bytes: fulltext>
//            | 'd' <base128 n> <n bytes: delta>
//   delta   := <base128 target length> instruction*
//              insert: byte c in 1..127, then c literal bytes
//              copy:   byte c >= 0x80; bits 0-3 pick little-endian offset
//                      bytes, bits 4-6 length bytes (0 means 65536); the
//                      offset is into the block content before the entry
//
// Reading inflates only the prefix of the content the wanted entries need,
// never more than a named cap, so a zip bomb costs at most that cap. Every
// offset and length is checked; bad input gives a bzr::Error, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "server/bzr/error.hpp"
#include "server/bzr/pack.hpp"
#include "server/store/store.hpp"

namespace souk::server::bzr::gc {

// Bounds of block reading; each a hard limit (LimitExceeded).
struct Limits {
    size_t max_content = 64 * 1024 * 1024;  // inflated content bytes held for one block
    size_t max_text = 64 * 1024 * 1024;     // bytes of one extracted text (delta target)
    size_t max_header = 4096;               // container record + block header bytes read to find the zlib data
    size_t read_chunk = 64 * 1024;          // compressed bytes per Store read
};

// Base128 varint, least significant 7 bits first (encode_base128_int).
void encode_base128(uint64_t value, std::string& out);
// Decode at `pos` (advanced), reading at most max_bytes bytes; false if
// truncated, longer or above 2^63.
bool decode_base128(std::string_view s, size_t& pos, size_t max_bytes, uint64_t& value);

// The header of a block: lengths and where the zlib bytes begin.
struct BlockHeader {
    uint64_t z_length = 0;        // compressed bytes
    uint64_t content_length = 0;  // inflated bytes
    size_t header_size = 0;       // bytes before the zlib data
};
// Parse the header from the first bytes of a block (the whole block is
// fine). Unsupported for lzma ("gcb1l"), Corrupt otherwise.
Result<BlockHeader> parse_block_header(std::string_view bytes);

// Inflates a zlib stream fed in slices, keeping only its first `want`
// bytes; stops asking for input once it has them. The first one alive on a
// thread reuses that thread's zlib state (inflateInit costs two
// allocations, one of a 32 KiB window); others have their own.
class PrefixInflater {
public:
    // LimitExceeded when want > max_content.
    static Result<PrefixInflater> make(size_t want, size_t max_content);
    PrefixInflater(PrefixInflater&& o) noexcept;
    PrefixInflater& operator=(PrefixInflater&&) = delete;
    PrefixInflater(const PrefixInflater&) = delete;
    ~PrefixInflater();

    // More compressed bytes (`last`: the rest of the stream, so zlib keeps
    // no window); Corrupt on bad zlib or a stream too short.
    Status feed(std::string_view z, bool last = false);
    bool done() const { return out_.size() >= want_; }
    bool stream_ended() const { return ended_; }
    std::string take() { return std::move(out_); }  // after done()

private:
    PrefixInflater(size_t want);
    void* zs_ = nullptr;  // z_stream: the thread's (shared_) or owned
    bool shared_ = false;
    size_t want_;
    std::string out_;
    bool ended_ = false;
};

// The first `want` bytes of an in-memory block's content (want = npos:
// all of it). Corrupt when the content is shorter than want or than the
// header says.
Result<std::string> block_content(std::string_view block, size_t want = std::string_view::npos,
                                  const Limits& limits = {});

// Read the block stored in the container record [record_offset,
// +record_length) of an open .pack (an index entry's first two numbers),
// inflating `want` content bytes. NotFound-free: Io for Store failures,
// Corrupt for bad framing.
Result<std::string> read_block_prefix(Store& store, OpenFile& pack, uint64_t record_offset, uint64_t record_length,
                                      size_t want, const Limits& limits = {});

// Which kind of entry extract_text found.
enum class EntryKind : uint8_t { Empty, Fulltext, Delta };

// The text of the entry at [start, end) of (a prefix of) a block's
// content; start == end == 0 is the empty text. A delta may copy only
// from content before its entry.
Result<std::string> extract_text(std::string_view content, uint64_t start, uint64_t end, const Limits& limits = {},
                                 EntryKind* kind = nullptr);
// The same without a copy of a fulltext: a view into `content`, or into
// `scratch` (overwritten) for a delta's result.
Result<std::string_view> extract_text_view(std::string_view content, uint64_t start, uint64_t end, std::string& scratch,
                                           const Limits& limits = {}, EntryKind* kind = nullptr);

// Apply a delta (target length, then instructions) to `source`; the result
// has exactly the target length and at most max_out bytes.
Status apply_delta(std::string_view source, std::string_view delta, std::string& out, size_t max_out);

// Builds a block. Empty texts take no bytes and are addressed (0, 0), as
// Breezy's compressor does.
//
// add_fulltext stores the text as it is. add_text first tries a delta
// against the content so far and keeps it when it is at most half the
// text (Breezy's rule for choosing a delta); otherwise it stores the
// fulltext. The matcher indexes the start of every line the content holds
// literally (fulltexts and the literal runs of deltas) by its hash, keeps
// the last kCandidates offsets of each, and at each line of a new text
// extends every candidate byte by byte and copies the longest run of at
// least kMinCopy bytes. Work per text is at most kCandidates times its
// length; copies are at most 64 KiB, inserts 127 bytes, as Breezy writes.
class BlockWriter {
public:
    static constexpr size_t kCandidates = 8;  // offsets kept per line hash
    static constexpr size_t kMinCopy = 10;    // shorter matches are inserted

    explicit BlockWriter(size_t max_content = Limits{}.max_content) : max_content_(max_content) {}
    // Append a fulltext; returns its [start, end) in the content.
    Result<std::pair<uint64_t, uint64_t>> add_fulltext(std::string_view text);
    // Append a delta or a fulltext, as above; returns its [start, end).
    Result<std::pair<uint64_t, uint64_t>> add_text(std::string_view text);
    size_t content_size() const { return content_.size(); }
    std::string_view content() const { return content_; }
    // The block bytes, "gcb1z\n<Z>\n<N>\n" + zlib(content) at `level`.
    Result<std::string> finish(int level = -1) const;

private:
    struct Candidates {
        uint32_t at[kCandidates];
        uint8_t n = 0, next = 0;
    };
    Result<std::pair<uint64_t, uint64_t>> append_entry(char kind, std::string_view body);
    // Index the line starts in content_[begin, end); `line_start`: begin is
    // one (a literal run may begin mid-line).
    void index_lines(size_t begin, size_t end, bool line_start);
    void flush_insert(std::string_view text, size_t begin, size_t end);
    // Longest match of text[pos..] in the content: (offset, length).
    std::pair<size_t, size_t> longest_match(std::string_view text, size_t pos, size_t line_end) const;

    size_t max_content_;
    std::string content_;
    bool indexing_ = false;  // add_text was called: every literal line is indexed
    std::unordered_map<size_t, Candidates> lines_;  // line hash -> content offsets
    std::string delta_;                             // scratch of add_text
    struct Literal {
        size_t at, size;  // in delta_
        bool line_start;
    };
    std::vector<Literal> literal_;  // scratch of add_text: its literal runs
};

}  // namespace souk::server::bzr::gc
