// souk: the command-line client (docs/layout.md#who-uses-souk: "a person at a shell").
// Unix conventions: data on stdout, messages on stderr, exit status says
// what kind of failure happened. Every error is a sentence a person can act
// on; bad input never crashes it.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <exception>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/client.hpp"

namespace {

using json = nlohmann::json;
namespace sc = souk::client;

constexpr int kExitOk = 0;
constexpr int kExitRemote = 1;   // the server reported an error (or a local file failed)
constexpr int kExitUsage = 2;
constexpr int kExitConnection = 3;

constexpr const char* kHelp = R"(usage: souk [OPTIONS] COMMAND URL [ARGS...]

A client for Bazaar smart servers (soukd, brz serve).

Commands:
  get URL [-o FILE]        write the file to stdout, or to FILE
  readv URL START:LEN...   write the byte ranges, concatenated in the order
                           given, to stdout
  put URL [FILE|-]         replace the file atomically with FILE's contents
                           (stdin if FILE is - or missing)
  append URL [FILE|-]      append FILE (or stdin) to the file, creating it if
                           needed; prints the file's length before the append
  ls URL                   list a directory, one name per line (sorted)
  find URL                 list every file below a directory, recursively
  stat URL                 print the size, type and mode
  has URL                  print "yes" or "no" (exit status 0 either way)
  mkdir URL                create a directory (the parent must exist)
  rm URL                   delete a file; with -d, delete an empty directory
  rmdir URL                delete an empty directory (same as rm -d)
  mv URL NEWPATH           rename, with rename(2) semantics: replaces a file,
                           fails onto a non-empty directory. With --replace,
                           use the move verb, which replaces the destination.
                           NEWPATH is a URL on the same server, an absolute
                           server path (/dir/name), or a path relative to
                           the directory that contains URL.

Options (anywhere after the command; "--" ends options):
  --json              print structured output as one JSON value: get, put,
                      append, stat, has, mkdir, rm, rmdir, mv print an
                      object; ls and find an array of names; readv an array
                      of {"offset", "length", "data"} with data in base64;
                      get prints {"path", "size", "data"} (base64) unless -o
                      is given. Errors are still text on stderr.
  --timeout SECONDS   fail when the server makes no progress for this long
                      (default 60)
  --mode OCTAL        permissions for a file or directory that put, append
                      or mkdir creates (e.g. 644); default: the server's
  -o, --output FILE   get: write to FILE (replaced atomically when FILE is
                      a regular file or does not exist)
  -d, --dir           rm: delete an empty directory
  --replace           mv: replace the destination
  -h, --help          show this help
  --version           show the version

URLs:
  bzr://HOST[:PORT]/PATH            TCP, default port 4155
  bzr+ssh://[USER@]HOST[:PORT]/PATH runs "ssh HOST soukd serve --inet ..."
  bzr+http://HOST[:PORT]/PATH       smart requests POSTed to PATH/.bzr/smart
  bzr+https://HOST[:PORT]/PATH      (soukd --http, or soukd cgi behind a web
                                    server); every command, writes included
  http://HOST[:PORT]/PATH           any web server, reads only: get, readv
  https://HOST[:PORT]/PATH          (one GET with a multi-range Range header
                                    per up to 128 ranges), stat and has (HEAD)
  One keep-alive connection; responses are asked for with zstd.
  IPv6 addresses go in brackets: bzr://[::1]:4155/x. Write %XX for
  special characters in paths (%20 for a space).

Environment:
  SOUK_SSH            command that replaces ssh for bzr+ssh:// URLs, split
                      on spaces with '...' and "..." quoting; souk appends
                      [-p PORT] [-l USER] HOST REMOTE-COMMAND.
                      A local pipe, for testing:
                        SOUK_SSH="sh -c 'shift; exec \"\$@\"' ssh"
  BZR_REMOTE_PATH     program to run on the remote host (default: soukd)
  SOUK_CA_FILE        https: PEM file of CA certificates to trust instead of
                      the system's (e.g. a self-signed server certificate)

Exit status:
  0  success
  1  the server reported an error (no such file, exists, read-only, ...),
     or a local file could not be read or written
  2  usage error (bad command, option, URL or range)
  3  connection or protocol failure (cannot connect, timeout, reset,
     malformed reply)
)";

struct Cli {
    std::string command;
    std::vector<std::string> positional;
    bool json = false;
    std::optional<std::chrono::milliseconds> timeout;
    std::optional<uint32_t> mode;
    std::optional<std::string> output;
    bool dir = false;
    bool replace = false;
};

int usage_error(const std::string& message) {
    fprintf(stderr, "souk: %s\nTry 'souk --help' for more information.\n", message.c_str());
    return kExitUsage;
}

int exit_code_for(const sc::Error& e) {
    switch (e.kind) {
    case sc::ErrorKind::InvalidArgument: return kExitUsage;
    case sc::ErrorKind::Protocol:
    case sc::ErrorKind::Connection:
    case sc::ErrorKind::Timeout: return kExitConnection;
    default: return kExitRemote;
    }
}

// "souk: get bzr://host/x: no such file: /x"
int report(const Cli& cli, const sc::Error& e) {
    std::string where = cli.command;
    if (!cli.positional.empty()) where += " " + cli.positional[0];
    fprintf(stderr, "souk: %s: %s\n", where.c_str(), e.message.c_str());
    return exit_code_for(e);
}

int local_failure(const Cli& cli, const std::string& what) {
    std::string where = cli.command;
    if (!cli.positional.empty()) where += " " + cli.positional[0];
    fprintf(stderr, "souk: %s: %s\n", where.c_str(), what.c_str());
    return kExitRemote;
}

bool write_fd(int fd, std::string_view data) {
    while (!data.empty()) {  // bounded: each pass writes >= 1 byte or returns
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

bool print(std::string_view text) { return write_fd(STDOUT_FILENO, text); }

bool print_json(const json& j) {
    // Names and data from the server need not be UTF-8: replace, never throw.
    return print(j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
}

std::string base64(std::string_view in) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                     static_cast<uint8_t>(in[i + 2]);
        out += tbl[v >> 18];
        out += tbl[(v >> 12) & 63];
        out += tbl[(v >> 6) & 63];
        out += tbl[v & 63];
    }
    if (i + 1 == in.size()) {
        uint32_t v = static_cast<uint8_t>(in[i]) << 16;
        out += tbl[v >> 18];
        out += tbl[(v >> 12) & 63];
        out += "==";
    } else if (i + 2 == in.size()) {
        uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
        out += tbl[v >> 18];
        out += tbl[(v >> 12) & 63];
        out += tbl[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

// Read all of fd; false with errno on failure.
bool read_all(int fd, std::string& out) {
    char buf[64 * 1024];
    for (;;) {  // ends at EOF or error
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return false;
        if (n == 0) return true;
        out.append(buf, static_cast<size_t>(n));
    }
}

std::optional<std::chrono::milliseconds> parse_timeout(const std::string& s) {
    if (s.empty() || s.size() > 20) return std::nullopt;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || c == '.')) return std::nullopt;
    char* end = nullptr;
    errno = 0;
    double v = strtod(s.c_str(), &end);
    if (errno != 0 || end != s.c_str() + s.size() || !std::isfinite(v) || v <= 0 || v > 1e7) return std::nullopt;
    return std::chrono::milliseconds(std::max<int64_t>(1, static_cast<int64_t>(v * 1000)));
}

std::optional<uint32_t> parse_perm(const std::string& s) {
    auto m = sc::parse_mode(s);
    if (!m || *m > 07777) return std::nullopt;
    return m;
}

const char* type_name(const sc::FileStat& st) {
    if (st.is_file()) return "file";
    if (st.is_dir()) return "directory";
    if (st.is_symlink()) return "symlink";
    return "other";
}

std::string octal(uint32_t v, int width) {
    char buf[16];
    snprintf(buf, sizeof buf, "%0*o", width, v);
    return buf;
}

// ------------------------------------------------------------- parsing --

struct CommandSpec {
    const char* name;
    size_t min_pos, max_pos;  // positional args including the URL
    bool output, mode, dir, replace;
};

constexpr size_t kMany = 1u << 20;
constexpr CommandSpec kCommands[] = {
    {"get", 1, 1, true, false, false, false},     {"readv", 2, kMany, false, false, false, false},
    {"put", 1, 2, false, true, false, false},     {"append", 1, 2, false, true, false, false},
    {"ls", 1, 1, false, false, false, false},     {"find", 1, 1, false, false, false, false},
    {"stat", 1, 1, false, false, false, false},   {"has", 1, 1, false, false, false, false},
    {"mkdir", 1, 1, false, true, false, false},   {"rm", 1, 1, false, false, true, false},
    {"rmdir", 1, 1, false, false, false, false},  {"mv", 2, 2, false, false, false, true},
};

const CommandSpec* find_command(std::string_view name) {
    for (const auto& c : kCommands)
        if (name == c.name) return &c;
    return nullptr;
}

bool looks_negative_number(const std::string& a) { return a.size() > 1 && a[0] == '-' && a[1] >= '0' && a[1] <= '9'; }

// Returns -1 to continue, else an exit status (help, version, usage error).
int parse_args(int argc, char** argv, Cli& cli) {
    std::vector<std::string> args(argv + 1, argv + argc);
    bool options_done = false;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (options_done || a == "-" || a.empty() || a[0] != '-' || looks_negative_number(a)) {
            if (cli.command.empty()) cli.command = a;
            else cli.positional.push_back(a);
            continue;
        }
        if (a == "--") {
            options_done = true;
            continue;
        }
        std::string name = a, value;
        bool has_value = false;
        if (a.rfind("--", 0) == 0) {
            size_t eq = a.find('=');
            if (eq != std::string::npos) {
                name = a.substr(0, eq);
                value = a.substr(eq + 1);
                has_value = true;
            }
        } else if (a.size() > 2 && a[0] == '-' && a[1] == 'o') {  // -oFILE
            name = "-o";
            value = a.substr(2);
            has_value = true;
        }
        auto take_value = [&]() -> bool {
            if (has_value) return true;
            if (i + 1 >= args.size()) return false;
            value = args[++i];
            return true;
        };
        auto no_value = [&]() { return !has_value; };
        if (name == "-h" || name == "--help") {
            print(kHelp);
            return kExitOk;
        }
        if (name == "--version") {
            print("souk " SOUK_VERSION " (Bazaar smart protocol v3 client)\n");
            return kExitOk;
        }
        if (name == "--json") {
            if (!no_value()) return usage_error("--json takes no value");
            cli.json = true;
        } else if (name == "--timeout") {
            if (!take_value()) return usage_error("--timeout needs a number of seconds");
            cli.timeout = parse_timeout(value);
            if (!cli.timeout) return usage_error("--timeout '" + value + "': expected a positive number of seconds");
        } else if (name == "--mode") {
            if (!take_value()) return usage_error("--mode needs an octal mode such as 644");
            cli.mode = parse_perm(value);
            if (!cli.mode) return usage_error("--mode '" + value + "': expected an octal mode from 0 to 7777");
        } else if (name == "-o" || name == "--output") {
            if (!take_value() || value.empty()) return usage_error("-o needs a file name");
            cli.output = value;
        } else if (name == "-d" || name == "--dir") {
            if (!no_value()) return usage_error(name + " takes no value");
            cli.dir = true;
        } else if (name == "--replace") {
            if (!no_value()) return usage_error("--replace takes no value");
            cli.replace = true;
        } else {
            return usage_error("unknown option '" + a + "'");
        }
    }
    if (cli.command.empty()) return usage_error("no command given");
    if (cli.command == "help") {
        print(kHelp);
        return kExitOk;
    }
    const CommandSpec* spec = find_command(cli.command);
    if (!spec) return usage_error("unknown command '" + cli.command + "'");
    const std::string& c = cli.command;
    if (cli.positional.empty()) return usage_error(c + ": missing URL");
    if (cli.positional.size() < spec->min_pos) {
        if (c == "readv") return usage_error("readv: give at least one range START:LEN after the URL");
        if (c == "mv") return usage_error("mv: missing NEWPATH after the URL");
        return usage_error(c + ": missing argument");
    }
    if (cli.positional.size() > spec->max_pos)
        return usage_error(c + ": unexpected argument '" + cli.positional[spec->max_pos] + "'");
    if (cli.output && !spec->output) return usage_error("-o is only valid with get");
    if (cli.mode && !spec->mode) return usage_error("--mode is only valid with put, append and mkdir");
    if (cli.dir && !spec->dir) return usage_error("-d is only valid with rm");
    if (cli.replace && !spec->replace) return usage_error("--replace is only valid with mv");
    return -1;
}

// ------------------------------------------------------------ progress --

// A progress bar on stderr for transfers over 1 MiB: bytes, rate and time
// left, redrawn at most ten times a second and erased at the end. Only
// when stdout and stderr are both terminals (never into a pipe, a file or
// a log) and never with --json. SOUK_PROGRESS=0 turns it off, =1 forces it.
class Progress {
public:
    static constexpr uint64_t kMinBytes = 1u << 20;
    static bool wanted(const Cli& cli) {
        const char* env = getenv("SOUK_PROGRESS");
        if (env && *env) return env[0] == '1';
        return !cli.json && isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
    }
    void start(uint64_t total) {
        if (total <= kMinBytes) return;
        on_ = true;
        total_ = total;
        done_ = 0;
        t0_ = last_ = std::chrono::steady_clock::now();
        draw(true);
    }
    void add(uint64_t n) { set(done_ + n); }
    void set(uint64_t done) {
        if (!on_) return;
        done_ = done;
        draw(false);
    }
    void finish() {
        if (!on_) return;
        on_ = false;
        write_fd(STDERR_FILENO, "\r\033[K");
    }

private:
    static std::string size_text(double b) {
        char buf[32];
        if (b >= 1024.0 * 1024 * 1024) snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
        else snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
        return buf;
    }
    void draw(bool force) {
        auto now = std::chrono::steady_clock::now();
        if (!force && now - last_ < std::chrono::milliseconds(100) && done_ < total_) return;
        last_ = now;
        double secs = std::chrono::duration<double>(now - t0_).count();
        double rate = secs > 0.05 ? static_cast<double>(done_) / secs : 0;
        int pct = total_ ? static_cast<int>(100.0 * static_cast<double>(std::min(done_, total_)) / static_cast<double>(total_)) : 0;
        constexpr int kWidth = 24;
        std::string bar(kWidth, ' ');
        for (int i = 0; i < kWidth * pct / 100; ++i) bar[static_cast<size_t>(i)] = '#';
        std::string left = "--:--";
        if (rate > 0 && done_ <= total_) {
            auto s = static_cast<long long>(static_cast<double>(total_ - done_) / rate);
            char buf[32];
            if (s >= 3600) snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
            else snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
            left = buf;
        }
        char line[200];
        snprintf(line, sizeof line, "\r[%s] %3d%%  %s / %s  %s/s  %s left\033[K", bar.c_str(), pct,
                 size_text(static_cast<double>(done_)).c_str(), size_text(static_cast<double>(total_)).c_str(),
                 size_text(rate).c_str(), left.c_str());
        write_fd(STDERR_FILENO, line);
    }

    bool on_ = false;
    uint64_t total_ = 0, done_ = 0;
    std::chrono::steady_clock::time_point t0_, last_;
};

Progress g_progress;

// Start the bar for a download of `path`'s size (one stat, on a terminal only).
void start_download_progress(const Cli& cli, sc::Client& client) {
    if (!Progress::wanted(cli)) return;
    auto st = client.stat("");
    if (st && st->is_file()) g_progress.start(st->size);
}

// ------------------------------------------------------------ commands --

// Write a downloaded file to `path`: through a temporary file renamed into
// place when `path` is (or will be) a regular file, so a failed download
// never leaves a truncated file; directly otherwise (a FIFO, /dev/null).
int get_to_file(const Cli& cli, sc::Client& client, const std::string& path) {
    struct stat st;
    bool direct = ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode);
    std::string tmp;
    int fd;
    if (direct) {
        fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    } else {
        tmp = path + ".souk-XXXXXX";
        fd = ::mkostemp(tmp.data(), O_CLOEXEC);
        if (fd >= 0) {
            mode_t mask = ::umask(0);
            ::umask(mask);
            ::fchmod(fd, 0666 & ~mask);
        }
    }
    if (fd < 0) return local_failure(cli, "cannot write " + path + ": " + strerror(errno));
    int write_errno = 0;
    start_download_progress(cli, client);
    auto r = client.get_to("", [&](std::string_view chunk) {
        g_progress.add(chunk.size());
        if (write_fd(fd, chunk)) return true;
        write_errno = errno;
        return false;
    });
    g_progress.finish();
    if (r && ::close(fd) != 0) write_errno = errno;
    else if (!r) ::close(fd);
    if (!r || write_errno) {
        if (!tmp.empty()) ::unlink(tmp.c_str());
        if (write_errno) return local_failure(cli, "cannot write " + path + ": " + strerror(write_errno));
        return report(cli, r.error());
    }
    if (!tmp.empty() && ::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return local_failure(cli, "cannot write " + path + ": " + strerror(e));
    }
    if (cli.json) print_json({{"path", *client.resolve("")}, {"size", *r}, {"output", path}});
    return kExitOk;
}

int cmd_get(const Cli& cli, sc::Client& client) {
    if (cli.output) return get_to_file(cli, client, *cli.output);
    if (cli.json) {
        auto r = client.get("");
        if (!r) return report(cli, r.error());
        print_json({{"path", *client.resolve("")}, {"size", r->size()}, {"data", base64(*r)}});
        return kExitOk;
    }
    int write_errno = 0;
    start_download_progress(cli, client);
    auto r = client.get_to("", [&](std::string_view chunk) {
        g_progress.add(chunk.size());
        if (write_fd(STDOUT_FILENO, chunk)) return true;
        write_errno = errno;
        return false;
    });
    g_progress.finish();
    if (write_errno) return local_failure(cli, std::string("cannot write to stdout: ") + strerror(write_errno));
    if (!r) return report(cli, r.error());
    return kExitOk;
}

int cmd_readv(const Cli& cli, sc::Client& client) {
    std::vector<sc::Range> ranges;
    for (size_t i = 1; i < cli.positional.size(); ++i) {
        auto r = sc::parse_range_spec(cli.positional[i]);
        if (!r) return usage_error(r.error().message);
        ranges.push_back(*r);
    }
    if (cli.json) {
        auto r = client.readv("", ranges);
        if (!r) return report(cli, r.error());
        json out = json::array();
        for (size_t i = 0; i < ranges.size(); ++i)
            out.push_back({{"offset", ranges[i].offset}, {"length", ranges[i].length}, {"data", base64((*r)[i])}});
        print_json(out);
        return kExitOk;
    }
    int write_errno = 0;
    if (Progress::wanted(cli)) {
        uint64_t total = 0;
        for (const auto& r : ranges) total += r.length;
        g_progress.start(total);
    }
    auto st = client.readv_each("", ranges, [&](size_t, std::string_view data) {
        g_progress.add(data.size());
        if (write_fd(STDOUT_FILENO, data)) return true;
        write_errno = errno;
        return false;
    });
    g_progress.finish();
    if (write_errno) return local_failure(cli, std::string("cannot write to stdout: ") + strerror(write_errno));
    if (!st) return report(cli, st.error());
    return kExitOk;
}

int read_input(const Cli& cli, std::string& data) {
    std::string src = cli.positional.size() > 1 ? cli.positional[1] : "-";
    if (src == "-") {
        if (!read_all(STDIN_FILENO, data)) return local_failure(cli, std::string("cannot read stdin: ") + strerror(errno));
        return -1;
    }
    int fd = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return local_failure(cli, "cannot read " + src + ": " + strerror(errno));
    bool ok = read_all(fd, data);
    int e = errno;
    ::close(fd);
    if (!ok) return local_failure(cli, "cannot read " + src + ": " + strerror(e));
    return -1;
}

int cmd_put_append(const Cli& cli, sc::Client& client) {
    std::string data;
    if (int rc = read_input(cli, data); rc >= 0) return rc;
    if (Progress::wanted(cli)) g_progress.start(data.size());  // fed by Options::upload_progress
    if (cli.command == "put") {
        auto st = client.put("", data, cli.mode);
        g_progress.finish();
        if (!st) return report(cli, st.error());
        if (cli.json) print_json({{"path", *client.resolve("")}, {"size", data.size()}});
        return kExitOk;
    }
    auto r = client.append("", data, cli.mode);
    g_progress.finish();
    if (!r) return report(cli, r.error());
    if (cli.json)
        print_json({{"path", *client.resolve("")}, {"old_length", *r}, {"new_length", *r + data.size()}});
    else
        print(std::to_string(*r) + "\n");
    return kExitOk;
}

int cmd_names(const Cli& cli, sc::Client& client) {
    auto r = cli.command == "ls" ? client.list_dir("") : client.iter_files_recursive("");
    if (!r) return report(cli, r.error());
    std::vector<std::string> names = std::move(r).value();
    std::sort(names.begin(), names.end());
    if (cli.json) {
        print_json(names);
        return kExitOk;
    }
    std::string out;
    for (const auto& n : names) {
        out += n;
        out += '\n';
    }
    print(out);
    return kExitOk;
}

int cmd_stat(const Cli& cli, sc::Client& client) {
    auto r = client.stat("");
    if (!r) return report(cli, r.error());
    std::string path = *client.resolve("");
    if (cli.json) {
        print_json({{"path", path},
                    {"size", r->size},
                    {"mode", r->mode},
                    {"mode_octal", octal(r->mode, 1)},
                    {"permissions", octal(r->permissions(), 4)},
                    {"type", type_name(*r)}});
        return kExitOk;
    }
    print("path: " + path + "\ntype: " + type_name(*r) + "\nsize: " + std::to_string(r->size) +
          "\nmode: " + octal(r->permissions(), 4) + " (" + octal(r->mode, 7) + ")\n");
    return kExitOk;
}

int cmd_has(const Cli& cli, sc::Client& client) {
    auto r = client.has("");
    if (!r) return report(cli, r.error());
    if (cli.json) print_json({{"path", *client.resolve("")}, {"exists", *r}});
    else print(*r ? "yes\n" : "no\n");
    return kExitOk;
}

int cmd_simple(const Cli& cli, sc::Client& client) {
    sc::Status st;
    if (cli.command == "mkdir") st = client.mkdir("", cli.mode);
    else if (cli.command == "rmdir" || cli.dir) st = client.rmdir("");
    else st = client.remove("");
    if (!st) return report(cli, st.error());
    if (cli.json) print_json({{"path", *client.resolve("")}, {"ok", true}});
    return kExitOk;
}

int cmd_mv(const Cli& cli, sc::Client& client) {
    const std::string& dest = cli.positional[1];
    std::string to;
    if (dest.find("://") != std::string::npos) {
        auto u = sc::parse_url(dest);
        if (!u) return usage_error("mv: NEWPATH: " + u.error().message);
        if (!u->same_server(client.url()))
            return usage_error("mv: NEWPATH '" + dest + "' is on a different server than the URL");
        to = u->path;  // absolute
    } else if (!dest.empty() && dest[0] == '/') {
        to = dest;
    } else {
        if (dest.empty()) return usage_error("mv: NEWPATH is empty");
        to = "../" + dest;  // relative to the directory containing URL
    }
    auto from_abs = client.resolve("");
    auto to_abs = client.resolve(to);
    if (!to_abs) return usage_error("mv: NEWPATH '" + dest + "' climbs above the server root");
    auto st = cli.replace ? client.move("", to) : client.rename("", to);
    if (!st) return report(cli, st.error());
    if (cli.json) print_json({{"from", *from_abs}, {"to", *to_abs}, {"ok", true}});
    return kExitOk;
}

int run(int argc, char** argv) {
    Cli cli;
    if (int rc = parse_args(argc, argv, cli); rc >= 0) return rc;

    sc::Options opts;
    if (cli.timeout) opts.timeout = *cli.timeout;
    opts.upload_progress = [](uint64_t sent) { g_progress.set(sent); };
    auto url = sc::parse_url(cli.positional[0]);
    if (!url) return usage_error(url.error().message);
    auto client = sc::Client::connect(cli.positional[0], opts);
    if (!client) return report(cli, client.error());

    const std::string& c = cli.command;
    if (c == "get") return cmd_get(cli, *client);
    if (c == "readv") return cmd_readv(cli, *client);
    if (c == "put" || c == "append") return cmd_put_append(cli, *client);
    if (c == "ls" || c == "find") return cmd_names(cli, *client);
    if (c == "stat") return cmd_stat(cli, *client);
    if (c == "has") return cmd_has(cli, *client);
    if (c == "mkdir" || c == "rm" || c == "rmdir") return cmd_simple(cli, *client);
    if (c == "mv") return cmd_mv(cli, *client);
    return usage_error("unknown command '" + c + "'");
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::bad_alloc&) {
        fprintf(stderr, "souk: out of memory\n");
    } catch (const std::exception& e) {
        fprintf(stderr, "souk: internal error: %s\n", e.what());
    } catch (...) {
        fprintf(stderr, "souk: internal error\n");
    }
    return kExitConnection;
}
