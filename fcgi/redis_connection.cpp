#include "fcgi/redis_connection.h"

#include <sys/time.h>

namespace shopcast::fcgi {
namespace {

timeval to_timeval(std::chrono::milliseconds duration) {
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(duration);
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(duration - seconds);
    return timeval{static_cast<time_t>(seconds.count()), static_cast<suseconds_t>(micros.count())};
}

}  // namespace

std::string reply_problem(const redisReply& reply, int expected) {
    if (reply.type == REDIS_REPLY_ERROR) return std::string(reply.str, reply.len);
    if (reply.type != expected) return "unexpected reply of type " + std::to_string(reply.type);
    return {};
}

RedisConnection RedisConnection::open(const RedisEndpoint& endpoint, Timeouts timeouts) {
    RedisConnection connection;
    const timeval connect_timeout = to_timeval(timeouts.connect);
    connection.context_.reset(
        endpoint.unix_path.empty()
            ? redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, connect_timeout)
            : redisConnectUnixWithTimeout(endpoint.unix_path.c_str(), connect_timeout));
    if (!connection.context_) {
        connection.error_ = "cannot allocate a Redis connection";
        return connection;
    }
    if (connection.context_->err != 0) {
        connection.fail("cannot connect to " + endpoint.describe() + ": " +
                        connection.context_->errstr);
        return connection;
    }
    if (redisSetTimeout(connection.context_.get(), to_timeval(timeouts.command)) != REDIS_OK) {
        connection.fail("cannot set the Redis command timeout");
        return connection;
    }
    if (!endpoint.password.empty()) {
        const RedisReply reply = connection.command({"AUTH", endpoint.password});
        if (!reply) return connection;
        if (const std::string problem = reply_problem(*reply, REDIS_REPLY_STATUS);
            !problem.empty()) {
            connection.fail("Redis refused the password: " + problem);
            return connection;
        }
    }
    const std::string db = std::to_string(endpoint.db);
    const RedisReply reply = connection.command({"SELECT", db});
    if (!reply) return connection;
    if (const std::string problem = reply_problem(*reply, REDIS_REPLY_STATUS); !problem.empty()) {
        connection.fail("Redis refused SELECT " + db + ": " + problem);
    }
    return connection;
}

RedisReply RedisConnection::command(const std::vector<std::string_view>& arguments) {
    if (!context_) return nullptr;
    std::vector<const char*> texts;
    std::vector<std::size_t> lengths;
    texts.reserve(arguments.size());
    lengths.reserve(arguments.size());
    for (const std::string_view argument : arguments) {
        texts.push_back(argument.data());
        lengths.push_back(argument.size());
    }
    RedisReply reply(static_cast<redisReply*>(redisCommandArgv(
        context_.get(), static_cast<int>(texts.size()), texts.data(), lengths.data())));
    if (!reply) {
        fail(context_->err != 0 ? std::string("Redis connection failed: ") + context_->errstr
                                : "Redis connection failed");
    }
    return reply;
}

void RedisConnection::fail(std::string why) {
    error_ = std::move(why);
    context_.reset();
}

}  // namespace shopcast::fcgi
