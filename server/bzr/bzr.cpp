#include "server/bzr/bzr.hpp"

#include <bzlib.h>
#include <errno.h>
#include <sys/random.h>
#include <unistd.h>
#include <zlib.h>

#include <charconv>
#include <ctime>

#include "server/store/paths.hpp"

namespace souk::server::bzr {
namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    size_t i = 0;
    for (;;) {
        size_t j = s.find(sep, i);
        out.push_back(s.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
        if (j == std::string_view::npos) return out;
        i = j + 1;
    }
}

// Inflate one zlib stream; false if corrupt or larger than max.
bool inflate_node(std::string_view in, std::string& out, size_t max) {
    out.clear();
    z_stream zs{};
    if (inflateInit(&zs) != Z_OK) return false;
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs.avail_in = static_cast<uInt>(in.size());
    char buf[16384];
    int rc;
    do {
        zs.next_out = reinterpret_cast<Bytef*>(buf);
        zs.avail_out = sizeof buf;
        rc = inflate(&zs, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) break;
        out.append(buf, sizeof buf - zs.avail_out);
        if (out.size() > max) { rc = Z_MEM_ERROR; break; }
    } while (rc != Z_STREAM_END && (zs.avail_in > 0 || zs.avail_out == 0));
    inflateEnd(&zs);
    return rc == Z_STREAM_END;
}

bool header_field(std::string_view& rest, std::string_view name, size_t& value) {
    size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) return false;
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    if (line.substr(0, name.size()) != name || line.size() <= name.size() || line[name.size()] != '=') return false;
    line.remove_prefix(name.size() + 1);
    if (name == "row_lengths") return true;
    auto r = std::from_chars(line.data(), line.data() + line.size(), value);
    return r.ec == std::errc() && r.ptr == line.data() + line.size();
}

}  // namespace

int read_file(Store& store, const std::string& path, std::string& out, size_t max) {
    OpenFile f;
    if (int e = store.open_read(path, f)) return e;
    if (f.info.size > max) return EFBIG;
    out.resize(static_cast<size_t>(f.info.size));
    size_t got = 0;
    while (got < out.size()) {
        ssize_t r = store.pread(f, out.data() + got, out.size() - got, got);
        if (r < 0) return static_cast<int>(-r);
        if (r == 0) break;
        got += static_cast<size_t>(r);
    }
    out.resize(got);
    return 0;
}

std::string parse_btree(std::string_view file, const std::function<void(const IndexEntry&)>& fn, size_t max_node) {
    static constexpr std::string_view kSig = "B+Tree Graph Index 2\n";
    static constexpr size_t kPage = 4096;
    if (file.substr(0, kSig.size()) != kSig) return "bad B+Tree index signature";
    std::string_view rest = file.substr(kSig.size());
    size_t ref_lists = 0, key_elements = 0, len = 0, unused = 0;
    if (!header_field(rest, "node_ref_lists", ref_lists) || !header_field(rest, "key_elements", key_elements) ||
        !header_field(rest, "len", len) || !header_field(rest, "row_lengths", unused))
        return "bad B+Tree index header";
    if (key_elements == 0 || key_elements > 16 || ref_lists > 16) return "unsupported B+Tree index shape";
    size_t first = file.size() - rest.size();
    std::string node;
    for (size_t start = first, page = 0; start < file.size(); start = ++page * kPage) {
        size_t end = std::min(file.size(), (page + 1) * kPage);
        if (start >= end) break;
        if (!inflate_node(file.substr(start, end - start), node, max_node)) return "corrupt B+Tree node";
        std::string_view body = node;
        if (body.substr(0, 10) != "type=leaf\n") continue;  // internal nodes only guide lookups
        body.remove_prefix(10);
        for (std::string_view line : split(body, '\n')) {
            if (line.empty()) continue;
            // key1 \0 ... keyK \0 refs \0 value
            auto parts = split(line, '\0');
            if (parts.size() < key_elements + 2) return "bad B+Tree leaf line";
            IndexEntry e;
            e.key.assign(parts.begin(), parts.begin() + static_cast<long>(key_elements));
            e.value = parts.back();
            // The refs field may itself hold \0 (multi-element keys): rejoin.
            size_t refs_begin = static_cast<size_t>(parts[key_elements].data() - line.data());
            size_t refs_end = static_cast<size_t>(parts.back().data() - line.data()) - 1;
            std::string_view refs = line.substr(refs_begin, refs_end - refs_begin);
            if (ref_lists) {
                for (std::string_view list : split(refs, '\t')) {
                    auto& keys = e.refs.emplace_back();
                    if (list.empty()) continue;
                    for (std::string_view ref : split(list, '\r')) keys.push_back(split(ref, '\0'));
                }
            }
            fn(e);
        }
    }
    return {};
}

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

std::string bz2_compress(std::string_view data) {
    unsigned int cap = static_cast<unsigned int>(data.size() + data.size() / 100 + 600);
    std::string out(cap, '\0');
    int rc = BZ2_bzBuffToBuffCompress(out.data(), &cap, const_cast<char*>(data.data()),
                                      static_cast<unsigned int>(data.size()), 9, 0, 0);
    if (rc != BZ_OK) return {};
    out.resize(cap);
    return out;
}

std::string random_token() {
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[20];
    if (::getrandom(rnd, sizeof rnd, 0) != static_cast<ssize_t>(sizeof rnd)) {
        for (size_t i = 0; i < sizeof rnd; ++i) rnd[i] = static_cast<unsigned char>(std::rand());
    }
    std::string t;
    t += static_cast<char>('a' + rnd[0] % 26);
    for (size_t i = 1; i < sizeof rnd; ++i) t += alnum[rnd[i] % 36];
    return t;
}

namespace {

// The nonce in <lock>/held/info, or "" if no lock is held; errno in *err
// for a read failure other than "not held".
bool held_nonce(Store& store, const std::string& lock, std::string& nonce, int* err) {
    std::string info;
    int e = read_file(store, join(lock, "held/info"), info, 64 * 1024);
    if (e == ENOENT || e == ENOTDIR) return false;
    if (e) {
        *err = e;
        return false;
    }
    for (std::string_view line : split(info, '\n')) {
        if (line.substr(0, 6) != "nonce:") continue;
        line.remove_prefix(6);
        while (!line.empty() && (line.front() == ' ' || line.front() == '\'' || line.front() == '"')) line.remove_prefix(1);
        while (!line.empty() && (line.back() == ' ' || line.back() == '\'' || line.back() == '"' || line.back() == '\r'))
            line.remove_suffix(1);
        nonce = line;
        return true;
    }
    nonce.clear();
    return true;
}

std::string hostname() {
    char h[256] = {};
    if (::gethostname(h, sizeof h - 1) != 0) return "localhost";
    return h;
}

}  // namespace

LockResult lock_acquire(Store& store, const std::string& lock, std::string_view token, std::string* nonce,
                        int* err) {
    *err = 0;
    std::string held;
    if (held_nonce(store, lock, held, err)) {
        if (!token.empty() && token == held) {
            *nonce = held;
            return LockResult::Ok;
        }
        return LockResult::Contended;
    }
    if (*err) return LockResult::IoError;
    if (!token.empty()) return LockResult::TokenMismatch;
    if (int e = store.mkdir(lock, -1); e && e != EEXIST) {
        *err = e;
        return LockResult::IoError;
    }
    std::string fresh = random_token();
    std::string tmp = join(lock, random_token().substr(0, 10) + ".tmp");
    if (int e = store.mkdir(tmp, -1)) {
        *err = e;
        return LockResult::IoError;
    }
    std::string info = "hostname: " + hostname() + "\nnonce: " + fresh + "\npid: " + std::to_string(::getpid()) +
                       "\nstart_time: " + std::to_string(std::time(nullptr)) + "\nuser: soukd\n";
    if (int e = store.put_non_atomic(join(tmp, "info"), info, -1, false, -1)) {
        store.rmdir(tmp);
        *err = e;
        return LockResult::IoError;
    }
    // The atomic step: renaming onto an existing (non-empty) held/ fails.
    if (int e = store.rename(tmp, join(lock, "held"))) {
        store.unlink(join(tmp, "info"));
        store.rmdir(tmp);
        if (e == EEXIST || e == ENOTEMPTY) return LockResult::Contended;
        *err = e;
        return LockResult::IoError;
    }
    *nonce = fresh;
    return LockResult::Ok;
}

LockResult lock_check(Store& store, const std::string& lock, std::string_view token, int* err) {
    *err = 0;
    std::string held;
    if (!held_nonce(store, lock, held, err)) return *err ? LockResult::IoError : LockResult::TokenMismatch;
    return token.empty() || held != token ? LockResult::TokenMismatch : LockResult::Ok;
}

LockResult lock_release(Store& store, const std::string& lock, std::string_view token, int* err) {
    if (LockResult r = lock_check(store, lock, token, err); r != LockResult::Ok) return r;
    std::string releasing = join(lock, "releasing." + random_token() + ".tmp");
    if (int e = store.rename(join(lock, "held"), releasing)) {
        *err = e;
        return LockResult::IoError;
    }
    store.unlink(join(releasing, "info"));
    store.rmdir(releasing);
    return LockResult::Ok;
}

}  // namespace souk::server::bzr
