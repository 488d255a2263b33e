// libsouk: the souk client API (docs/layout.md). One Client = one
// connection (bzr:// TCP or bzr+ssh:// pipes) carrying many sequential
// protocol-v3 requests.
//
//   auto c = souk::client::connect("bzr+ssh://host/srv/repo");
//   if (!c) { report(c.error()); return; }
//   auto data = c->get(".bzr/branch-format");
//
// Paths: every `path` argument is an unescaped relative path, resolved against
// the URL's path ("" or "." = the URL's path itself, "a/b", "../x"); a leading
// '/' makes it absolute on the server. '..' may not climb above '/'. The
// client percent-encodes the result for the wire
// (docs/protocol/paths.md#two-path-styles) and shows the unescaped absolute
// path in error messages.
//
// Errors are values (error.hpp). A server failure reply leaves the
// connection usable; a transport or protocol failure drops it and the next
// call reconnects. A Client is not thread-safe: use one per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "client/connection.hpp"
#include "client/error.hpp"
#include "client/options.hpp"
#include "client/readv.hpp"
#include "client/url.hpp"
#include "protocol/value.hpp"
#include "protocol/verbs.hpp"

namespace souk::client {

struct FileStat {
    uint64_t size = 0;
    uint32_t mode = 0;  // st_mode as the server reported it: type bits + permissions

    bool is_dir() const { return (mode & 0170000) == 0040000; }
    bool is_file() const { return (mode & 0170000) == 0100000; }
    bool is_symlink() const { return (mode & 0170000) == 0120000; }
    uint32_t permissions() const { return mode & 07777; }
};

// Parse stat's mode text: octal digits with an optional "0o" prefix
// ("0o100644", "0100644", "40755"). nullopt if malformed or > 32 bits.
std::optional<uint32_t> parse_mode(std::string_view text);

// Parse a non-negative decimal (no sign, no spaces, <= 2^63-1).
std::optional<uint64_t> parse_decimal(std::string_view text);

// A successful reply to a raw call().
struct Reply {
    proto::Args args;   // the response args (args[0] is the status word)
    std::string body;   // the concatenated body parts ("" if none)
};

// Receives a response body piece by piece; return false to stop (the call
// then fails with Cancelled and the connection is dropped).
using BodySink = std::function<bool(std::string_view chunk)>;

class Client {
public:
    struct Stats {
        uint64_t requests = 0;    // requests written (retries included)
        uint64_t connects = 0;    // connections opened (the first included)
        uint64_t retries = 0;     // requests resent after a connection reset
    };

    // Parse `url` and connect (TCP connect, or start ssh). Fails with
    // InvalidArgument (bad URL / SOUK_SSH) or Connection.
    static Result<Client> connect(std::string_view url, Options opts = {});

    Client(Client&&) noexcept;
    Client& operator=(Client&&) noexcept;
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    ~Client();  // closes the connection and reaps the ssh child

    const Url& url() const { return url_; }
    const Options& options() const { return opts_; }
    const Stats& stats() const { return stats_; }

    // The absolute, unescaped server path `path` names (for messages), or
    // InvalidArgument if it climbs above '/'.
    Result<std::string> resolve(std::string_view path) const;

    // Whole file. ReadError for a directory, NoSuchFile if missing.
    Result<std::string> get(std::string_view path);
    // Whole file, streamed to `sink` as it arrives; returns the byte count.
    // An error after some chunks (the server's mid-stream oE) is an error,
    // never a silently short file. Retried after a reset only if `sink` has
    // not been called yet.
    Result<uint64_t> get_to(std::string_view path, const BodySink& sink);

    // Read `ranges` (any order, overlap allowed) with as few requests as the
    // limits in Options::readv allow; result i holds ranges[i]'s bytes.
    // ShortReadv if a range goes past the end of the file.
    Result<std::vector<std::string>> readv(std::string_view path, std::span<const Range> ranges);
    // Same, delivering each range once, in the caller's order, as soon as
    // it is available (deliver returns false to stop: Cancelled).
    Status readv_each(std::string_view path, std::span<const Range> ranges, const ReadvAssembler::Deliver& deliver);

    // Append `data` (creating the file with `mode` if missing); returns the
    // file's length before the append. Never retried.
    Result<uint64_t> append(std::string_view path, std::string_view data, std::optional<uint32_t> mode = {});
    // Atomically replace (or create) the file; the parent must exist.
    Status put(std::string_view path, std::string_view data, std::optional<uint32_t> mode = {});
    // Non-atomic write; create_parent makes the immediate parent directory.
    Status put_non_atomic(std::string_view path, std::string_view data, std::optional<uint32_t> mode = {},
                          bool create_parent = false, std::optional<uint32_t> dir_mode = {});
    Status mkdir(std::string_view path, std::optional<uint32_t> mode = {});
    Status rmdir(std::string_view path);            // DirectoryNotEmpty if not empty
    Status remove(std::string_view path);           // a file (wire verb "delete")
    Status rename(std::string_view from, std::string_view to);  // fails onto a non-empty directory
    Status move(std::string_view from, std::string_view to);    // replaces the destination
    Result<FileStat> stat(std::string_view path);
    // Entry names (unescaped, any order). NoSuchFile on a file.
    Result<std::vector<std::string>> list_dir(std::string_view path);
    // Every file below the directory, relative to it (unescaped).
    Result<std::vector<std::string>> iter_files_recursive(std::string_view path);
    Result<bool> has(std::string_view path);
    // Whether the server refuses writes; false if it lacks the verb.
    Result<bool> is_readonly();

    // Any verb: args[0] is the verb, the rest are passed unchanged (paths
    // are NOT resolved or escaped). A failure reply becomes an Error with
    // its args. Retried after a reset only for known verbs marked
    // safe_retry in the verb table.
    Result<Reply> call(const proto::Args& args, std::optional<std::string_view> body = std::nullopt);

    // Drop the connection now (reaping ssh); the next call reconnects.
    void close();

private:
    Client(Url url, Options opts, Connection conn);

    struct Target {
        std::string wire;   // escaped absolute path sent to the server
        std::string shown;  // unescaped absolute path for messages
    };
    Result<Target> target(std::string_view path) const;

    // Send one request and read its whole response, reconnecting and
    // retrying once after a reset when the verb allows it. `err_path` is
    // shown in error messages.
    Result<Reply> exchange(const proto::VerbInfo* verb, const proto::Args& args,
                           std::optional<std::string_view> body, const BodySink* sink, std::string_view err_path);
    Status ensure_connected();
    // Plain http(s):// (GETs only): the carrier, or an error for verbs it
    // cannot do.
    Result<HttpCarrier*> plain_http(std::string_view verb);
    Error plain_http_status(int status, const std::string& shown) const;
    // Drop the connection; returns how an ssh child ended ("" otherwise).
    std::string drop();

    Url url_;
    Options opts_;
    Connection conn_;
    bool fresh_ = false;  // conn_ has not carried a request yet
    Stats stats_;
};

// Same as Client::connect.
Result<Client> connect(std::string_view url, Options opts = {});

}  // namespace souk::client
