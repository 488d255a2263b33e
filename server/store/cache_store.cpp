#include "server/store/cache_store.hpp"

#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <vector>

namespace souk::server {
namespace {

// The longest run of missing blocks read from below in one call: bounds the
// scratch buffer each thread keeps.
constexpr uint64_t kMaxRun = 4ull << 20;

// The coarse clock (a vDSO read of the last tick) is cheap, and never ahead
// of the true time, so it errs on the side of "unsettled". It is also the
// clock the kernel stamps mtime and ctime from.
int64_t now_real_ns() {
    struct timespec ts;
    ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::vector<char>& scratch() {
    thread_local std::vector<char> buf;
    return buf;
}

}  // namespace

bool file_key(int fd, FileKey& out) {
    struct stat st;
    if (::fstat(fd, &st) != 0) return false;
    out.dev = st.st_dev;
    out.ino = st.st_ino;
    out.size = static_cast<uint64_t>(st.st_size);
    out.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    out.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
    return true;
}

// The key reads of `f` look up: its identity when it was opened
// (OpenFile::info), so a readv of many ranges costs one fstat, not one per
// range. Hits are then the file's bytes as it was opened; a miss checks
// the identity afresh before it caches what it read (CacheStore::pread).
bool open_key(const OpenFile& f, FileKey& out) {
    if (f.info.dev == 0 && f.info.ino == 0) return file_key(f.fd.get(), out);  // not from open_read
    out = FileKey{f.info.dev, f.info.ino, f.info.size, f.info.mtime_ns, f.info.ctime_ns};
    return true;
}

bool unsettled(const FileKey& k, int64_t settle_ns) {
    return now_real_ns() - std::max(k.mtime_ns, k.ctime_ns) < settle_ns;
}

ssize_t CacheStore::pread(OpenFile& f, char* buf, size_t n, uint64_t offset) {
    FileKey key;
    if (n == 0 || !open_key(f, key) || offset >= key.size) {
        ssize_t r = next().pread(f, buf, n, offset);
        if (r > 0) next().note_read(f, offset, static_cast<uint64_t>(r));
        return r;
    }
    Counters& ctr = counters();
    if (unsettled(key, settle_ns_)) {
        count(ctr.cache_unsettled);
        ssize_t r = next().pread(f, buf, n, offset);
        if (r > 0) next().note_read(f, offset, static_cast<uint64_t>(r));
        return r;
    }
    const uint64_t B = cache_.block_bytes();
    const uint64_t want = std::min<uint64_t>(n, key.size - offset);
    const uint64_t end = offset + want;
    uint64_t done = 0;
    ssize_t result = 0;
    while (done < want) {  // bounded: each pass serves >= 1 byte or returns
        const uint64_t pos = offset + done;
        const uint64_t b = pos / B;
        const uint64_t within = pos % B;
        const uint64_t take = std::min(B - within, want - done);
        if (cache_.read(key, b, within, static_cast<size_t>(take), buf + done)) {
            count(ctr.cache_hits);
            count(ctr.cache_hit_bytes, take);
            done += take;
            continue;
        }
        // A miss: read this block and the missing ones after it that the
        // request needs, in one lower read.
        uint64_t last = b;
        const uint64_t last_needed = (end - 1) / B;
        while (last < last_needed && (last + 2 - b) * B <= kMaxRun && !cache_.contains(key, last + 1)) ++last;
        const uint64_t run_start = b * B;
        const uint64_t run_end = std::min((last + 1) * B, key.size);
        std::vector<char>& tmp = scratch();
        if (tmp.size() < run_end - run_start) tmp.resize(run_end - run_start);
        uint64_t got = 0;
        while (got < run_end - run_start) {  // bounded: each pass reads >= 1 byte or stops
            ssize_t r = next().pread(f, tmp.data() + got, run_end - run_start - got, run_start + got);
            if (r < 0) {
                result = r;
                break;
            }
            if (r == 0) break;
            got += static_cast<uint64_t>(r);
        }
        count(ctr.cache_misses, last - b + 1);
        // Cache the blocks read whole, if the file kept its identity.
        FileKey after;
        if (got > 0 && file_key(f.fd.get(), after) && after == key) {
            for (uint64_t i = b; i <= last; ++i) {
                uint64_t s = i * B - run_start;
                uint64_t len = std::min(B, key.size - i * B);
                if (s + len > got) break;
                cache_.insert(key, i, tmp.data() + s, static_cast<size_t>(len), false);
            }
        } else if (got > 0) {
            count(ctr.cache_changed);
        }
        // Hand the client its part of the run.
        uint64_t avail = run_start + got > pos ? run_start + got - pos : 0;
        uint64_t give = std::min(avail, want - done);
        if (give > 0) std::copy_n(tmp.data() + (pos - run_start), give, buf + done);
        count(ctr.cache_miss_bytes, give);
        done += give;
        if (got < run_end - run_start) break;  // error or the file shrank: a short read
    }
    if (done > 0) next().note_read(f, offset, done);
    if (done == 0 && result < 0) return result;
    return static_cast<ssize_t>(done);
}

}  // namespace souk::server
