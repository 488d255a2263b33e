// One carrier connection of the client: a TCP socket (bzr://) or the pipes
// of an ssh child process (bzr+ssh://). Knows nothing of verbs; Client
// (client.hpp) drives it. Not thread-safe; one request at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <memory>
#include <optional>

#include "client/error.hpp"
#include "client/http.hpp"
#include "client/options.hpp"
#include "client/url.hpp"
#include "transport/stream.hpp"

namespace souk::client {

// Split a command line on spaces and tabs. Single quotes keep everything
// literally; inside double quotes a backslash escapes '"' and '\'; outside
// quotes a backslash escapes the next character. No variables, no globs.
// Fails (InvalidArgument) on an unbalanced quote or a trailing backslash.
Result<std::vector<std::string>> split_command(std::string_view line);

// The argv that reaches a bzr+ssh URL's server. REMOTE is `remote_program`
// followed by `serve --inet --directory=/ --allow-writes` (the arguments
// `bzr serve` takes, docs/protocol/README.md#over-ssh).
//
//  * `ssh_command` blank: Breezy's OpenSSH argv,
//      ssh -oForwardX11=no -oForwardAgent=no -oClearAllForwardings=yes
//          [-p PORT] [-l USER] -- HOST REMOTE...
//  * otherwise (the rsync -e / RSYNC_RSH rule): split_command(ssh_command),
//    then [-p PORT] [-l USER] HOST REMOTE... (no -o options, no "--").
//    So SOUK_SSH="ssh -i ~/key" adds an option, and a local pipe that just
//    runs the remote command is  SOUK_SSH="sh -c 'shift; exec \"\$@\"' ssh"
//    (for a URL without port or user: the shell drops HOST and execs the
//    rest).
Result<std::vector<std::string>> ssh_argv(const Url& url, std::string_view ssh_command,
                                          std::string_view remote_program);

// The effective ssh command and remote program for `opts`: the option if
// set, else $SOUK_SSH / $BZR_REMOTE_PATH, else "" / "soukd".
std::string effective_ssh_command(const Options& opts);
std::string effective_remote_program(const Options& opts);

class Connection {
public:
    Connection() = default;
    Connection(Connection&& o) noexcept;
    Connection& operator=(Connection&& o) noexcept;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() { close(); }

    // Connect over TCP or start the ssh child. For ssh, failures of the
    // remote side show up on the first request (ssh prints its own errors
    // on the inherited stderr).
    static Result<Connection> open(const Url& url, const Options& opts);

    bool valid() const { return stream_.valid() || http_ != nullptr; }
    bool is_pipe() const { return pid_ > 0; }

    // HTTP(S) URLs: the carrier (nullptr otherwise). For bzr+http, bytes
    // written are buffered as one request and POSTed to <URL path>/.bzr/smart
    // on the first read; reads then return the response body as it
    // arrives, then EOF.
    HttpCarrier* http() { return http_.get(); }
    // Why the last HTTP exchange failed (read_some returned -1), if it did.
    const std::optional<Error>& http_error() const { return http_error_; }
    // Over HTTP, bytes of the answer still to come when its length is known
    // (else 0): a hint to size the reply's body in one allocation.
    uint64_t answer_left() const { return http_ ? http_->body_left() : 0; }

    // Write every byte of `data`, or -1 with errno (EPIPE, ECONNRESET,
    // ETIMEDOUT, ...). The deadline restarts every 1 MiB, so `idle` bounds
    // the time without progress. Never raises SIGPIPE (sockets use
    // MSG_NOSIGNAL; for pipes SIGPIPE is blocked in this thread around the
    // write and a resulting pending SIGPIPE is consumed).
    int write_all(std::string_view data, std::chrono::milliseconds idle);
    // Read up to n bytes: > 0 read, 0 at EOF, -1 with errno (ETIMEDOUT).
    ssize_t read_some(char* buf, size_t n, std::chrono::milliseconds idle);
    // Non-blocking check between requests: true if the peer has closed (or
    // sent bytes nobody asked for), so the connection must not be reused.
    bool peer_gone();

    // Close both directions; for ssh, reap the child: wait up to 2 s after
    // closing its stdin, then SIGTERM, up to 1 s more, then SIGKILL. Returns
    // how the child ended ("ssh exited with status 255"), or "".
    std::string close();
    // What this connection runs or reaches, for messages ("ssh", "tcp").
    const std::string& program() const { return program_; }

private:
    io::Stream stream_;
    pid_t pid_ = -1;
    std::string program_;
    std::unique_ptr<HttpCarrier> http_;
    std::string smart_path_;  // escaped POST target
    std::string pending_;     // the request being written
    std::optional<Error> http_error_;
};

}  // namespace souk::client
