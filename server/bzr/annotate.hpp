// Annotating a file (docs/protocol/streams.md#annotating-a-file): which
// revision last changed each line of a text, over the file's own graph of
// texts, as Breezy's Annotator computes it; and
// Repository.annotate_file_revision on top: the file at a path of a
// revision's CHK inventory, annotated.
//
// A text is annotated after its parents: lines matched (patience diff,
// server/bzr/patience.hpp) in the first parent take that parent's
// annotation; lines matched in a later parent take that parent's when they
// were still the text's own, or the union of both when the two differ;
// other lines are the text's own. A line left with several sources gets
// the one that is not an ancestor of the others in the file graph, and
// among several such the smallest key.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "server/bzr/chk.hpp"
#include "server/bzr/error.hpp"

namespace souk::server::bzr {

class PackReader;

// A key of the texts index: (file id, revision that last changed the file).
struct TextKey {
    std::string file_id, revision;
    auto operator<=>(const TextKey&) const = default;
};

// Every bound of one annotate; each a hard limit (LimitExceeded).
struct AnnotateLimits {
    size_t max_texts = 100 * 1000;       // texts of the file's ancestry walked
    size_t max_lines = 1000 * 1000;      // lines of any one text
    uint64_t max_bytes = 1ull << 30;     // bytes of all the texts read
    uint64_t max_steps = 64ull << 20;    // graph steps settling lines with several sources
};

// Where annotate reads the file graph and the texts.
class TextSource {
public:
    virtual ~TextSource() = default;
    using ParentsFn = std::function<void(const TextKey& key, std::vector<TextKey> parents)>;
    // fn(key, its parents in stored order) for each of `keys` present;
    // absent keys are not reported.
    virtual Status parents(std::span<const TextKey> keys, const ParentsFn& fn) = 0;
    // The text of a key parents() reported.
    virtual Result<std::string> text(const TextKey& key) = 0;
};

// An annotated text: its lines (split after each '\n'; the last may lack
// one) and the key each comes from.
struct Annotation {
    struct Line {
        uint32_t source = 0;          // index into sources
        uint64_t begin = 0, end = 0;  // the line's bytes in text
    };
    std::string text;
    std::vector<TextKey> sources;
    std::vector<Line> lines;
    std::string_view line(size_t i) const {
        return std::string_view(text).substr(lines[i].begin, lines[i].end - lines[i].begin);
    }
};

// Annotate the text `key`. A text of its ancestry that is absent (the key
// itself, or a parent named by the graph) is Errc::NotFound, with that key
// in *missing; a cycle in the graph is Corrupt; a bound exceeded is
// LimitExceeded; the source's own errors pass through.
Result<Annotation> annotate(TextSource& src, const TextKey& key, const AnnotateLimits& limits = {},
                            TextKey* missing = nullptr);

// Split a text as Breezy's chunks_to_lines does: after each '\n'.
std::vector<std::string_view> split_lines(std::string_view text);

// ---- Repository.annotate_file_revision -------------------------------------

struct FileAnnotation {
    enum class Kind : uint8_t {
        Ok,              // annotation holds the file's lines
        NoSuchRevision,  // the repository has no inventory for the revision
        NoSuchPath,      // the path names nothing in that revision's tree
        BadPath,         // the path is not UTF-8 or has a '..' (detail says which)
        TextMissing,     // a text of the file's ancestry is absent (missing names it)
    };
    Kind kind = Kind::Ok;
    Annotation annotation;
    TextKey missing;
    std::string detail;
};

// Breezy's revision_tree(revid).annotate_iter(path): the path is split on
// '/' ('' and '.' parts dropped), walked from the root through the
// inventory's parent_id_basename_to_file_id map, and the entry's text key
// (file id, last-modified revision) annotated over the texts index. A
// directory or a symlink is an empty text. "null:" is the empty tree.
// Errors: Corrupt for bad inventories, pages or index entries, Io,
// LimitExceeded.
Result<FileAnnotation> annotate_file_revision(PackReader& reader, std::string_view revid, std::string_view tree_path,
                                              const AnnotateLimits& limits = {}, const chk::Limits& chk_limits = {});

}  // namespace souk::server::bzr
