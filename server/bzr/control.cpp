#include "server/bzr/control.hpp"

#include <errno.h>

#include "server/store/paths.hpp"

namespace souk::server::bzr {

int read_file(Store& store, const std::string& path, std::string& out, size_t max) {
    OpenFile f;
    if (int e = store.open_read(path, f)) return e;
    if (f.info.size > max) return EFBIG;
    out.resize(static_cast<size_t>(f.info.size));
    ssize_t got = store.read_full(f, out.data(), out.size(), 0);
    if (got < 0) return static_cast<int>(-got);
    out.resize(static_cast<size_t>(got));
    return 0;
}

}  // namespace souk::server::bzr
