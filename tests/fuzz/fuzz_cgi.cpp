// The CGI front end (server/carriers/cgi.hpp, run_cgi) as a web server runs
// it: the fuzzed meta-variables are the whole environment and the fuzzed
// body is stdin; stdout is captured. Every run writes one response: a
// "Status:" line with a real status, headers without stray line breaks, a
// Content-Length that matches the body when one is given (none after HEAD),
// and no server path.
#include <sys/mman.h>

#include "fuzz.hpp"
#include "server/carriers/cgi.hpp"

using namespace souk;
using namespace souk::server;

extern char** environ;

namespace {

// A memory file holding `data`, positioned at its start.
int memfile(std::string_view data) {
    int fd = ::memfd_create("souk-fuzz-cgi", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
    FUZZ_CHECK(::lseek(fd, 0, SEEK_SET) == 0);
    return fd;
}

std::string slurp(int fd) {
    std::string out;
    FUZZ_CHECK(::lseek(fd, 0, SEEK_SET) == 0);
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
}

// The request's variables: the ones a web server always sets, chosen from
// the input, then any others the input names.
void set_environment(FuzzedDataProvider& in, uint8_t knobs) {
    ::clearenv();
    static const char* const kMethods[] = {"GET", "HEAD", "POST", "PUT"};
    ::setenv("GATEWAY_INTERFACE", "CGI/1.1", 1);
    if (!(knobs & 1)) ::setenv("REQUEST_METHOD", kMethods[(knobs >> 1) % 4], 1);
    static const char* const kNames[] = {"PATH_INFO", "REQUEST_URI", "CONTENT_LENGTH", "HTTP_RANGE",
                                         "HTTP_IF_NONE_MATCH", "HTTP_ACCEPT_ENCODING", "REQUEST_METHOD",
                                         "REMOTE_ADDR", "REMOTE_PORT", "REMOTE_USER", "SCRIPT_NAME",
                                         "HTTP_IF_MODIFIED_SINCE", "QUERY_STRING"};
    const size_t n = in.ConsumeIntegralInRange<size_t>(0, 12);
    for (size_t i = 0; i < n; ++i) {
        std::string name = in.ConsumeBool() ? kNames[in.ConsumeIntegralInRange<size_t>(0, 12)]
                                            : in.ConsumeRandomLengthString(24);
        std::string value = in.ConsumeRandomLengthString(200);
        if (name.empty() || name.find('=') != std::string::npos || name.find('\0') != std::string::npos) continue;
        value = value.substr(0, value.find('\0'));
        ::setenv(name.c_str(), value.c_str(), 1);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static fuzz::ServedTree tree("cgi");
    static const int saved_in = ::dup(STDIN_FILENO), saved_out = ::dup(STDOUT_FILENO);
    FUZZ_CHECK(saved_in >= 0 && saved_out >= 0);
    FuzzedDataProvider in(data, size);
    const uint8_t knobs = in.ConsumeIntegral<uint8_t>();
    set_environment(in, knobs);
    const std::string body = in.ConsumeRemainingBytesAsString();
    const std::string method = ::getenv("REQUEST_METHOD") ? ::getenv("REQUEST_METHOD") : "";

    WebOptions opts;
    if (knobs & 16) opts.prefix = "/bzr";
    const int body_fd = memfile(body), out_fd = memfile("");
    FUZZ_CHECK(::dup2(body_fd, STDIN_FILENO) == STDIN_FILENO && ::dup2(out_fd, STDOUT_FILENO) == STDOUT_FILENO);
    const int rc = run_cgi(tree.ctx, opts);
    FUZZ_CHECK(::dup2(saved_in, STDIN_FILENO) == STDIN_FILENO && ::dup2(saved_out, STDOUT_FILENO) == STDOUT_FILENO);
    const std::string out = slurp(out_fd);
    ::close(body_fd);
    ::close(out_fd);

    FUZZ_CHECK_SHOW(rc == 0, out);
    FUZZ_CHECK_SHOW(out.substr(0, 8) == "Status: " && out.size() >= 12, out);
    const int status = std::atoi(out.substr(8, 3).c_str());
    FUZZ_CHECK_SHOW(status >= 100 && status <= 599 && out[11] == ' ', out);
    const size_t end = out.find("\r\n\r\n");
    FUZZ_CHECK_SHOW(end != std::string::npos, out);
    const std::string head = out.substr(0, end + 2);
    // Every header line ends in CRLF, with no bare CR or LF inside.
    for (size_t i = 0; i < head.size(); ++i) {
        if (head[i] == '\r') FUZZ_CHECK_SHOW(i + 1 < head.size() && head[i + 1] == '\n', out);
        if (head[i] == '\n') FUZZ_CHECK_SHOW(i > 0 && head[i - 1] == '\r', out);
    }
    const std::string_view resp_body = std::string_view(out).substr(end + 4);
    const size_t cl = head.find("\r\nContent-Length: ");
    if (cl != std::string::npos) {
        const uint64_t n = std::strtoull(head.c_str() + cl + 18, nullptr, 10);
        if (method == "HEAD") FUZZ_CHECK_SHOW(resp_body.empty(), out);
        else FUZZ_CHECK_SHOW(n == resp_body.size(), out);
    }
    if (head.find("\r\nContent-Encoding: zstd") == std::string::npos) FUZZ_CHECK_SHOW(!tree.reveals_root(out, fuzz::view(data, size)), out);
    return 0;
}
