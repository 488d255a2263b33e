// The B+Tree index reader (server/bzr/btree.hpp) on any bytes. Whatever it
// accepts: entries come in strictly ascending key order, agree with the
// whole-file parser, are found again by lookup (each once, in key order),
// and, written again by the writer, read back the same.
#include <algorithm>

#include "fuzz.hpp"
#include "server/bzr/btree.hpp"

using namespace souk::server::bzr;

namespace {

struct Entry {
    std::string key, refs, value;
    friend bool operator==(const Entry&, const Entry&) = default;
};

std::vector<Entry> read_all(BTreeReader& r, bool* ok) {
    std::vector<Entry> out;
    *ok = r.iter_all([&](const BTreeEntry& e) {
              out.push_back({std::string(e.key), std::string(e.refs), std::string(e.value)});
          }).ok();
    return out;
}

std::string join(const std::vector<std::string_view>& parts, char sep) {
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) {
        if (i) out += sep;
        out.append(parts[i]);
    }
    return out;
}

void check(std::string_view bytes, const BTreeLimits& limits) {
    auto reader = BTreeReader::from_bytes(bytes, limits);
    if (!reader) {
        FUZZ_CHECK(!reader.err().detail.empty());
        return;
    }
    bool ok = false;
    std::vector<Entry> entries = read_all(*reader, &ok);
    if (!ok) return;  // a page further in may be corrupt
    for (size_t i = 1; i < entries.size(); ++i) FUZZ_CHECK(entries[i - 1].key < entries[i].key);
    // Each entry has the header's number of reference lists. With none,
    // Breezy ignores whatever stands between the key and the value, and so
    // does every comparison below.
    for (auto& e : entries) {
        if (reader->ref_lists() == 0) e.refs.clear();
        else FUZZ_CHECK(static_cast<size_t>(std::count(e.refs.begin(), e.refs.end(), '\t')) + 1 == reader->ref_lists());
    }

    // The whole-file parser sees the same entries.
    std::vector<Entry> whole;
    const std::string why = parse_btree(bytes, [&](const IndexEntry& ie) {
        Entry e;
        e.key = join(ie.key, '\0');
        for (size_t l = 0; l < ie.refs.size(); ++l) {
            if (l) e.refs += '\t';
            std::vector<std::string> keys;
            for (const auto& k : ie.refs[l]) keys.push_back(join(k, '\0'));
            for (size_t k = 0; k < keys.size(); ++k) {
                if (k) e.refs += '\r';
                e.refs += keys[k];
            }
        }
        e.value = std::string(ie.value);
        whole.push_back(std::move(e));
    }, limits.max_page_inflated);
    if (why.empty()) FUZZ_CHECK(whole == entries);

    // Every key is found again, once, in key order; an absent key is not.
    std::vector<std::string_view> keys;
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) keys.push_back(it->key);
    keys.push_back(std::string_view("\xff\xff no such key"));
    std::vector<Entry> found;
    auto looked = reader->lookup(keys, [&](const BTreeEntry& e) {
        found.push_back({std::string(e.key), reader->ref_lists() ? std::string(e.refs) : "", std::string(e.value)});
    });
    if (looked.ok()) FUZZ_CHECK(found == entries);

    // The writer's bytes for the same entries read back the same.
    std::vector<BTreeNode> nodes;
    for (const auto& e : entries) {
        BTreeNode n;
        n.key = e.key;
        n.value = e.value;
        n.refs.resize(reader->ref_lists());
        BTreeEntry be{e.key, e.refs, e.value};
        for (size_t l = 0; l < reader->ref_lists(); ++l)
            for_each_ref(be.ref_list(l), [&](std::string_view ref) { n.refs[l].emplace_back(ref); });
        nodes.push_back(std::move(n));
    }
    BTreeWriterOptions opts;
    opts.ref_lists = reader->ref_lists();
    opts.key_elements = reader->key_elements();
    auto written = write_btree(opts, nodes);
    if (!written) return;  // keys or values the writer refuses (Breezy's rules are stricter)
    auto again = BTreeReader::from_bytes(*written, BTreeLimits{});
    FUZZ_CHECK(again.ok());
    bool ok2 = false;
    std::vector<Entry> back = read_all(*again, &ok2);
    FUZZ_CHECK(ok2);
    FUZZ_CHECK(back.size() == entries.size());
    for (size_t i = 0; i < back.size(); ++i) {
        FUZZ_CHECK(back[i].key == entries[i].key && back[i].value == entries[i].value);
    }
    FUZZ_CHECK(again->key_count() == entries.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > (1u << 20)) return 0;
    const std::string_view bytes = souk::fuzz::view(data, size);
    check(bytes, BTreeLimits{});
    // Tight bounds, and pages read one at a time rather than the file whole.
    BTreeLimits tight;
    tight.max_page_inflated = 64 * 1024;
    tight.max_keys_per_page = 100;
    tight.max_refs_per_key = 50;
    tight.max_depth = 3;
    tight.max_cached_pages = 2;
    tight.max_cached_bytes = 16 * 1024;
    tight.whole_file_bytes = 0;
    check(bytes, tight);
    return 0;
}
