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
    // After a failure a worker does not try Redis again for this long: the requests meanwhile
    // get 503 at once instead of each waiting out a timeout.
    std::chrono::milliseconds retry_pause{250};
};

// Whether Redis is reachable, as the workers found it; logs the change from reachable to not
// and back once each, whichever worker notices, never more than a few lines a minute when it
// flaps. One per process, shared by the workers.
class RedisOutageLog {
  public:
    void failed(const std::string& why);
    void succeeded();

  private:
    std::mutex mutex_;
    bool down_ = false;
    LogThrottle throttle_{4, 60'000};
};

// One per worker thread; not thread-safe. Connects lazily, and again after any failure (once
// the pause is over). Every failure drops the connection, so a late reply can never be taken
// for the answer to the next command.
class RedisForwarder final : public EventForwarder, public StreamHealth {
  public:
    using Clock = std::chrono::steady_clock;

    RedisForwarder(const RedisPublishSettings& settings, RedisOutageLog& outages);

    // accepted / duplicate (id = the event's cursor), conflict; nullopt on any trouble with
    // Redis (down, slow, an error reply, a reply not of the script's shape).
    std::optional<ipc::PublishAck> forward(const ipc::PublishRequest& request) override;
    StreamStatus stream_status() override;

  private:
    // The open connection, connecting first if needed; nullptr while pausing after a failure
    // or when connecting fails.
    RedisConnection* connection();
    void fail(std::string why);
    // The cursor codec of `record`, made once per epoch; nullptr for a garbled record.
    const CursorCodec* codec_for(std::string_view record);
    std::optional<ipc::PublishAck> read_publish_reply(const redisReply& reply);

    const RedisPublishSettings& settings_;
    RedisOutageLog& outages_;
    RedisConnection connection_;
    Clock::time_point retry_after_{};
    std::string last_failure_;
    // The record offered when the stream has no epoch; replaced once Redis adopts it, so no
    // two lives of the stream ever share an epoch.
    std::string candidate_record_;
    std::string codec_record_;
    std::optional<CursorCodec> codec_;
};

}  // namespace shopcast::fcgi
