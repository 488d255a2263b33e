#include "protocol/message.hpp"

#include <algorithm>
#include <charconv>

#include "protocol/errors.hpp"
#include "protocol/verbs.hpp"

namespace souk::proto {
namespace {

// Append bytes of `in` up to and including '\n' to `line`.
// Returns 1 when a full line is in `line`, 0 for more input, -1 if too long.
int read_line(std::string_view& in, std::string& line, size_t max) {
    size_t nl = in.find('\n');
    size_t take = nl == std::string_view::npos ? in.size() : nl + 1;
    if (line.size() + take > max) return -1;
    line.append(in.substr(0, take));
    in.remove_prefix(take);
    return nl == std::string_view::npos ? 0 : 1;
}

bool parse_decimal(std::string_view s, uint64_t& out) {
    if (s.empty() || s.size() > 19) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

void put_be32(uint32_t n, std::string& out) {
    char b[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                 static_cast<char>(n)};
    out.append(b, 4);
}

void structure(const Args& items, std::string& out) {
    size_t at = out.size();
    out += 's';
    out.append(4, '\0');
    bencode_list(items.data(), items.size(), out);
    uint32_t n = static_cast<uint32_t>(out.size() - at - 5);
    out[at + 1] = static_cast<char>(n >> 24);
    out[at + 2] = static_cast<char>(n >> 16);
    out[at + 3] = static_cast<char>(n >> 8);
    out[at + 4] = static_cast<char>(n);
}

void v3_prelude(std::string& out) {
    // Breezy ignores header contents; an empty dict is valid
    // (docs/protocol/framing.md#headers), but naming the software helps
    // whoever reads a capture.
    static const std::string headers = bencode(Value::of_dict({{"Software version", Value("souk " SOUK_VERSION)}}));
    out += kV3Marker;
    put_be32(static_cast<uint32_t>(headers.size()), out);
    out += headers;
}

bool known_v1_failure(std::string_view word) {
    const ErrorInfo* e = find_error(word);
    return (e && e->v1_failure) || word == "error" || word == "NoSuchRevision" ||
           word == "UnlockableTransport" || word == "UnicodeEncodeError" || word == "UnicodeDecodeError";
}

}  // namespace

// ------------------------------------------------------------ V3Reader --

namespace detail {

void V3Reader::start(bool expect_marker) {
    state_ = expect_marker ? State::Marker : State::HeaderLen;
    buf_.clear();
    clear_pending_ = false;
    need_ = 0;
    body_total_ = 0;
}

uint32_t V3Reader::be32(std::string_view b) {
    auto u = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(b[i])); };
    return (u(0) << 24) | (u(1) << 16) | (u(2) << 8) | u(3);
}

bool V3Reader::take(std::string_view& in, size_t want) {
    size_t n = std::min(want - buf_.size(), in.size());
    buf_.append(in.substr(0, n));
    in.remove_prefix(n);
    return buf_.size() == want;
}

V3Reader::Out V3Reader::next(std::string_view& in) {
    Out out;
    if (clear_pending_) {
        buf_.clear();
        clear_pending_ = false;
    }
    auto error = [&](std::string why) {
        state_ = State::Done;
        out.part = Part::Error;
        out.error = std::move(why);
        return out;
    };
    for (;;) {
        switch (state_) {
        case State::Marker:
            if (!take(in, kV3Marker.size())) {
                if (kV3Marker.substr(0, buf_.size()) != buf_) return error("bad v3 marker");
                return out;
            }
            if (buf_ != kV3Marker) return error("bad v3 marker");
            buf_.clear();
            state_ = State::HeaderLen;
            break;
        case State::HeaderLen:
        case State::StructLen:
        case State::BytesLen: {
            if (!take(in, 4)) return out;
            need_ = be32(buf_);
            buf_.clear();
            if (state_ == State::BytesLen) {
                body_total_ += need_;
                if (body_total_ > limits_.max_body) return error("body too large");
                state_ = State::BytesData;
                if (need_ == 0) {
                    state_ = State::PartKind;
                    out.part = Part::Bytes;
                    return out;
                }
                break;
            }
            if (need_ > limits_.max_structure)
                return error(state_ == State::HeaderLen ? "headers too long" : "structure too long");
            state_ = state_ == State::HeaderLen ? State::Header : State::Struct;
            break;
        }
        case State::Header:
        case State::Struct: {
            if (!take(in, need_)) return out;
            bool header = state_ == State::Header;
            if (raw_) {
                bool is_dict = false;
                if (header && bvalidate(buf_, limits_.bencode, &is_dict) && is_dict) {
                    buf_.clear();
                    state_ = State::PartKind;
                    out.part = Part::Headers;
                    return out;
                }
                if (!header) {
                    state_ = State::PartKind;
                    out.part = Part::Structure;
                    out.data = buf_;
                    clear_pending_ = true;
                    return out;
                }
                // A bad header: bdecode below says why.
            }
            auto v = bdecode(buf_, limits_.bencode);
            if (!v) return error("Bytes not bencoded: " + v.error());
            buf_.clear();
            if (header && !v->is_dict()) return error("Header object is not a dict");
            state_ = State::PartKind;
            out.part = header ? Part::Headers : Part::Structure;
            out.value = std::move(v).value();
            return out;
        }
        case State::PartKind: {
            if (in.empty()) return out;
            char c = in[0];
            in.remove_prefix(1);
            switch (c) {
            case 'o': state_ = State::OneByte; break;
            case 's': state_ = State::StructLen; break;
            case 'b': state_ = State::BytesLen; break;
            case 'e':
                state_ = State::Done;
                out.part = Part::End;
                return out;
            default: {
                std::string why = "Bad message kind byte: ";
                why += to_display(Value(std::string(1, c)));
                return error(std::move(why));
            }
            }
            break;
        }
        case State::OneByte:
            if (in.empty()) return out;
            out.part = Part::OneByte;
            out.byte = in[0];
            in.remove_prefix(1);
            state_ = State::PartKind;
            return out;
        case State::BytesData: {
            if (in.empty()) return out;
            size_t n = std::min<size_t>(need_, in.size());
            out.part = Part::Bytes;
            out.data = in.substr(0, n);
            in.remove_prefix(n);
            need_ -= static_cast<uint32_t>(n);
            if (need_ == 0) state_ = State::PartKind;
            return out;
        }
        case State::Done:
            return error("read past end of message");
        }
    }
}

}  // namespace detail

// ------------------------------------------------------- RequestDecoder --

RequestDecoder::RequestDecoder(DecoderLimits limits) : limits_(limits), v3_(&limits_) {}

void RequestDecoder::set_limits(const DecoderLimits& limits) {
    limits_ = limits;
    v3_.set_limits(limits);
}

void RequestDecoder::set_args_storage(Args* storage) {
    storage_ = storage;
    v3_.set_raw(storage != nullptr);
}

void RequestDecoder::reset() {
    state_ = State::FirstLine;
    line_.clear();
    version_ = 0;
    have_args_ = false;
    aborting_ = false;
    abort_args_ = false;
    body_left_ = 0;
}

Event RequestDecoder::fail(std::string why) {
    state_ = State::Failed;
    Event ev;
    ev.kind = Ev::Error;
    ev.version = version_;
    ev.error = std::move(why);
    return ev;
}

Event RequestDecoder::on_line(int version, std::string_view line) {
    Event ev;
    ev.kind = Ev::ArgsReady;
    ev.version = version;
    line.remove_suffix(1);  // the '\n'
    const VerbInfo* verb;
    if (storage_) {
        // Split on \x01 into the storage in place (no allocation once grown).
        size_t n = 0, start = 0;
        for (;;) {  // bounded: one pass per \x01 plus one
            size_t p = line.find('\x01', start);
            std::string_view item = line.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start);
            if (n >= storage_->size()) storage_->emplace_back();
            Value& v = (*storage_)[n++];
            v.kind = Value::Kind::Bytes;
            v.bytes.assign(item);
            v.list.clear();
            v.dict.clear();
            if (p == std::string_view::npos) break;
            start = p + 1;
        }
        ev.argc = n;
        verb = find_verb((*storage_)[0].bytes);
    } else {
        ev.args = split_line(line);
        verb = find_verb(ev.args[0].bytes);
    }
    state_ = verb && verb->request_body() ? State::V12BodyLen : State::V12Done;
    body_left_ = 0;
    line_.clear();  // `line` may view line_: it is not used after this
    return ev;
}

Event RequestDecoder::next(std::string_view& in) {
    for (;;) {
        switch (state_) {
        case State::FirstLine:
        case State::V2Line: {
            if (in.empty()) return {};
            int r = read_line(in, line_, limits_.max_line);
            if (r < 0) return fail("request line too long");
            if (r == 0) return {};
            if (state_ == State::FirstLine && line_ == kV3Marker) {
                line_.clear();
                version_ = 3;
                have_args_ = false;
                aborting_ = false;
                abort_args_ = false;
                v3_.start(false);
                state_ = State::V3;
                break;
            }
            if (state_ == State::FirstLine && line_ == kV2RequestMarker) {
                line_.clear();
                version_ = 2;
                state_ = State::V2Line;
                break;
            }
            if (state_ == State::FirstLine) version_ = 1;
            // on_line clears line_ (keeping its capacity) once done with it.
            return on_line(version_, line_);
        }
        case State::V3: {
            auto part = v3_.next(in);
            using P = detail::V3Reader::Part;
            switch (part.part) {
            case P::NeedMore: return {};
            case P::Headers: break;  // informational (docs/protocol/framing.md#headers)
            case P::OneByte:
                if (part.byte == 'E' && have_args_ && !aborting_) {
                    aborting_ = true;
                    break;
                }
                return fail("unexpected status byte in request");
            case P::Structure: {
                Event ev;
                ev.version = 3;
                if (storage_ && !have_args_) {
                    // Raw mode: part.data is the undecoded structure.
                    size_t n = 0;
                    if (!bdecode_flat_list(part.data, *storage_, n, limits_.bencode)) {
                        auto v = bdecode(part.data, limits_.bencode);
                        if (!v) return fail("Bytes not bencoded: " + v.error());
                        if (!v->is_list() || v->list.empty() || !v->list[0].is_bytes())
                            return fail("args must be a list starting with the verb");
                        n = v->list.size();
                        if (storage_->size() < n) storage_->resize(n);
                        for (size_t i = 0; i < n; ++i) (*storage_)[i] = std::move(v->list[i]);
                    } else if (n == 0) {
                        return fail("args must be a list starting with the verb");
                    }
                    have_args_ = true;
                    ev.kind = Ev::ArgsReady;
                    ev.argc = n;
                    return ev;
                }
                if (storage_) {
                    auto v = bdecode(part.data, limits_.bencode);
                    if (!v) return fail("Bytes not bencoded: " + v.error());
                    part.value = std::move(v).value();
                }
                if (!have_args_) {
                    if (!part.value.is_list() || part.value.list.empty() || !part.value.list[0].is_bytes())
                        return fail("args must be a list starting with the verb");
                    have_args_ = true;
                    ev.kind = Ev::ArgsReady;
                    ev.args = std::move(part.value.list);
                    return ev;
                }
                if (!aborting_ || abort_args_) return fail("unexpected structure part");
                abort_args_ = true;
                ev.kind = Ev::Abort;
                if (part.value.is_list()) ev.args = std::move(part.value.list);
                else ev.args.push_back(std::move(part.value));
                return ev;
            }
            case P::Bytes: {
                if (!have_args_) return fail("body before args");
                if (aborting_) return fail("body after abort");
                if (part.data.empty()) break;
                Event ev;
                ev.kind = Ev::BodyChunk;
                ev.version = 3;
                ev.chunk = part.data;
                return ev;
            }
            case P::End: {
                if (!have_args_) return fail("message without args");
                // oE then e: without its error structure the abort would
                // be lost and a truncated request look complete.
                if (aborting_ && !abort_args_) return fail("abort without error args");
                state_ = State::FirstLine;
                Event ev;
                ev.kind = Ev::End;
                ev.version = 3;
                return ev;
            }
            case P::Error: return fail(std::move(part.error));
            }
            break;
        }
        case State::V12BodyLen: {
            if (in.empty()) return {};
            int r = read_line(in, line_, 32);
            if (r < 0) return fail("body length line too long");
            if (r == 0) return {};
            uint64_t n = 0;
            if (!parse_decimal(std::string_view(line_).substr(0, line_.size() - 1), n))
                return fail("bad body length");
            if (n > limits_.max_body) return fail("body too large");
            line_.clear();
            body_left_ = n;
            state_ = State::V12Body;
            break;
        }
        case State::V12Body: {
            if (body_left_ == 0) {
                // The body is followed by a "done\n" trailer.
                size_t n = std::min<size_t>(5 - line_.size(), in.size());
                line_.append(in.substr(0, n));
                in.remove_prefix(n);
                if (std::string_view("done\n").substr(0, line_.size()) != line_)
                    return fail("missing done trailer");
                if (line_.size() < 5) return {};
                line_.clear();
                state_ = State::V12Done;
                break;
            }
            if (in.empty()) return {};
            size_t n = static_cast<size_t>(std::min<uint64_t>(body_left_, in.size()));
            Event ev;
            ev.kind = Ev::BodyChunk;
            ev.version = version_;
            ev.chunk = in.substr(0, n);
            in.remove_prefix(n);
            body_left_ -= n;
            return ev;
        }
        case State::V12Done: {
            state_ = State::FirstLine;
            Event ev;
            ev.kind = Ev::End;
            ev.version = version_;
            return ev;
        }
        case State::Failed:
            return fail("decoder failed earlier");
        }
    }
}

// -------------------------------------------------------------- encoders --

Args split_line(std::string_view line) {
    Args args;
    size_t start = 0;
    for (;;) {
        size_t p = line.find('\x01', start);
        args.emplace_back(line.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start));
        if (p == std::string_view::npos) break;
        start = p + 1;
    }
    return args;
}

bool join_line(const Args& args, std::string& out) {
    bool clean = true;
    for (size_t i = 0; i < args.size(); ++i) {
        if (i) out += '\x01';
        if (args[i].is_bytes() && args[i].bytes.find_first_of("\x01\n") == std::string::npos) {
            out += args[i].bytes;  // the usual case: no copy
            continue;
        }
        std::string s = args[i].is_bytes() ? args[i].bytes
                      : args[i].is_int()   ? std::to_string(args[i].integer)
                                           : to_display(args[i]);
        for (char& c : s)
            if (c == '\x01' || c == '\n') { c = '?'; clean = false; }
        if (!args[i].is_bytes() && !args[i].is_int()) clean = false;
        out += s;
    }
    out += '\n';
    return clean;
}

namespace response {

void begin(int version, bool success, const Args& args, std::string& out) {
    if (version == 3) {
        v3_prelude(out);
        out += success ? "oS" : "oE";
        structure(args, out);
        return;
    }
    if (version == 2) {
        out += kV2ResponseMarker;
        out += success ? "success\n" : "failed\n";
    }
    join_line(args, out);
}

void body_begin(int version, uint64_t total, std::string& out) {
    if (version != 3) {
        out += std::to_string(total);
        out += '\n';
    }
}

void body_chunk_header(int version, uint32_t n, std::string& out) {
    if (version == 3) {
        out += 'b';
        put_be32(n, out);
    }
}

void body_chunk(int version, std::string_view data, std::string& out) {
    body_chunk_header(version, static_cast<uint32_t>(data.size()), out);
    out += data;
}

void body_end(int version, std::string& out) {
    if (version != 3) out += "done\n";
}

void stream_error(int version, const Args& args, std::string& out) {
    if (version == 3) {
        out += "oE";
        structure(args, out);
    }
}

void end(int version, std::string& out) {
    if (version == 3) out += 'e';
}

void encode(int version, bool success, const Args& args, const std::string* body, std::string& out) {
    begin(version, success, args, out);
    if (body) {
        body_begin(version, body->size(), out);
        // v3 parts carry at most 4 GiB - 1; split anything larger.
        std::string_view rest = *body;
        do {
            size_t n = std::min<size_t>(rest.size(), 0xffffffffu);
            if (version == 3) body_chunk(version, rest.substr(0, n), out);
            else out += rest.substr(0, n);
            rest.remove_prefix(n);
        } while (!rest.empty());
        body_end(version, out);
    }
    end(version, out);
}

}  // namespace response

namespace request {

void begin_v3(const Args& args, std::string& out) {
    v3_prelude(out);
    structure(args, out);
}

void chunk_v3(std::string_view data, std::string& out) {
    out += 'b';
    put_be32(static_cast<uint32_t>(data.size()), out);
    out += data;
}

void abort_v3(std::string& out) {
    out += "oE";
    structure(Args{Value("error")}, out);
    out += 'e';
}

void end_v3(std::string& out) { out += 'e'; }

void encode(int version, const Args& args, const std::string* body, std::string& out) {
    if (version == 3) {
        begin_v3(args, out);
        if (body) chunk_v3(*body, out);
        end_v3(out);
        return;
    }
    if (version == 2) out += kV2RequestMarker;
    join_line(args, out);
    if (body) {
        out += std::to_string(body->size());
        out += '\n';
        out += *body;
        out += "done\n";
    }
}

}  // namespace request

// ------------------------------------------------------ ResponseDecoder --

ResponseDecoder::ResponseDecoder(int version, bool expect_body, DecoderLimits limits)
    : limits_(limits), version_(version), expect_body_(expect_body), v3_(&limits_) {
    if (version_ == 3) {
        state_ = State::V3;
        v3_.start(true);
    } else {
        state_ = version_ == 2 ? State::V12Marker : State::V12Line;
    }
}

Event ResponseDecoder::fail(std::string why) {
    state_ = State::Failed;
    Event ev;
    ev.kind = Ev::Error;
    ev.version = version_;
    ev.error = std::move(why);
    return ev;
}

Event ResponseDecoder::line_event(std::string_view line) {
    Event ev;
    ev.kind = Ev::ArgsReady;
    ev.version = version_;
    ev.args = split_line(line);
    if (version_ == 1) success_ = !known_v1_failure(ev.args[0].bytes);
    ev.success = success_;
    state_ = (expect_body_ && success_) ? State::V12BodyLen : State::V12Done;
    return ev;
}

Event ResponseDecoder::next(std::string_view& in) {
    for (;;) {
        switch (state_) {
        case State::V3: {
            auto part = v3_.next(in);
            using P = detail::V3Reader::Part;
            switch (part.part) {
            case P::NeedMore: return {};
            case P::Headers: break;
            case P::OneByte:
                if (!have_status_) {
                    if (part.byte != 'S' && part.byte != 'E') return fail("bad status byte");
                    success_ = part.byte == 'S';
                    have_status_ = true;
                    break;
                }
                if (have_args_ && part.byte == 'E' && !in_error_) {
                    in_error_ = true;
                    break;
                }
                return fail("unexpected status byte");
            case P::Structure: {
                Event ev;
                ev.version = 3;
                if (!have_status_) return fail("structure before status");
                if (!part.value.is_list()) return fail("response args are not a list");
                if (!have_args_) {
                    have_args_ = true;
                    ev.kind = Ev::ArgsReady;
                    ev.success = success_;
                } else if (in_error_ && !have_error_args_) {
                    have_error_args_ = true;
                    ev.kind = Ev::StreamError;
                    ev.success = false;
                } else {
                    return fail("unexpected structure part");
                }
                ev.args = std::move(part.value.list);
                return ev;
            }
            case P::Bytes: {
                if (!have_args_) return fail("body before args");
                if (in_error_) return fail("body after error");
                if (part.data.empty()) break;
                Event ev;
                ev.kind = Ev::BodyChunk;
                ev.version = 3;
                ev.chunk = part.data;
                return ev;
            }
            case P::End: {
                if (!have_args_) return fail("response without args");
                // oE then e: a truncated body must not look like a success.
                if (in_error_ && !have_error_args_) return fail("stream error without error args");
                state_ = State::Done;
                Event ev;
                ev.kind = Ev::End;
                ev.version = 3;
                return ev;
            }
            case P::Error: return fail(std::move(part.error));
            }
            break;
        }
        case State::V12Marker:
        case State::V12Status:
        case State::V12Line: {
            if (in.empty()) return {};
            int r = read_line(in, line_, limits_.max_line);
            if (r < 0) return fail("response line too long");
            if (r == 0) return {};
            // swap, not move-construct: GCC 12 -O2 reports the moved-from
            // buffer as maybe-uninitialized (-Werror in RelWithDebInfo).
            std::string line;
            line.swap(line_);
            if (state_ == State::V12Marker) {
                if (line != kV2ResponseMarker) return fail("bad v2 response marker");
                state_ = State::V12Status;
                break;
            }
            if (state_ == State::V12Status) {
                if (line == "success\n") success_ = true;
                else if (line == "failed\n") success_ = false;
                else return fail("bad v2 status line");
                state_ = State::V12Line;
                break;
            }
            return line_event(std::string_view(line).substr(0, line.size() - 1));
        }
        case State::V12BodyLen: {
            if (in.empty()) return {};
            int r = read_line(in, line_, 32);
            if (r < 0) return fail("body length line too long");
            if (r == 0) return {};
            uint64_t n = 0;
            if (!parse_decimal(std::string_view(line_).substr(0, line_.size() - 1), n))
                return fail("bad body length");
            if (n > limits_.max_body) return fail("body too large");
            line_.clear();
            body_left_ = n;
            state_ = State::V12Body;
            break;
        }
        case State::V12Body: {
            if (body_left_ == 0) {
                // Expect the "done\n" trailer.
                size_t n = std::min<size_t>(5 - line_.size(), in.size());
                line_.append(in.substr(0, n));
                in.remove_prefix(n);
                if (std::string_view("done\n").substr(0, line_.size()) != line_)
                    return fail("missing done trailer");
                if (line_.size() < 5) return {};
                line_.clear();
                state_ = State::V12Done;
                break;
            }
            if (in.empty()) return {};
            size_t n = static_cast<size_t>(std::min<uint64_t>(body_left_, in.size()));
            Event ev;
            ev.kind = Ev::BodyChunk;
            ev.version = version_;
            ev.chunk = in.substr(0, n);
            in.remove_prefix(n);
            body_left_ -= n;
            return ev;
        }
        case State::V12Done: {
            state_ = State::Done;
            Event ev;
            ev.kind = Ev::End;
            ev.version = version_;
            return ev;
        }
        case State::Done:
            return fail("read past end of response");
        case State::Failed:
            return fail("decoder failed earlier");
        }
    }
}

}  // namespace souk::proto
