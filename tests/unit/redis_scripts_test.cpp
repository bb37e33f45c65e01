// The Lua scripts of common/redis_stream against a real redis-server of the test's own: the
// epoch's birth and survival, publish's accepted/duplicate/conflict, a new epoch after a flush,
// approximate trimming, and recipients counted from live heartbeats only.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/cursor.h"
#include "common/redis_stream.h"
#include "fcgi/redis_connection.h"
#include "tests/unit/redis_server.h"

namespace shopcast {
namespace {

using fcgi::RedisReply;
using fcgi::reply_problem;

struct PublishArgs {
    std::string idempotency_key;  // empty: none
    std::string type = "order";
    std::string shop = "s1";
    std::string user;
    std::string json = R"({"type":"order","n":1})";
    std::string digest = std::string(64, 'a');
    std::string maxlen = "1000";
    std::string ttl = "300";
};

class RedisScripts : public testing::Test {
  protected:
    void SetUp() override {
        const std::optional<std::string> program = find_redis_server();
        if (!program) GTEST_SKIP() << "redis-server is not installed";
        server_ = std::make_unique<RedisServer>(*program);
        ASSERT_TRUE(server_->started()) << "redis-server did not answer";
        connection_ = server_->connect();
        ASSERT_TRUE(connection_.is_open()) << connection_.error();
    }

    RedisReply run(const std::vector<std::string_view>& arguments) {
        RedisReply reply = connection_.command(arguments);
        EXPECT_TRUE(reply) << connection_.error();
        return reply;
    }

    std::string eval_text(const std::string& script, const std::string& fresh) {
        RedisReply reply = run({"EVAL", script, "2", kRedisStreamKey, kRedisEpochKey, fresh});
        if (!reply || reply->type != REDIS_REPLY_STRING) {
            ADD_FAILURE() << "ensure_epoch: " << (reply ? reply_problem(*reply, 0) : "no reply");
            return {};
        }
        return std::string(reply->str, reply->len);
    }

    // The reply's elements as text (integers in decimal).
    std::vector<std::string> publish(const std::string& fresh, const PublishArgs& args) {
        const std::string idem =
            args.idempotency_key.empty() ? "" : redis_idempotency_key(args.idempotency_key);
        RedisReply reply =
            run({"EVAL", kPublishScript, "3", kRedisStreamKey, kRedisEpochKey, idem, fresh,
                 args.maxlen, args.type, args.shop, args.user, args.json, args.digest, args.ttl});
        std::vector<std::string> out;
        if (!reply || reply->type != REDIS_REPLY_ARRAY) {
            ADD_FAILURE() << "publish: " << (reply ? reply_problem(*reply, 0) : "no reply");
            return out;
        }
        for (std::size_t i = 0; i < reply->elements; ++i) {
            const redisReply& element = *reply->element[i];
            out.push_back(element.type == REDIS_REPLY_INTEGER
                              ? std::to_string(element.integer)
                              : std::string(element.str, element.len));
        }
        return out;
    }

    long long integer(const std::vector<std::string_view>& arguments) {
        RedisReply reply = run(arguments);
        if (!reply || reply->type != REDIS_REPLY_INTEGER) {
            ADD_FAILURE() << arguments.front() << ": not an integer";
            return -1;
        }
        return reply->integer;
    }

    std::optional<std::string> text(const std::vector<std::string_view>& arguments) {
        RedisReply reply = run(arguments);
        if (!reply || reply->type != REDIS_REPLY_STRING) return std::nullopt;
        return std::string(reply->str, reply->len);
    }

    std::int64_t redis_now_ms() {
        RedisReply reply = run({"TIME"});
        if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) return 0;
        return std::stoll(reply->element[0]->str) * 1000 +
               std::stoll(reply->element[1]->str) / 1000;
    }

    std::unique_ptr<RedisServer> server_;
    fcgi::RedisConnection connection_;
};

TEST_F(RedisScripts, EnsureEpochIsBornOnceAndThenKept) {
    const std::string first = Epoch::generate().record();
    EXPECT_EQ(eval_text(kEnsureEpochScript, first), first);
    EXPECT_EQ(text({"GET", kRedisEpochKey}), first);
    // Born empty, yet existing: the birth XADD was trimmed away at once.
    EXPECT_EQ(integer({"EXISTS", kRedisStreamKey}), 1);
    EXPECT_EQ(integer({"XLEN", kRedisStreamKey}), 0);
    // Another process with another fresh record joins the same life.
    EXPECT_EQ(eval_text(kEnsureEpochScript, Epoch::generate().record()), first);
    // Losing either key starts a new life.
    run({"DEL", kRedisEpochKey});
    const std::string second = Epoch::generate().record();
    EXPECT_EQ(eval_text(kEnsureEpochScript, second), second);
    run({"DEL", kRedisStreamKey});
    const std::string third = Epoch::generate().record();
    EXPECT_EQ(eval_text(kEnsureEpochScript, third), third);
    EXPECT_EQ(eval_text(kEnsureEpochScript, first), third);
}

TEST_F(RedisScripts, FirstPublishCreatesTheEpochAndAppendsTheEntry) {
    const Epoch epoch = Epoch::generate();
    PublishArgs args;
    args.user = "u7";
    const std::vector<std::string> reply = publish(epoch.record(), args);
    ASSERT_EQ(reply.size(), 4u);
    EXPECT_EQ(reply[0], "accepted");
    EXPECT_EQ(reply[1], epoch.record());
    EXPECT_EQ(reply[3], "0");  // no daemon has reported a heartbeat
    const std::optional<std::uint64_t> position = position_of_entry_id(reply[2]);
    ASSERT_TRUE(position) << reply[2];
    EXPECT_GT(*position, 0u);
    EXPECT_EQ(text({"GET", kRedisEpochKey}), epoch.record());

    RedisReply range = run({"XRANGE", kRedisStreamKey, "-", "+"});
    ASSERT_TRUE(range);
    ASSERT_EQ(range->elements, 1u);
    const redisReply& entry = *range->element[0];
    EXPECT_EQ(std::string(entry.element[0]->str), reply[2]);
    const redisReply& fields = *entry.element[1];
    const std::vector<std::string> expected = {
        std::string(kEntryFieldEpoch), epoch.name, std::string(kEntryFieldType), "order",
        std::string(kEntryFieldShop),  "s1",       std::string(kEntryFieldUser), "u7",
        std::string(kEntryFieldEvent), args.json};
    ASSERT_EQ(fields.elements, expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(std::string(fields.element[i]->str, fields.element[i]->len), expected[i]) << i;
    }
    // An empty audience field is kept as an empty string, not dropped.
    args.shop.clear();
    args.user.clear();
    EXPECT_EQ(publish(epoch.record(), args)[0], "accepted");
    EXPECT_EQ(integer({"XLEN", kRedisStreamKey}), 2);
}

TEST_F(RedisScripts, ARepeatedKeyIsADuplicateOrAConflictAndNeverAppended) {
    const std::string record = Epoch::generate().record();
    PublishArgs args;
    args.idempotency_key = "order-42";
    const std::vector<std::string> first = publish(record, args);
    ASSERT_EQ(first.size(), 4u);
    EXPECT_EQ(first[0], "accepted");

    // Another process (another fresh record) retrying: the first attempt's id.
    const std::vector<std::string> again = publish(Epoch::generate().record(), args);
    ASSERT_EQ(again.size(), 4u);
    EXPECT_EQ(again[0], "duplicate");
    EXPECT_EQ(again[1], record);
    EXPECT_EQ(again[2], first[2]);
    EXPECT_EQ(again[3], first[3]);

    PublishArgs other = args;
    other.digest = std::string(64, 'b');
    EXPECT_EQ(publish(record, other), std::vector<std::string>{"conflict"});
    EXPECT_EQ(integer({"XLEN", kRedisStreamKey}), 1);

    const long long ttl = integer({"TTL", redis_idempotency_key("order-42")});
    EXPECT_GT(ttl, 0);
    EXPECT_LE(ttl, 300);
    // Another key is another event.
    args.idempotency_key = "order-43";
    EXPECT_EQ(publish(record, args)[0], "accepted");
    EXPECT_EQ(integer({"XLEN", kRedisStreamKey}), 2);
}

TEST_F(RedisScripts, AFlushStartsANewEpochAndOldKeysDoNotCount) {
    const Epoch before = Epoch::generate();
    PublishArgs args;
    args.idempotency_key = "k1";
    const std::vector<std::string> first = publish(before.record(), args);
    ASSERT_EQ(first.size(), 4u);
    ASSERT_EQ(first[0], "accepted");

    run({"FLUSHALL"});
    const Epoch after = Epoch::generate();
    const std::vector<std::string> reborn = publish(after.record(), args);
    ASSERT_EQ(reborn.size(), 4u);
    EXPECT_EQ(reborn[0], "accepted");
    EXPECT_EQ(reborn[1], after.record());
    // A cursor of the old life reads as another epoch's in the new one.
    const std::string old_cursor =
        CursorCodec(before).event_cursor(*position_of_entry_id(first[2]));
    EXPECT_EQ(CursorCodec(after).read(old_cursor).reading, CursorReading::other_epoch);

    // Only the stream lost (the idempotency key survived): the key belongs to the old life, so
    // the event is new in this one.
    run({"DEL", kRedisStreamKey});
    const Epoch third = Epoch::generate();
    const std::vector<std::string> once_more = publish(third.record(), args);
    ASSERT_EQ(once_more.size(), 4u);
    EXPECT_EQ(once_more[0], "accepted");
    EXPECT_EQ(once_more[1], third.record());
    EXPECT_EQ(publish(third.record(), args)[0], "duplicate");
}

TEST_F(RedisScripts, MaxlenTrimsApproximatelyAndIdsKeepRising) {
    PublishArgs args;
    args.maxlen = "50";
    const std::string record = Epoch::generate().record();
    std::uint64_t last = 0;
    for (int i = 0; i < 400; ++i) {
        const std::vector<std::string> reply = publish(record, args);
        ASSERT_EQ(reply.size(), 4u);
        const std::optional<std::uint64_t> position = position_of_entry_id(reply[2]);
        ASSERT_TRUE(position) << reply[2];
        EXPECT_GT(*position, last);
        last = *position;
    }
    // `~` trims whole stream nodes (100 entries each by default): never below maxlen, never
    // more than a node above it.
    const long long length = integer({"XLEN", kRedisStreamKey});
    EXPECT_GE(length, 50);
    EXPECT_LE(length, 150);
}

TEST_F(RedisScripts, RecipientsAreTheConnectionsOfLiveNodes) {
    const std::int64_t now = redis_now_ms();
    auto heartbeat = [](std::int64_t ms, std::uint64_t connections) {
        return format_node_heartbeat({ms, connections, "0-0"});
    };
    run({"HSET", kRedisNodesKey, "a:1", heartbeat(now, 7), "b:2", heartbeat(now - 1000, 5),
         "gone:3", heartbeat(now - 60000, 1000), "garbage:4", "not a heartbeat"});
    const std::vector<std::string> reply = publish(Epoch::generate().record(), PublishArgs{});
    ASSERT_EQ(reply.size(), 4u);
    EXPECT_EQ(reply[3], "12");

    RedisReply live = run({"EVAL", kLiveNodesScript, "1", kRedisNodesKey});
    ASSERT_TRUE(live);
    ASSERT_EQ(live->type, REDIS_REPLY_ARRAY);
    ASSERT_EQ(live->elements, 2u);
    EXPECT_EQ(live->element[0]->integer, 2);
    EXPECT_EQ(live->element[1]->integer, 12);
}

}  // namespace
}  // namespace shopcast
