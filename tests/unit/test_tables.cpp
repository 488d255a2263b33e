// The verb and error tables (docs/conventions.md#one-table-many-doors): unique
// names, lookups that round trip, and the flags the carriers rely on
// (docs/protocol/framing.md, docs/protocol/errors.md).
#include <doctest/doctest.h>

#include <iterator>
#include <set>
#include <string>
#include <string_view>

#include "protocol/errors.hpp"
#include "protocol/verbs.hpp"

using namespace souk::proto;

TEST_CASE("verb table: names unique and non-empty, ids match positions") {
    REQUIRE(kVerbCount > 0);
    std::set<std::string_view> names;
    for (size_t i = 0; i < kVerbCount; ++i) {
        const VerbInfo& v = kVerbs[i];
        const std::string what = std::string(v.name);
        CAPTURE(what);
        CHECK_FALSE(v.name.empty());
        CHECK(v.name.find_first_of(std::string_view("\x01\n ", 3)) == std::string_view::npos);  // fits a v1 line
        CHECK(names.insert(v.name).second);
        CHECK(static_cast<size_t>(v.id) == i);
        CHECK(&verb_info(v.id) == &v);
        CHECK(v.min_args <= v.max_args);
    }
    CHECK(names.size() == kVerbCount);
}

TEST_CASE("verb table: find_verb round trips every entry and rejects others") {
    for (const auto& v : kVerbs) {
        const std::string what = std::string(v.name);
        CAPTURE(what);
        const VerbInfo* found = find_verb(v.name);
        REQUIRE(found != nullptr);
        CHECK(found == &v);
        CHECK(found->id == v.id);
        // Lookups are exact: no prefix, suffix or case folding.
        CHECK(find_verb(std::string(v.name) + "x") == nullptr);
        CHECK(find_verb(v.name.substr(0, v.name.size() - 1)) == nullptr);
    }
    CHECK(find_verb("") == nullptr);
    CHECK(find_verb("frobnicate") == nullptr);
    CHECK(find_verb("GET") == nullptr);
    CHECK(find_verb("Repository.all_revision_ids") == nullptr);  // answered UnknownMethod
    CHECK(find_verb(std::string_view("get\0", 4)) == nullptr);
}

TEST_CASE("verb table: v1/v2 body flags (docs/protocol/framing.md#v1-and-v2-bodies)") {
    struct Flags {
        const char* name;
        bool request_body;
        bool response_body;
    };
    const Flags expect[] = {
        {"put", true, false},
        {"put_non_atomic", true, false},
        {"append", true, false},
        {"readv", true, true},
        {"get", false, true},
        {"hello", false, false},
        {"has", false, false},
        {"stat", false, false},
        {"mkdir", false, false},
        {"Repository.get_parent_map", true, true},
    };
    for (const auto& f : expect) {
        const std::string what = std::string(f.name);
        CAPTURE(what);
        const VerbInfo* v = find_verb(f.name);
        REQUIRE(v != nullptr);
        CHECK(v->request_body() == f.request_body);
        CHECK(v->response_body == f.response_body);
    }
    // Of the VFS verbs a v1/v2 client sends, exactly these carry a request body.
    const std::set<std::string_view> with_body = {"put", "put_non_atomic", "append", "readv"};
    for (const auto& v : kVerbs) {
        if (v.name.find('.') != std::string_view::npos) continue;  // higher-level verbs
        const std::string what = std::string(v.name);
        CAPTURE(what);
        CHECK(v.request_body() == (with_body.count(v.name) == 1));
    }
}

TEST_CASE("verb table: mutating and retry flags (docs/protocol/framing.md#retries-after-a-reset)") {
    for (const char* name : {"append", "mkdir", "rename", "move", "delete", "rmdir"}) {
        const std::string what = std::string(name);
        CAPTURE(what);
        const VerbInfo* v = find_verb(name);
        REQUIRE(v != nullptr);
        CHECK(v->mutating);
        CHECK_FALSE(v->safe_retry);  // the client never retries these
    }
    for (const char* name : {"put", "put_non_atomic", "BzrDirFormat.initialize", "Branch.lock_write"}) {
        const std::string what = std::string(name);
        CAPTURE(what);
        const VerbInfo* v = find_verb(name);
        REQUIRE(v != nullptr);
        CHECK(v->mutating);
    }
    for (const char* name : {"hello", "get", "readv", "has", "stat", "list_dir", "iter_files_recursive",
                             "Transport.is_readonly", "BzrDir.open_2.1", "Branch.last_revision_info"}) {
        const std::string what = std::string(name);
        CAPTURE(what);
        const VerbInfo* v = find_verb(name);
        REQUIRE(v != nullptr);
        CHECK_FALSE(v->mutating);
        CHECK(v->safe_retry);
    }
}

TEST_CASE("verb table: argument counts of the VFS verbs") {
    struct Count {
        const char* name;
        int min, max;
    };
    const Count expect[] = {
        {"hello", 0, 0},  {"get", 1, 1},    {"readv", 1, 1},  {"has", 1, 1},
        {"put", 2, 2},    {"append", 2, 2}, {"mkdir", 2, 2},  {"rename", 2, 2},
        {"move", 2, 2},   {"delete", 1, 1}, {"rmdir", 1, 1},  {"put_non_atomic", 4, 4},
    };
    for (const auto& c : expect) {
        const std::string what = std::string(c.name);
        CAPTURE(what);
        const VerbInfo* v = find_verb(c.name);
        REQUIRE(v != nullptr);
        CHECK(v->min_args == c.min);
        CHECK(v->max_args == c.max);
    }
}

TEST_CASE("error table: names unique, ids match positions, find_error round trips") {
    std::set<std::string_view> names;
    for (size_t i = 0; i < std::size(kErrors); ++i) {
        const ErrorInfo& e = kErrors[i];
        const std::string what = std::string(e.name);
        CAPTURE(what);
        CHECK_FALSE(e.name.empty());
        CHECK(names.insert(e.name).second);
        CHECK(static_cast<size_t>(e.id) == i);
        CHECK(&error_info(e.id) == &e);
        const ErrorInfo* found = find_error(e.name);
        REQUIRE(found != nullptr);
        CHECK(found == &e);
        CHECK(e.http_status >= 400);
        CHECK(e.http_status < 600);
    }
    CHECK(find_error("") == nullptr);
    CHECK(find_error("nosuchfile") == nullptr);  // exact, case-sensitive
    CHECK(find_error("NoSuchFileX") == nullptr);
    CHECK(find_error("NoSuchFile") == &error_info(Err::NoSuchFile));
    CHECK(find_error("nobranch") == &error_info(Err::NoBranch));
    CHECK(find_error("error") == &error_info(Err::Generic));
}

TEST_CASE("error table: v1 failure words are exactly Breezy's list (docs/protocol/errors.md#v1-failure-words)") {
    const std::set<std::string_view> v1_words = {
        "norepository", "NoSuchFile",     "FileExists",    "DirectoryNotEmpty",   "ShortReadvError",
        "UnicodeEncodeError", "UnicodeDecodeError", "ReadOnlyError", "nobranch", "NoSuchRevision",
        "nosuchrevision", "LockContention", "UnlockableTransport", "LockFailed", "TokenMismatch",
        "ReadError",      "PermissionDenied"};
    for (const auto& e : kErrors) {
        const std::string what = std::string(e.name);
        CAPTURE(what);
        CHECK(e.v1_failure == (v1_words.count(e.name) == 1));
    }
}

TEST_CASE("error helpers build the wire tuples") {
    CHECK(error_args(Err::NotStacked) == Args{Value("NotStacked")});
    CHECK(error_args(Err::NoSuchFile, "/a") == Args{Value("NoSuchFile"), Value("/a")});
    CHECK(error_args(Err::PermissionDenied, "/a", "extra") ==
          Args{Value("PermissionDenied"), Value("/a"), Value("extra")});
    CHECK(protocol_error_args("Bad message kind byte: b'x'") ==
          Args{Value("error"), Value("Generic bzr smart protocol error: Bad message kind byte: b'x'")});
    // The client turns exactly this text into UnknownSmartMethod
    // (docs/protocol/framing.md#unknown-verbs).
    CHECK(v12_unknown_verb_args("frobnicate") ==
          Args{Value("error"), Value("Generic bzr smart protocol error: bad request 'frobnicate'")});
}
