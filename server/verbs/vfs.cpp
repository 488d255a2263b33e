// The VFS verbs (docs/protocol/vfs.md): files and directories under the root.
#include "server/verbs/call.hpp"
#include "server/verbs/dispatch.hpp"

#include <errno.h>
#include <sys/stat.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <set>

#include "protocol/errors.hpp"

namespace souk::server {

// ------------------------------------------------------------ misc ----

void verb_hello(Call& c) { c.ok({Value("ok"), Value("2")}); }
void verb_is_readonly(Call& c) { c.ok({Value(c.ctx.rules()->allow_writes ? "no" : "yes")}); }

// ------------------------------------------------------------- VFS ----

// The hot verbs (has, get, readv, stat) resolve into the caller's scratch
// string and reply with ok_words: a pooled handler serves them without
// touching the heap (tests/alloc).
#define SOUK_HOT_REL(c) \
    std::string local_rel; \
    std::string& rel = (c).scratch ? *(c).scratch : local_rel

void verb_has(Call& c) {
    SOUK_HOT_REL(c);
    if (!c.resolve(c.arg(0), true, rel)) return;
    c.ok_words({c.exists(rel) ? "yes" : "no"});
}

void verb_get(Call& c) {
    SOUK_HOT_REL(c);
    if (!c.resolve(c.arg(0), true, rel)) return;
    if (int e = c.store().open_read(rel, c.out.file)) return c.fail_errno(e, c.arg(0), true);
    c.ok_words({"ok"});
    c.out.body_kind = Reply::Body::File;
    c.out.ranges.assign(1, {0, c.out.file.info.size});
    c.store().expect_reads(c.out.file, c.out.ranges);  // readahead: one access, the window follows its end
}

void verb_readv(Call& c) {
    SOUK_HOT_REL(c);
    if (!c.resolve(c.arg(0), true, rel)) return;
    std::string why = parse_readv_ranges(c.body, c.ctx.params, c.out.ranges);
    if (!why.empty()) return c.generic("ValueError", why);
    if (int e = c.store().open_read(rel, c.out.file)) return c.fail_errno(e, c.arg(0), true);
    uint64_t size = c.out.file.info.size;
    for (const auto& [off, len] : c.out.ranges) {
        if (off + len > size) {
            uint64_t actual = off >= size ? 0 : size - off;
            return c.fail({Value(proto::error_info(Err::ShortReadvError).name), Value(c.arg(0)), Value(std::to_string(off)),
                           Value(std::to_string(len)), Value(std::to_string(actual))});
        }
    }
    c.ok_words({"readv"});
    c.out.body_kind = Reply::Body::File;
    c.store().expect_reads(c.out.file, c.out.ranges);  // readahead: one access, the window follows the last range
}

namespace {

// The body of put, put_non_atomic or append, written to the store as it
// arrives (Store::begin_upload); nothing is visible before finish().
class UploadSink final : public BodySink {
public:
    UploadSink(std::unique_ptr<Upload> up, bool append, std::string client_path)
        : up_(std::move(up)), append_(append), path_(std::move(client_path)) {}
    void write(std::string_view chunk) override {
        if (!err_) err_ = up_->write(chunk);
    }
    void finish(Reply& out) override {
        uint64_t old = 0;
        if (!err_) err_ = up_->commit(&old);
        up_.reset();  // an uncommitted upload leaves no trace
        if (err_) return out.fail(errno_args(err_, path_));
        out.success = true;
        out.args = append_ ? Args{Value("appended"), Value(std::to_string(old))} : Args{Value("ok")};
    }

private:
    std::unique_ptr<Upload> up_;
    bool append_;
    std::string path_;
    int err_ = 0;
};

void begin_upload(Call& c, const WriteSpec& spec) {
    std::string rel;
    if (!c.resolve(c.arg(0), true, rel)) return;
    std::unique_ptr<Upload> up;
    if (int e = c.store().begin_upload(rel, spec, up)) return c.fail_errno(e, c.arg(0));
    take_body(c, std::make_unique<UploadSink>(std::move(up), spec.kind == WriteKind::Append, c.arg(0)));
}

}  // namespace

void verb_append(Call& c) {
    int mode;
    if (c.parse_mode(c.arg(1), mode)) begin_upload(c, WriteSpec{WriteKind::Append, mode, false, -1});
}

void verb_put(Call& c) {
    int mode;
    if (c.parse_mode(c.arg(1), mode)) begin_upload(c, WriteSpec{WriteKind::Put, mode, false, -1});
}

void verb_put_non_atomic(Call& c) {
    int mode, dir_mode;
    if (c.parse_mode(c.arg(1), mode) && c.parse_mode(c.arg(3), dir_mode))
        begin_upload(c, WriteSpec{WriteKind::PutNonAtomic, mode, c.arg(2) == "T", dir_mode});
}

void verb_mkdir(Call& c) {
    std::string rel;
    int mode;
    if (!c.resolve(c.arg(0), true, rel) || !c.parse_mode(c.arg(1), mode)) return;
    if (int e = c.store().mkdir(rel, mode)) return c.fail_errno(e, c.arg(0));
    c.ok({Value("ok")});
}

void verb_rmdir(Call& c) {
    std::string rel;
    if (!c.resolve(c.arg(0), true, rel)) return;
    if (int e = c.store().rmdir(rel)) return c.fail_errno(e, c.arg(0));
    c.ok({Value("ok")});
}

void verb_del(Call& c) {
    std::string rel;
    if (!c.resolve(c.arg(0), true, rel)) return;
    if (int e = c.store().unlink(rel)) return c.fail_errno(e, c.arg(0));
    c.ok({Value("ok")});
}

// rename and move share rename(2): atomic, replaces a file or an empty
// directory, fails onto a non-empty directory (LockDir relies on it).
void rename_common(Call& c) {
    std::string from, to;
    if (!c.resolve(c.arg(0), true, from) || !c.resolve(c.arg(1), true, to)) return;
    if (int e = c.store().rename(from, to)) {
        // Name the destination for "exists"/"not empty" and for a reserved
        // name (docs/store-chain.md#temporary-files), the source otherwise.
        bool dest = e == EEXIST || e == ENOTEMPTY || (e == EACCES && in_temp_namespace(to));
        return c.fail_errno(e, dest ? c.arg(1) : c.arg(0));
    }
    c.ok({Value("ok")});
}
void verb_rename(Call& c) { rename_common(c); }
void verb_move(Call& c) { rename_common(c); }

void verb_stat(Call& c) {
    SOUK_HOT_REL(c);
    if (!c.resolve(c.arg(0), true, rel)) return;
    FileInfo fi;
    if (int e = c.store().stat(rel, fi)) return c.fail_errno(e, c.arg(0));
    char mode[24], size[24];
    std::snprintf(mode, sizeof mode, "0o%o", static_cast<unsigned>(fi.mode));
    std::snprintf(size, sizeof size, "%llu", static_cast<unsigned long long>(fi.size));
    c.ok_words({"stat", size, mode});
}

#undef SOUK_HOT_REL

void verb_list_dir(Call& c) {
    std::string rel;
    if (!c.resolve(c.arg(0), true, rel)) return;
    std::vector<std::string> names;
    if (int e = c.store().list_dir(rel, names)) return c.fail_errno(e, c.arg(0));
    Args a{Value("names")};
    a.reserve(names.size() + 1);
    for (const auto& n : names) a.emplace_back(percent_encode(n, false));
    c.ok(std::move(a));
}

void verb_iter_files_recursive(Call& c) {
    std::string rel;
    if (!c.resolve(c.arg(0), true, rel)) return;
    std::vector<std::string> files;
    if (int e = c.store().list_files_recursive(rel, files)) return c.fail_errno(e, c.arg(0));
    Args a{Value("names")};
    a.reserve(files.size() + 1);
    for (const auto& f : files) a.emplace_back(percent_encode(f, true));
    c.ok(std::move(a));
}

}  // namespace souk::server
