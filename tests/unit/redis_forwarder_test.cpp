// The publish side of Redis mode against a real redis-server of the test's own: the reply's id
// is the cursor of the stream entry, a retry through another worker gets the same id, AUTH and
// SELECT, trouble gives nullopt (the handler's 503), and /health/ready says what is wrong.
#include "fcgi/redis_forwarder.h"

#include <gtest/gtest.h>

#include <csignal>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "common/cursor.h"
#include "common/redis_stream.h"
#include "fcgi/fcgi_metrics.h"
#include "fcgi/ops_endpoints.h"
#include "tests/unit/redis_server.h"

namespace shopcast::fcgi {
namespace {

ipc::PublishRequest order_event(std::string key, std::string json = R"({"type":"order","n":1})") {
    ipc::PublishRequest request;
    request.idempotency_key = std::move(key);
    request.type = "order";
    request.shop_id = "s1";
    request.json = std::move(json);
    return request;
}

// Redis mode never asks the daemon for readiness.
class NoDaemon final : public DaemonQueries {
  public:
    std::optional<ipc::QueryReply> query(ipc::Query) override {
        ADD_FAILURE() << "the daemon was asked";
        return std::nullopt;
    }
    std::string last_failure() const override { return "not asked"; }
};

class RedisForwarderTest : public testing::Test {
  protected:
    void start(const std::string& password = "") {
        // As in shopcast-fcgi's main(): writing to a stopped Redis is an error, not a signal.
        ::signal(SIGPIPE, SIG_IGN);
        const std::optional<std::string> program = find_redis_server();
        if (!program) GTEST_SKIP() << "redis-server is not installed";
        server_ = std::make_unique<RedisServer>(*program, password);
        ASSERT_TRUE(server_->started()) << "redis-server did not answer";
        settings_.endpoint = server_->endpoint();
        probe_ = server_->connect();
        ASSERT_TRUE(probe_.is_open()) << probe_.error();
    }

    std::optional<std::string> text(const std::vector<std::string_view>& arguments) {
        const RedisReply reply = probe_.command(arguments);
        if (!reply || reply->type != REDIS_REPLY_STRING) return std::nullopt;
        return std::string(reply->str, reply->len);
    }

    // The entry ids in the stream, oldest first.
    std::vector<std::string> entry_ids() {
        std::vector<std::string> ids;
        const RedisReply range = probe_.command({"XRANGE", kRedisStreamKey, "-", "+"});
        if (!range || range->type != REDIS_REPLY_ARRAY) return ids;
        for (std::size_t i = 0; i < range->elements; ++i) {
            ids.emplace_back(range->element[i]->element[0]->str);
        }
        return ids;
    }

    Reply ready(RedisForwarder& forwarder) {
        NoDaemon daemon;
        return answer_ops(OpsEndpoint::ready, "GET", daemon, metrics_, &forwarder);
    }

    std::unique_ptr<RedisServer> server_;
    RedisPublishSettings settings_;
    RedisOutage outages_{std::chrono::milliseconds(250)};
    RedisConnection probe_;
    FcgiMetrics metrics_;
};

TEST_F(RedisForwarderTest, TheIdIsTheCursorOfTheStreamEntry) {
    start();
    RedisForwarder forwarder(settings_, outages_);
    const std::optional<ipc::PublishAck> ack = forwarder.forward(order_event(""));
    ASSERT_TRUE(ack);
    EXPECT_EQ(ack->status, ipc::AckStatus::accepted);
    const std::optional<std::string> record = text({"GET", kRedisEpochKey});
    ASSERT_TRUE(record);
    const std::optional<Epoch> epoch = Epoch::from_record(*record);
    ASSERT_TRUE(epoch);
    const CursorPosition read = CursorCodec(*epoch).read(ack->id);
    ASSERT_EQ(read.reading, CursorReading::ok) << ack->id;
    EXPECT_EQ(entry_ids(), std::vector<std::string>{entry_id_of_position(read.seq)});

    // The next event follows in the same epoch.
    const std::optional<ipc::PublishAck> next = forwarder.forward(order_event(""));
    ASSERT_TRUE(next);
    const CursorPosition after = CursorCodec(*epoch).read(next->id);
    ASSERT_EQ(after.reading, CursorReading::ok);
    EXPECT_GT(after.seq, read.seq);
}

TEST_F(RedisForwarderTest, ARetryThroughAnotherWorkerIsADuplicateWithTheSameId) {
    start();
    RedisForwarder first(settings_, outages_);
    RedisForwarder second(settings_, outages_);
    const std::optional<ipc::PublishAck> ack = first.forward(order_event("order-42"));
    ASSERT_TRUE(ack);
    EXPECT_EQ(ack->status, ipc::AckStatus::accepted);
    const std::optional<ipc::PublishAck> again = second.forward(order_event("order-42"));
    ASSERT_TRUE(again);
    EXPECT_EQ(again->status, ipc::AckStatus::duplicate);
    EXPECT_EQ(again->id, ack->id);
    const std::optional<ipc::PublishAck> other =
        second.forward(order_event("order-42", R"({"type":"order","n":2})"));
    ASSERT_TRUE(other);
    EXPECT_EQ(other->status, ipc::AckStatus::conflict);
    EXPECT_EQ(entry_ids().size(), 1u);
}

TEST_F(RedisForwarderTest, AFlushGivesANewEpochWhoseCursorsDifferFromTheOldOnes) {
    start();
    RedisForwarder forwarder(settings_, outages_);
    const std::optional<ipc::PublishAck> before = forwarder.forward(order_event(""));
    ASSERT_TRUE(before);
    const std::optional<Epoch> old_epoch = Epoch::from_record(*text({"GET", kRedisEpochKey}));
    probe_.command({"FLUSHALL"});
    const std::optional<ipc::PublishAck> after = forwarder.forward(order_event(""));
    ASSERT_TRUE(after);
    const std::optional<Epoch> new_epoch = Epoch::from_record(*text({"GET", kRedisEpochKey}));
    ASSERT_TRUE(old_epoch && new_epoch);
    EXPECT_NE(new_epoch->name, old_epoch->name);
    EXPECT_NE(new_epoch->key, old_epoch->key);
    EXPECT_EQ(CursorCodec(*new_epoch).read(before->id).reading, CursorReading::other_epoch);
    EXPECT_EQ(CursorCodec(*new_epoch).read(after->id).reading, CursorReading::ok);
}

TEST_F(RedisForwarderTest, AuthenticatesAndSelectsTheDatabase) {
    start("correct horse battery staple");
    settings_.endpoint.db = 3;
    RedisForwarder forwarder(settings_, outages_);
    ASSERT_TRUE(forwarder.forward(order_event("")));
    EXPECT_TRUE(entry_ids().empty());  // the probe is on db 0
    probe_.command({"SELECT", "3"});
    EXPECT_EQ(entry_ids().size(), 1u);

    settings_.endpoint.password = "wrong horse";
    RedisForwarder refused(settings_, outages_);
    EXPECT_FALSE(refused.forward(order_event("")));
    const StreamStatus status = refused.stream_status();
    EXPECT_FALSE(status.reachable);
    EXPECT_NE(status.failure.find("refused the password"), std::string::npos) << status.failure;
    EXPECT_EQ(status.failure.find("horse"), std::string::npos) << status.failure;
}

TEST_F(RedisForwarderTest, ReadyOnlyWithRedisAndALiveDaemon) {
    start();
    RedisForwarder forwarder(settings_, outages_);
    const Reply none = ready(forwarder);
    EXPECT_EQ(none.status, 503);
    EXPECT_NE(none.body.find(R"("shopcastd":"none_live")"), std::string::npos) << none.body;
    EXPECT_NE(none.body.find("no shopcastd reported a heartbeat"), std::string::npos);

    const RedisReply time = probe_.command({"TIME"});
    ASSERT_TRUE(time);
    const std::int64_t now_ms = std::stoll(time->element[0]->str) * 1000;
    probe_.command({"HSET", kRedisNodesKey, "host:1", format_node_heartbeat({now_ms, 3, "0-0"}),
                    "host:2", format_node_heartbeat({now_ms - 30'000, 9, "0-0"})});
    const Reply live = ready(forwarder);
    EXPECT_EQ(live.status, 200) << live.body;
    EXPECT_NE(live.body.find(R"("live_daemons":1)"), std::string::npos) << live.body;

    server_->stop();
    const Reply down = ready(forwarder);
    EXPECT_EQ(down.status, 503);
    EXPECT_NE(down.body.find(R"("redis":"unreachable")"), std::string::npos) << down.body;
    EXPECT_NE(down.body.find("redis is unreachable: "), std::string::npos) << down.body;
    ASSERT_FALSE(down.headers.empty());
    EXPECT_EQ(down.headers.back(), (std::pair<std::string, std::string>{"Retry-After", "1"}));
    // Publishing fails the same way: the handler answers 503 + Retry-After.
    EXPECT_FALSE(forwarder.forward(order_event("")));
}

// After one worker's failure the others do not try during the pause: they answer at once with
// that failure, so a hanging Redis costs one timeout per pause, not one per request.
TEST_F(RedisForwarderTest, OneFailureHoldsEveryWorkerBackForThePause) {
    start();
    RedisOutage outage(std::chrono::hours(1));  // a pause that certainly outlasts the test
    RedisForwarder first(settings_, outage);
    RedisForwarder second(settings_, outage);
    ASSERT_TRUE(first.forward(order_event("")));
    ASSERT_TRUE(second.forward(order_event("")));
    EXPECT_EQ(outage.failure(), "");

    server_->stop();
    EXPECT_FALSE(first.forward(order_event("")));
    const std::string failure = outage.failure();
    EXPECT_NE(failure, "");
    EXPECT_FALSE(outage.may_try());
    // The second still holds an open connection, and does not use it.
    EXPECT_FALSE(second.forward(order_event("")));
    const StreamStatus status = second.stream_status();
    EXPECT_FALSE(status.reachable);
    EXPECT_EQ(status.failure, failure);

    // Once the pause is over one worker probes at a time.
    RedisOutage short_pause(std::chrono::milliseconds(0));
    short_pause.failed("test outage");
    EXPECT_TRUE(short_pause.may_try());
    EXPECT_FALSE(short_pause.may_try());  // the first is still probing
    short_pause.succeeded();
    EXPECT_TRUE(short_pause.may_try());
    EXPECT_TRUE(short_pause.may_try());  // reachable: everyone
    EXPECT_EQ(short_pause.failure(), "");
}

}  // namespace
}  // namespace shopcast::fcgi
