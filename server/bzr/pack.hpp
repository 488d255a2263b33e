// Bazaar's pack container, "Bazaar pack format 1" (docs/formats/packs.md):
// the framing of every .pack file and of every repository stream body.
//
//   container := MAGIC record* "E"
//   record    := "B" <decimal length> "\n" (name "\n")* "\n" <length bytes>
//   name      := element ("\0" element)*        elements hold no whitespace
//
// The reader is incremental: the caller hands it bytes as they arrive and
// gets events back (record begins, a slice of its data, record ends,
// container ends). It holds at most one header line, never record data, so
// a pushed stream larger than memory passes through in constant space. The
// writer produces the bytes Breezy's ContainerWriter writes for the same
// records.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/bzr/error.hpp"

namespace souk::server::bzr {

// The 42 bytes every container starts with.
inline constexpr std::string_view kContainerMagic = "Bazaar pack format 1 (introduced in 0.18)\n";

// One record name: its \0-separated elements.
using RecordName = std::vector<std::string>;

// Bounds of one reader; every one is a hard limit (LimitExceeded).
struct ContainerLimits {
    size_t max_line = 64 * 1024;            // one length or name line, without its "\n"
    size_t max_names = 64;                  // name lines of one record
    size_t max_name_elements = 16;          // elements of one name
    uint64_t max_record = uint64_t{1} << 32;  // data bytes of one record
    // Bytes after "E": an error, as Breezy's ContainerReader (on .pack
    // files) says; false ignores them, as its ContainerPushParser (stream
    // bodies) does.
    bool strict_end = true;
};

// Parse just the header of a record from the first bytes of it (at least
// the header; more is fine): its names, header size and data length.
struct RecordHeader {
    std::vector<RecordName> names;
    size_t header_size = 0;
    uint64_t length = 0;
};
Result<RecordHeader> parse_record_header(std::string_view prefix, const ContainerLimits& limits = {});

// Incremental reader. Feed it with next(); one reader reads one container.
class ContainerReader {
public:
    enum class Event : uint8_t {
        NeedMore,   // `in` is used up; call again with more bytes
        Begin,      // a record starts: names(), length(), record_offset()
        Data,       // data(): the next slice of the record's bytes (a view into `in`)
        RecordEnd,  // the record's bytes are complete (follows Begin directly for an empty record)
        End,        // "E": the container is complete
    };

    explicit ContainerReader(ContainerLimits limits = {}) : limits_(limits) {}

    // Consume bytes from the front of `in` until an event is ready, and
    // return it (advancing `in` past what was used). After an error every
    // call returns that error again; after End every call returns End (and
    // with strict_end, bytes left in `in` are an error).
    Result<Event> next(std::string_view& in);
    // The caller has no more bytes: Ok once End was seen, else an error
    // saying where the container was cut short.
    Status finish() const;

    const std::vector<RecordName>& names() const { return names_; }  // of the current record
    uint64_t length() const { return length_; }                      // data bytes of the current record
    uint64_t record_offset() const { return record_offset_; }        // container offset of its "B"
    uint64_t data_offset() const { return data_offset_; }            // container offset of its data
    std::string_view data() const { return data_; }                  // after a Data event
    uint64_t offset() const { return consumed_; }                    // bytes consumed so far
    bool ended() const { return state_ == State::Ended; }
    size_t records() const { return records_; }                      // records begun so far

private:
    friend Result<RecordHeader> parse_record_header(std::string_view, const ContainerLimits&);
    enum class State : uint8_t { Magic, Kind, Length, Names, Body, Ended, Failed };
    Result<Event> fail(Error e);
    // Take one line from `in` into line_ (without "\n"); false if it needs more.
    Result<bool> take_line(std::string_view& in, size_t max);

    ContainerLimits limits_;
    State state_ = State::Magic;
    std::string line_;  // a partial header line (at most max_line bytes)
    std::vector<RecordName> names_;
    uint64_t length_ = 0, remaining_ = 0, record_offset_ = 0, data_offset_ = 0, consumed_ = 0;
    size_t records_ = 0;
    std::string_view data_;
    Error error_;
};

// One whole record, as read_container returns it.
struct ContainerRecord {
    std::vector<RecordName> names;
    std::string data;
    uint64_t offset = 0;  // of its "B" in the container
    uint64_t size = 0;    // header + data: Breezy's index "length" of the record
};

// Read a whole in-memory container (strict: must end with "E" and nothing
// after), holding at most max_total data bytes in all.
Result<std::vector<ContainerRecord>> read_container(std::string_view bytes, const ContainerLimits& limits = {},
                                                    uint64_t max_total = uint64_t{1} << 30);

// One record read from a known position (an index entry's "offset length"
// in a .pack): `bytes` must be exactly the record, header and data.
struct RecordView {
    std::vector<RecordName> names;
    size_t header_size = 0;  // bytes before the data
    std::string_view data;   // a view into `bytes`
};
Result<RecordView> parse_record(std::string_view bytes, const ContainerLimits& limits = {});

// "B<length>\n" names "\n": the header of a Bytes record, as Breezy's
// ContainerSerialiser.bytes_header. Corrupt for an empty name (its empty
// line would end the names: Breezy writes it but cannot read it back) and
// for a name element holding whitespace (Breezy refuses it) or "\0" (it
// could not be read back).
Result<std::string> record_header(uint64_t length, const std::vector<RecordName>& names);

// Writes a container through a sink, byte for byte as Breezy's
// ContainerWriter. The sink's error stops the writer (every later call
// returns it).
class ContainerWriter {
public:
    using Sink = std::function<Status(std::string_view)>;
    explicit ContainerWriter(Sink sink) : sink_(std::move(sink)) {}

    Status begin();  // the magic
    // A Bytes record from one buffer or several chunks. Returns Breezy's
    // memo (offset of the record, its size with the header), which is what
    // a pack's index stores.
    Result<std::pair<uint64_t, uint64_t>> add_bytes_record(std::string_view data, const std::vector<RecordName>& names);
    Result<std::pair<uint64_t, uint64_t>> add_bytes_record(std::span<const std::string_view> chunks,
                                                           const std::vector<RecordName>& names);
    Status end();  // "E"

    uint64_t offset() const { return offset_; }  // bytes written so far
    size_t records_written() const { return records_; }

private:
    Status write(std::string_view bytes);
    Sink sink_;
    uint64_t offset_ = 0;
    size_t records_ = 0;
    bool failed_ = false;
    Error error_;
};

}  // namespace souk::server::bzr
