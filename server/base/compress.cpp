#include "server/base/compress.hpp"

#include <bzlib.h>

namespace souk::server {

std::string bz2_compress(std::string_view data) {
    unsigned int cap = static_cast<unsigned int>(data.size() + data.size() / 100 + 600);
    std::string out(cap, '\0');
    int rc = BZ2_bzBuffToBuffCompress(out.data(), &cap, const_cast<char*>(data.data()),
                                      static_cast<unsigned int>(data.size()), 9, 0, 0);
    if (rc != BZ_OK) return {};
    out.resize(cap);
    return out;
}

}  // namespace souk::server
