// Revision texts (server/bzr/revision.hpp) and the format table
// (server/bzr/format.hpp) against Breezy: every revision brz wrote parses
// to Breezy's own fields and serialises back to the same bytes; hostile
// texts are refused; the table's format strings and capabilities are
// Breezy's.
#include <doctest/doctest.h>

#include "bzr_fixture.hpp"
#include "protocol/bencode.hpp"
#include "server/bzr/format.hpp"
#include "server/bzr/revision.hpp"

using namespace souk::server;
using namespace souk::test_bzr;
using souk::proto::Value;

namespace {

std::vector<std::string> hex_list(const std::string& s) {
    std::vector<std::string> out;
    if (s == "-") return out;
    std::istringstream in(s);
    for (std::string w; std::getline(in, w, ',');) out.push_back(unhex(w));
    return out;
}

Value pair(const char* k, Value v) { return Value::of_list({Value(k), std::move(v)}); }

std::string text_of(std::vector<Value> items) { return souk::proto::bencode(Value::of_list(std::move(items))); }

std::vector<Value> good_items() {
    return {pair("format", Value::of_int(10)),
            pair("committer", Value("Ann <a@x>")),
            pair("timezone", Value::of_int(3600)),
            pair("properties", Value::of_dict({{"branch-nick", Value("trunk")}})),
            pair("timestamp", Value("1300000000.123")),
            pair("revision-id", Value("rev-1")),
            pair("parent-ids", Value::of_list({Value("rev-0")})),
            pair("inventory-sha1", Value("abc")),
            pair("message", Value("msg"))};
}

}  // namespace

TEST_CASE("bzr revision: brz's revisions parse to Breezy's fields and serialise back byte for byte") {
    SampleRepo& s = sample_repo();
    auto lines = lines_of(s.bz.py("revisions " + sh_quote(s.repo_dir(s.repo_rel).string())));
    REQUIRE(lines.size() == 5);
    for (const auto& line : lines) {
        auto w = split_ws(line);
        REQUIRE(w.size() == 9);
        std::string text = unhex(w[0]);
        auto rev = bzr::parse_revision(text);
        REQUIRE_MESSAGE(rev, rev.err().detail);
        CHECK(rev->revision_id == unhex(w[1]));
        CHECK(rev->parent_ids == hex_list(w[2]));
        CHECK(rev->committer == unhex(w[3]));
        CHECK(rev->message == unhex(w[4]));
        CHECK(rev->inventory_sha1 == unhex(w[5]));
        CHECK(rev->timestamp_text == w[6]);
        CHECK(rev->has_timezone);
        CHECK(std::to_string(rev->timezone) == w[7]);
        std::vector<std::string> props;
        for (const auto& [k, v] : rev->properties) props.push_back(hex(k) + ":" + hex(v));
        std::string joined;
        for (size_t i = 0; i < props.size(); ++i) joined += (i ? "," : "") + props[i];
        CHECK((joined.empty() ? "-" : joined) == w[8]);
        CHECK(bzr::serialise_revision(*rev) == text);
    }
}

TEST_CASE("bzr revision: texts Breezy refuses are refused") {
    CHECK(bzr::parse_revision(text_of(good_items())));
    auto without = [](const char* key) {
        auto items = good_items();
        std::erase_if(items, [&](const Value& v) { return v.list[0].bytes == key; });
        return text_of(items);
    };
    auto with = [](const char* key, Value v) {
        auto items = good_items();
        for (auto& it : items)
            if (it.list[0].bytes == key) it.list[1] = std::move(v);
        return text_of(items);
    };
    auto no_tz = bzr::parse_revision(without("timezone"));
    REQUIRE(no_tz);
    CHECK(!no_tz->has_timezone);
    CHECK(no_tz->timezone == 0);
    for (const char* key : {"format", "committer", "timestamp", "revision-id", "parent-ids", "inventory-sha1", "message",
                            "properties"})
        CHECK(!bzr::parse_revision(without(key)));
    CHECK(!bzr::parse_revision(with("format", Value::of_int(11))));
    CHECK(!bzr::parse_revision(with("format", Value("10"))));
    CHECK(!bzr::parse_revision(with("committer", Value(std::string("\xff\xfe")))));
    CHECK(!bzr::parse_revision(with("message", Value(std::string("\xed\xa0\x80")))));  // a surrogate
    CHECK(!bzr::parse_revision(with("timestamp", Value("soon"))));
    CHECK(!bzr::parse_revision(with("timezone", Value("UTC"))));
    CHECK(!bzr::parse_revision(with("parent-ids", Value::of_list({Value::of_int(1)}))));
    CHECK(!bzr::parse_revision(with("properties", Value::of_dict({{"k", Value::of_int(1)}}))));
    CHECK(!bzr::parse_revision(with("properties", Value::of_dict({{"\xff", Value("v")}}))));
    auto extra = good_items();
    extra.push_back(pair("colour", Value("blue")));
    CHECK(!bzr::parse_revision(text_of(extra)));
    CHECK(!bzr::parse_revision("not bencode"));
    CHECK(!bzr::parse_revision("de"));
    CHECK(!bzr::parse_revision("ll6:formati10eee"));  // a pair of three
    CHECK(!bzr::parse_revision(std::string(100000, 'l')));  // nesting deeper than bencode's cap
    auto big = bzr::parse_revision(text_of(good_items()), 10);
    REQUIRE(!big);
    CHECK(big.err().code == bzr::Errc::LimitExceeded);
}

TEST_CASE("bzr format: the table holds Breezy's format strings and capabilities") {
    Breezy bz;
    auto lines = lines_of(bz.py("formats"));
    size_t repos = 0, branches = 0, dirs = 0;
    for (const auto& line : lines) {
        auto w = split_ws(line);
        std::string fmt = unhex(w[1]);
        CAPTURE(fmt);
        if (w[0] == "repo") {
            const bzr::RepositoryFormat* f = bzr::find_repository_format(fmt);
            REQUIRE(f);
            CHECK(f->format_string == fmt);
            CHECK(f->rich_root == (w[2] == "1"));
            CHECK(f->tree_reference == (w[3] == "1"));
            CHECK(f->external_lookups == (w[4] == "1"));
            CHECK(f->chk == (w[5] == "1"));
            ++repos;
        } else if (w[0] == "branch") {
            const bzr::BranchFormat* f = bzr::find_branch_format(fmt);
            REQUIRE(f);
            CHECK(f->tags == (w[2] == "1"));
            CHECK(f->stacking == (w[3] == "1"));
            ++branches;
        } else {
            REQUIRE(bzr::find_control_dir_format(fmt));
            ++dirs;
        }
    }
    CHECK(repos == bzr::repository_formats().size());
    CHECK(branches == bzr::branch_formats().size());
    CHECK(dirs == bzr::control_dir_formats().size());
    // Only the first line of a format file names the format.
    CHECK(bzr::find_repository_format("Bazaar repository format 2a (needs bzr 1.16 or later)\nfeature\n"));
    CHECK(!bzr::find_repository_format("Bazaar repository format 2a (needs bzr 1.16 or later)"));
    CHECK(!bzr::find_repository_format(""));
    CHECK(bzr::find_branch_format("Bazaar-NG Branch Reference Format 1\n")->reference);
    CHECK(bzr::default_repository_format().chk);
    CHECK(bzr::default_branch_format().number == 7);
    CHECK(bzr::format_first_line("a\nb\n") == "a\n");
    // The sample repository's own files are in the table.
    SampleRepo& s = sample_repo();
    CHECK(bzr::find_repository_format(read_all(s.shared / ".bzr/repository/format")));
    CHECK(bzr::find_branch_format(read_all(s.shared / "trunk/.bzr/branch/format")));
    CHECK(bzr::find_control_dir_format(read_all(s.shared / ".bzr/branch-format")));
}
