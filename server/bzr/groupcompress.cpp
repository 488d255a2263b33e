// Groupcompress blocks (docs/formats/groupcompress.md): header, prefix
// inflation, entry extraction, delta application, and a fulltext-only writer.
#include "server/bzr/groupcompress.hpp"
#include "server/base/strings.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace souk::server::bzr::gc {
namespace {

constexpr std::string_view kZlibBlock = "gcb1z\n";
constexpr std::string_view kLzmaBlock = "gcb1l\n";
// Breezy looks for each length's newline within 14 bytes (_parse_bytes).
constexpr size_t kMaxLengthField = 14;
// Breezy reads an entry's length from at most 5 bytes (content[start+1:start+6]).
constexpr size_t kEntryLengthBytes = 5;
// A delta's target length: up to 10 base128 bytes.
constexpr size_t kDeltaLengthBytes = 10;
// Most output one inflate() call may produce (fits zlib's uInt).
constexpr size_t kInflateStep = size_t{1} << 30;

z_stream* zs_of(void* p) { return static_cast<z_stream*>(p); }

// The thread's reusable inflate state (PrefixInflater).
struct ThreadInflater {
    z_stream zs{};
    bool ready = false;
    bool busy = false;
    ~ThreadInflater() {
        if (ready) inflateEnd(&zs);
    }
};
thread_local ThreadInflater t_inflater;

}  // namespace

void encode_base128(uint64_t value, std::string& out) {
    while (value >= 0x80) {  // bounded: 7 bits consumed per pass, at most 10 passes
        out += static_cast<char>((value & 0x7f) | 0x80);
        value >>= 7;
    }
    out += static_cast<char>(value);
}

bool decode_base128(std::string_view s, size_t& pos, size_t max_bytes, uint64_t& value) {
    value = 0;
    for (size_t i = 0, shift = 0; i < max_bytes; ++i, shift += 7) {  // bounded: max_bytes
        if (pos >= s.size()) return false;
        auto b = static_cast<unsigned char>(s[pos++]);
        uint64_t part = b & 0x7f;
        if (shift > 63 || (shift == 63 && part > 1)) return false;
        value |= part << shift;
        if (!(b & 0x80)) return true;
    }
    return false;
}

Result<BlockHeader> parse_block_header(std::string_view bytes) {
    std::string_view magic = bytes.substr(0, kZlibBlock.size());
    if (magic == kLzmaBlock) return Error{Errc::Unsupported, 0, "lzma-compressed groupcompress blocks are not supported"};
    if (magic != kZlibBlock) return corrupt("not a groupcompress block (no gcb1z header)");
    BlockHeader h;
    size_t pos = kZlibBlock.size();
    uint64_t* fields[] = {&h.z_length, &h.content_length};
    for (uint64_t* f : fields) {  // bounded: two fields
        size_t nl = bytes.substr(pos, kMaxLengthField).find('\n');
        if (nl == std::string_view::npos || !parse_u64(bytes.substr(pos, nl), *f))
            return corrupt("bad groupcompress block header");
        pos += nl + 1;
    }
    h.header_size = pos;
    return h;
}

PrefixInflater::PrefixInflater(size_t want) : want_(want) {}

PrefixInflater::PrefixInflater(PrefixInflater&& o) noexcept
    : zs_(o.zs_), shared_(o.shared_), want_(o.want_), out_(std::move(o.out_)), ended_(o.ended_) {
    o.zs_ = nullptr;
}

PrefixInflater::~PrefixInflater() {
    if (!zs_) return;
    if (shared_) {
        t_inflater.busy = false;
        return;
    }
    inflateEnd(zs_of(zs_));
    delete zs_of(zs_);
}

Result<PrefixInflater> PrefixInflater::make(size_t want, size_t max_content) {
    if (want > max_content)
        return limit_exceeded("groupcompress block content of " + std::to_string(want) + " bytes exceeds the limit of " +
                              std::to_string(max_content) + " bytes");
    PrefixInflater p(want);
    if (!t_inflater.busy) {
        ThreadInflater& t = t_inflater;
        if (!t.ready) {
            if (inflateInit(&t.zs) != Z_OK) return Error{Errc::Io, 12 /* ENOMEM */, "zlib initialisation failed"};
            t.ready = true;
        } else if (inflateReset(&t.zs) != Z_OK) {
            return corrupt("zlib reset failed");
        }
        t.busy = true;
        p.zs_ = &t.zs;
        p.shared_ = true;
    } else {
        auto zs = std::make_unique<z_stream>();
        *zs = z_stream{};
        if (inflateInit(zs.get()) != Z_OK) return Error{Errc::Io, 12 /* ENOMEM */, "zlib initialisation failed"};
        p.zs_ = zs.release();
    }
    p.out_.reserve(want);
    return p;
}

Status PrefixInflater::feed(std::string_view z, bool last) {
    z_stream* zs = zs_of(zs_);
    zs->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(z.data()));
    zs->avail_in = static_cast<uInt>(std::min<size_t>(z.size(), kInflateStep));
    size_t fed = zs->avail_in;
    // bounded: every pass produces output towards want_ or consumes input
    // (Z_BUF_ERROR with no input left ends it); output is capped at want_.
    while (!done() && !ended_) {
        if (zs->avail_in == 0) {
            if (fed == z.size()) break;
            size_t n = std::min<size_t>(z.size() - fed, kInflateStep);
            zs->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(z.data() + fed));
            zs->avail_in = static_cast<uInt>(n);
            fed += n;
        }
        size_t have = out_.size();
        size_t room = std::min(want_ - have, kInflateStep);
        out_.resize(have + room);
        zs->next_out = reinterpret_cast<Bytef*>(out_.data() + have);
        zs->avail_out = static_cast<uInt>(room);
        int rc = inflate(zs, last && fed == z.size() ? Z_FINISH : Z_NO_FLUSH);
        out_.resize(have + room - zs->avail_out);
        if (Status st = charge_inflated(out_.size() - have); !st) return st;
        if (rc == Z_STREAM_END) {
            ended_ = true;
            break;
        }
        // Z_BUF_ERROR: output full (the prefix is complete; Z_FINISH says so
        // rather than Z_OK), or more input needed.
        if (rc == Z_BUF_ERROR && (done() || zs->avail_in == 0)) continue;
        if (rc != Z_OK) return corrupt("corrupt zlib data in groupcompress block");
    }
    if (ended_ && !done()) return corrupt("groupcompress block is shorter than its index entry says");
    return Ok{};
}

Result<std::string> block_content(std::string_view block, size_t want, const Limits& limits) {
    auto h = parse_block_header(block);
    if (!h) return h.err();
    if (h->z_length != block.size() - h->header_size) return corrupt("groupcompress block length mismatch");
    if (want == std::string_view::npos) {
        if (h->content_length > limits.max_content)
            return limit_exceeded("groupcompress block content of " + std::to_string(h->content_length) +
                                  " bytes exceeds the limit of " + std::to_string(limits.max_content) + " bytes");
        want = static_cast<size_t>(h->content_length);
    } else if (want > h->content_length) {
        return corrupt("record lies beyond the end of its groupcompress block");
    }
    auto inf = PrefixInflater::make(want, limits.max_content);
    if (!inf) return inf.err();
    if (want == 0) return std::string();
    if (Status st = inf->feed(block.substr(h->header_size), true); !st) return st.err();
    if (!inf->done()) return corrupt("groupcompress block is shorter than its header says");
    return inf->take();
}

Result<std::string> read_block_prefix(Store& store, OpenFile& pack, uint64_t record_offset, uint64_t record_length,
                                      size_t want, const Limits& limits) {
    if (record_length == 0 || record_offset > pack.info.size || record_length > pack.info.size - record_offset)
        return corrupt("index entry points beyond the end of the pack");
    if (want > limits.max_content)
        return limit_exceeded("groupcompress block content of " + std::to_string(want) + " bytes exceeds the limit of " +
                              std::to_string(limits.max_content) + " bytes");
    std::string head(static_cast<size_t>(std::min<uint64_t>(record_length, limits.max_header)), '\0');
    const ssize_t got = store.read_full(pack, head.data(), head.size(), record_offset);
    if (got < 0) return io_error(static_cast<int>(-got), "cannot read pack");
    if (static_cast<size_t>(got) < head.size()) return corrupt("pack is truncated");
    if (head.front() != 'B') return corrupt("no pack record at the indexed offset");
    auto rec = parse_record_header(head);
    if (!rec) return rec.err();
    if (rec->length != record_length - rec->header_size) return corrupt("pack record length does not match its index entry");
    std::string_view gcb = std::string_view(head).substr(rec->header_size);
    auto h = parse_block_header(gcb);
    if (!h) return h.err();
    if (h->z_length != rec->length - h->header_size) return corrupt("groupcompress block length mismatch");
    if (want > h->content_length) return corrupt("record lies beyond the end of its groupcompress block");
    auto inf = PrefixInflater::make(want, limits.max_content);
    if (!inf) return inf.err();
    if (want == 0) return std::string();
    // The compressed bytes already in `head`, then the rest chunk by chunk.
    uint64_t z_offset = record_offset + rec->header_size + h->header_size;
    uint64_t z_end = z_offset + h->z_length;
    uint64_t pos = record_offset + head.size();
    if (Status st = inf->feed(gcb.substr(h->header_size), pos >= z_end); !st) return st.err();
    std::string buf(static_cast<size_t>(std::max<uint64_t>(1, std::min<uint64_t>(limits.read_chunk, h->z_length))), '\0');
    // bounded: pos advances by at least one byte per pass up to z_end.
    while (!inf->done() && !inf->stream_ended() && pos < z_end) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(z_end - pos, buf.size()));
        ssize_t r = store.pread(pack, buf.data(), n, pos);
        if (r < 0) return io_error(static_cast<int>(-r), "cannot read pack");
        if (r == 0) return corrupt("pack is truncated");
        pos += static_cast<uint64_t>(r);
        if (Status st = inf->feed(std::string_view(buf.data(), static_cast<size_t>(r)), pos >= z_end); !st)
            return st.err();
    }
    if (!inf->done()) return corrupt("groupcompress block is shorter than its index entry says");
    return inf->take();
}

Status apply_delta(std::string_view source, std::string_view delta, std::string& out, size_t max_out) {
    out.clear();
    size_t pos = 0;
    uint64_t target = 0;
    if (!decode_base128(delta, pos, kDeltaLengthBytes, target)) return corrupt("bad delta target length");
    if (target > max_out)
        return limit_exceeded("delta target of " + std::to_string(target) + " bytes exceeds the limit of " +
                              std::to_string(max_out) + " bytes");
    out.reserve(static_cast<size_t>(target));
    // bounded: every instruction consumes at least one delta byte.
    while (pos < delta.size()) {
        auto cmd = static_cast<unsigned char>(delta[pos++]);
        if (cmd & 0x80) {
            // A page rebuilt from its block is mostly copies of a line or
            // two each: the argument bytes are read without a loop.
            const auto args = static_cast<size_t>(__builtin_popcount(cmd & 0x7fu));
            if (args > delta.size() - pos) return corrupt("truncated delta copy instruction");
            const auto* b = reinterpret_cast<const unsigned char*>(delta.data() + pos);
            pos += args;
            uint64_t offset = 0, length = 0;
            if (cmd & 0x01) offset = *b++;
            if (cmd & 0x02) offset |= uint64_t{*b++} << 8;
            if (cmd & 0x04) offset |= uint64_t{*b++} << 16;
            if (cmd & 0x08) offset |= uint64_t{*b++} << 24;
            if (cmd & 0x10) length = *b++;
            if (cmd & 0x20) length |= uint64_t{*b++} << 8;
            if (cmd & 0x40) length |= uint64_t{*b++} << 16;
            if (length == 0) length = 0x10000;
            if (offset > source.size() || length > source.size() - offset)
                return corrupt("delta copies bytes past the end of its source");
            if (length > target - out.size()) return corrupt("delta output exceeds its target length");
            out.append(source.data() + offset, static_cast<size_t>(length));
        } else {
            if (cmd == 0) return corrupt("delta instruction 0 is not supported");
            if (cmd > delta.size() - pos) return corrupt("truncated delta insert");
            if (cmd > target - out.size()) return corrupt("delta output exceeds its target length");
            out.append(delta.substr(pos, cmd));
            pos += cmd;
        }
    }
    if (out.size() != target) return corrupt("delta output is shorter than its target length");
    return Ok{};
}

Result<std::string_view> extract_text_view(std::string_view content, uint64_t start, uint64_t end, std::string& scratch,
                                           const Limits& limits, EntryKind* kind) {
    if (kind) *kind = EntryKind::Empty;
    if (start == 0 && end == 0) return std::string_view();
    if (start >= end || end > content.size()) return corrupt("record lies outside its groupcompress block");
    size_t pos = static_cast<size_t>(start) + 1;
    uint64_t len = 0;
    std::string_view upto_end = content.substr(0, static_cast<size_t>(end));
    if (!decode_base128(upto_end, pos, kEntryLengthBytes, len)) return corrupt("bad groupcompress record length");
    if (len != end - pos) return corrupt("groupcompress record length does not match its index entry");
    std::string_view body = content.substr(pos, static_cast<size_t>(len));
    char k = content[static_cast<size_t>(start)];
    if (k == 'f') {
        if (body.size() > limits.max_text)
            return limit_exceeded("text of " + std::to_string(body.size()) + " bytes exceeds the limit of " +
                                  std::to_string(limits.max_text) + " bytes");
        if (kind) *kind = EntryKind::Fulltext;
        return body;
    }
    if (k != 'd') return corrupt("unknown record kind in groupcompress block");
    if (kind) *kind = EntryKind::Delta;
    // The compressor only ever copies from content before the entry.
    if (Status st = apply_delta(content.substr(0, static_cast<size_t>(start)), body, scratch, limits.max_text); !st)
        return st.err();
    return std::string_view(scratch);
}

Result<std::string> extract_text(std::string_view content, uint64_t start, uint64_t end, const Limits& limits,
                                 EntryKind* kind) {
    std::string out;
    auto v = extract_text_view(content, start, end, out, limits, kind);
    if (!v) return v.err();
    if (v->data() != out.data()) out.assign(*v);
    return out;
}

Result<std::pair<uint64_t, uint64_t>> BlockWriter::append_entry(char kind, std::string_view body) {
    char head[1 + kEntryLengthBytes];
    std::string len;
    encode_base128(body.size(), len);
    head[0] = kind;
    std::memcpy(head + 1, len.data(), len.size());
    const size_t head_size = 1 + len.size();
    if (head_size + body.size() > max_content_ - std::min(max_content_, content_.size()))
        return limit_exceeded("groupcompress block would exceed " + std::to_string(max_content_) + " bytes");
    uint64_t start = content_.size();
    content_.append(head, head_size);
    content_ += body;
    return std::pair<uint64_t, uint64_t>{start, content_.size()};
}

Result<std::pair<uint64_t, uint64_t>> BlockWriter::add_fulltext(std::string_view text) {
    if (text.empty()) return std::pair<uint64_t, uint64_t>{0, 0};
    auto at = append_entry('f', text);
    if (at && indexing_) index_lines(content_.size() - text.size(), content_.size(), true);
    return at;
}

namespace {

// A copy instruction: 0x80 | which offset bytes (bits 0-3) and length
// bytes (bits 4-6) follow, little-endian, zero bytes left out; a length of
// 0x10000 has no length bytes.
void append_copy(std::string& out, uint64_t offset, size_t length) {
    char ins[8];
    size_t n = 1;
    unsigned cmd = 0x80;
    for (unsigned b = 0; b < 4; ++b)
        if (auto v = static_cast<uint8_t>(offset >> (8 * b))) cmd |= 1u << b, ins[n++] = static_cast<char>(v);
    if (length != 0x10000)
        for (unsigned b = 0; b < 3; ++b)
            if (auto v = static_cast<uint8_t>(length >> (8 * b))) cmd |= 0x10u << b, ins[n++] = static_cast<char>(v);
    ins[0] = static_cast<char>(cmd);
    out.append(ins, n);
}

}  // namespace

void BlockWriter::index_lines(size_t begin, size_t end, bool line_start) {
    if (end > UINT32_MAX) return;  // offsets are kept in 32 bits; such a block is past every limit anyway
    const char* c = content_.data();
    size_t s = begin;
    if (!line_start) {
        const void* nl = std::memchr(c + s, '\n', end - s);
        if (!nl) return;
        s = static_cast<size_t>(static_cast<const char*>(nl) - c) + 1;
    }
    while (s < end) {  // bounded: s advances by at least one byte
        const void* nl = std::memchr(c + s, '\n', end - s);
        size_t e = nl ? static_cast<size_t>(static_cast<const char*>(nl) - c) + 1 : end;
        Candidates& k = lines_[std::hash<std::string_view>{}(std::string_view(c + s, e - s))];
        k.at[k.next] = static_cast<uint32_t>(s);
        k.next = static_cast<uint8_t>((k.next + 1) % kCandidates);
        if (k.n < kCandidates) ++k.n;
        s = e;
    }
}

std::pair<size_t, size_t> BlockWriter::longest_match(std::string_view text, size_t pos, size_t line_end) const {
    auto it = lines_.find(std::hash<std::string_view>{}(text.substr(pos, line_end - pos)));
    if (it == lines_.end()) return {0, 0};
    size_t best_at = 0, best = 0;
    for (uint8_t i = 0; i < it->second.n; ++i) {  // bounded: kCandidates
        size_t at = it->second.at[i];
        size_t most = std::min(content_.size() - at, text.size() - pos);
        size_t n = 0;
        // bounded: most bytes; 8 at a time while they agree
        while (n + 8 <= most && std::memcmp(content_.data() + at + n, text.data() + pos + n, 8) == 0) n += 8;
        while (n < most && content_[at + n] == text[pos + n]) ++n;
        if (n > best) best = n, best_at = at;
    }
    return {best_at, best};
}

void BlockWriter::flush_insert(std::string_view text, size_t begin, size_t end) {
    size_t i = begin;
    while (i < end) {  // bounded: each piece takes at least one byte
        // Whole lines up to 127 bytes a piece, so each stays indexable; a
        // longer line goes in 127-byte slices.
        size_t j = i;
        while (j < end) {  // bounded: j advances by a line
            const void* nl = std::memchr(text.data() + j, '\n', end - j);
            size_t e = nl ? static_cast<size_t>(static_cast<const char*>(nl) - text.data()) + 1 : end;
            if (e - i > 127) break;
            j = e;
        }
        if (j == i) j = std::min(i + 127, end);
        delta_.push_back(static_cast<char>(j - i));
        literal_.push_back(Literal{delta_.size(), j - i, i == 0 || text[i - 1] == '\n'});
        delta_.append(text.substr(i, j - i));
        i = j;
    }
}

Result<std::pair<uint64_t, uint64_t>> BlockWriter::add_text(std::string_view text) {
    if (text.empty()) return std::pair<uint64_t, uint64_t>{0, 0};
    if (!indexing_) {
        // The first text: a fulltext, and the start of the index.
        indexing_ = true;
        return add_fulltext(text);
    }
    delta_.clear();
    literal_.clear();
    encode_base128(text.size(), delta_);
    const size_t max_delta = text.size() / 2;
    size_t pos = 0, lit = 0;
    // bounded: pos advances by a match or a line; the loop also ends once
    // the delta is past the size worth keeping
    while (pos < text.size() && delta_.size() <= max_delta) {
        const void* nl = std::memchr(text.data() + pos, '\n', text.size() - pos);
        size_t line_end = nl ? static_cast<size_t>(static_cast<const char*>(nl) - text.data()) + 1 : text.size();
        auto [from, n] = longest_match(text, pos, line_end);
        if (n < kMinCopy) {
            pos = line_end;
            continue;
        }
        flush_insert(text, lit, pos);
        for (size_t done = 0; done < n;) {  // bounded: 64 KiB a copy
            size_t len = std::min<size_t>(n - done, 0x10000);
            append_copy(delta_, from + done, len);
            done += len;
        }
        pos += n;
        lit = pos;
    }
    if (delta_.size() <= max_delta) flush_insert(text, lit, text.size());
    if (delta_.size() > max_delta) return add_fulltext(text);
    auto at = append_entry('d', delta_);
    if (!at) return at;
    const size_t base = content_.size() - delta_.size();
    for (const Literal& l : literal_) index_lines(base + l.at, base + l.at + l.size, l.line_start);  // bounded: the runs
    return at;
}

Result<std::string> BlockWriter::finish(int level) const {
    if (content_.size() > kInflateStep) return limit_exceeded("groupcompress block too large to compress in one pass");
    uLong bound = compressBound(static_cast<uLong>(content_.size()));
    std::string z(bound, '\0');
    z_stream zs{};
    if (deflateInit(&zs, level) != Z_OK) return Error{Errc::Io, 12 /* ENOMEM */, "zlib initialisation failed"};
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(content_.data()));
    zs.avail_in = static_cast<uInt>(content_.size());
    zs.next_out = reinterpret_cast<Bytef*>(z.data());
    zs.avail_out = static_cast<uInt>(z.size());
    int rc = deflate(&zs, Z_FINISH);
    size_t produced = z.size() - zs.avail_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) return corrupt("zlib compression of a groupcompress block failed");
    z.resize(produced);
    std::string out(kZlibBlock);
    out += std::to_string(z.size()) + "\n" + std::to_string(content_.size()) + "\n";
    out += z;
    return out;
}

}  // namespace souk::server::bzr::gc
