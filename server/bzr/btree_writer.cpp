// The B+Tree index writer (docs/formats/btree-index.md). Its bytes equal
// Breezy's BTreeBuilder output: the same row building (_add_key,
// _write_nodes) and the same page packing (chunk_writer.ChunkWriter), which
// depends on exactly when zlib is asked to sync-flush and when a page is
// recompressed from scratch, so both are reproduced step by step with the
// same zlib settings (deflateInit at the default level, as Python's
// zlib.compressobj()).
#include <zlib.h>

#include <algorithm>
#include <memory>
#include <optional>

#include "server/bzr/btree.hpp"

namespace souk::server::bzr {
namespace {

constexpr size_t kReservedHeaderBytes = 120;  // page 0 keeps room for the header
constexpr std::string_view kLeafFlag = "type=leaf\n";
constexpr std::string_view kInternalFlag = "type=internal\n";

// One zlib compressor, driven as Python's compressobj: compress() returns
// whatever output deflate(Z_NO_FLUSH) produces, flush(mode) drains deflate
// with that mode.
class Deflater {
public:
    Deflater() { ok_ = deflateInit(&zs_, Z_DEFAULT_COMPRESSION) == Z_OK; }
    ~Deflater() { deflateEnd(&zs_); }
    Deflater(const Deflater&) = delete;
    Deflater& operator=(const Deflater&) = delete;
    bool ok() const { return ok_; }
    // Append the output of feeding `in` with `flush` to `out`; returns the
    // number of bytes appended.
    size_t run(std::string_view in, int flush, std::string& out) {
        size_t before = out.size();
        zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
        zs_.avail_in = static_cast<uInt>(in.size());
        char buf[16384];
        // bounded: deflate consumes the (finite) input and drains its pending
        // output; a pass that leaves output space means it has finished.
        do {
            zs_.next_out = reinterpret_cast<Bytef*>(buf);
            zs_.avail_out = sizeof buf;
            int rc = deflate(&zs_, flush);
            out.append(buf, sizeof buf - zs_.avail_out);
            if (rc == Z_STREAM_ERROR) {
                ok_ = false;
                break;
            }
        } while (zs_.avail_out == 0);
        return out.size() - before;
    }

private:
    z_stream zs_{};
    bool ok_ = false;
};

// chunk_writer.ChunkWriter: packs lines into one zlib stream of at most
// chunk_size bytes, never splitting a line.
class ChunkWriter {
public:
    ChunkWriter(size_t chunk_size, bool optimize_for_size)
        : chunk_size_(chunk_size), comp_(std::make_unique<Deflater>()) {
        // (max repacks, max sync flushes): Breezy's _repack_opts_for_size and
        // _repack_opts_for_speed.
        max_repack_ = optimize_for_size ? 20 : 0;
        max_zsync_ = optimize_for_size ? 0 : 8;
    }
    bool ok() const { return ok_ && comp_->ok(); }

    // Add `bytes`; true when they did not fit (and were not added).
    bool write(std::string_view bytes) {
        if (num_repack_ > max_repack_) return true;
        const int64_t capacity = static_cast<int64_t>(chunk_size_);
        int64_t next_unflushed = static_cast<int64_t>(unflushed_in_ + bytes.size());
        int64_t remaining = capacity - static_cast<int64_t>(out_.size()) - 10;
        if (next_unflushed < remaining) {
            comp_->run(bytes, Z_NO_FLUSH, out_);
            in_.emplace_back(bytes);
            unflushed_in_ += bytes.size();
            return false;
        }
        ++num_zsync_;
        if (max_repack_ == 0 && num_zsync_ > max_zsync_) {
            ++num_repack_;
            return true;
        }
        comp_->run(bytes, Z_NO_FLUSH, out_);
        comp_->run({}, Z_SYNC_FLUSH, out_);
        unflushed_in_ = 0;
        const int64_t safety = num_repack_ == 0 ? 100 : 10;
        if (static_cast<int64_t>(out_.size()) + safety <= capacity) {
            in_.emplace_back(bytes);
            return false;
        }
        // Over budget: try to squeeze it in by compressing everything afresh.
        ++num_repack_;
        auto fresh = recompress(bytes);
        if (num_repack_ >= max_repack_) ++num_repack_;
        if (static_cast<int64_t>(fresh.out.size()) + 10 > capacity) {
            fresh = recompress({});
            comp_ = std::move(fresh.comp);
            out_ = std::move(fresh.out);
            num_repack_ = max_repack_ + 1;  // no more data
            return true;
        }
        comp_ = std::move(fresh.comp);
        out_ = std::move(fresh.out);
        in_.emplace_back(bytes);
        return false;
    }

    // The finished stream padded with zero bytes to chunk_size; *padding
    // says how many. False if the stream overflowed (Breezy asserts).
    bool finish(std::string& page, size_t* padding) {
        comp_->run({}, Z_FINISH, out_);
        if (out_.size() > chunk_size_ || !ok()) return false;
        *padding = chunk_size_ - out_.size();
        page = std::move(out_);
        page.append(*padding, '\0');
        return true;
    }

private:
    struct Fresh {
        std::unique_ptr<Deflater> comp;
        std::string out;
    };
    Fresh recompress(std::string_view extra) {
        Fresh f{std::make_unique<Deflater>(), {}};
        for (const auto& b : in_) f.comp->run(b, Z_NO_FLUSH, f.out);  // bounded: the lines accepted so far
        if (!extra.empty()) {
            f.comp->run(extra, Z_NO_FLUSH, f.out);
            f.comp->run({}, Z_SYNC_FLUSH, f.out);
        }
        if (!f.comp->ok()) ok_ = false;
        return f;
    }

    size_t chunk_size_;
    std::unique_ptr<Deflater> comp_;
    std::vector<std::string> in_;  // lines accepted so far
    std::string out_;              // compressed bytes so far
    size_t unflushed_in_ = 0;
    int num_repack_ = 0, num_zsync_ = 0, max_repack_ = 0, max_zsync_ = 0;
    bool ok_ = true;
};

// One row of the tree being built (_BuilderRow): its finished pages and the
// page being filled.
struct Row {
    bool leaf = false;
    size_t nodes = 0;
    std::string spool;  // finished pages; the first starts with the reserved bytes
    std::optional<ChunkWriter> writer;

    bool finish_node(bool pad) {
        std::string page;
        size_t padding = 0;
        if (!writer || !writer->finish(page, &padding)) return false;
        if (nodes == 0) spool.assign(kReservedHeaderBytes, '\0');
        if (!pad) page.resize(page.size() - padding);
        spool += page;
        ++nodes;
        writer.reset();
        return true;
    }
};

struct Builder {
    bool optimize_for_size;
    std::vector<Row> rows;  // rows[0] is the root row, back() the leaves

    ChunkWriter& open(Row& row, size_t chunk_size) {
        row.writer.emplace(chunk_size, optimize_for_size);
        return *row.writer;
    }

    // _add_key: put `line` into the current leaf, starting a new leaf (and
    // the internal pages above it) when it does not fit.
    Status add_key(std::string_view key, std::string_view line) {
        // bounded: the second pass always starts a fresh leaf, where the line
        // either fits or is rejected
        for (int attempt = 0; attempt < 2; ++attempt) {
            bool new_leaf = false;
            if (!rows.back().writer) {
                new_leaf = true;
                for (size_t pos = 0; pos + 1 < rows.size(); ++pos) {  // bounded: the rows above the leaves
                    Row& internal = rows[pos];
                    if (internal.writer) continue;
                    ChunkWriter& w = open(internal, kBTreePageSize - (internal.nodes == 0 ? kReservedHeaderBytes : 0));
                    w.write(kInternalFlag);
                    w.write("offset=" + std::to_string(rows[pos + 1].nodes) + "\n");
                }
                Row& leaves = rows.back();
                open(leaves, kBTreePageSize - (leaves.nodes == 0 ? kReservedHeaderBytes : 0)).write(kLeafFlag);
            }
            if (!rows.back().writer->write(line)) return Ok{};
            if (new_leaf) return corrupt("B+Tree key line too big for a page");
            if (!rows.back().finish_node(true)) return corrupt("B+Tree page overflowed");
            std::string key_line = std::string(key) + "\n";
            bool new_row = true;
            for (size_t i = rows.size() - 1; i-- > 0;) {  // bounded: the rows above the leaves
                if (!rows[i].writer) return corrupt("B+Tree builder lost an internal page");
                if (rows[i].writer->write(key_line)) {
                    if (!rows[i].finish_node(true)) return corrupt("B+Tree page overflowed");
                } else {
                    new_row = false;
                    break;
                }
            }
            if (new_row) {
                rows.insert(rows.begin(), Row{});
                ChunkWriter& w = open(rows[0], kBTreePageSize - kReservedHeaderBytes);
                w.write(kInternalFlag);
                w.write("offset=" + std::to_string(rows[1].nodes - 1) + "\n");
                w.write(key_line);
            }
        }
        return corrupt("B+Tree key line too big for a page");
    }
};

// Breezy's _check_key: elements are non-empty and hold no whitespace or NUL.
bool valid_key(std::string_view key, size_t elements) {
    size_t n = 1;
    if (key.empty() || key.front() == '\0' || key.back() == '\0') return false;
    for (size_t i = 0; i < key.size(); ++i) {  // bounded: the key's bytes
        char c = key[i];
        if (c == '\0') {
            if (key[i - 1] == '\0') return false;  // an empty element
            ++n;
        } else if (c == '\t' || c == '\n' || c == '\x0b' || c == '\x0c' || c == '\r' || c == ' ') {
            return false;
        }
    }
    return n == elements;
}

}  // namespace

Result<std::string> write_btree(const BTreeWriterOptions& options, std::vector<BTreeNode> nodes) {
    for (const BTreeNode& n : nodes) {  // bounded: the caller's nodes
        if (!valid_key(n.key, options.key_elements)) return corrupt("bad B+Tree key");
        if (n.value.find_first_of(std::string_view("\n\0", 2)) != std::string::npos)
            return corrupt("B+Tree value holds a newline or NUL");
        if (n.refs.size() != options.ref_lists) return corrupt("wrong number of B+Tree reference lists");
        for (const auto& list : n.refs)  // bounded: the node's reference lists
            for (const auto& ref : list)  // bounded: one list's references
                if (!valid_key(ref, options.key_elements)) return corrupt("bad B+Tree reference key");
    }
    std::sort(nodes.begin(), nodes.end(), [](const BTreeNode& a, const BTreeNode& b) { return a.key < b.key; });
    for (size_t i = 1; i < nodes.size(); ++i)  // bounded: the nodes
        if (nodes[i - 1].key == nodes[i].key) return corrupt("duplicate B+Tree key");

    Builder b{options.optimize_for_size, {}};
    std::string line;
    for (const BTreeNode& n : nodes) {  // bounded: the nodes
        if (b.rows.empty()) {
            b.rows.emplace_back();
            b.rows.back().leaf = true;
        }
        // _flatten_node: key \0 refs \0 value \n
        line.assign(n.key);
        line += '\0';
        for (size_t l = 0; l < n.refs.size(); ++l) {  // bounded: ref_lists lists
            if (l) line += '\t';
            for (size_t r = 0; r < n.refs[l].size(); ++r) {  // bounded: one list's references
                if (r) line += '\r';
                line += n.refs[l][r];
            }
        }
        line += '\0';
        line += n.value;
        line += '\n';
        if (auto st = b.add_key(n.key, line); !st) return st.err();
    }
    for (size_t i = b.rows.size(); i-- > 0;)  // bounded: the rows
        if (!b.rows[i].finish_node(!b.rows[i].leaf)) return corrupt("B+Tree page overflowed");

    std::string out(kBTreeSignature);
    out += "node_ref_lists=" + std::to_string(options.ref_lists) + "\n";
    out += "key_elements=" + std::to_string(options.key_elements) + "\n";
    out += "len=" + std::to_string(nodes.size()) + "\n";
    out += "row_lengths=";
    for (size_t i = 0; i < b.rows.size(); ++i) {  // bounded: the rows
        if (i) out += ',';
        out += std::to_string(b.rows[i].nodes);
    }
    out += '\n';
    size_t position = out.size();
    if (position > kReservedHeaderBytes) return corrupt("B+Tree header does not fit its reserved space");
    for (const Row& row : b.rows) {  // bounded: the rows
        std::string_view spool = row.spool;
        std::string_view first = spool.substr(0, kBTreePageSize);
        out += first.substr(kReservedHeaderBytes);
        if (first.size() == kBTreePageSize) out.append(kReservedHeaderBytes - position, '\0');
        position = 0;  // only the root row shares its page with the header
        out += spool.substr(first.size());
    }
    return out;
}

}  // namespace souk::server::bzr
