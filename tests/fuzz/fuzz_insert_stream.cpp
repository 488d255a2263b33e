// The repository-stream parser (server/bzr/stream_sink.hpp): the body of
// Repository.insert_stream, fed in pieces into an empty 2a shared
// repository. A stream refused as malformed leaves the repository's files
// exactly as they were; an accepted one that adds nothing changes nothing;
// one that publishes a pack lists it in pack-names. The repository is made
// afresh whenever an input changed it.
#include <map>

#include "fuzz.hpp"
#include "server/bzr/controldir.hpp"
#include "server/bzr/format.hpp"
#include "server/bzr/stream_sink.hpp"
#include "server/store/fs_store.hpp"

using namespace souk;
using namespace souk::server;
using namespace souk::server::bzr;
namespace fs = std::filesystem;

namespace {

constexpr const char* kRepo = ".bzr/repository";

struct Repo {
    fuzz::ScratchDir dir{"stream"};
    fs::path root;
    std::unique_ptr<FsStore> store;
    std::map<std::string, uint64_t> files;  // of the fresh repository
    int generation = 0;

    Repo() { fresh(); }
    void fresh() {
        store.reset();
        if (!root.empty()) fs::remove_all(root);
        root = dir.path() / ("r" + std::to_string(generation++));
        fs::create_directories(root);
        store = std::make_unique<FsStore>(root.string());
        FUZZ_CHECK(store->valid());
        FUZZ_CHECK(init_control_dir(*store, "").ok());
        FUZZ_CHECK(create_repository(*store, "", default_repository_format(), true, -1).ok());
        files = listing();
    }
    // Every file of the repository with its size.
    std::map<std::string, uint64_t> listing() const {
        std::map<std::string, uint64_t> out;
        for (auto& e : fs::recursive_directory_iterator(root / kRepo))
            if (e.is_regular_file()) out[fs::relative(e.path(), root).string()] = e.file_size();
        return out;
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static Repo repo;
    if (size == 0) return 0;
    const size_t chunk = data[0] == 0 ? size : data[0] * 7u;
    const std::string_view body = fuzz::view(data + 1, size - 1);

    InsertLimits limits;
    limits.container.max_record = 1 << 20;
    limits.max_block_header = 1 << 20;
    limits.max_fulltext = 1 << 20;
    limits.group.gc.max_content = 4 << 20;
    limits.group.lock_wait = 0;
    const std::string format(default_repository_format().format_string);
    InsertOutcome out;
    {
        StreamSink sink(*repo.store, kRepo, format, {}, "", limits);
        FUZZ_CHECK(sink.prepare().ok());  // no resume tokens: nothing to refuse
        for (size_t i = 0; i < body.size(); i += chunk) sink.write(body.substr(i, chunk));
        out = sink.finish();
    }
    bool changed = true;
    switch (out.kind) {
    case InsertOutcome::Kind::Failed:
        FUZZ_CHECK(!out.error.detail.empty());
        if (out.stage == InsertOutcome::Stage::Stream) {
            FUZZ_CHECK(repo.listing() == repo.files);
            changed = false;
        }
        break;
    case InsertOutcome::Kind::MissingBasis:
        FUZZ_CHECK(!out.tokens.empty());
        break;
    case InsertOutcome::Kind::Ok:
        if (out.published.empty()) {
            FUZZ_CHECK(repo.listing() == repo.files);
            changed = false;
        } else {
            FUZZ_CHECK(repo.listing().count(std::string(kRepo) + "/packs/" + out.published + ".pack") == 1);
        }
        break;
    }
    if (changed) repo.fresh();
    return 0;
}
