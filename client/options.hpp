// Client options: every bound the client applies, with its default.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "client/readv.hpp"

namespace souk::client {

struct Options {
    // The longest wait for progress on any one read or write (not for the
    // whole request: a large transfer that keeps moving never times out).
    std::chrono::milliseconds timeout{60'000};
    // The longest wait for a TCP connection to be established.
    std::chrono::milliseconds connect_timeout{30'000};
    // After a connection reset (EOF or EPIPE/ECONNRESET before a complete
    // response), reconnect and resend once, only for verbs whose verb-table
    // safe_retry flag is set (never append, mkdir, rename, move, delete,
    // rmdir), and only if no body bytes reached a streaming callback.
    bool retry = true;
    // readv coalescing and splitting (readv.hpp).
    ReadvLimits readv{};
    // Largest response body accepted (a bound against a runaway server).
    uint64_t max_response_body = 16ull << 30;
    // Largest response args structure: list_dir and iter_files_recursive
    // return every name in it, so it is far above the server's 1 MiB.
    size_t max_response_args = 256u << 20;
    // bzr+ssh: the command that replaces `ssh` (see ssh_argv in
    // connection.hpp). nullopt = the SOUK_SSH environment variable; unset
    // or blank there = OpenSSH's `ssh` with Breezy's options.
    std::optional<std::string> ssh_command;
    // bzr+ssh: the program run on the remote host. nullopt = the
    // BZR_REMOTE_PATH environment variable, else "soukd".
    std::optional<std::string> remote_program;
    // https: a PEM file of CA certificates to trust instead of the
    // system's. nullopt = the SOUK_CA_FILE environment variable, else the
    // system's (OpenSSL's defaults; SSL_CERT_FILE also works).
    std::optional<std::string> ca_file;
    // Called as a request body goes out (bytes of the body sent so far),
    // on stream carriers, for bodies sent in parts (over 256 KiB): the
    // CLI's upload progress bar. Empty: not called.
    std::function<void(uint64_t sent)> upload_progress;
};

}  // namespace souk::client
