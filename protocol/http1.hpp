// HTTP/1.1 framing, the part soukd's own HTTP carrier and libsouk's HTTP
// client need (docs/protocol/http.md#framing): where a head ends, what a
// request or response head says, and where its body ends (Content-Length
// or chunked). Pure: no I/O; the carrier (server/carriers/http_server.cpp)
// and the client (client/http.cpp) own the sockets.
//
// Strict the way nginx is, because soukd may sit behind a proxy that
// frames requests differently (request smuggling; docs/protocol/http.md#framing):
//  * Transfer-Encoding together with Content-Length: 400.
//  * Content-Length twice with different values, or not a number: 400.
//  * A Transfer-Encoding other than exactly "chunked": 501.
//  * HTTP/1.1 without Host, or Host twice: 400.
//  * A version other than HTTP/1.0 and 1.1: 505; a malformed request line
//    or header line (no colon, space before the colon, control bytes): 400.
// Lines may end in CRLF or a bare LF (as nginx accepts).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace souk::proto::http1 {

// The length of the head (request line and headers, through the blank
// line) at the start of `buf`, or 0 when it has not all arrived.
size_t head_length(std::string_view buf);

// What requests and responses share: the header fields and the framing
// they announce.
struct Fields {
    int minor = 1;  // HTTP/1.<minor>
    std::vector<std::pair<std::string_view, std::string_view>> headers;  // in order, values trimmed; views
    bool chunked = false;
    bool has_length = false;
    uint64_t content_length = 0;
    bool keep_alive = true;  // HTTP/1.1 unless "Connection: close"; 1.0 only with "keep-alive"

    // The first header of that name (case-insensitive), "" when absent.
    std::string_view header(std::string_view name) const;
};

struct Head : Fields {
    std::string_view method, target;  // views into the parsed buffer
    bool expect_continue = false;     // "Expect: 100-continue"

    bool has_body() const { return chunked || content_length > 0; }
};

// Parse a whole head (`head` ends with its blank line, as head_length
// found it). Returns 0, or the status to answer (400, 501, 505) with
// `why` a short reason; the connection must close after such an answer.
int parse_head(std::string_view head, Head& out, const char** why);

// A response head, as libsouk's client reads it. The same header rules as
// requests (Content-Length twice or malformed, Transfer-Encoding other than
// "chunked", both together: refused), no Host rule.
struct ResponseHead : Fields {
    int status = 0;  // 100..999
};

// Parse a whole response head (status line "HTTP/1.x NNN reason" and
// headers, ending with its blank line as head_length found it). Returns
// true, or false with `why` a short reason.
bool parse_response_head(std::string_view head, ResponseHead& out, const char** why);

// A chunked body, decoded as it arrives. Chunk extensions are skipped;
// trailers are read and dropped.
class ChunkedDecoder {
public:
    enum class Status : uint8_t { More, Done, Bad };
    // Decode from `in` (advancing it past what was used) into `out` (its
    // bytes are views into `in`'s buffer, appended to `out`). Done: the
    // body ended; what is left in `in` belongs to the next request.
    Status feed(std::string_view& in, std::vector<std::string_view>& out);
    // The decoded bytes so far.
    uint64_t decoded() const { return decoded_; }
    void reset() { *this = ChunkedDecoder{}; }

private:
    enum class State : uint8_t { Size, Ext, SizeLf, Data, DataCr, DataLf, Trailer, TrailerLf, Done };
    State state_ = State::Size;
    uint64_t left_ = 0;
    uint64_t decoded_ = 0;
    unsigned digits_ = 0;
    unsigned trailer_bytes_ = 0;  // of the current trailer line
    bool trailer_empty_ = true;   // the trailer line so far is empty
};

// Whether a whole request (head and body) is in `buf`, for a carrier that
// looks at bytes before reading them. Returns its length, 0 when more is
// needed, or SIZE_MAX when the head is malformed or the chunked body is
// (the carrier then reads the request and answers the error).
// *expect_continue: more is needed, and the client waits for "100
// Continue" before it sends the body.
size_t request_length(std::string_view buf, bool* expect_continue);

}  // namespace souk::proto::http1
