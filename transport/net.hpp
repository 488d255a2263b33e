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
// Bind and listen on a unix socket at `path`, created with permissions
// `mode` (e.g. 0660). A socket file already there is replaced only when
// nothing answers on it (a server that died); a live socket or any other
// kind of file is an error. *ino receives the new file's inode, for
// remove_unix_socket.
Fd listen_unix(const std::string& path, unsigned mode, int backlog, uint64_t* ino, std::string* err);
// Remove the socket file at `path` if it is still the one listen_unix made
// (same inode): never another process's newer socket.
void remove_unix_socket(const std::string& path, uint64_t ino);
// Accept one connection (blocking up to timeout_ms; -1 = forever). Invalid
// Fd on timeout (errno ETIMEDOUT) or error.
Fd accept_tcp(int listen_fd, int timeout_ms);
// Connect with a timeout; sets TCP_NODELAY (requests are small and
// latency-bound, as Breezy's client also does). Invalid Fd on failure, with
// *err a message and errno the cause (ETIMEDOUT when the time ran out).
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

// systemd without libsystemd (docs/install.md#systemd).
// The sockets systemd passed to this process (socket activation,
// sd_listen_fds(3)): when $LISTEN_PID is our pid, $LISTEN_FDS descriptors
// from 3 on, named by $LISTEN_FDNAMES (colon-separated; "" when absent).
// They become close-on-exec and the three variables are unset, so no child
// takes them. Empty when nothing was passed. Call once, before any thread.
struct PassedSocket {
    Fd fd;
    std::string name;
};
std::vector<PassedSocket> take_passed_sockets();
// Is fd a listening stream socket (not a connection)?
bool is_listening_stream(int fd);
// Tell the service manager `state` ("READY=1", "STOPPING=1"): one datagram
// to the AF_UNIX socket $NOTIFY_SOCKET names (a leading '@' means the
// abstract namespace), sd_notify(3)'s protocol. false when the variable is
// unset or the send fails (nothing to do for the caller either way).
bool notify_service_manager(const char* state);

// Write the bound port to `path` atomically (temp file + rename), for
// scripts and tests that start a server on port 0. false on failure.
bool write_port_file(const std::string& path, uint16_t port);

}  // namespace souk::io
