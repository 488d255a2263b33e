// The Repository verbs (docs/protocol/repository.md): graph, stats, locks.
#include "server/verbs/call.hpp"

#include <errno.h>
#include <sys/stat.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <set>

#include "protocol/errors.hpp"
#include "server/base/compress.hpp"
#include "server/bzr/annotate.hpp"
#include "server/bzr/graph.hpp"
#include "server/bzr/pack_collection.hpp"
#include "server/bzr/revisions.hpp"
#include "server/bzr/stream_sink.hpp"
#include "server/bzr/write_group.hpp"
#include "server/base/log.hpp"
#include "protocol/bencode.hpp"
#include "server/bzr/revno.hpp"
#include "server/bzr/stream_source.hpp"
#include "server/bzr/repo_read.hpp"
#include "server/bzr/format.hpp"
#include "server/base/strings.hpp"

namespace souk::server {

// ----------------------------------------------------- Repository.* ----

bool repo_dir(Call& c, std::string& repo);

// Repository locks (docs/protocol/repository.md#locking). Every format souk
// serves is a pack format, and Breezy's pack repositories keep no
// persistent lock: lock_write answers the token '' and the on-disk LockDir
// .bzr/repository/lock is taken only around each pack-names rewrite (a
// held token would make the client's own VFS pack-names writer contend
// with itself). A token the client does send must name the held LockDir
// (TokenMismatch otherwise); unlock with it releases that lock.
namespace {

// The token arg of lock_write/unlock, if any, applied to the repository's
// LockDir with `op` (check or release). false after failing.
bool apply_repo_token(Call& c, std::string& token,
                      bzr::LockResult (*op)(Store&, const std::string&, std::string_view, int*)) {
    RepoFound r;
    if (!find_repository(c, r)) return false;
    token = c.args.size() > 2 ? c.arg(1) : std::string();
    if (token.empty()) return true;
    std::string repo;
    if (!repo_dir(c, repo)) return false;
    int err = 0;
    auto res = op(c.store(), join(repo, "lock"), token, &err);
    if (res == bzr::LockResult::Ok) return true;
    lock_failure(c, res, err);
    return false;
}

}  // namespace

void verb_repo_lock_write(Call& c) {
    std::string token;
    if (apply_repo_token(c, token, bzr::lock_check)) c.ok({Value("ok"), Value(token)});
}

void verb_repo_unlock(Call& c) {
    std::string token;
    if (apply_repo_token(c, token, bzr::lock_release)) c.ok({Value("ok")});
}

// The repository directory of the bzrdir named by arg 0, which must hold
// one itself (the client sends the repository's own bzrdir path).
bool repo_dir(Call& c, std::string& repo) {
    std::string d;
    if (!c.bzrdir(d)) return false;
    repo = join(d, ".bzr/repository");
    if (!c.exists(join(repo, "format"))) {
        c.fail(proto::error_args(Err::NoRepository));
        return false;
    }
    return true;
}

void verb_repo_lock_status(Call& c) {
    std::string repo;
    if (repo_dir(c, repo)) c.ok({Value(c.exists(join(repo, "lock/held")) ? "yes" : "no")});
}

void verb_make_working_trees(Call& c) {
    std::string repo;
    if (repo_dir(c, repo)) c.ok({Value(c.exists(join(repo, "no-working-trees")) ? "no" : "yes")});
}

void verb_set_make_working_trees(Call& c) {
    std::string repo;
    if (!repo_dir(c, repo)) return;
    std::string marker = join(repo, "no-working-trees");
    int e = c.arg(1) == "True" ? c.store().unlink(marker) : c.store().put(marker, "", -1);
    if (e && e != ENOENT) return c.fail_errno(e, c.arg(0));
    c.ok({Value("ok")});
}

void verb_repo_is_shared(Call& c) {
    std::string repo;
    if (repo_dir(c, repo)) c.ok({Value(c.exists(join(repo, "shared-storage")) ? "yes" : "no")});
}

// The repository's packs, or false after replying with the error: a
// missing pack-names is an empty repository; other failures to read it are
// the path's errno; anything about the content is a BzrCheckError.
bool load_graph(Call& c, const std::string& repo, bzr::PackCollection& packs) {
    auto pc = bzr::PackCollection::open(c.store(), repo);
    if (pc) {
        packs = std::move(pc).value();
        return true;
    }
    const bzr::Error& e = pc.err();
    if (e.code == bzr::Errc::NotFound) return true;  // no pack-names yet: empty repository
    if (e.code == bzr::Errc::Io) c.fail_errno(e.sys_errno ? e.sys_errno : EIO, c.arg(0));
    else c.generic("BzrCheckError", e.detail);
    return false;
}

// A failure while walking the indices: they are corrupt or unreadable.
void graph_error(Call& c, const bzr::Error& e) { c.generic("BzrCheckError", e.detail); }

void verb_get_parent_map(Call& c) {
    std::string repo;
    if (!repo_dir(c, repo)) return;
    bzr::PackCollection packs;
    if (!load_graph(c, repo, packs)) return;
    std::vector<std::string> asked;
    bool include_missing = false;
    for (size_t i = 2; i < c.args.size(); ++i) {
        if (c.args[i].bytes == "include-missing:") include_missing = true;
        else asked.emplace_back(c.args[i].bytes);
    }
    auto text = bzr::parent_map_text(packs, asked, include_missing, c.body);
    if (!text) return graph_error(c, text.err());
    c.ok_body({Value("ok")}, bz2_compress(*text));
}

void verb_get_revision_graph(Call& c) {
    std::string repo;
    if (!repo_dir(c, repo)) return;
    bzr::PackCollection packs;
    if (!load_graph(c, repo, packs)) return;
    std::string revid = c.args.size() > 2 ? c.arg(1) : std::string();
    auto text = bzr::revision_graph_text(packs, revid);
    if (!text && text.err().code == bzr::Errc::NoSuchRevision) {
        // With an empty body, so old clients that always read one stay in sync.
        c.fail(proto::error_args(Err::NoSuchRevisionOld, revid));
        c.out.body_kind = Reply::Body::Bytes;
        return;
    }
    if (!text) return graph_error(c, text.err());
    c.ok_body({Value("ok")}, std::move(*text));
}

void verb_gather_stats(Call& c) {
    std::string repo;
    if (!repo_dir(c, repo)) return;
    std::string revid = c.args.size() > 2 ? c.arg(1) : std::string();
    bool committers = c.args.size() > 3 && c.arg(2) == "yes";
    std::string body, why;
    int e = bzr::gather_stats(c.store(), repo, revid, committers, body, &why);
    if (e == bzr::kNoSuchRevision) return c.fail(proto::error_args(Err::NoSuchRevisionOld, revid));
    if (e && !why.empty()) return c.generic("BzrCheckError", why);
    if (e) return c.fail_errno(e, c.arg(0));
    c.ok_body({Value("ok")}, std::move(body));
}


// ------------------------------------------ streams (fetch side) ----
// docs/protocol/streams.md#get_stream: the adapter checks the formats and
// the search, the format library (server/bzr/stream_source.hpp) produces
// the container, and the reply writer streams it as it is produced.

namespace {

// The reply's generated body: the stream's pieces, and its error as the
// error part that ends the body.
class StreamBody final : public BodySource {
public:
    explicit StreamBody(std::unique_ptr<bzr::PieceSource> src) : src_(std::move(src)) {}
    Next next(BodyPiece& piece) override {
        bzr::StreamPiece p;
        auto more = src_->next(p);
        if (!more) {
            const bzr::Error& e = more.err();
            if (e.code == bzr::Errc::NoSuchRevision) error_ = proto::error_args(Err::NoSuchRevision, e.detail);
            else error_ = {Value("error"), Value("BzrCheckError"), Value(e.detail)};
            return Next::Failed;
        }
        if (!*more) return Next::Done;
        piece = BodyPiece{p.bytes, p.file, p.offset, p.length};
        return Next::Piece;
    }
    proto::Args error() const override { return error_; }

private:
    std::unique_ptr<bzr::PieceSource> src_;
    proto::Args error_;
};

// The repository's format string when souk can stream it (a CHK format)
// to a client whose target format `target` takes the same stream; else
// false after answering UnknownMethod, so the client reads the packs
// itself, as it does for any server without the verb.
bool stream_formats(Call& c, const std::string& repo, std::string& format, bool check_target = true) {
    std::string text;
    const bzr::RepositoryFormat* mine = nullptr;
    if (bzr::read_file(c.store(), join(repo, "format"), text, 4096) == 0) mine = bzr::find_repository_format(text);
    const bzr::RepositoryFormat* target = check_target ? bzr::find_repository_format(c.arg(1)) : mine;
    if (!mine || !mine->chk || !target || !target->chk) {
        c.fail(proto::error_args(Err::UnknownMethod, c.args[0].bytes));
        return false;
    }
    format = std::string(mine->format_string);
    return true;
}

// The packs of a repository for a stream (an empty repository has none).
bool stream_packs(Call& c, const std::string& repo, bzr::PackCollection& packs) { return load_graph(c, repo, packs); }

void reply_stream(Call& c, std::unique_ptr<bzr::PieceSource> src, Args args = {Value("ok")}) {
    c.ok(std::move(args));
    c.out.body_kind = Reply::Body::Stream;
    c.out.source = std::make_unique<StreamBody>(std::move(src));
}

void get_stream(Call& c) {
    std::string repo, format;
    if (!repo_dir(c, repo) || !stream_formats(c, repo, format)) return;
    auto spec = bzr::parse_search(c.body);
    if (!spec) return c.fail(proto::error_args(Err::BadSearch));
    bzr::PackCollection packs;
    if (!stream_packs(c, repo, packs)) return;
    auto revs = bzr::search_revisions(packs, *spec);
    if (!revs) return graph_error(c, revs.err());
    auto reader = std::make_unique<bzr::PackReader>(c.store(), repo, std::move(packs));
    reply_stream(c, bzr::StreamSource::for_revisions(std::move(reader), std::move(format), std::move(*revs)));
}

}  // namespace

void verb_get_stream_1_19(Call& c) { get_stream(c); }
void verb_get_stream(Call& c) { get_stream(c); }

void verb_get_stream_missing(Call& c) {
    std::string repo, format;
    if (!repo_dir(c, repo) || !stream_formats(c, repo, format)) return;
    std::vector<std::string> revids;
    for (auto line : split(c.body, '\n')) {  // bounded: the body's lines (held within --max-body)
        size_t tab = line.find('\t');
        if (tab == std::string_view::npos || line.find('\t', tab + 1) != std::string_view::npos)
            return c.generic("ValueError", "bad missing key line");
        if (line.substr(0, tab) != "inventories")
            return c.generic("AssertionError", "The only missing keys we should be filling in are inventory keys, not " +
                                                   std::string(line.substr(0, tab)));
        revids.emplace_back(line.substr(tab + 1));
    }
    bzr::PackCollection packs;
    if (!stream_packs(c, repo, packs)) return;
    auto reader = std::make_unique<bzr::PackReader>(c.store(), repo, std::move(packs));
    reply_stream(c, bzr::StreamSource::for_inventories(std::move(reader), std::move(format), std::move(revids)));
}

// (path, revno:int, [known_revno:int, known_revid]) -> ('ok', revid) or
// ('history-incomplete', earliest revno, its revid)
// (docs/protocol/repository.md#repositoryget_rev_id_for_revno).
void verb_get_rev_id_for_revno(Call& c) {
    const Value& revno = c.args[2];
    const Value& known = c.args[3];
    if (!revno.is_int()) return c.generic("TypeError", "revno must be an integer");
    if (!known.is_list() || known.list.size() != 2 || !known.list[0].is_int() || !known.list[1].is_bytes())
        return c.generic("TypeError", "known pair must be [revno, revision id]");
    std::string repo;
    if (!repo_dir(c, repo)) return;
    bzr::PackCollection packs;
    if (!load_graph(c, repo, packs)) return;
    auto r = bzr::rev_id_for_revno(packs, revno.integer, known.list[0].integer, known.list[1].bytes);
    if (!r) return c.generic("BzrCheckError", r.err().detail);
    switch (r->kind) {
    case bzr::RevidForRevno::Found: return c.ok({Value("ok"), Value(r->revid)});
    case bzr::RevidForRevno::HistoryIncomplete:
        return c.ok({Value("history-incomplete"), Value::of_int(r->revno), Value(r->revid)});
    case bzr::RevidForRevno::OutOfBounds:
        return c.fail({Value(proto::error_info(Err::RevnoOutOfBounds).name), Value::of_int(revno.integer),
                       Value::of_int(0), Value::of_int(known.list[0].integer)});
    case bzr::RevidForRevno::NoSuchRevision: return c.fail(proto::error_args(Err::NoSuchRevisionOld, r->revid));
    }
}

// ------------------------------------------------ the read verbs ----
// docs/protocol/streams.md#the-read-verbs. A repository souk cannot read
// (not a CHK format) answers UnknownMethod: the client reads it itself.

namespace {

// A repository's pack reader, or false after replying.
bool read_setup(Call& c, std::string& format, std::unique_ptr<bzr::PackReader>& reader) {
    std::string repo;
    if (!repo_dir(c, repo) || !stream_formats(c, repo, format, false)) return false;
    bzr::PackCollection packs;
    if (!stream_packs(c, repo, packs)) return false;
    reader = std::make_unique<bzr::PackReader>(c.store(), repo, std::move(packs));
    return true;
}

std::vector<std::string> body_lines(std::string_view body) {
    std::vector<std::string> out;
    for (auto l : split(body, '\n'))  // bounded: the body's lines (held within --max-body)
        if (!l.empty()) out.emplace_back(l);
    return out;
}

}  // namespace

void verb_iter_revisions(Call& c) {
    std::string format;
    std::unique_ptr<bzr::PackReader> reader;
    if (!read_setup(c, format, reader)) return;
    // "10": the revision serializer of every CHK format.
    reply_stream(c, bzr::revision_texts(std::move(reader), body_lines(c.body)), {Value("ok"), Value("10")});
}

void verb_get_inventories(Call& c) {
    std::string format;
    std::unique_ptr<bzr::PackReader> reader;
    if (!read_setup(c, format, reader)) return;
    reply_stream(c, bzr::inventory_deltas(std::move(reader), std::move(format), body_lines(c.body)));
}

void verb_iter_files_bytes(Call& c) {
    std::vector<bzr::TextRequest> keys;
    for (const auto& l : body_lines(c.body)) {  // bounded: the body's lines
        size_t z = l.find('\0');
        if (z == std::string::npos || l.find('\0', z + 1) != std::string::npos)
            return c.generic("ValueError", "bad text key line");
        keys.push_back({l.substr(0, z), l.substr(z + 1)});
    }
    std::string format;
    std::unique_ptr<bzr::PackReader> reader;
    if (!read_setup(c, format, reader)) return;
    reply_stream(c, bzr::file_texts(std::move(reader), std::move(keys)));
}

// (repo path, revid, tree path, [file id, default revision]) -> ('ok',) and
// a bencoded list of [revid, line], one per line of the file
// (docs/protocol/streams.md#annotating-a-file). The file id and the default
// revision are unused, as in Breezy's server (they matter only for a
// working tree). The errors are Breezy's: NoSuchFile for a path not in the
// tree, NoSuchRevision (generic) for a revision without an inventory,
// RevisionNotPresent for a text missing from the file's ancestry.
void verb_annotate_file_revision(Call& c) {
    std::string format;
    std::unique_ptr<bzr::PackReader> reader;
    if (!read_setup(c, format, reader)) return;
    const Params& p = c.ctx.params;
    bzr::AnnotateLimits limits;
    limits.max_texts = static_cast<size_t>(p.annotate_max_texts);
    limits.max_lines = static_cast<size_t>(p.annotate_max_lines);
    limits.max_bytes = static_cast<uint64_t>(p.annotate_max_bytes);
    limits.max_steps = static_cast<uint64_t>(p.annotate_max_steps);
    const std::string& revid = c.arg(1);
    const std::string& path = c.arg(2);
    auto r = bzr::annotate_file_revision(*reader, revid, path, limits);
    if (!r) {
        const bzr::Error& e = r.err();
        if (e.code == bzr::Errc::Io) return c.fail_errno(e.sys_errno ? e.sys_errno : EIO, c.arg(0));
        if (e.code == bzr::Errc::LimitExceeded)
            return c.generic("BzrError", "annotate of " + printable(path) + " is beyond this server's limits (" +
                                             e.detail + "); annotate it locally");
        return graph_error(c, e);
    }
    using Kind = bzr::FileAnnotation::Kind;
    switch (r->kind) {
    case Kind::NoSuchRevision:
        return c.generic("NoSuchRevision", "repository " + printable(c.arg(0)) + " has no revision b'" +
                                               printable(revid) + "'");
    case Kind::NoSuchPath: return c.fail(proto::error_args(Err::NoSuchFile, path));
    case Kind::BadPath: return c.generic("BzrError", r->detail);
    case Kind::TextMissing:
        return c.fail({Value("RevisionNotPresent"), Value(r->missing.revision), Value(r->missing.file_id)});
    case Kind::Ok: break;
    }
    const bzr::Annotation& a = r->annotation;
    // Each source's revid as a bencoded string, written once.
    std::vector<std::string> revs;
    for (const auto& k : a.sources)  // bounded: the sources found
        revs.push_back(std::to_string(k.revision.size()) + ":" + k.revision);
    std::string body;
    body.reserve(a.text.size() + a.lines.size() * (revs.empty() ? 0 : revs[0].size() + 12) + 2);
    body += 'l';
    for (size_t i = 0; i < a.lines.size(); ++i) {  // bounded: the file's lines (--annotate-max-lines)
        std::string_view line = a.line(i);
        body += 'l';
        body += revs[a.lines[i].source];
        body += std::to_string(line.size());
        body += ':';
        body += line;
        body += 'e';
    }
    body += 'e';
    c.ok_body({Value("ok")}, std::move(body));
}

// ------------------------------------------- streams (push side) ----
// docs/protocol/streams.md#insert_stream-and-write-groups: the adapter finds the repository
// and its format, the format library (server/bzr/stream_sink.hpp) takes the
// body as it arrives and runs the write group; the reply is ok,
// missing-basis or the error Breezy sends.

namespace {

bzr::InsertLimits insert_limits(const Params& p) {
    bzr::InsertLimits l;
    l.container.max_record = static_cast<uint64_t>(p.max_upload);
    l.max_fulltext = static_cast<size_t>(p.stream_max_fulltext);
    l.group.max_pack_bytes = static_cast<uint64_t>(p.max_upload) + 4096;
    l.group.max_keys = static_cast<size_t>(p.stream_max_keys);
    l.group.lock_wait = p.repo_lock_wait;
    l.group.stale_upload = p.upload_stale;
    l.group.gc.max_content = static_cast<size_t>(p.stream_max_block);
    l.group.gc.max_text = static_cast<size_t>(p.stream_max_block);
    return l;
}

// The repository directory of arg 0 and its format when it is a CHK (2a)
// format; for other formats UnknownMethod, so the client writes its packs
// itself as it does for any server without the verb.
bool chk_repo(Call& c, std::string& repo, std::string& format) {
    if (!repo_dir(c, repo)) return false;
    std::string text;
    if (int e = bzr::read_file(c.store(), join(repo, "format"), text, 4096)) {
        c.fail_errno(e, c.arg(0));
        return false;
    }
    const bzr::RepositoryFormat* f = bzr::find_repository_format(text);
    if (!f || !f->chk) {
        c.fail(proto::error_args(Err::UnknownMethod, c.args[0].bytes));
        return false;
    }
    format = std::string(f->format_string);
    return true;
}

// The error Breezy answers for a failed insert or write group.
Args insert_failure(const bzr::Error& e, bzr::InsertOutcome::Stage stage, const std::string& client_path) {
    using Stage = bzr::InsertOutcome::Stage;
    switch (stage) {
    case Stage::Resume: return {Value("error"), Value("UnresumableWriteGroup"), Value(e.detail)};
    case Stage::Check:
        return {Value("error"), Value("BzrCheckError"), Value("Cannot add revision(s) to repository: " + e.detail)};
    case Stage::Stream: return {Value("error"), Value("ContainerError"), Value("invalid repository stream: " + e.detail)};
    case Stage::Publish: break;
    }
    if (e.code == bzr::Errc::LockContended) return proto::error_args(Err::LockContention);
    if (e.code == bzr::Errc::TokenMismatch) return proto::error_args(Err::TokenMismatch);
    if (e.code == bzr::Errc::Io && e.sys_errno) return errno_args(e.sys_errno, client_path);
    return {Value("error"), Value("BzrError"), Value(e.detail)};
}

// Breezy's rule after every commit that added a pack; a failure leaves
// the repository as it was (the commit stands) and is only logged.
void autopack_after_commit(const ServerContext& ctx, const std::string& repo, const bzr::WriteGroupLimits& limits) {
    auto r = bzr::autopack(*ctx.store, repo, limits);
    if (!r) SOUK_LOG(Warn, "autopack of %s failed: %s", repo.c_str(), r.err().detail.c_str());
}

class InsertStreamBody final : public BodySink {
public:
    InsertStreamBody(const ServerContext& ctx, std::string repo, std::string format, std::vector<std::string> tokens,
                     std::string lock, std::string client_path)
        : ctx_(ctx),
          repo_(repo),
          limits_(insert_limits(ctx.params)),
          sink_(*ctx.store, std::move(repo), std::move(format), std::move(tokens), std::move(lock), limits_),
          path_(std::move(client_path)) {}
    bzr::Status prepare() { return sink_.prepare(); }
    void write(std::string_view chunk) override { sink_.write(chunk); }
    void finish(Reply& out) override {
        bzr::InsertOutcome o = sink_.finish();
        switch (o.kind) {
        case bzr::InsertOutcome::Kind::Ok:
            if (!o.published.empty()) autopack_after_commit(ctx_, repo_, limits_.group);
            out.success = true;
            out.args = {Value("ok")};
            return;
        case bzr::InsertOutcome::Kind::MissingBasis: {
            std::vector<Value> tokens, missing;
            for (auto& t : o.tokens) tokens.emplace_back(t);  // bounded: the suspended packs
            for (auto& [kind, key] : o.missing)               // bounded: the missing keys
                missing.push_back(Value::of_list({Value(kind), Value(key)}));
            std::string payload = proto::bencode(Value::of_list({Value::of_list(std::move(tokens)), Value::of_list(std::move(missing))}));
            out.success = true;
            out.args = {Value("missing-basis"), Value(std::move(payload))};
            return;
        }
        case bzr::InsertOutcome::Kind::Failed:
            SOUK_LOG(Info, "insert_stream into %s refused: %s", repo_.c_str(), o.error.detail.c_str());
            out.fail(insert_failure(o.error, o.stage, path_));
            return;
        }
    }

private:
    const ServerContext& ctx_;
    std::string repo_;
    bzr::InsertLimits limits_;
    bzr::StreamSink sink_;
    std::string path_;
};

void insert_stream(Call& c, const std::string& tokens_arg, const std::string& lock_token) {
    std::string repo, format;
    if (!chk_repo(c, repo, format)) return;
    std::vector<std::string> tokens;
    for (auto t : split(tokens_arg, ' '))  // bounded: the argument's words
        if (!t.empty()) tokens.emplace_back(t);
    auto body = std::make_unique<InsertStreamBody>(c.ctx, repo, format, std::move(tokens), lock_token, c.arg(0));
    if (bzr::Status st = body->prepare(); !st)
        return c.fail(insert_failure(st.err(), bzr::InsertOutcome::Stage::Resume, c.arg(0)));
    take_body(c, std::move(body));
}

// The write-group tokens of argument i (a list of byte strings).
bool group_tokens(Call& c, size_t i, std::vector<std::string>& out) {
    const Value& v = c.args[i + 1];
    bool ok = v.is_list();
    if (ok)
        for (const auto& t : v.list) {  // bounded: the decoded list
            ok = ok && t.is_bytes();
            if (ok) out.push_back(t.bytes);
        }
    if (!ok) c.generic("TypeError", std::string(c.args[0].bytes) + ": the tokens must be a list of byte strings");
    return ok;
}

Value tokens_value(const std::vector<std::string>& tokens) {
    std::vector<Value> v;
    for (const auto& t : tokens) v.emplace_back(t);  // bounded: the tokens
    return Value::of_list(std::move(v));
}

// Resume the suspended packs of `tokens`, or answer UnresumableWriteGroup.
std::unique_ptr<bzr::WriteGroup> resume(Call& c, const std::string& repo, const std::vector<std::string>& tokens,
                                        const bzr::WriteGroupLimits& limits) {
    auto g = bzr::WriteGroup::start(c.store(), repo, tokens, limits);
    if (!g) {
        c.fail({Value("UnresumableWriteGroup"), tokens_value(tokens), Value(g.err().detail)});
        return nullptr;
    }
    return std::move(g).value();
}

}  // namespace

void verb_insert_stream_1_19(Call& c) { insert_stream(c, c.arg(1), c.args.size() > 3 ? c.arg(2) : std::string()); }
void verb_insert_stream_locked(Call& c) { insert_stream(c, c.arg(1), c.arg(2)); }
void verb_insert_stream(Call& c) { insert_stream(c, c.arg(1), std::string()); }

// A write group opened by the client (docs/protocol/streams.md#insert_stream-and-write-groups):
// start answers no token (an empty new pack is not kept, as Breezy's
// suspend_write_group does); commit, abort and check take the tokens of
// packs a client suspended.
void verb_start_write_group(Call& c) {
    std::string repo, format;
    if (chk_repo(c, repo, format)) c.ok({Value("ok"), Value::of_list({})});
}

void verb_commit_write_group(Call& c) {
    std::string repo, format;
    std::vector<std::string> tokens;
    if (!chk_repo(c, repo, format) || !group_tokens(c, 2, tokens)) return;
    auto limits = insert_limits(c.ctx.params).group;
    auto g = resume(c, repo, tokens, limits);
    if (!g) return;
    if (bzr::Status st = g->commit(c.arg(1)); !st) {
        auto stage = g->failed_phase() == bzr::GroupPhase::Check ? bzr::InsertOutcome::Stage::Check
                                                                 : bzr::InsertOutcome::Stage::Publish;
        return c.fail(insert_failure(st.err(), stage, c.arg(0)));
    }
    if (!g->published().empty()) autopack_after_commit(c.ctx, repo, limits);
    c.ok({Value("ok")});
}

void verb_abort_write_group(Call& c) {
    std::string repo, format;
    std::vector<std::string> tokens;
    if (!chk_repo(c, repo, format) || !group_tokens(c, 2, tokens)) return;
    if (!resume(c, repo, tokens, insert_limits(c.ctx.params).group)) return;
    for (const auto& t : tokens) {  // bounded: the tokens (validated by resume)
        c.store().unlink(join(repo, "upload/" + t + ".pack"));
        for (auto ext : {".rix", ".iix", ".tix", ".six", ".cix"}) c.store().unlink(join(repo, "upload/" + t + ext));
    }
    c.ok({Value("ok")});
}

void verb_check_write_group(Call& c) {
    std::string repo, format;
    std::vector<std::string> tokens;
    if (!chk_repo(c, repo, format) || !group_tokens(c, 2, tokens)) return;
    if (resume(c, repo, tokens, insert_limits(c.ctx.params).group)) c.ok({Value("ok")});
}

void verb_autopack(Call& c) {
    std::string repo;
    if (!repo_dir(c, repo)) return;
    auto r = bzr::autopack(c.store(), repo, insert_limits(c.ctx.params).group);
    if (!r) return c.fail(insert_failure(r.err(), bzr::InsertOutcome::Stage::Publish, c.arg(0)));
    c.ok({Value("ok")});
}

}  // namespace souk::server
