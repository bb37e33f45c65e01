// The stream layout shared by both programs: entry id <-> position (order kept, bad ids
// refused), cursors of positions, node heartbeats, and the request digest.
#include "common/redis_stream.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/cursor.h"
#include "tests/unit/test_epoch.h"

namespace shopcast {
namespace {

// Entry ids compare as (milliseconds, sequence) pairs, the order Redis appends them in.
bool entry_id_less(const std::string& a, const std::string& b) {
    auto split = [](const std::string& id) {
        const std::size_t dash = id.find('-');
        return std::pair{std::stoull(id.substr(0, dash)), std::stoull(id.substr(dash + 1))};
    };
    return split(a) < split(b);
}

TEST(RedisStream, PositionsAndEntryIdsRoundTrip) {
    const std::vector<std::pair<std::string, std::uint64_t>> cases = {
        {"0-0", 0},
        {"0-1", 1},
        {"1-0", std::uint64_t{1} << 20},
        {"0-1048575", 1048575},
        {"1764646800000-0", std::uint64_t{1764646800000} << 20},
        {"1764646800000-7", (std::uint64_t{1764646800000} << 20) | 7},
        {"17592186044415-1048575", ~std::uint64_t{0}},
    };
    for (const auto& [id, position] : cases) {
        SCOPED_TRACE(id);
        EXPECT_EQ(position_of_entry_id(id), position);
        EXPECT_EQ(entry_id_of_position(position), id);
    }
}

TEST(RedisStream, PositionOrderIsEntryIdOrder) {
    std::mt19937_64 random(11);
    std::vector<std::string> ids = {"0-0", "0-1", "1-0", "9-1048575", "10-0", "1764646800000-0"};
    for (int i = 0; i < 500; ++i) {
        // Clustered values, so neighbours share a millisecond as real bursts do.
        const std::uint64_t ms = 1764646800000 + random() % 50;
        const std::uint64_t n = random() % 4 == 0 ? random() % (1u << 20) : random() % 5;
        ids.push_back(std::to_string(ms) + "-" + std::to_string(n));
    }
    for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
        for (std::size_t j = i + 1; j < std::min(ids.size(), i + 40); ++j) {
            const auto a = position_of_entry_id(ids[i]);
            const auto b = position_of_entry_id(ids[j]);
            ASSERT_TRUE(a && b) << ids[i] << " " << ids[j];
            EXPECT_EQ(*a < *b, entry_id_less(ids[i], ids[j])) << ids[i] << " " << ids[j];
            EXPECT_EQ(*a == *b, ids[i] == ids[j]) << ids[i] << " " << ids[j];
        }
    }
}

TEST(RedisStream, OutOfRangeAndMalformedIdsAreRefused) {
    for (const std::string id : {
             "",
             "-",
             "0",
             "0-",
             "-0",
             "1-2-3",
             "00-1",
             "1-01",
             "+1-0",
             "1-+0",
             " 1-0",
             "1-0 ",
             "1 -0",
             "a-0",
             "0x1-0",
             "1-1048576",               // sequence >= 2^20
             "17592186044416-0",        // milliseconds >= 2^44
             "18446744073709551615-0",  // u64 max milliseconds
             "18446744073709551616-0",  // beyond u64
             "1-18446744073709551616",
             "1764646800000-*",
             "$",
             ">",
         }) {
        EXPECT_EQ(position_of_entry_id(id), std::nullopt) << testing::PrintToString(id);
    }
}

TEST(RedisStream, CursorOfAPositionRoundTripsAndAnotherEpochIsOther) {
    const Epoch epoch = test_epoch("s7q2");
    const CursorCodec codec(epoch);
    for (const std::string id : {"0-0", "1764646800000-0", "1764646800000-3", "9-1048575"}) {
        SCOPED_TRACE(id);
        const std::uint64_t position = *position_of_entry_id(id);
        const std::string cursor = codec.event_cursor(position);
        const CursorPosition read = codec.read(cursor);
        EXPECT_EQ(read.reading, CursorReading::ok);
        EXPECT_EQ(entry_id_of_position(read.seq), id);
        // The same epoch rebuilt from its stored record reads it too (another process).
        const auto again = Epoch::from_record(epoch.record());
        ASSERT_TRUE(again);
        EXPECT_EQ(CursorCodec(*again).read(cursor).seq, position);
        // A stream's next life reads it as another epoch's: a resync, never a replay.
        EXPECT_EQ(CursorCodec(test_epoch("n3w")).read(cursor).reading, CursorReading::other_epoch);
    }
}

TEST(RedisStream, HeartbeatsRoundTripAndGarbageIsRefused) {
    const NodeHeartbeat heartbeat{1764646800123, 4211, "1764646800000-5"};
    const std::string text = format_node_heartbeat(heartbeat);
    EXPECT_EQ(text, "1764646800123 4211 1764646800000-5");
    const auto read = parse_node_heartbeat(text);
    ASSERT_TRUE(read);
    EXPECT_EQ(read->unix_ms, heartbeat.unix_ms);
    EXPECT_EQ(read->connections, heartbeat.connections);
    EXPECT_EQ(read->last_entry_id, heartbeat.last_entry_id);
    EXPECT_TRUE(parse_node_heartbeat("0 0 0-0"));
    for (const std::string bad : {"", "1", "1 2", "1 2 ", "1 2 x", "x 2 0-0", "1 -2 0-0",
                                  "1  2 0-0", "1 2 0-0 ", "01 2 0-0"}) {
        EXPECT_FALSE(parse_node_heartbeat(bad)) << testing::PrintToString(bad);
    }
}

TEST(RedisStream, RequestDigestIsSha256OfTypeAndEvent) {
    ipc::PublishRequest request;
    request.type = "order";
    request.json = R"({"type":"order"})";
    const std::string digest = request_digest_hex(request);
    EXPECT_EQ(digest.size(), 64u);
    EXPECT_EQ(digest.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_EQ(request_digest_hex(request), digest);
    // The key and the audience are not part of what "the same event" means; the content is.
    ipc::PublishRequest other = request;
    other.idempotency_key = "k1";
    other.shop_id = "s1";
    EXPECT_EQ(request_digest_hex(other), digest);
    other.json = R"({"type":"order","x":1})";
    EXPECT_NE(request_digest_hex(other), digest);
    // No shifting of bytes between type and JSON gives the same input.
    ipc::PublishRequest shifted;
    shifted.type = "orde";
    shifted.json = "r" + request.json;
    EXPECT_NE(request_digest_hex(shifted), digest);
}

TEST(RedisStream, RequestDigestKeepsItsValue) {
    // Idempotency values already in Redis hold this digest: it must not change across versions.
    // (printf 'order\0{"type":"order"}' | sha256sum)
    ipc::PublishRequest request;
    request.type = "order";
    request.json = R"({"type":"order"})";
    EXPECT_EQ(request_digest_hex(request),
              "4fc2641d3c07cc40846dfcbf30cd9d8cc0b3caae9f623a507ee376a4277e97ea");
}

TEST(RedisStream, IdempotencyKeyName) {
    EXPECT_EQ(redis_idempotency_key("order-42"), "shopcast:idem:order-42");
}

}  // namespace
}  // namespace shopcast
