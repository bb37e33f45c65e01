// Redis mode's event source: the shared stream read with hiredis' async API on the daemon's
// libuv loop, fed to the Hub in stream order. Never blocks the loop; survives Redis going away.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/cursor.h"
#include "common/log_throttle.h"
#include "common/redis_endpoint.h"
#include "daemon/core/gap_filler.h"
#include "daemon/core/hub.h"
#include "daemon/redis/stream_health.h"
#include "daemon/redis/uv_timer.h"

struct redisAsyncContext;
struct redisReply;

namespace shopcast {

// One stream entry as read, copied out of hiredis' reply.
struct StreamEntry {
    std::string id;
    std::uint64_t position = 0;
    std::string epoch;
    std::string type;
    std::string shop_id;
    std::string user_id;
    std::string json;
    std::string problem;  // empty: a well-formed entry in the contract's shape
};

// One per daemon, on the service thread. Connects (AUTH, SELECT), agrees on the epoch
// (ensure_epoch), loads the newest `history_events` entries with the floor below them, then
// follows the stream with XREAD BLOCK from the last id read. Every second it checks the epoch
// key and writes this node's heartbeat. A lost connection is retried with backoff; on return
// the missed entries are read if the stream still holds them, else every browser resyncs.
// It also fills the Hub's gaps: a resume from below the floor gets the entries up to it with
// XRANGE, on the same connection (so an XREAD in progress delays it by up to its block time).
class StreamReader final : public GapFiller {
  public:
    StreamReader(uv_loop_t* loop, RedisEndpoint endpoint, Hub& hub, std::size_t history_events);
    StreamReader(const StreamReader&) = delete;
    StreamReader& operator=(const StreamReader&) = delete;
    ~StreamReader() override;

    void start();
    bool fill(std::uint64_t after, std::uint64_t through, Done done) override;
    const StreamHealth& health() const { return health_; }

  private:
    using Handler = void (StreamReader::*)(redisReply*);
    template <Handler handler>
    static void reply_to(redisAsyncContext* context, void* reply, void* reader);
    static void on_connected(const redisAsyncContext* context, int status);
    static void on_disconnected(const redisAsyncContext* context, int status);

    void connect();
    template <Handler handler>
    bool send_with(const std::vector<std::string>& arguments);
    void drop(std::string_view why);
    void on_lost(std::string_view why);
    void schedule_reconnect();
    void warn(std::string line);

    void watch_for_silence();
    void check_epoch();
    void read_next();
    void write_heartbeat_and_check_epoch();

    void on_setup_reply(redisReply* reply);
    void on_epoch(redisReply* reply);
    void on_gap_info(redisReply* reply);
    void on_newest(redisReply* reply);
    void on_load_info(redisReply* reply);
    void on_read(redisReply* reply);
    void on_heartbeat(redisReply* reply);
    void on_epoch_key(redisReply* reply);
    void on_fill_range(redisReply* reply);
    void on_fill_info(redisReply* reply);
    void on_fill_epoch(redisReply* reply);
    void expire_fills();

    void begin_load(std::string_view reason);
    void finish_load(std::uint64_t floor);
    void take(const StreamEntry& entry);

    uv_loop_t* loop_;
    RedisEndpoint endpoint_;
    Hub& hub_;
    std::size_t history_events_;
    std::string node_id_;
    redisAsyncContext* context_ = nullptr;
    bool stopping_ = false;
    bool outage_logged_ = false;
    unsigned attempts_ = 0;
    UvTimer retry_timer_;
    UvTimer connect_deadline_;
    UvTimer silence_watch_;
    std::uint64_t last_reply_ms_ = 0;  // uv_now() when the connection last answered

    // The stream's life as last agreed; nullopt before the first load.
    std::optional<Epoch> epoch_;
    std::string epoch_record_;
    Epoch candidate_;  // the epoch a load in progress continues in
    std::string candidate_record_;
    std::string load_reason_;
    std::vector<StreamEntry> loading_;  // newest first, as XREVRANGE gives them
    std::string last_id_ = "0-0";
    // An entry naming another epoch, once the epoch key was checked again because of it.
    std::string rechecked_entry_id_;
    std::int64_t next_check_ms_ = 0;
    // Gap fills asked for, in the order their replies come; an expired one keeps its place
    // (done empty) until its replies have passed.
    struct PendingFill {
        std::uint64_t after = 0;
        GapFiller::Done done;
        std::uint64_t deadline_ms = 0;  // uv_now() after which it is answered with a refusal
        GapFill fill;
    };
    std::deque<PendingFill> fills_;
    UvTimer fill_deadline_;
    StreamHealth health_;
    LogThrottle log_{5, 60'000};
};

}  // namespace shopcast
