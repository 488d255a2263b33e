// MD5 (RFC 1321), incremental: a new pack's name is the hex MD5 of the
// whole pack file (docs/formats/packs.md#pack-names), computed as the
// bytes are written so the pack is never read back for it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace souk::server::bzr {

class Md5 {
public:
    Md5();
    void update(std::string_view data);
    // The 32 lower-case hex digits; the object is spent afterwards.
    std::string hex_digest();

private:
    void block(const unsigned char* p);
    std::array<uint32_t, 4> h_;
    unsigned char buf_[64];
    size_t used_ = 0;
    uint64_t total_ = 0;
};

// MD5 of one buffer, as hex.
std::string md5_hex(std::string_view data);

}  // namespace souk::server::bzr
