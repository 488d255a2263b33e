// soukd's counters, declared once (STYLE.md 4): one list gives the struct,
// the JSON and Prometheus output and the docs. Every degraded path gets a
// counter. The struct is plain atomics, address-free, so it can live in a
// shared-memory segment that several soukd processes add to.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "protocol/verbs.hpp"

namespace souk::server {

// X(name, help)
#define SOUK_COUNTERS(X)                                                                  \
    X(connections_accepted, "stream connections (TCP, SSH) accepted")                    \
    X(connections_refused, "TCP connections refused at --max-connections")               \
    X(requests, "requests answered")                                                     \
    X(request_failures, "requests answered with a failure reply")                        \
    X(unknown_verbs, "requests for verbs souk does not implement (UnknownMethod)")        \
    X(aborted_requests, "uploads the client aborted (oE); nothing applied")              \
    X(protocol_errors, "malformed requests (answered, then the connection closed)")      \
    X(idle_timeouts, "connections closed after --idle-timeout between requests")         \
    X(request_timeouts, "connections dropped: a request did not arrive within --request-timeout") \
    X(truncated_requests, "connections closed by the peer in the middle of a request")   \
    X(write_failures, "responses that could not be written (peer gone or --write-timeout)") \
    X(bytes_in, "request bytes received")                                                \
    X(bytes_out, "response bytes sent")

struct Counters {
#define SOUK_X(name, help) std::atomic<uint64_t> name{0};
    SOUK_COUNTERS(SOUK_X)
#undef SOUK_X
    std::atomic<uint64_t> verb_requests[proto::kVerbCount] = {};
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "counters must be usable in shared memory");

// The counters this process adds to. Defaults to a process-local instance;
// set_counters() points it elsewhere (e.g. into a shared segment) at start-up.
Counters& counters();
void set_counters(Counters* c);

inline void count(std::atomic<uint64_t>& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }

// Render every counter (and per-verb request counts) as a JSON object, or
// in Prometheus text format with the "soukd_" prefix.
std::string counters_json(const Counters& c);
std::string counters_prometheus(const Counters& c);

}  // namespace souk::server
