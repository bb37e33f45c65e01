// Resumes from below the history's floor in stream mode: the session waits for the stream's
// entries up to the floor, gets those its audience may see, then the history's, with no gap
// and nothing twice; anything the fill cannot vouch for ends in `resync`.
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

const std::string kEpoch = "gapfl1";

std::string product_json(int product, const std::string& shop) {
    return R"({"type":"product_added","shopId":")" + shop + R"(","productId":)" +
           std::to_string(product) + "}";
}

// Records what is asked; the test answers when it chooses, as Redis would later.
class FakeFiller : public GapFiller {
  public:
    struct Request {
        std::uint64_t after = 0;
        std::uint64_t through = 0;
        Done done;
    };
    bool fill(std::uint64_t after, std::uint64_t through, Done done) override {
        if (!available) return false;
        requests.push_back(Request{after, through, std::move(done)});
        return true;
    }
    bool available = true;
    std::vector<Request> requests;
};

class GapFillTest : public test::StreamHubTest {
  protected:
    GapFillTest() : StreamHubTest(kEpoch) {}

    // A history of `capacity` events, in the stream since `floor`, filled by `filler_`.
    void start(std::size_t capacity, std::uint64_t floor, HubLimits limits = {}) {
        start_hub(capacity, floor, limits);
        hub_->set_gap_filler(&filler_);
    }

    void feed(std::uint64_t position, const std::string& shop = "5", const std::string& user = "") {
        const std::string json = product_json(static_cast<int>(position >> 20), shop);
        append(position, {"product_added", shop, user, json});
    }

    static FilledEntry entry(std::uint64_t position, const std::string& shop = "5",
                             const std::string& user = "", const std::string& epoch = kEpoch) {
        return FilledEntry{position, epoch, shop, user,
                           product_json(static_cast<int>(position >> 20), shop)};
    }

    Session& open_resumed(std::uint64_t position) {
        return StreamHubTest::open_resumed(codec_.event_cursor(position));
    }

    std::vector<std::string> cursors(const std::vector<std::uint64_t>& positions) const {
        std::vector<std::string> ids;
        for (std::uint64_t position : positions) ids.push_back(codec_.event_cursor(position));
        return ids;
    }

    static void expect_resync(const std::vector<Sent>& messages, const std::string& reason) {
        ASSERT_FALSE(messages.empty());
        EXPECT_EQ(messages[0].type, "resync");
        EXPECT_EQ(messages[0].reason, reason);
    }

    FakeFiller filler_;
};

TEST_F(GapFillTest, AnExactFillThenTheHistoryArriveInOrderOnce) {
    start(10, position_of(950));
    feed(position_of(1000));
    feed(position_of(1001));
    Session& session = open_resumed(position_of(900));
    ASSERT_EQ(filler_.requests.size(), 1u);
    EXPECT_EQ(filler_.requests[0].after, position_of(900));
    EXPECT_EQ(filler_.requests[0].through, position_of(950)) << "up to and with the floor";
    EXPECT_EQ(hub_->parked_count(), 1u);

    feed(position_of(1002));
    EXPECT_TRUE(drain(session).empty()) << "nothing goes out while the fill is awaited";

    filler_.requests[0].done(GapFill{true, {entry(position_of(920)), entry(position_of(950))}});
    EXPECT_EQ(hub_->parked_count(), 0u);
    EXPECT_EQ(ids_of(drain(session)),
              cursors({position_of(920), position_of(950), position_of(1000), position_of(1001),
                       position_of(1002)}));
    feed(position_of(1003));
    EXPECT_EQ(ids_of(drain(session)), cursors({position_of(1003)})) << "then live";
}

TEST_F(GapFillTest, TheFilledFramesAreTheOnesTheHistoryWouldHaveBuilt) {
    start(10, position_of(950));
    Session& session = open_resumed(position_of(900));
    ASSERT_EQ(filler_.requests.size(), 1u);
    filler_.requests[0].done(GapFill{true, {entry(position_of(950))}});
    hub_->on_writeable(session);
    ASSERT_EQ(transport_.sent[&session].size(), 1u);

    History reference(test_epoch(kEpoch), 10, 1 << 24);
    reference.reset(test_epoch(kEpoch), position_of(900));
    const StoredEvent* stored =
        reference.append_at(position_of(950), product_json(950, "5"), "5", "");
    ASSERT_NE(stored, nullptr);
    EXPECT_EQ(event_payload(product_json(950, "5"), codec_.event_cursor(position_of(950))),
              std::string(stored->frame->payload()));
}

TEST_F(GapFillTest, AStreamTrimmedPastTheCursorResyncs) {
    start(10, position_of(950));
    feed(position_of(1000));
    Session& session = open_resumed(position_of(900));
    ASSERT_EQ(filler_.requests.size(), 1u);
    // The stream's oldest entry is newer than the cursor: what followed it may be gone.
    filler_.requests[0].done(GapFill{false, {entry(position_of(950))}});
    const std::vector<Sent> messages = drain(session);
    expect_resync(messages, "history_exhausted");
    EXPECT_EQ(messages.size(), 1u) << "nothing of the fill nor of the history is replayed";
    feed(position_of(1001));
    EXPECT_EQ(ids_of(drain(session)), cursors({position_of(1001)})) << "live after the resync";
}

TEST_F(GapFillTest, AnEntryOfAnotherEpochResyncs) {
    start(10, position_of(950));
    Session& session = open_resumed(position_of(900));
    ASSERT_EQ(filler_.requests.size(), 1u);
    filler_.requests[0].done(
        GapFill{true, {entry(position_of(920)), entry(position_of(950), "5", "", "gapfl2")}});
    const std::vector<Sent> messages = drain(session);
    expect_resync(messages, "history_exhausted");
    EXPECT_EQ(messages.size(), 1u);
}

TEST_F(GapFillTest, AResetDuringTheFillResyncsAndItsLateAnswerIsIgnored) {
    start(10, position_of(950));
    Session& session = open_resumed(position_of(900));
    ASSERT_EQ(filler_.requests.size(), 1u);
    hub_->reset_stream(test_epoch("gapfl2"), position_of(5), "epoch_changed");
    EXPECT_EQ(hub_->parked_count(), 0u);
    filler_.requests[0].done(GapFill{true, {entry(position_of(950))}});
    const std::vector<Sent> messages = drain(session);
    expect_resync(messages, "epoch_changed");
    EXPECT_EQ(messages.size(), 1u) << "the old life's entries are not sent";
}

TEST_F(GapFillTest, AFloorThatRoseDuringTheFillResyncs) {
    start(3, position_of(950));
    feed(position_of(1000));
    feed(position_of(1001));
    feed(position_of(1002));
    Session& session = open_resumed(position_of(900));
    ASSERT_EQ(filler_.requests.size(), 1u);
    feed(position_of(1003));  // evicts 1000: the floor is now past what the fill covers
    ASSERT_EQ(hub_->history().floor(), position_of(1000));
    filler_.requests[0].done(GapFill{true, {entry(position_of(950))}});
    const std::vector<Sent> messages = drain(session);
    expect_resync(messages, "history_exhausted");
    // Then live from where it connected, as any resync: neither the fill nor 1001.. with 1000
    // missing.
    EXPECT_EQ(ids_of({messages.begin() + 1, messages.end()}), cursors({position_of(1003)}));
}

TEST_F(GapFillTest, FilledEventsFollowTheAudienceRules) {
    start(10, position_of(950));
    feed(position_of(1000), "5");
    feed(position_of(1001), "6");
    Session& session = hub_->open_session("10.0.0.1");
    hub_->on_text_message(session, R"({"action":"subscribe","shops":["5"]})");
    drain(session);  // hello, subscribed
    hub_->on_text_message(
        session, R"({"action":"resume","since":")" + codec_.event_cursor(position_of(900)) + "\"}");
    ASSERT_EQ(filler_.requests.size(), 1u);
    filler_.requests[0].done(
        GapFill{true,
                {entry(position_of(910), "5"), entry(position_of(920), "6"),
                 entry(position_of(930), "", "42"), entry(position_of(940), ""),
                 entry(position_of(950), "5", "77")}});
    EXPECT_EQ(ids_of(drain(session)),
              cursors({position_of(910), position_of(940), position_of(1000)}))
        << "its shop and unshopped public events; no other shop's, no user's";
}

TEST_F(GapFillTest, BeyondTheParkedLimitAResumeResyncsAsBefore) {
    HubLimits limits;
    limits.max_gap_fills = 1;
    start(10, position_of(950), limits);
    Session& first = open_resumed(position_of(900));
    Session& second = open_resumed(position_of(900));
    EXPECT_EQ(filler_.requests.size(), 1u);
    expect_resync(drain(second), "history_exhausted");
    filler_.requests[0].done(GapFill{true, {entry(position_of(950))}});
    EXPECT_EQ(ids_of(drain(first)), cursors({position_of(950)}));
}

TEST_F(GapFillTest, AFillerThatCannotAskResyncsAtOnce) {
    start(10, position_of(950));
    filler_.available = false;
    Session& session = open_resumed(position_of(900));
    expect_resync(drain(session), "history_exhausted");
    EXPECT_EQ(hub_->parked_count(), 0u);
}

TEST_F(GapFillTest, TheHoldEndingDoesNotReleaseAParkedSessionNorDoesASecondResume) {
    start(10, position_of(950));
    feed(position_of(1000));
    Session& session = open_resumed(position_of(900));
    hub_->release_hold(session);  // the glue's hold timer
    hub_->on_text_message(session, R"({"action":"resume","since":")" +
                                       codec_.event_cursor(position_of(1000)) + "\"}");
    const std::vector<Sent> refused = drain(session);
    ASSERT_EQ(refused.size(), 1u);
    EXPECT_EQ(refused[0].type, "error");
    filler_.requests[0].done(GapFill{true, {entry(position_of(950))}});
    EXPECT_EQ(ids_of(drain(session)), cursors({position_of(950), position_of(1000)}));
}

TEST_F(GapFillTest, AClosedSessionsAnswerIsIgnored) {
    start(10, position_of(950));
    Session& session = open_resumed(position_of(900));
    ASSERT_EQ(filler_.requests.size(), 1u);
    hub_->close_session(session);
    EXPECT_EQ(hub_->parked_count(), 0u);
    filler_.requests[0].done(GapFill{true, {entry(position_of(950))}});
    EXPECT_EQ(hub_->session_count(), 0u);
}

TEST_F(GapFillTest, WithoutAFillerBelowTheFloorResyncs) {
    start(10, position_of(950));
    hub_->set_gap_filler(nullptr);
    Session& session = open_resumed(position_of(900));
    expect_resync(drain(session), "history_exhausted");
}

}  // namespace
}  // namespace shopcast
