// A scripted server for the client's unit tests: a thread that accepts
// connections on 127.0.0.1 (port 0), one at a time, and hands each to
// `serve` until the test ends (`stopping()` turns true).
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "transport/net.hpp"
#include "transport/stream.hpp"

namespace souk::test {

class LoopbackServer {
public:
    // serve(stream, connection number from 1): returns when the connection ends.
    using Serve = std::function<void(io::Stream, int)>;

    explicit LoopbackServer(Serve serve) : serve_(std::move(serve)) {
        std::string err;
        listen_ = io::listen_tcp("127.0.0.1", 0, 8, &err);
        REQUIRE_MESSAGE(listen_.valid(), err);
        port_ = io::bound_port(listen_.get());
        thread_ = std::thread([this] {
            while (!stop_) {  // bounded: ends with the test
                io::Fd fd = io::accept_tcp(listen_.get(), 50);
                if (fd) serve_(io::Stream(std::move(fd)), ++connections_);
            }
        });
    }
    ~LoopbackServer() {
        stop_ = true;
        thread_.join();
    }
    LoopbackServer(const LoopbackServer&) = delete;
    LoopbackServer& operator=(const LoopbackServer&) = delete;

    uint16_t port() const { return port_; }
    int connections() const { return connections_; }
    // For `serve`'s loops: poll this between reads.
    bool stopping() const { return stop_; }

private:
    Serve serve_;
    io::Fd listen_;
    uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> connections_{0};
    std::thread thread_;  // last: starts after the members it uses
};

}  // namespace souk::test
