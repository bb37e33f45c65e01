#include "fcgi/redis_forwarder.h"

#include <limits>

#include "common/log.h"
#include "common/redis_stream.h"
#include "common/request_digest.h"

namespace shopcast::fcgi {
namespace {

std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

std::string_view text_of(const redisReply& reply) {
    return std::string_view(reply.str, reply.len);
}

bool is_text(const redisReply& reply) {
    return reply.type == REDIS_REPLY_STRING || reply.type == REDIS_REPLY_STATUS;
}

}  // namespace

bool RedisOutage::may_try() {
    const std::lock_guard lock(mutex_);
    if (!down_) return true;
    if (probing_ || Clock::now() < retry_after_) return false;
    probing_ = true;
    return true;
}

void RedisOutage::failed(const std::string& why) {
    const std::lock_guard lock(mutex_);
    retry_after_ = Clock::now() + retry_pause_;
    probing_ = false;
    failure_ = why;
    if (down_) return;
    down_ = true;
    if (auto line =
            throttle_.admit("Redis unavailable, publishes answer 503: " + why, steady_ms())) {
        log_line(LogLevel::error, *line);
    }
}

void RedisOutage::succeeded() {
    const std::lock_guard lock(mutex_);
    probing_ = false;
    if (!down_) return;
    down_ = false;
    failure_.clear();
    if (auto line = throttle_.admit("Redis reachable again", steady_ms())) {
        log_line(LogLevel::info, *line);
    }
}

std::string RedisOutage::failure() const {
    const std::lock_guard lock(mutex_);
    return failure_;
}

RedisForwarder::RedisForwarder(const RedisPublishSettings& settings, RedisOutage& outage)
    : settings_(settings), outage_(outage), candidate_record_(Epoch::generate().record()) {}

RedisConnection* RedisForwarder::connection() {
    if (!outage_.may_try()) return nullptr;
    if (connection_.is_open()) return &connection_;
    connection_ = RedisConnection::open(settings_.endpoint, settings_.timeouts);
    if (!connection_.is_open()) {
        fail(connection_.error());
        return nullptr;
    }
    return &connection_;
}

void RedisForwarder::fail(std::string why) {
    connection_ = RedisConnection();
    outage_.failed(why);
}

const CursorCodec* RedisForwarder::codec_for(std::string_view record) {
    if (codec_ && record == codec_record_) return &*codec_;
    const std::optional<Epoch> epoch = Epoch::from_record(record);
    if (!epoch) return nullptr;
    codec_.emplace(*epoch);
    codec_record_ = record;
    if (codec_record_ == candidate_record_) candidate_record_ = Epoch::generate().record();
    return &*codec_;
}

std::optional<ipc::PublishAck> RedisForwarder::read_publish_reply(const redisReply& reply) {
    if (reply.type != REDIS_REPLY_ARRAY || reply.elements == 0 || !is_text(*reply.element[0])) {
        return std::nullopt;
    }
    const std::string_view status = text_of(*reply.element[0]);
    if (status == "conflict" && reply.elements == 1) {
        return ipc::PublishAck{ipc::AckStatus::conflict, {}, 0};
    }
    if ((status != "accepted" && status != "duplicate") || reply.elements != 4 ||
        !is_text(*reply.element[1]) || !is_text(*reply.element[2]) ||
        reply.element[3]->type != REDIS_REPLY_INTEGER || reply.element[3]->integer < 0) {
        return std::nullopt;
    }
    const CursorCodec* codec = codec_for(text_of(*reply.element[1]));
    const std::optional<std::uint64_t> position = position_of_entry_id(text_of(*reply.element[2]));
    if (codec == nullptr || !position) return std::nullopt;
    ipc::PublishAck ack;
    ack.status = status == "accepted" ? ipc::AckStatus::accepted : ipc::AckStatus::duplicate;
    ack.id = codec->event_cursor(*position);
    constexpr auto kMaxRecipients = std::numeric_limits<std::uint32_t>::max();
    ack.recipients =
        static_cast<std::uint32_t>(std::min<long long>(reply.element[3]->integer, kMaxRecipients));
    return ack;
}

std::optional<ipc::PublishAck> RedisForwarder::forward(const ipc::PublishRequest& request) {
    RedisConnection* redis = connection();
    if (redis == nullptr) return std::nullopt;
    const std::string idempotency_key = request.idempotency_key.empty()
                                            ? std::string()
                                            : redis_idempotency_key(request.idempotency_key);
    const std::string max_length = std::to_string(settings_.max_length);
    const std::string ttl = std::to_string(settings_.idempotency_ttl_seconds);
    const std::string digest = request_digest_hex(request);
    const RedisReply reply =
        redis->command({"EVAL", kPublishScript, "3", kRedisStreamKey, kRedisEpochKey,
                        idempotency_key, candidate_record_, max_length, request.type,
                        request.shop_id, request.user_id, request.json, digest, ttl});
    if (!reply) {
        fail(redis->error());
        return std::nullopt;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        // OOM, LOADING, READONLY (a replica), BUSY: Redis cannot take the event now.
        fail("Redis refused the publish script: " + std::string(text_of(*reply)));
        return std::nullopt;
    }
    std::optional<ipc::PublishAck> ack = read_publish_reply(*reply);
    if (!ack) {
        fail("unexpected reply to the publish script");
        return std::nullopt;
    }
    outage_.succeeded();
    return ack;
}

StreamStatus RedisForwarder::stream_status() {
    StreamStatus status;
    RedisConnection* redis = connection();
    if (redis == nullptr) {
        status.failure = outage_.failure();
        return status;
    }
    const RedisReply pong = redis->command({"PING"});
    if (!pong || reply_problem(*pong, REDIS_REPLY_STATUS) != "") {
        fail(pong ? "PING: " + reply_problem(*pong, REDIS_REPLY_STATUS) : redis->error());
        status.failure = outage_.failure();
        return status;
    }
    const RedisReply live = redis->command({"EVAL", kLiveNodesScript, "1", kRedisNodesKey});
    if (!live || live->type != REDIS_REPLY_ARRAY || live->elements != 2 ||
        live->element[0]->type != REDIS_REPLY_INTEGER ||
        live->element[1]->type != REDIS_REPLY_INTEGER) {
        fail(live ? "unexpected reply to the live-nodes script" : redis->error());
        status.failure = outage_.failure();
        return status;
    }
    outage_.succeeded();
    status.reachable = true;
    status.live_daemons = static_cast<std::uint64_t>(live->element[0]->integer);
    status.connections = static_cast<std::uint64_t>(live->element[1]->integer);
    return status;
}

}  // namespace shopcast::fcgi
