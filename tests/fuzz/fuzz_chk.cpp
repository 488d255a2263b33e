// CHK map nodes (server/bzr/chk.hpp): one page parsed on its own, then up
// to eight pages as a map walked from its root. What parse_node accepts
// keeps every bound and the shape of its page kind; what the walks return
// was reachable from the roots given, each page once, and a difference
// never names a page the new maps cannot reach.
#include <map>
#include <set>

#include "fuzz.hpp"
#include "server/bzr/chk.hpp"

using namespace souk::server::bzr;
using namespace souk::server::bzr::chk;

namespace {

class MapSource final : public PageSource {
public:
    std::map<std::string, std::string, std::less<>> pages;
    Result<std::string> page(std::string_view key) override {
        auto it = pages.find(key);
        if (it == pages.end()) return Error{Errc::NotFound, 0, "no such page"};
        return it->second;
    }
};

void check_node(std::string_view bytes, const Limits& limits) {
    auto node = parse_node(bytes, limits);
    if (!node) {
        FUZZ_CHECK(!node.err().detail.empty());
        return;
    }
    FUZZ_CHECK(bytes.size() <= limits.max_page);
    if (const auto* leaf = std::get_if<LeafNode>(&*node)) {
        FUZZ_CHECK(leaf->key_width >= 1 && leaf->key_width <= limits.max_key_width);
        FUZZ_CHECK(leaf->items.size() <= limits.max_items);
        for (const auto& item : leaf->items) FUZZ_CHECK(item.key.size() == leaf->key_width);
    } else {
        const auto& in = std::get<InternalNode>(*node);
        FUZZ_CHECK(in.children.size() <= limits.max_items);
        for (const auto& c : in.children) {
            FUZZ_CHECK(valid_page_key(c.key));
            FUZZ_CHECK(c.prefix.substr(0, in.search_prefix.size()) == in.search_prefix);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    const uint8_t knobs = in.ConsumeIntegral<uint8_t>();
    Limits limits;
    limits.max_page = 64 * 1024;
    limits.max_items = 1000;
    limits.max_pages = 64;
    if (knobs & 1) {
        limits.max_items = 4;
        limits.max_key_width = 2;
    }
    // Search keys have the shape their kind gives them.
    Key key;
    for (int i = 0; i < 3; ++i) key.push_back(in.ConsumeRandomLengthString(16));
    const std::string s16 = search_key(SearchKeyKind::Hash16, key);
    FUZZ_CHECK(s16.size() == 8 * key.size() + key.size() - 1);
    const std::string s255 = search_key(SearchKeyKind::Hash255, key);
    FUZZ_CHECK(s255.size() == 4 * key.size() + key.size() - 1 && s255.find('\n') == std::string::npos);
    FUZZ_CHECK(search_key(SearchKeyKind::Plain, key) == key[0] + '\0' + key[1] + '\0' + key[2]);

    // Up to eight pages, each under the key the input gives it (a real
    // map's pages keep their real keys); the first is the map's root, the
    // second the old map's.
    MapSource src;
    std::vector<std::string> order;
    const size_t count = 1 + (knobs >> 1) % 8;
    for (size_t i = 0; i < count && in.remaining_bytes() > 0; ++i) {
        std::string page_key = in.ConsumeRandomLengthString(64);
        std::string page = i + 1 == count ? in.ConsumeRemainingBytesAsString() : in.ConsumeRandomLengthString(1 << 16);
        check_node(page, limits);
        if (src.pages.emplace(page_key, std::move(page)).second) order.push_back(page_key);
    }
    if (order.empty()) return 0;
    const SearchKeyKind kind = static_cast<SearchKeyKind>((knobs >> 4) % 3);
    const std::vector<std::string> roots = {order[0]};
    const std::vector<std::string> old_roots = {order.size() > 1 ? order[1] : std::string("sha1:none")};

    auto reach = reachable_pages(src, roots, limits);
    std::set<std::string> reachable;
    if (reach) {
        FUZZ_CHECK(reach->size() <= limits.max_pages && !reach->empty() && (*reach)[0] == roots[0]);
        for (const auto& k : *reach) {
            FUZZ_CHECK(src.pages.count(k) == 1);
            FUZZ_CHECK(reachable.insert(k).second);  // each page once
        }
    }
    auto items = map_items(src, roots[0], limits);
    if (items) {
        FUZZ_CHECK(reach.ok());
        for (const auto& item : *items) {
            auto found = lookup(src, kind, roots[0], item.key, limits);
            (void)found;  // a hostile map may route an item where a lookup does not look
        }
    }
    auto diff = difference(src, kind, roots, old_roots, limits, true);
    if (diff) {
        FUZZ_CHECK(reach.ok());
        for (const auto& k : diff->pages) FUZZ_CHECK(reachable.count(k) == 1);
        if (items) FUZZ_CHECK(diff->new_items.size() <= items->size());
    }
    return 0;
}
