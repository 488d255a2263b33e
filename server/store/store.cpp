#include "server/store/store.hpp"

namespace souk::server {
namespace {

int write_whole(Store& s, const std::string& path, const WriteSpec& spec, std::string_view data, uint64_t* old_size) {
    std::unique_ptr<Upload> up;
    if (int e = s.begin_upload(path, spec, up)) return e;
    if (int e = up->write(data)) return e;
    uint64_t ignored = 0;
    return up->commit(old_size ? old_size : &ignored);
}

}  // namespace

ssize_t Store::read_full(OpenFile& f, char* buf, size_t n, uint64_t offset) {
    size_t got = 0;
    while (got < n) {  // bounded: each pass reads >= 1 byte or stops
        ssize_t r = pread(f, buf + got, n - got, offset + got);
        if (r < 0) return r;
        if (r == 0) break;  // end of file
        got += static_cast<size_t>(r);
    }
    return static_cast<ssize_t>(got);
}

int Store::put(const std::string& path, std::string_view data, int mode) {
    return write_whole(*this, path, WriteSpec{WriteKind::Put, mode, false, -1}, data, nullptr);
}

int Store::put_non_atomic(const std::string& path, std::string_view data, int mode, bool create_parent,
                          int dir_mode) {
    return write_whole(*this, path, WriteSpec{WriteKind::PutNonAtomic, mode, create_parent, dir_mode}, data, nullptr);
}

int Store::append(const std::string& path, std::string_view data, int mode, uint64_t* old_size) {
    return write_whole(*this, path, WriteSpec{WriteKind::Append, mode, false, -1}, data, old_size);
}

}  // namespace souk::server
