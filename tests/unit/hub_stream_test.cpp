// The Hub fed from the shared stream (stream mode): events arrive with their positions, a reset
// resyncs every connection, and resumes from cursors of other daemons land exactly.
#include "daemon/core/hub.h"

#include "common/cursor.h"
#include "tests/unit/stream_hub_fixture.h"
#include "tests/unit/test_epoch.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace shopcast {
namespace {

using test::position_of;
using test::Sent;

const std::string kEpoch = "hubst1";

class HubStreamTest : public test::StreamHubTest {
  protected:
    HubStreamTest() : StreamHubTest(kEpoch) {}

    void SetUp() override { start_hub(100, position_of(900, 0)); }

    void feed(std::uint64_t position, int product) {
        const std::string json =
            R"({"type":"product_added","shopId":5,"productId":)" + std::to_string(product) + "}";
        append(position, {"product_added", "5", "", json});
    }
};

TEST_F(HubStreamTest, LiveEventsCarryTheCursorOfTheirStreamPosition) {
    Session& session = hub_->open_session("10.0.0.1");
    drain(session);
    hub_->release_hold(session);
    feed(position_of(1000, 0), 1);
    feed(position_of(1000, 1), 2);
    EXPECT_EQ(ids_of(drain(session)),
              (std::vector<std::string>{codec_.event_cursor(position_of(1000, 0)),
                                        codec_.event_cursor(position_of(1000, 1))}));
    EXPECT_FALSE(hub_->append_from_stream(position_of(1000, 1),
                                          {"product_added", "5", "", R"({"type":"x"})"}))
        << "an entry at or before the newest one is not appended twice";
}

TEST_F(HubStreamTest, ResumeFromAnotherDaemonsCursorReplaysExactlyWhatFollows) {
    feed(position_of(1000, 0), 1);
    feed(position_of(1003, 0), 2);
    feed(position_of(1007, 4), 3);
    // Another daemon handed out the cursor of the second entry.
    Session& session = open_resumed(codec_.event_cursor(position_of(1003, 0)));
    EXPECT_EQ(ids_of(drain(session)),
              (std::vector<std::string>{codec_.event_cursor(position_of(1007, 4))}));
}

TEST_F(HubStreamTest, ACursorAheadOfThisDaemonSkipsWhatTheBrowserHas) {
    feed(position_of(1000, 0), 1);
    // Another daemon has read up to 1005-0 already; this one has not.
    Session& session = open_resumed(codec_.event_cursor(position_of(1005, 0)));
    EXPECT_TRUE(drain(session).empty());
    feed(position_of(1004, 0), 2);
    feed(position_of(1005, 0), 3);
    feed(position_of(1006, 0), 4);
    EXPECT_EQ(ids_of(drain(session)),
              (std::vector<std::string>{codec_.event_cursor(position_of(1006, 0))}));
}

TEST_F(HubStreamTest, BelowTheFloorResyncs) {
    Session& session = open_resumed(codec_.event_cursor(position_of(800, 0)));
    const std::vector<Sent> messages = drain(session);
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_EQ(messages[0].type, "resync");
    EXPECT_EQ(messages[0].reason, "history_exhausted");
}

TEST_F(HubStreamTest, AResetResyncsEveryConnectionWhichThenGoesOnLive) {
    feed(position_of(1000, 0), 1);
    Session& live = hub_->open_session("10.0.0.1");
    drain(live);
    hub_->release_hold(live);
    Session& held = hub_->open_session("10.0.0.2");
    drain(held);
    const std::string old_cursor = codec_.event_cursor(position_of(1000, 0));

    const Epoch next = test_epoch("hubst2");
    const CursorCodec next_codec(next);
    // The new life already holds an entry when this daemon notices: it stays for resume only.
    hub_->reset_stream(next, position_of(5, 0), "epoch_changed", [&] {
        EXPECT_TRUE(hub_->append_from_stream(
            position_of(5, 1),
            {"product_added", "5", "", R"({"type":"product_added","shopId":5,"productId":6})"}));
    });
    feed(position_of(5, 2), 7);
    for (Session* session : {&live, &held}) {
        const std::vector<Sent> messages = drain(*session);
        ASSERT_EQ(messages.size(), 2u);
        EXPECT_EQ(messages[0].type, "resync");
        EXPECT_EQ(messages[0].reason, "epoch_changed");
        EXPECT_EQ(messages[1].id, next_codec.event_cursor(position_of(5, 2)))
            << "live after what the reset loaded";
    }
    Session& resumed = open_resumed(next_codec.hello_cursor(position_of(5, 0)));
    EXPECT_EQ(ids_of(drain(resumed)),
              (std::vector<std::string>{next_codec.event_cursor(position_of(5, 1)),
                                        next_codec.event_cursor(position_of(5, 2))}))
        << "a cursor of the new life replays what the reset loaded";
    // A cursor of the old life resyncs: no event of the new stream is replayed for it.
    Session& late = open_resumed(old_cursor);
    const std::vector<Sent> messages = drain(late);
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_EQ(messages[0].type, "resync");
    EXPECT_EQ(messages[0].reason, "epoch_changed");
}

}  // namespace
}  // namespace shopcast
