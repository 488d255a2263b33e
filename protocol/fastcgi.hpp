// The FastCGI record protocol, the subset souk speaks as a responder
// (docs/protocol/fastcgi.md): records, name-value pairs, the begin and end
// bodies, management queries. Pure: no I/O, no threads; the carrier
// (server/carriers/fastcgi.cpp) owns the socket and the buffers.
//
// Why not libfcgi: its FCGX_Accept loop blocks a thread per request on its
// own reads and writes, keeps process-wide state that is not thread safe,
// and would bypass soukd's worker bound, pools and deadlines. The record
// layer is small enough to write and to fuzz (docs/protocol/fastcgi.md#why-not-libfcgi).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace souk::proto::fcgi {

constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderSize = 8;
constexpr size_t kMaxContent = 65535;  // a record's content length is 16 bits
constexpr size_t kMaxRecord = kHeaderSize + kMaxContent + 255;

// Record types (docs/protocol/fastcgi.md#records).
enum Type : uint8_t {
    BeginRequest = 1,
    AbortRequest = 2,
    EndRequest = 3,
    Params = 4,
    Stdin = 5,
    Stdout = 6,
    Stderr = 7,
    Data = 8,
    GetValues = 9,
    GetValuesResult = 10,
    UnknownType = 11,
};

// BEGIN_REQUEST roles and flags, END_REQUEST protocol statuses.
enum Role : uint16_t { Responder = 1, Authorizer = 2, Filter = 3 };
constexpr uint8_t kKeepConn = 1;
enum ProtocolStatus : uint8_t { RequestComplete = 0, CantMpxConn = 1, Overloaded = 2, UnknownRole = 3 };

// One record, its content a view into the caller's buffer.
struct Record {
    uint8_t type = 0;
    uint16_t request_id = 0;  // 0: a management record
    std::string_view content;
};

enum class Parse { Ok, NeedMore, Bad };

// Take the first record of `buf`. Ok: `out` is set and `used` is the bytes
// the record took (header, content and padding). NeedMore: `buf` holds only
// part of a record (`used` = 0). Bad: the version is not 1 (the stream
// cannot be trusted past this point; close the connection).
Parse parse_record(std::string_view buf, Record& out, size_t& used);

// BEGIN_REQUEST's body: role and flags. false if the content is not 8 bytes.
bool parse_begin(std::string_view content, uint16_t& role, uint8_t& flags);

// Limits on a PARAMS stream (or a GET_VALUES body), checked while it arrives.
struct PairLimits {
    size_t max_bytes = 64 * 1024;  // the whole block
    size_t max_pairs = 512;
};

// Name-value pairs in the FastCGI encoding: each length is one byte
// (< 128) or four (high bit set, 31 bits). Appends views into `block` to
// `out`. Returns "" or what is wrong (a length past the end, too many
// pairs); never reads past `block`.
std::string decode_pairs(std::string_view block, size_t max_pairs,
                         std::vector<std::pair<std::string_view, std::string_view>>& out);

// A PARAMS stream gathered across records: append each record's content
// (a pair may be split anywhere), then finish at the empty record.
class ParamsBlock {
public:
    explicit ParamsBlock(PairLimits limits) : limits_(limits) {}
    // Add one record's content. Returns "" or what is wrong (over max_bytes).
    std::string add(std::string_view content);
    // The stream ended: decode it. Returns "" or what is wrong.
    std::string finish();
    bool done() const { return done_; }
    // After finish(): the value of `name` ("" when absent; the last wins
    // when a name repeats), and whether it is present.
    std::string_view get(std::string_view name) const;
    bool has(std::string_view name) const;
    const std::vector<std::pair<std::string_view, std::string_view>>& pairs() const { return pairs_; }
    size_t bytes() const { return block_.size(); }
    void reset();

private:
    PairLimits limits_;
    std::string block_;
    std::vector<std::pair<std::string_view, std::string_view>> pairs_;
    bool done_ = false;
};

// How much of the bytes that have arrived on a responder's connection
// (looked at, not read) it can act on now (docs/protocol/fastcgi.md#connections-and-workers):
//  * Whole, `bytes` long: a management record; records of no open request
//    (skipped, together); a BEGIN_REQUEST refused (bad body, another role);
//    a request from BEGIN_REQUEST to its empty STDIN record, or to its
//    ABORT_REQUEST, or to the PARAMS record that makes its block too large
//    or undecodable (answered 431); bytes that are not FastCGI (all of `in`).
//  * Stream: an open request followed by a record to answer at once (a
//    management record, another BEGIN_REQUEST): the responder serves it
//    while the request goes on arriving.
//  * Partial: none of these yet.
// `params` is scratch with the PARAMS limits (reused: after its first use
// a look allocates nothing unless the block is bad).
struct Arrival {
    enum Kind : uint8_t { Partial, Whole, Stream } kind = Partial;
    size_t bytes = 0;
};
Arrival measure_request(std::string_view in, ParamsBlock& params);

// Encoders. Each appends to `out`.
void append_header(std::string& out, uint8_t type, uint16_t request_id, uint16_t content_length,
                   uint8_t padding_length);
// `content` as records of `type` (split at kMaxContent, padded to a multiple
// of 8). An empty `content` appends one empty record: the end of a stream.
void append_records(std::string& out, uint8_t type, uint16_t request_id, std::string_view content);
void append_pair(std::string& out, std::string_view name, std::string_view value);
void append_begin_request(std::string& out, uint16_t request_id, uint16_t role, uint8_t flags);
void append_end_request(std::string& out, uint16_t request_id, uint32_t app_status, uint8_t protocol_status);
void append_unknown_type(std::string& out, uint8_t type);
// The padding that rounds `content_length` up to a multiple of 8.
inline uint8_t padding_for(size_t content_length) { return static_cast<uint8_t>((8 - content_length % 8) % 8); }

// The answer to a GET_VALUES query (docs/protocol/fastcgi.md#management-records):
// the values of the names asked for that souk knows (FCGI_MAX_CONNS,
// FCGI_MAX_REQS, FCGI_MPXS_CONNS), as one GET_VALUES_RESULT record
// appended to `out`. Unknown names are left out, as the spec says.
// Returns "" or what is wrong with the query.
std::string answer_get_values(std::string_view query, const PairLimits& limits, uint64_t max_conns,
                              uint64_t max_reqs, std::string& out);

}  // namespace souk::proto::fcgi
