// A synchronous hiredis connection: the publish side's way of talking to Redis.
#pragma once

#include <hiredis.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/redis_endpoint.h"

namespace shopcast::fcgi {

struct RedisReplyFree {
    void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
// One reply of Redis, owned; its elements belong to it.
using RedisReply = std::unique_ptr<redisReply, RedisReplyFree>;

// One per worker thread (or test); not thread-safe, move-only. Every wait on the socket is
// bounded by the timeouts given at open().
class RedisConnection {
  public:
    struct Timeouts {
        std::chrono::milliseconds connect;
        std::chrono::milliseconds command;
    };

    // Connects, then AUTH (when the endpoint has a password) and SELECT. On failure the
    // connection is not open() and error() says why (never with the password).
    static RedisConnection open(const RedisEndpoint& endpoint, Timeouts timeouts);

    bool is_open() const { return context_ != nullptr; }
    const std::string& error() const { return error_; }

    // Sends one command and waits for its reply. nullptr when the connection failed (closed,
    // timed out, garbled): it is then closed and error() says why. An error *reply* of Redis is
    // a reply (type REDIS_REPLY_ERROR), and the connection stays usable.
    RedisReply command(const std::vector<std::string_view>& arguments);

  private:
    struct ContextFree {
        void operator()(redisContext* context) const { redisFree(context); }
    };

    void fail(std::string why);

    std::unique_ptr<redisContext, ContextFree> context_;
    std::string error_;
};

// "ERR ..." for an error reply, "unexpected reply" for any other type than `expected`, empty
// when the reply is of that type.
std::string reply_problem(const redisReply& reply, int expected);

}  // namespace shopcast::fcgi
