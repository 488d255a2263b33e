// TCP listening and connecting, and child processes with pipes (the
// client's ssh). Every descriptor is O_CLOEXEC. Failures return an invalid
// Fd / pid -1 with a message in *err.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "transport/fd.hpp"
#include "transport/stream.hpp"

namespace souk::io {

// Bind and listen on host:port (numeric or name; "" = any). Port 0 picks a
// free port; bound_port() tells which.
Fd listen_tcp(const std::string& host, uint16_t port, int backlog, std::string* err);
uint16_t bound_port(int listen_fd);
// Accept one connection (blocking up to timeout_ms; -1 = forever). Invalid
// Fd on timeout (errno ETIMEDOUT) or error.
Fd accept_tcp(int listen_fd, int timeout_ms);
// Connect with a timeout; sets TCP_NODELAY (requests are small and
// latency-bound, as Breezy's client also does).
Fd connect_tcp(const std::string& host, uint16_t port, int timeout_ms, std::string* err);

struct Child {
    pid_t pid = -1;
    Stream stream;  // writes go to the child's stdin, reads come from its stdout
};
// Run argv[0] (searched in PATH) with its stdin/stdout on pipes; stderr is
// inherited so the user sees ssh's prompts and errors.
Child spawn(const std::vector<std::string>& argv, std::string* err);
// Reap a child; returns its exit status (as from waitpid) or -1.
int wait_child(pid_t pid);

// Write the bound port to `path` atomically (temp file + rename), for
// scripts and tests that start a server on port 0. false on failure.
bool write_port_file(const std::string& path, uint16_t port);

}  // namespace souk::io
