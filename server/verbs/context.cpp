#include "server/verbs/context.hpp"

namespace souk::server {

using proto::Args;

uint64_t Reply::body_size() const {
    if (body_kind == Body::Bytes) return body.size();
    if (body_kind == Body::Stream) return UINT64_MAX;
    uint64_t n = 0;
    for (const auto& r : ranges) n += r.second;
    return n;
}

void Reply::reset() {
    success = true;
    args.clear();  // the elements go, the vector's capacity stays
    body_kind = Body::None;
    body.clear();
    if (body.capacity() > (1u << 20)) std::string().swap(body);
    file = OpenFile{};  // closes the file now, not when the Reply is reused
    source.reset();
    ranges.clear();
    if (ranges.capacity() > 4096) std::vector<std::pair<uint64_t, uint64_t>>().swap(ranges);
}

void Reply::fail(Args error) {
    success = false;
    args = std::move(error);
    body_kind = Body::None;
    body.clear();
    ranges.clear();
    file = OpenFile{};
    source.reset();
}

}  // namespace souk::server
