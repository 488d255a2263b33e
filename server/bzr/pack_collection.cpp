#include "server/bzr/pack_collection.hpp"

#include <errno.h>

#include "server/bzr/btree.hpp"
#include "server/bzr/control.hpp"
#include "server/store/paths.hpp"

namespace souk::server::bzr {
int pack_names(Store& store, const std::string& repo, std::vector<std::string>& names, std::string* why) {
    std::string data;
    if (int e = read_file(store, join(repo, "pack-names"), data)) return e;
    bool bad_name = false;
    std::string err = parse_btree(data, [&](const IndexEntry& e) {
        // Pack names are plain file names (md5 digests); a '/' or a leading
        // '.' could make later paths point at other files under the root.
        std::string_view n = e.key[0];
        if (n.empty() || n[0] == '.' || n.find('/') != std::string_view::npos) bad_name = true;
        else names.emplace_back(n);
    });
    if (err.empty() && bad_name) err = "bad pack name";
    if (!err.empty()) {
        if (why) *why = "pack-names: " + err;
        return EINVAL;
    }
    return 0;
}

int read_parent_map(Store& store, const std::string& repo, ParentMap& out, std::string* why) {
    std::vector<std::string> names;
    if (int e = pack_names(store, repo, names, why)) return e;
    std::string data;
    for (const auto& name : names) {
        std::string rix = join(repo, "indices/" + name + ".rix");
        if (int e = read_file(store, rix, data, 1ull << 30)) {
            if (why) *why = "cannot read index " + name + ".rix";
            return e;
        }
        std::string err = parse_btree(data, [&](const IndexEntry& e) {
            auto& parents = out[std::string(e.key[0])];
            parents.clear();
            if (!e.refs.empty())
                for (const auto& ref : e.refs[0]) parents.emplace_back(ref.empty() ? std::string_view() : ref[0]);
        });
        if (!err.empty()) {
            if (why) *why = name + ".rix: " + err;
            return EINVAL;
        }
    }
    return 0;
}

}  // namespace souk::server::bzr
