// The history as a cache of the shared stream (stream mode): cursors that name stream entry
// positions and epochs, sparse positions, the floor, resets to a new epoch.
#include "daemon/core/history.h"

#include "common/cursor.h"
#include "tests/unit/test_epoch.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace shopcast {
namespace {

const std::string kEpoch = "strm1";

// A stream entry id MS-N as the contract maps it to a position.
constexpr std::uint64_t position_of(std::uint64_t ms, std::uint64_t n) {
    return ms << 20 | n;
}

std::string event_json(std::uint64_t n) {
    return R"({"type":"product_added","shopId":1,"productId":)" + std::to_string(n) + "}";
}

// A history in stream mode holding entries at the given positions (after `floor`).
History stream_history(const std::vector<std::uint64_t>& positions, std::uint64_t floor,
                       std::size_t capacity = 100) {
    History history(test_epoch("local0"), capacity, 1 << 20);
    history.reset(test_epoch(kEpoch), floor);
    std::uint64_t n = 0;
    for (std::uint64_t position : positions) {
        EXPECT_NE(history.append_at(position, event_json(++n), "1", ""), nullptr) << position;
    }
    return history;
}

TEST(StreamCursor, RoundTripsStreamPositionsIncludingTheLargest) {
    const CursorCodec codec(test_epoch(kEpoch));
    const std::vector<std::uint64_t> positions = {
        0, position_of(0, 1), position_of(1733100000000, 0), position_of(1733100000000, 7),
        position_of((std::uint64_t{1} << 44) - 1, (1 << 20) - 1)};
    for (std::uint64_t position : positions) {
        SCOPED_TRACE(position);
        const CursorPosition event = codec.read(codec.event_cursor(position));
        EXPECT_EQ(event.reading, CursorReading::ok);
        EXPECT_EQ(event.seq, position);
        const CursorPosition hello = codec.read(codec.hello_cursor(position));
        EXPECT_EQ(hello.reading, CursorReading::ok);
        EXPECT_EQ(hello.seq, position);
    }
}

TEST(StreamCursor, PositionsOrderAsEntryIds) {
    // Within one millisecond by sequence number, across milliseconds by time first.
    EXPECT_LT(position_of(1000, 0), position_of(1000, 1));
    EXPECT_LT(position_of(1000, (1 << 20) - 1), position_of(1001, 0));
    EXPECT_LT(position_of(999, 5), position_of(1000, 0));
}

TEST(StreamCursor, ACursorOfAnotherEpochIsNeverReadAsOurs) {
    const CursorCodec ours(test_epoch(kEpoch));
    const CursorCodec theirs(test_epoch("strm2"));
    const std::string foreign = theirs.event_cursor(position_of(1000, 1));
    EXPECT_EQ(ours.read(foreign).reading, CursorReading::other_epoch);
    // Same name, other key (a stream recreated under a colliding name): still not ours.
    Epoch same_name = test_epoch(kEpoch);
    same_name.key[0] ^= 1;
    EXPECT_NE(CursorCodec(same_name).read(ours.event_cursor(position_of(1000, 1))).reading,
              CursorReading::ok);
}

TEST(StreamHistory, EventsCarryTheirPositionAndACursorNamingIt) {
    const std::vector<std::uint64_t> positions = {position_of(1000, 0), position_of(1000, 3),
                                                  position_of(1205, 0)};
    History history = stream_history(positions, position_of(900, 0));
    ASSERT_EQ(history.size(), 3u);
    EXPECT_TRUE(history.stream_mode());
    EXPECT_EQ(history.epoch(), kEpoch);
    const CursorCodec codec(test_epoch(kEpoch));
    for (std::uint64_t seq = history.first_retained_seq(); seq <= history.last_seq(); ++seq) {
        const StoredEvent* event = history.find(seq);
        ASSERT_NE(event, nullptr);
        EXPECT_EQ(event->position, positions[seq - history.first_retained_seq()]);
        const std::string expected_id = "\"id\":\"" + codec.event_cursor(event->position) + "\"";
        EXPECT_NE(event->frame->payload().find(expected_id), std::string_view::npos);
    }
    EXPECT_EQ(history.last_position(), position_of(1205, 0));
    EXPECT_EQ(codec.read(history.hello_cursor()).seq, position_of(1205, 0));
}

TEST(StreamHistory, PositionsMustIncrease) {
    History history = stream_history({position_of(1000, 5)}, position_of(900, 0));
    EXPECT_EQ(history.append_at(position_of(1000, 5), event_json(9), "1", ""), nullptr);
    EXPECT_EQ(history.append_at(position_of(1000, 4), event_json(9), "1", ""), nullptr);
    EXPECT_EQ(history.append_at(position_of(900, 0), event_json(9), "1", ""), nullptr);
    EXPECT_EQ(history.size(), 1u);
    EXPECT_NE(history.append_at(position_of(1000, 6), event_json(9), "1", ""), nullptr);
}

TEST(StreamHistory, ResumeContinuesExactlyAfterASparsePosition) {
    const std::vector<std::uint64_t> positions = {position_of(1000, 0), position_of(1000, 3),
                                                  position_of(1205, 0), position_of(1300, 1)};
    const std::uint64_t floor = position_of(900, 2);
    History history = stream_history(positions, floor);
    const std::uint64_t first = history.first_retained_seq();
    struct Row {
        const char* name;
        std::uint64_t cursor_position;
        std::uint64_t expected_next_seq;
    };
    const std::vector<Row> rows = {
        {"the_floor_itself", floor, first},
        {"between_floor_and_first", position_of(950, 0), first},
        {"first_event", positions[0], first + 1},
        {"between_sparse_events", position_of(1100, 0), first + 2},
        {"exact_middle_event", positions[2], first + 3},
        {"newest_event", positions[3], history.last_seq() + 1},
    };
    const CursorCodec codec(test_epoch(kEpoch));
    for (const Row& row : rows) {
        SCOPED_TRACE(row.name);
        for (const std::string& cursor :
             {codec.event_cursor(row.cursor_position), codec.hello_cursor(row.cursor_position)}) {
            const ResumePoint point = history.resume_point(cursor);
            EXPECT_EQ(point.verdict, ResumeVerdict::ok);
            EXPECT_EQ(point.next_seq, row.expected_next_seq);
            // Never a wrong event: whatever comes next lies after the cursor.
            if (const StoredEvent* next = history.find(point.next_seq)) {
                EXPECT_GT(next->position, row.cursor_position);
                if (point.next_seq > first) {
                    EXPECT_LE(history.find(point.next_seq - 1)->position, row.cursor_position);
                }
            }
        }
    }
}

TEST(StreamHistory, BelowTheFloorIsTooOld) {
    History history =
        stream_history({position_of(1000, 0), position_of(1001, 0)}, position_of(900, 0));
    const CursorCodec codec(test_epoch(kEpoch));
    EXPECT_EQ(history.resume_point(codec.event_cursor(position_of(899, 9))).verdict,
              ResumeVerdict::too_old);
    EXPECT_EQ(history.resume_point(codec.event_cursor(0)).verdict, ResumeVerdict::too_old);
}

TEST(StreamHistory, EvictionRaisesTheFloorToTheEvictedPosition) {
    History history = stream_history(
        {position_of(1000, 0), position_of(1010, 0), position_of(1020, 0), position_of(1030, 0)},
        position_of(900, 0), 2);
    ASSERT_EQ(history.size(), 2u);
    EXPECT_EQ(history.floor(), position_of(1010, 0));
    const CursorCodec codec(test_epoch(kEpoch));
    EXPECT_EQ(history.resume_point(codec.event_cursor(position_of(1000, 0))).verdict,
              ResumeVerdict::too_old)
        << "the event after it was evicted";
    const ResumePoint at_floor = history.resume_point(codec.event_cursor(position_of(1010, 0)));
    EXPECT_EQ(at_floor.verdict, ResumeVerdict::ok);
    EXPECT_EQ(history.find(at_floor.next_seq)->position, position_of(1020, 0));
}

TEST(StreamHistory, ACursorAheadOfWhatWasReadIsLiveFromHere) {
    History history = stream_history({position_of(1000, 0)}, position_of(900, 0));
    const CursorCodec codec(test_epoch(kEpoch));
    const ResumePoint point = history.resume_point(codec.event_cursor(position_of(1500, 2)));
    EXPECT_EQ(point.verdict, ResumeVerdict::ahead);
    EXPECT_EQ(point.next_seq, history.last_seq() + 1);
    EXPECT_EQ(point.position, position_of(1500, 2));
}

TEST(StreamHistory, AfterAResetOnlyTheNewEpochResumes) {
    History history =
        stream_history({position_of(1000, 0), position_of(1001, 0)}, position_of(900, 0));
    const std::string old_cursor = history.cursor_for(position_of(1000, 0));
    const std::uint64_t last_seq_before = history.last_seq();
    history.reset(test_epoch("strm2"), position_of(2000, 0));
    EXPECT_EQ(history.size(), 0u);
    EXPECT_EQ(history.epoch(), "strm2");
    EXPECT_EQ(history.floor(), position_of(2000, 0));
    EXPECT_EQ(history.last_seq(), last_seq_before) << "seqs continue across a reset";
    EXPECT_EQ(history.resume_point(old_cursor).verdict, ResumeVerdict::other_epoch);
    ASSERT_NE(history.append_at(position_of(2000, 1), event_json(1), "1", ""), nullptr);
    EXPECT_EQ(history.find(history.last_seq())->seq, last_seq_before + 1);
    const ResumePoint point =
        history.resume_point(CursorCodec(test_epoch("strm2")).hello_cursor(position_of(2000, 0)));
    EXPECT_EQ(point.verdict, ResumeVerdict::ok);
    EXPECT_EQ(point.next_seq, history.last_seq());
}

TEST(LocalHistory, PositionIsTheSeqAndTheFloorFollowsEviction) {
    History history(test_epoch(kEpoch), 2, 1 << 20);
    for (std::uint64_t n = 1; n <= 4; ++n) {
        const StoredEvent& event = history.append(event_json(n), "1", "");
        EXPECT_EQ(event.position, event.seq);
    }
    EXPECT_FALSE(history.stream_mode());
    EXPECT_EQ(history.floor(), 2u);
    EXPECT_EQ(history.resume_point(history.cursor_for(9)).verdict, ResumeVerdict::unknown)
        << "locally no cursor past the newest event was ever handed out";
}

}  // namespace
}  // namespace shopcast
