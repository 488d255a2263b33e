// The receiving end of a repository stream (docs/protocol/streams.md#how-souk-stores-a-pushed-stream):
// the body of Repository.insert_stream*, a pack container whose first
// record names the source format and whose other records are network
// records of the substreams revisions, inventories, chk_bytes, texts and
// signatures. Bytes go in as they arrive; each groupcompress block is
// checked as it streams through (its key header, its "gcb1z" framing, its
// zlib data, and the entry each key addresses) and appended to the write
// group's new pack without being held; a fulltext record (held whole,
// bounded) becomes a one-entry block. At the end: missing-basis (the
// write group suspended) or the commit checks and publication.
//
// The stream is hostile input: every length is bounded, and a malformed
// stream is refused with a message, nothing published.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "server/bzr/error.hpp"
#include "server/bzr/pack.hpp"
#include "server/bzr/write_group.hpp"
#include "server/store/store.hpp"

namespace souk::server::bzr {

struct InsertLimits {
    ContainerLimits container;              // framing (max_record: bytes of one stream record)
    size_t max_block_header = 16 << 20;     // inflated key header of one block record
    size_t max_fulltext = 64 << 20;         // bytes of one fulltext record (held whole)
    size_t max_format = 4096;               // bytes of the format record
    WriteGroupLimits group;                 // group.gc.max_content: inflated content of one block
};

struct InsertOutcome {
    enum class Kind : uint8_t { Ok, MissingBasis, Failed };
    // Failed: where. Stream = the body is not a valid stream; Resume =
    // unresumable tokens; Check = the commit checks (Breezy's
    // BzrCheckError); Publish = renames, indices, pack-names, the lock.
    enum class Stage : uint8_t { Stream, Resume, Check, Publish };
    Kind kind = Kind::Ok;
    std::vector<std::string> tokens;  // MissingBasis
    MissingKeys missing;              // MissingBasis
    Stage stage = Stage::Stream;      // Failed
    Error error;                      // Failed
    std::string published;            // Ok: the pack added ("" for none)
};

class StreamSink {
public:
    // `format`: the repository's network name (its format file's first
    // line); the stream's format record must equal it. `lock_token`: a
    // repository lock the client holds ("" for none).
    StreamSink(Store& store, std::string repo, std::string format, std::vector<std::string> resume_tokens,
               std::string lock_token, const InsertLimits& limits);
    ~StreamSink();
    StreamSink(const StreamSink&) = delete;
    StreamSink& operator=(const StreamSink&) = delete;

    // Resume the suspended write group now (before the body), so that bad
    // tokens are refused at once; a no-op without tokens.
    Status prepare();
    // The next bytes of the body. After a failure the rest is ignored.
    void write(std::string_view chunk);
    // The body is complete.
    InsertOutcome finish();

    bool failed() const { return failed_; }
    uint64_t records() const { return records_; }

    struct Record;  // the record being parsed (stream_sink.cpp)

private:
    Status on_bytes(std::string_view in);
    Status begin_record();
    Status record_bytes(std::string_view data);
    Status end_record();
    Status ensure_group();
    void fail(InsertOutcome::Stage stage, Error e);

    Store& store_;
    std::string repo_, format_, lock_token_;
    std::vector<std::string> tokens_;
    InsertLimits limits_;
    ContainerReader reader_;
    std::unique_ptr<WriteGroup> group_;
    std::unique_ptr<Record> rec_;
    std::string format_seen_;
    bool have_format_ = false;
    uint64_t records_ = 0;
    bool failed_ = false;
    InsertOutcome outcome_;
};

}  // namespace souk::server::bzr
