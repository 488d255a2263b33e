// Smart-protocol messages v1, v2 and v3 (docs/protocol/framing.md): incremental decoders
// (bytes in, events out, hard limits) and streaming encoders, for both the
// server side (decode requests, encode responses) and the client side
// (encode requests, decode responses). Pure: no I/O, no threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/bencode.hpp"
#include "protocol/value.hpp"

namespace souk::proto {

inline constexpr std::string_view kV3Marker = "bzr message 3 (bzr 1.6)\n";
inline constexpr std::string_view kV2RequestMarker = "bzr request 2\n";
inline constexpr std::string_view kV2ResponseMarker = "bzr response 2\n";

// Hard limits, checked before anything is allocated
// (docs/conventions.md#validate-once-at-the-edge).
struct DecoderLimits {
    size_t max_line = 64 * 1024;              // v1/v2 request/args line
    size_t max_structure = 1024 * 1024;       // v3 header dict or args structure
    uint64_t max_body = 256ull * 1024 * 1024; // total body bytes of one message
    BencodeLimits bencode{};
};

enum class Ev : uint8_t {
    NeedMore,   // input exhausted; feed more bytes
    ArgsReady,  // request: verb + args; response: status + args
    BodyChunk,  // a piece of the body (concatenate them all)
    Abort,      // request: client aborted its body (v3 oE); args = its error tuple
    StreamError,// response: server failed mid-body (v3 oE / v2 ERR); args = error tuple
    End,        // message complete; the decoder is ready for the next one
    Error,      // malformed input; `error` says why. The stream cannot resync.
};

struct Event {
    Ev kind = Ev::NeedMore;
    int version = 0;          // 1, 2 or 3
    bool success = true;      // response Args: oS / success vs oE / failed
    Args args;                // Args, Abort, StreamError (see RequestDecoder::set_args_storage)
    size_t argc = 0;          // ArgsReady with args storage: the args are storage[0, argc)
    std::string_view chunk;   // BodyChunk: valid until the next call to next()
    std::string error;        // Error
};

namespace detail {
// The v3 message grammar shared by requests and responses (docs/protocol/framing.md#v3-messages).
class V3Reader {
public:
    enum class Part : uint8_t { NeedMore, Headers, OneByte, Structure, Bytes, End, Error };
    struct Out {
        Part part = Part::NeedMore;
        Value value;            // Headers, Structure
        char byte = 0;          // OneByte
        std::string_view data;  // Bytes (possibly a partial part)
        std::string error;
    };
    // Copies the limits: a pointer into the owning decoder would dangle
    // once that decoder is moved or copied.
    explicit V3Reader(const DecoderLimits* limits) : limits_(*limits) {}
    void set_limits(const DecoderLimits& limits) { limits_ = limits; }
    // Raw mode (a server's allocation-free path): header parts are checked
    // but not built, and Structure parts come out undecoded in `data`
    // (valid until the next call).
    void set_raw(bool raw) { raw_ = raw; }
    void start(bool expect_marker);
    Out next(std::string_view& in);
    bool at_part_boundary() const { return state_ == State::PartKind; }

private:
    enum class State : uint8_t { Marker, HeaderLen, Header, PartKind, OneByte, StructLen, Struct, BytesLen, BytesData, Done };
    bool take(std::string_view& in, size_t want);  // buffer until buf_ holds `want` bytes
    static uint32_t be32(std::string_view b);

    DecoderLimits limits_;
    State state_ = State::HeaderLen;
    std::string buf_;
    uint32_t need_ = 0;
    uint64_t body_total_ = 0;
    bool raw_ = false;
    bool clear_pending_ = false;  // raw Structure data still points into buf_
};
}  // namespace detail

// Server side: decodes a stream of requests of any version.
class RequestDecoder {
public:
    explicit RequestDecoder(DecoderLimits limits = {});
    // Consume bytes from `in` (advancing it) until one event is produced or
    // `in` is exhausted (NeedMore). After Error, call reset() before reuse.
    Event next(std::string_view& in);
    // True when no partial request is buffered (between messages).
    bool idle() const { return state_ == State::FirstLine && line_.empty(); }
    void reset();
    void set_limits(const DecoderLimits& limits);
    // The allocation-free mode of a pooled request handler: request args
    // are decoded into *storage in place (it grows, never shrinks, so its
    // strings keep their capacity), ArgsReady carries argc instead of args,
    // and v3 headers are checked without being built. nullptr: the default
    // (args in Event::args). The decoder keeps its buffers' capacity across
    // requests either way.
    void set_args_storage(Args* storage);

private:
    enum class State : uint8_t { FirstLine, V2Line, V3, V12BodyLen, V12Body, V12Done, Failed };
    Event fail(std::string why);
    Event on_line(int version, std::string_view line);

    DecoderLimits limits_;
    State state_ = State::FirstLine;
    std::string line_;
    detail::V3Reader v3_;
    int version_ = 0;
    bool have_args_ = false;
    bool aborting_ = false;     // saw oE after the args
    bool abort_args_ = false;   // ... and its error structure
    uint64_t body_left_ = 0;
    Args* storage_ = nullptr;
};

// Server side: response encoding. Every function appends to `out`.
// Shape: begin, then optionally body_begin + body_chunk* + body_end (or
// stream_error instead of body_end, v3 only), then end.
namespace response {
void begin(int version, bool success, const Args& args, std::string& out);
// v1/v2 need the total length before the body; v3 ignores it.
void body_begin(int version, uint64_t total, std::string& out);
// v3: the 5-byte header of a 'b' part of length n; v1/v2: nothing. The
// caller then sends the n data bytes itself (possibly with sendfile).
void body_chunk_header(int version, uint32_t n, std::string& out);
void body_chunk(int version, std::string_view data, std::string& out);
void body_end(int version, std::string& out);
// v3 only: fail after some body chunks
// (docs/protocol/framing.md#error-in-a-streamed-body); follow with end().
void stream_error(int version, const Args& args, std::string& out);
void end(int version, std::string& out);
// A whole response with an optional in-memory body.
void encode(int version, bool success, const Args& args, const std::string* body, std::string& out);
}  // namespace response

// Client side: request encoding (v3 streaming; v1/v2 whole).
namespace request {
void begin_v3(const Args& args, std::string& out);
void chunk_v3(std::string_view data, std::string& out);
void abort_v3(std::string& out);   // oE ('error',) then end
void end_v3(std::string& out);
void encode(int version, const Args& args, const std::string* body, std::string& out);
}  // namespace request

// Client side: decodes one response. v1/v2 need to know whether the request
// verb implies a response body (docs/protocol/framing.md#v1-and-v2-bodies).
class ResponseDecoder {
public:
    explicit ResponseDecoder(int version = 3, bool expect_body = false, DecoderLimits limits = {});
    Event next(std::string_view& in);
    bool done() const { return state_ == State::Done; }

private:
    enum class State : uint8_t { V3, V12Marker, V12Status, V12Line, V12BodyLen, V12Body, V12Done, Done, Failed };
    Event fail(std::string why);
    Event line_event(std::string_view line);

    DecoderLimits limits_;
    int version_;
    bool expect_body_;
    State state_;
    std::string line_;
    detail::V3Reader v3_;
    bool have_status_ = false;
    bool have_args_ = false;
    bool in_error_ = false;        // saw oE after the args
    bool have_error_args_ = false; // ... and its error structure
    bool success_ = true;
    uint64_t body_left_ = 0;
};

// Split a v1/v2 args line (without its '\n') on \x01.
Args split_line(std::string_view line);
// Join args for a v1/v2 line; ints in decimal. Returns false if an arg
// cannot be represented (contains \x01 or \n, or is a list).
bool join_line(const Args& args, std::string& out);

}  // namespace souk::proto
