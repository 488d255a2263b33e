#include "protocol/verbs.hpp"

namespace souk::proto {

const VerbInfo* find_verb(std::string_view name) {
    // About 70 entries: a linear scan of short strings beats hashing here.
    for (const auto& v : kVerbs)
        if (v.name == name) return &v;
    return nullptr;
}

}  // namespace souk::proto
