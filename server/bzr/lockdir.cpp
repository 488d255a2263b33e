#include "server/bzr/lockdir.hpp"

#include <errno.h>
#include <sys/random.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>

#include "server/base/strings.hpp"
#include "server/bzr/control.hpp"
#include "server/store/paths.hpp"

namespace souk::server::bzr {

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
