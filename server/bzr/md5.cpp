#include "server/bzr/md5.hpp"

#include <cstring>

namespace souk::server::bzr {
namespace {

constexpr uint32_t kK[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
constexpr uint32_t kS[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9,  14, 20, 5, 9,
                             14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                             4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

inline uint32_t rotl(uint32_t x, uint32_t c) { return (x << c) | (x >> (32 - c)); }

}  // namespace

Md5::Md5() : h_{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476} {}

void Md5::block(const unsigned char* p) {
    uint32_t m[16];
    for (int i = 0; i < 16; ++i)  // bounded: 16 words
        m[i] = uint32_t(p[i * 4]) | uint32_t(p[i * 4 + 1]) << 8 | uint32_t(p[i * 4 + 2]) << 16 |
               uint32_t(p[i * 4 + 3]) << 24;
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3];
    for (uint32_t i = 0; i < 64; ++i) {  // bounded: 64 rounds
        uint32_t f, g;
        if (i < 16) f = (b & c) | (~b & d), g = i;
        else if (i < 32) f = (d & b) | (~d & c), g = (5 * i + 1) % 16;
        else if (i < 48) f = b ^ c ^ d, g = (3 * i + 5) % 16;
        else f = c ^ (b | ~d), g = (7 * i) % 16;
        uint32_t t = d;
        d = c;
        c = b;
        b = b + rotl(a + f + kK[i] + m[g], kS[i]);
        a = t;
    }
    h_[0] += a, h_[1] += b, h_[2] += c, h_[3] += d;
}

void Md5::update(std::string_view data) {
    total_ += data.size();
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    size_t n = data.size();
    if (used_) {
        size_t take = std::min(n, sizeof buf_ - used_);
        std::memcpy(buf_ + used_, p, take);
        used_ += take, p += take, n -= take;
        if (used_ < sizeof buf_) return;
        block(buf_);
        used_ = 0;
    }
    for (; n >= 64; p += 64, n -= 64) block(p);  // bounded: n shrinks by 64
    std::memcpy(buf_, p, n);
    used_ = n;
}

std::string Md5::hex_digest() {
    uint64_t bits = total_ * 8;
    unsigned char pad[72] = {0x80};
    size_t padlen = (used_ < 56 ? 56 - used_ : 120 - used_);
    for (int i = 0; i < 8; ++i) pad[padlen + i] = static_cast<unsigned char>(bits >> (8 * i));  // bounded: 8 bytes
    uint64_t keep = total_;
    update(std::string_view(reinterpret_cast<const char*>(pad), padlen + 8));
    total_ = keep;
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (uint32_t w : h_)  // bounded: 4 words
        for (int i = 0; i < 4; ++i) {  // bounded: 4 bytes
            unsigned char c = static_cast<unsigned char>(w >> (8 * i));
            out += digits[c >> 4];
            out += digits[c & 15];
        }
    return out;
}

std::string md5_hex(std::string_view data) {
    Md5 m;
    m.update(data);
    return m.hex_digest();
}

}  // namespace souk::server::bzr
