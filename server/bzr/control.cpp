#include "server/bzr/control.hpp"

#include <errno.h>

#include "server/store/paths.hpp"

namespace souk::server::bzr {

int read_file(Store& store, const std::string& path, std::string& out, size_t max) {
    OpenFile f;
    if (int e = store.open_read(path, f)) return e;
    if (f.info.size > max) return EFBIG;
    out.resize(static_cast<size_t>(f.info.size));
    size_t got = 0;
    while (got < out.size()) {
        ssize_t r = store.pread(f, out.data() + got, out.size() - got, got);
        if (r < 0) return static_cast<int>(-r);
        if (r == 0) break;
        got += static_cast<size_t>(r);
    }
    out.resize(got);
    return 0;
}

}  // namespace souk::server::bzr
