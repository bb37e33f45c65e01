// The publish side of the multi-node mode: events go into the Redis stream every shopcastd
// reads, through the `publish` script of common/redis_stream, instead of to one daemon.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "common/cursor.h"
#include "common/log_throttle.h"
#include "common/redis_endpoint.h"
#include "fcgi/event_forwarder.h"
#include "fcgi/ops_endpoints.h"
#include "fcgi/redis_connection.h"

namespace shopcast::fcgi {

// What every worker's forwarder shares. One per process.
struct RedisPublishSettings {
    RedisEndpoint endpoint;
    std::uint64_t max_length = 10000;            // SHOPCAST_HISTORY: the stream's MAXLEN ~
    std::int64_t idempotency_ttl_seconds = 300;  // SHOPCAST_IDEMPOTENCY_TTL
    RedisConnection::Timeouts timeouts{std::chrono::milliseconds(250),
                                       std::chrono::milliseconds(1000)};
    // After a failure no worker tries Redis again for this long: the requests meanwhile get
    // 503 at once instead of each waiting out a timeout.
    std::chrono::milliseconds retry_pause{250};
};

// Whether Redis is reachable, as the workers found it. After a failure no worker tries again
// for the retry pause, and then only one at a time until one succeeds, so a Redis that hangs
// costs one command timeout per pause rather than one per request: the rest get 503 at once.
// Logs the loss and the return once each, whichever worker notices, and never more than a few
// lines a minute when Redis flaps. One per process, shared by the workers.
class RedisOutage {
  public:
    using Clock = std::chrono::steady_clock;

    explicit RedisOutage(std::chrono::milliseconds retry_pause) : retry_pause_(retry_pause) {}

    // Whether the caller may talk to Redis now; true makes it the one probing during an outage,
    // and it must then report failed() or succeeded().
    bool may_try();
    void failed(const std::string& why);
    void succeeded();
    // Why the latest attempt failed; empty while Redis is reachable.
    std::string failure() const;

  private:
    const std::chrono::milliseconds retry_pause_;
    mutable std::mutex mutex_;
    bool down_ = false;
    bool probing_ = false;
    Clock::time_point retry_after_{};
    std::string failure_;
    LogThrottle throttle_{4, 60'000};
};

// One per worker thread; not thread-safe. Connects lazily, and again after any failure (once
// the pause is over). Every failure drops the connection, so a late reply can never be taken
// for the answer to the next command.
class RedisForwarder final : public EventForwarder, public StreamHealth {
  public:
    using Clock = std::chrono::steady_clock;

    RedisForwarder(const RedisPublishSettings& settings, RedisOutage& outage);

    // accepted / duplicate (id = the event's cursor), conflict; nullopt on any trouble with
    // Redis (down, slow, an error reply, a reply not of the script's shape).
    std::optional<ipc::PublishAck> forward(const ipc::PublishRequest& request) override;
    StreamStatus stream_status() override;

  private:
    // The open connection, connecting first if needed; nullptr during an outage while another
    // worker probes or the pause lasts, or when connecting fails.
    RedisConnection* connection();
    void fail(std::string why);
    // The cursor codec of `record`, made once per epoch; nullptr for a garbled record.
    const CursorCodec* codec_for(std::string_view record);
    std::optional<ipc::PublishAck> read_publish_reply(const redisReply& reply);

    const RedisPublishSettings& settings_;
    RedisOutage& outage_;
    RedisConnection connection_;
    // The record offered when the stream has no epoch; replaced once Redis adopts it, so no
    // two lives of the stream ever share an epoch.
    std::string candidate_record_;
    std::string codec_record_;
    std::optional<CursorCodec> codec_;
};

}  // namespace shopcast::fcgi
