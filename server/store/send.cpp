#include "server/store/send.hpp"

#include <errno.h>

#include <algorithm>
#include <string>

namespace souk::server {
namespace {
// Piece size when sending through pread: large enough for one lower read
// per piece on slow storage, small enough to stay in the CPU caches' reach.
constexpr uint64_t kPiece = 1ull << 20;
}  // namespace

int64_t send_range(Store& store, io::Sink& out, OpenFile& f, uint64_t offset, uint64_t n) {
    if (store.direct_ok() && out.direct()) {
        int64_t sent = out.send_file(f.fd.get(), offset, n);
        if (sent > 0) store.note_read(f, offset, static_cast<uint64_t>(sent));
        return sent;
    }
    std::string buf(static_cast<size_t>(std::min(n, kPiece)), '\0');
    uint64_t done = 0;
    while (done < n) {  // bounded: each pass sends >= 1 byte or returns
        const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), n - done));
        ssize_t r = store.pread(f, buf.data(), want, offset + done);
        if (r < 0) {
            errno = static_cast<int>(-r);
            return done > 0 ? static_cast<int64_t>(done) : -1;
        }
        if (r == 0) break;  // the file ended early
        if (!out.write(std::string_view(buf.data(), static_cast<size_t>(r)))) return -1;
        done += static_cast<uint64_t>(r);
    }
    return static_cast<int64_t>(done);
}

}  // namespace souk::server
