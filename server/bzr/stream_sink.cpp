#include "server/bzr/stream_sink.hpp"

#include <zlib.h>

#include <algorithm>

#include "protocol/bencode.hpp"
#include "server/base/strings.hpp"
#include "server/bzr/chk.hpp"
#include "server/bzr/groupcompress.hpp"

namespace souk::server::bzr {
namespace {

constexpr size_t kInflateWindow = 64 * 1024;
constexpr size_t kMaxNumberLine = 20;  // a decimal length: at most 20 digits

// Breezy's substream names (StreamSink.insert_stream_without_locking).
Result<Substream> substream_of(std::string_view name) {
    if (name == "revisions") return Substream::Revisions;
    if (name == "inventories") return Substream::Inventories;
    if (name == "texts") return Substream::Texts;
    if (name == "signatures") return Substream::Signatures;
    if (name == "chk_bytes") return Substream::Chk;
    if (name == "inventory-deltas")
        return Error{Errc::Unsupported, 0, "inventory-deltas substreams (a push from another repository format) are not supported"};
    return corrupt("unknown substream '" + printable(name, 60) + "'");
}

size_t key_width(Substream k) { return k == Substream::Texts ? 2 : 1; }

// A key element as Breezy's indices accept it: not empty, no whitespace.
bool valid_element(std::string_view e) {
    if (e.empty() || e.size() > 64 * 1024) return false;
    for (char c : e)  // bounded: the element's bytes
        if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == '\0') return false;
    return true;
}

// A joined key of `width` valid elements ('\0' between them).
Status check_key(std::string_view joined, size_t width, Substream kind) {
    auto parts = split(joined, '\0');
    bool ok = parts.size() == width;
    for (auto p : parts) ok = ok && valid_element(p);  // bounded: width parts
    if (ok && kind == Substream::Chk) ok = chk::valid_page_key(joined);
    if (!ok) return corrupt("invalid key '" + printable(joined, 120) + "' in a " + std::string(index_suffix(kind)) + " substream");
    return Status(Ok{});
}

// Inflate exactly `want` bytes from a whole zlib stream.
Result<std::string> inflate_exact(std::string_view z, size_t want) {
    z_stream zs{};
    if (inflateInit(&zs) != Z_OK) return corrupt("zlib init failed");
    std::string out(want + 1, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(z.data()));
    zs.avail_in = static_cast<uInt>(z.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    int r = inflate(&zs, Z_FINISH);
    size_t got = out.size() - zs.avail_out;
    bool rest = zs.avail_in != 0;
    inflateEnd(&zs);
    if (r != Z_STREAM_END || rest) return corrupt("block key header is not one complete zlib stream");
    if (got != want) return corrupt("invalid length for decompressed bytes");
    out.resize(want);
    return out;
}

// Checks a groupcompress block ("gcb1z\n<C>\n<N>\n" + zlib) as it streams
// by, holding only a window: the framing, that the zlib data inflates to
// exactly N bytes and ends with the block, and that each entry a key
// addresses starts with 'f' or 'd' and a length that ends it exactly there.
class BlockCheck {
public:
    ~BlockCheck() {
        if (zinit_) inflateEnd(&zs_);
    }
    void init(uint64_t total, size_t max_content, std::vector<std::pair<uint64_t, uint64_t>> entries) {
        total_ = total;
        max_content_ = max_content;
        entries_ = std::move(entries);
        std::sort(entries_.begin(), entries_.end());
    }
    Status feed(std::string_view in) {
        fed_ += in.size();
        if (fed_ > total_) return corrupt("block longer than announced");
        if (state_ == State::Prefix) {
            // bounded: the prefix is at most 6 + 2 * 21 bytes
            while (!in.empty() && state_ == State::Prefix) {
                prefix_ += in.front();
                in.remove_prefix(1);
                if (Status st = parse_prefix(); !st) return st;
            }
        }
        if (state_ == State::Zlib && !in.empty()) return inflate_some(in);
        return Status(Ok{});
    }
    Status finish() {
        if (state_ != State::Zlib || !ended_ || fed_ != total_) return corrupt("groupcompress block is truncated");
        if (out_pos_ != content_) return corrupt("groupcompress block content is shorter than its header says");
        for (auto& p : active_)  // bounded: the pending probes
            if (Status st = check_entry(p); !st) return st;
        if (next_ != entries_.size()) return corrupt("a key addresses bytes beyond the block's content");
        return Status(Ok{});
    }

private:
    enum class State : uint8_t { Prefix, Zlib };
    struct Probe {
        uint64_t start = 0, end = 0;
        std::string bytes;
    };

    Status parse_prefix() {
        if (prefix_.size() == 6 && prefix_ != "gcb1z\n") {
            if (prefix_ == "gcb1l\n") return Error{Errc::Unsupported, 0, "lzma groupcompress blocks are not supported"};
            return corrupt("block does not start with gcb1z");
        }
        if (prefix_.size() > 6 + 2 * (kMaxNumberLine + 1)) return corrupt("bad groupcompress block header");
        if (prefix_.size() <= 6 || prefix_.back() != '\n') return Status(Ok{});
        auto lines = split(std::string_view(prefix_).substr(6), '\n');
        if (lines.size() < 3) return Status(Ok{});
        uint64_t c = 0, n = 0;
        if (!parse_u64(lines[0], c) || !parse_u64(lines[1], n)) return corrupt("bad groupcompress block lengths");
        if (prefix_.size() + c != total_) return corrupt("groupcompress block length mismatch");
        if (n > max_content_)
            return limit_exceeded("groupcompress block content of " + std::to_string(n) + " bytes exceeds the limit of " +
                                  std::to_string(max_content_) + " bytes");
        content_ = n;
        if (!entries_.empty() && entries_.back().second > n) {
            for (const auto& e : entries_)  // bounded: the block's keys
                if (e.second > n) return corrupt("a key addresses bytes beyond the block's content");
        }
        if (inflateInit(&zs_) != Z_OK) return corrupt("zlib init failed");
        zinit_ = true;
        window_.resize(kInflateWindow);
        state_ = State::Zlib;
        return Status(Ok{});
    }

    Status inflate_some(std::string_view in) {
        if (ended_) return corrupt("bytes after the block's zlib stream");
        zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
        zs_.avail_in = static_cast<uInt>(in.size());
        for (;;) {  // bounded: each pass consumes input or produces output, else stops
            zs_.next_out = reinterpret_cast<Bytef*>(window_.data());
            zs_.avail_out = static_cast<uInt>(window_.size());
            uInt before_in = zs_.avail_in;
            int r = inflate(&zs_, Z_NO_FLUSH);
            size_t produced = window_.size() - zs_.avail_out;
            if (r != Z_OK && r != Z_STREAM_END && !(r == Z_BUF_ERROR && produced == 0))
                return corrupt("bad zlib data in a groupcompress block");
            if (produced) {
                if (out_pos_ + produced > content_) return corrupt("groupcompress block content is longer than its header says");
                if (Status st = on_output(std::string_view(window_.data(), produced)); !st) return st;
            }
            if (r == Z_STREAM_END) {
                ended_ = true;
                if (zs_.avail_in) return corrupt("bytes after the block's zlib stream");
                return Status(Ok{});
            }
            if (zs_.avail_in == 0 && zs_.avail_out != 0) return Status(Ok{});
            if (produced == 0 && zs_.avail_in == before_in) return corrupt("bad zlib data in a groupcompress block");
        }
    }

    Status on_output(std::string_view out) {
        const uint64_t lo = out_pos_, hi = out_pos_ + out.size();
        // bounded: each entry is started once
        while (next_ < entries_.size() && entries_[next_].first < hi) {
            if (entries_[next_].first < lo) return corrupt("overlapping entries in a groupcompress block");
            active_.push_back(Probe{entries_[next_].first, entries_[next_].second, {}});
            ++next_;
        }
        for (size_t i = 0; i < active_.size();) {  // bounded: the pending probes
            Probe& p = active_[i];
            const uint64_t want_end = std::min(p.start + 11, p.end);
            const uint64_t from = std::max(lo, p.start + p.bytes.size());
            if (from < hi && from < want_end)
                p.bytes.append(out.substr(static_cast<size_t>(from - lo), static_cast<size_t>(std::min(hi, want_end) - from)));
            if (p.start + p.bytes.size() >= want_end) {
                if (Status st = check_entry(p); !st) return st;
                active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(i));
            } else {
                ++i;
            }
        }
        out_pos_ = hi;
        return Status(Ok{});
    }

    static Status check_entry(const Probe& p) {
        if (p.bytes.empty() || (p.bytes[0] != 'f' && p.bytes[0] != 'd'))
            return corrupt("a key does not address an entry of its groupcompress block");
        size_t pos = 1;
        uint64_t n = 0;
        if (!gc::decode_base128(p.bytes, pos, 10, n) || p.start + pos + n != p.end)
            return corrupt("end != len according to field header in a groupcompress block");
        return Status(Ok{});
    }

    State state_ = State::Prefix;
    std::string prefix_, window_;
    uint64_t total_ = 0, fed_ = 0, content_ = 0, out_pos_ = 0;
    size_t max_content_ = 0;
    z_stream zs_{};
    bool zinit_ = false, ended_ = false;
    std::vector<std::pair<uint64_t, uint64_t>> entries_;
    size_t next_ = 0;
    std::vector<Probe> active_;
};

// The joined parents of a block header's parents line.
Result<std::vector<std::string>> parse_parents(std::string_view line, Substream kind) {
    std::vector<std::string> out;
    if (line == "None:") return out;
    for (auto seg : split(line, '\t')) {  // bounded: the line's segments
        if (seg.empty()) continue;
        if (Status st = check_key(seg, key_width(kind), kind == Substream::Chk ? Substream::Revisions : kind); !st)
            return st.err();
        out.emplace_back(seg);
    }
    return out;
}

}  // namespace

struct StreamSink::Record {
    enum class State : uint8_t { Format, Kind, Lengths, ZHeader, Block, Fulltext };
    State state = State::Kind;
    Substream sub = Substream::Revisions;
    uint64_t length = 0, seen = 0;
    std::string line;
    std::vector<uint64_t> nums;
    uint64_t z = 0, h = 0, l = 0;
    std::string zheader;
    struct Key {
        std::string key;
        std::vector<std::string> parents;
        uint64_t start = 0, end = 0;
    };
    std::vector<Key> keys;
    BlockCheck check;
    uint64_t offset = 0, size = 0;
    std::string fulltext;
};

StreamSink::StreamSink(Store& store, std::string repo, std::string format, std::vector<std::string> resume_tokens,
                       std::string lock_token, const InsertLimits& limits)
    : store_(store),
      repo_(std::move(repo)),
      format_(std::move(format)),
      lock_token_(std::move(lock_token)),
      tokens_(std::move(resume_tokens)),
      limits_(limits),
      reader_([&] {
          ContainerLimits c = limits.container;
          c.strict_end = false;  // Breezy's ContainerPushParser ignores bytes after "E"
          c.max_names = 1;
          c.max_name_elements = 1;
          return c;
      }()) {}

StreamSink::~StreamSink() = default;

void StreamSink::fail(InsertOutcome::Stage stage, Error e) {
    if (failed_) return;
    failed_ = true;
    outcome_.kind = InsertOutcome::Kind::Failed;
    outcome_.stage = stage;
    outcome_.error = std::move(e);
    rec_.reset();
    group_.reset();  // removes its upload/ file
}

Status StreamSink::prepare() {
    if (tokens_.empty() || group_) return Status(Ok{});
    auto g = WriteGroup::start(store_, repo_, tokens_, limits_.group);
    if (!g) {
        fail(InsertOutcome::Stage::Resume, g.err());
        return g.err();
    }
    group_ = std::move(g).value();
    return Status(Ok{});
}

Status StreamSink::ensure_group() {
    if (group_) return Status(Ok{});
    auto g = WriteGroup::start(store_, repo_, tokens_, limits_.group);
    if (!g) return g.err();
    group_ = std::move(g).value();
    return Status(Ok{});
}

void StreamSink::write(std::string_view chunk) {
    if (failed_) return;
    if (Status st = on_bytes(chunk); !st) fail(InsertOutcome::Stage::Stream, st.err());
}

Status StreamSink::on_bytes(std::string_view in) {
    for (;;) {  // bounded: each event consumes input, or the loop returns
        auto ev = reader_.next(in);
        if (!ev) return ev.err();
        switch (*ev) {
        case ContainerReader::Event::NeedMore: return Status(Ok{});
        case ContainerReader::Event::End: return Status(Ok{});
        case ContainerReader::Event::Begin:
            if (Status st = begin_record(); !st) return st;
            break;
        case ContainerReader::Event::Data:
            if (Status st = record_bytes(reader_.data()); !st) return st;
            break;
        case ContainerReader::Event::RecordEnd:
            if (Status st = end_record(); !st) return st;
            break;
        }
    }
}

Status StreamSink::begin_record() {
    ++records_;
    rec_ = std::make_unique<Record>();
    rec_->length = reader_.length();
    const auto& names = reader_.names();
    if (!have_format_) {
        if (!names.empty()) return corrupt("the stream does not start with a format record");
        if (rec_->length > limits_.max_format) return corrupt("format record too long");
        rec_->state = Record::State::Format;
        return Status(Ok{});
    }
    if (names.size() != 1 || names[0].size() != 1) return corrupt("a stream record must have one one-element name");
    auto sub = substream_of(names[0][0]);
    if (!sub) return sub.err();
    rec_->sub = *sub;
    return Status(Ok{});
}

Status StreamSink::record_bytes(std::string_view data) {
    Record& r = *rec_;
    r.seen += data.size();
    // bounded: each pass consumes bytes of `data` or moves to a state that takes them all
    while (!data.empty()) {
        switch (r.state) {
        case Record::State::Format:
            format_seen_.append(data);
            return Status(Ok{});
        case Record::State::Kind:
        case Record::State::Lengths: {
            size_t nl = data.find('\n');
            size_t take = nl == std::string_view::npos ? data.size() : nl;
            if (r.line.size() + take > (r.state == Record::State::Kind ? 32 : kMaxNumberLine))
                return corrupt(r.state == Record::State::Kind ? "unknown record kind" : "bad block record lengths");
            r.line.append(data.substr(0, take));
            if (nl == std::string_view::npos) return Status(Ok{});
            data.remove_prefix(nl + 1);
            if (r.state == Record::State::Kind) {
                const uint64_t rest = r.length - (r.line.size() + 1);
                if (r.line == "groupcompress-block") {
                    r.state = Record::State::Lengths;
                } else if (r.line == "fulltext") {
                    if (rest > limits_.max_fulltext)
                        return limit_exceeded("fulltext record of " + std::to_string(rest) + " bytes exceeds the limit of " +
                                              std::to_string(limits_.max_fulltext) + " bytes");
                    r.fulltext.reserve(static_cast<size_t>(rest));
                    r.state = Record::State::Fulltext;
                } else {
                    return Error{Errc::Unsupported, 0, "record kind '" + printable(r.line, 40) + "' is not supported"};
                }
                r.line.clear();
                continue;
            }
            uint64_t v = 0;
            if (!parse_u64(r.line, v)) return corrupt("bad block record lengths");
            r.nums.push_back(v);
            r.line.clear();
            if (r.nums.size() < 3) continue;
            r.z = r.nums[0], r.h = r.nums[1], r.l = r.nums[2];
            const uint64_t used = r.seen - data.size();
            if (r.z > limits_.max_block_header || r.h > limits_.max_block_header)
                return limit_exceeded("block key header over " + std::to_string(limits_.max_block_header) + " bytes");
            if (r.l == 0 || used + r.z + r.l != r.length || r.z + r.l < r.z) return corrupt("Invalid length for block");
            r.state = Record::State::ZHeader;
            continue;
        }
        case Record::State::ZHeader: {
            size_t take = static_cast<size_t>(std::min<uint64_t>(data.size(), r.z - r.zheader.size()));
            r.zheader.append(data.substr(0, take));
            data.remove_prefix(take);
            if (r.zheader.size() < r.z) return Status(Ok{});
            auto header = inflate_exact(r.zheader, static_cast<size_t>(r.h));
            if (!header) return header.err();
            std::string().swap(r.zheader);
            auto lines = split(*header, '\n');
            if (lines.back() != "") return corrupt("header lines did not end with a trailing newline");
            lines.pop_back();
            if (lines.size() % 4 != 0) return corrupt("The header was not an even multiple of 4 lines");
            std::vector<std::pair<uint64_t, uint64_t>> spans;
            for (size_t i = 0; i < lines.size(); i += 4) {  // bounded: the header's lines
                Record::Key k;
                if (Status st = check_key(lines[i], key_width(r.sub), r.sub); !st) return st;
                k.key = std::string(lines[i]);
                auto parents = parse_parents(lines[i + 1], r.sub);
                if (!parents) return parents.err();
                k.parents = std::move(parents).value();
                if (!parse_u64(lines[i + 2], k.start) || !parse_u64(lines[i + 3], k.end) || k.start > k.end ||
                    (k.start == k.end && k.start != 0))
                    return corrupt("bad entry offsets in a block header");
                if (k.end) spans.emplace_back(k.start, k.end);
                r.keys.push_back(std::move(k));
            }
            r.check.init(r.l, limits_.group.gc.max_content, std::move(spans));
            if (Status st = ensure_group(); !st) return st;
            if (Status st = group_->begin_record(r.l, r.offset, r.size); !st) return st;
            r.state = Record::State::Block;
            continue;
        }
        case Record::State::Block:
            if (Status st = r.check.feed(data); !st) return st;
            return group_->record_data(data);
        case Record::State::Fulltext:
            r.fulltext.append(data);
            return Status(Ok{});
        }
    }
    return Status(Ok{});
}

Status StreamSink::end_record() {
    Record& r = *rec_;
    switch (r.state) {
    case Record::State::Format:
        have_format_ = true;
        if (format_seen_ != format_)
            return Error{Errc::Unsupported, 0,
                         "the stream's format '" + printable(format_seen_, 100) + "' is not the repository's format '" +
                             printable(format_, 100) + "'"};
        break;
    case Record::State::Block: {
        if (Status st = r.check.finish(); !st) return st;
        if (Status st = group_->end_record(); !st) return st;
        for (auto& k : r.keys) {  // bounded: the block's keys
            GroupEntry e;
            e.parents = std::move(k.parents);
            e.offset = r.offset, e.length = r.size, e.start = k.start, e.end = k.end;
            if (Status st = group_->add_entry(r.sub, std::move(k.key), std::move(e)); !st) return st;
        }
        break;
    }
    case Record::State::Fulltext: {
        std::string_view d = r.fulltext;
        if (d.size() < 4) return corrupt("fulltext record too short");
        const uint64_t m = (uint64_t(uint8_t(d[0])) << 24) | (uint64_t(uint8_t(d[1])) << 16) |
                           (uint64_t(uint8_t(d[2])) << 8) | uint64_t(uint8_t(d[3]));
        if (m > d.size() - 4) return corrupt("fulltext record: bad metadata length");
        auto meta = proto::bdecode(d.substr(4, static_cast<size_t>(m)));
        if (!meta || !meta->is_list() || meta->list.size() != 2 || !meta->list[0].is_list())
            return corrupt("fulltext record: bad metadata");
        std::string key;
        for (const auto& el : meta->list[0].list) {  // bounded: the decoded list
            if (!el.is_bytes()) return corrupt("fulltext record: bad key");
            key += (key.empty() ? "" : std::string(1, '\0')) + el.bytes;
        }
        if (Status st = check_key(key, key_width(r.sub), r.sub); !st) return st;
        std::vector<std::string> parents;
        const proto::Value& pv = meta->list[1];
        if (pv.is_list()) {
            for (const auto& p : pv.list) {  // bounded: the decoded list
                if (!p.is_list()) return corrupt("fulltext record: bad parents");
                std::string pk;
                for (const auto& el : p.list) {  // bounded: the decoded list
                    if (!el.is_bytes()) return corrupt("fulltext record: bad parents");
                    pk += (pk.empty() ? "" : std::string(1, '\0')) + el.bytes;
                }
                if (Status st = check_key(pk, key_width(r.sub), r.sub == Substream::Chk ? Substream::Revisions : r.sub); !st)
                    return st;
                parents.push_back(std::move(pk));
            }
        } else if (!(pv.is_bytes() && pv.bytes == "nil")) {
            return corrupt("fulltext record: bad parents");
        }
        gc::BlockWriter bw(limits_.group.gc.max_content);
        auto span = bw.add_fulltext(d.substr(4 + static_cast<size_t>(m)));
        if (!span) return span.err();
        auto block = bw.finish();
        if (!block) return block.err();
        std::string().swap(r.fulltext);
        if (Status st = ensure_group(); !st) return st;
        uint64_t off = 0, size = 0;
        if (Status st = group_->begin_record(block->size(), off, size); !st) return st;
        if (Status st = group_->record_data(*block); !st) return st;
        if (Status st = group_->end_record(); !st) return st;
        GroupEntry e;
        e.parents = std::move(parents);
        e.offset = off, e.length = size, e.start = span->first, e.end = span->second;
        if (Status st = group_->add_entry(r.sub, std::move(key), std::move(e)); !st) return st;
        break;
    }
    default:
        return corrupt("stream record ends early");
    }
    rec_.reset();
    return Status(Ok{});
}

InsertOutcome StreamSink::finish() {
    using Stage = InsertOutcome::Stage;
    if (failed_) return std::move(outcome_);
    if (Status st = reader_.finish(); !st) {
        fail(Stage::Stream, st.err());
        return std::move(outcome_);
    }
    if (!have_format_) {
        fail(Stage::Stream, corrupt("the stream has no format record"));
        return std::move(outcome_);
    }
    if (!group_) return InsertOutcome{};  // an empty stream (the client's probe): nothing to do
    if (Status st = group_->finish_data(); !st) {
        fail(Stage::Publish, st.err());
        return std::move(outcome_);
    }
    auto missing = group_->missing_basis(!tokens_.empty());
    if (!missing) {
        fail(missing.err().code == Errc::Io ? Stage::Publish : Stage::Check, missing.err());
        return std::move(outcome_);
    }
    if (!missing->empty()) {
        auto tokens = group_->suspend();
        if (!tokens) {
            fail(Stage::Publish, tokens.err());
            return std::move(outcome_);
        }
        InsertOutcome out;
        out.kind = InsertOutcome::Kind::MissingBasis;
        out.tokens = std::move(tokens).value();
        out.missing = std::move(missing).value();
        group_.reset();
        return out;
    }
    if (Status st = group_->commit(lock_token_); !st) {
        fail(group_->failed_phase() == GroupPhase::Check ? Stage::Check : Stage::Publish, st.err());
        return std::move(outcome_);
    }
    InsertOutcome out;
    out.published = group_->published();
    group_.reset();
    return out;
}

}  // namespace souk::server::bzr
