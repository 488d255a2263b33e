// One request through the whole request pipeline, for the unit tests:
// v3 bytes in, v3 bytes out, from an origin with the given user.
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "protocol/message.hpp"
#include "server/request/pipeline.hpp"
#include "transport/sink.hpp"

namespace souk::test {

// The reply's args; its body in *body_out when given. `user` nullptr or
// "" is an anonymous client; `carrier` names the origin's carrier.
inline proto::Args serve_v3(const server::ServerContext& ctx, const proto::Args& args, const std::string& body = {},
                            std::string* body_out = nullptr, const char* user = nullptr,
                            const char* carrier = "test") {
    std::string wire;
    proto::request::encode(3, args, body.empty() ? nullptr : &body, wire);
    const server::log::Origin origin{carrier, "test", user};
    server::Pipeline p(ctx, origin);
    std::string_view in = wire;
    REQUIRE(p.feed(in) == server::Pipeline::Step::Ready);
    CHECK(in.empty());
    std::string reply;
    io::StringSink sink(reply);
    REQUIRE(p.write_reply(sink));
    proto::ResponseDecoder d(3);
    std::string_view rin = reply;
    proto::Args got;
    for (int i = 0; i < 1000; ++i) {  // bounded: a reply has few events
        auto ev = d.next(rin);
        if (ev.kind == proto::Ev::ArgsReady) got = ev.args;
        else if (ev.kind == proto::Ev::BodyChunk && body_out) body_out->append(ev.chunk);
        else if (ev.kind == proto::Ev::End || ev.kind == proto::Ev::NeedMore) break;
    }
    CHECK(d.done());
    return got;
}

}  // namespace souk::test
