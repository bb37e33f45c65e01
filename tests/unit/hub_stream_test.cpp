// The Hub fed from the shared stream (stream mode): events arrive with their positions, a reset
// resyncs every connection, and resumes from cursors of other daemons land exactly.
#include "daemon/core/hub.h"

#include "common/cursor.h"
#include "tests/unit/test_epoch.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace shopcast {
namespace {

const std::string kEpoch = "hubst1";

constexpr std::uint64_t position_of(std::uint64_t ms, std::uint64_t n) {
    return ms << 20 | n;
}

struct Sent {
    std::string type;
    std::string id;
    std::string reason;
};

// Stands in for lws: every frame a session is sent, parsed; sockets always drain.
class RecordingTransport : public SessionTransport {
  public:
    SendResult send(Session& session, std::span<const SharedFrame* const> frames) override {
        for (const SharedFrame* frame : frames) {
            rapidjson::Document doc;
            const std::string_view text = frame->payload();
            doc.Parse(text.data(), text.size());
            Sent message;
            const auto member = [&doc](const char* name) -> std::string {
                if (!doc.IsObject() || !doc.HasMember(name) || !doc[name].IsString()) return {};
                return doc[name].GetString();
            };
            message.type = member("type");
            message.id = member("id");
            message.reason = member("reason");
            sent[&session].push_back(message);
        }
        return SendResult::sent;
    }
    void wake(Session& session) override { woken[&session] = true; }
    std::map<const Session*, std::vector<Sent>> sent;
    std::map<const Session*, bool> woken;
};

class HubStreamTest : public testing::Test {
  protected:
    void SetUp() override {
        hub_ = std::make_unique<Hub>(HubLimits{}, History(test_epoch("local0"), 100, 1 << 24),
                                     IdempotencyCache(300, 100), authenticator_, transport_,
                                     Hub::Clocks{[] { return 1000; }, [] { return 1000; }});
        hub_->reset_stream(test_epoch(kEpoch), position_of(900, 0), "epoch_changed");
    }

    void feed(std::uint64_t position, int product) {
        const std::string json =
            R"({"type":"product_added","shopId":5,"productId":)" + std::to_string(product) + "}";
        ASSERT_TRUE(hub_->append_from_stream(position, {"product_added", "5", "", json}));
        hub_->deliver_published();
    }

    std::vector<Sent> drain(Session& session) {
        for (int guard = 0; guard < 100; ++guard) {
            transport_.woken.erase(&session);
            hub_->on_writeable(session);
            if (!transport_.woken[&session]) break;
        }
        std::vector<Sent> messages = std::move(transport_.sent[&session]);
        transport_.sent.erase(&session);
        return messages;
    }

    Session& open_resumed(const std::string& since) {
        Session& session = hub_->open_session("10.0.0.1");
        drain(session);  // hello
        hub_->on_text_message(session, R"({"action":"resume","since":")" + since + "\"}");
        return session;
    }

    static std::vector<std::string> ids_of(const std::vector<Sent>& messages) {
        std::vector<std::string> ids;
        for (const Sent& message : messages) ids.push_back(message.id);
        return ids;
    }

    CursorCodec codec_{test_epoch(kEpoch)};
    TelegramAuthenticator authenticator_{TelegramAuthConfig{}};
    RecordingTransport transport_;
    std::unique_ptr<Hub> hub_;
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
    hub_->reset_stream(next, position_of(5, 0), "epoch_changed");
    feed(position_of(5, 1), 7);
    const std::string new_id = CursorCodec(next).event_cursor(position_of(5, 1));
    for (Session* session : {&live, &held}) {
        const std::vector<Sent> messages = drain(*session);
        ASSERT_EQ(messages.size(), 2u);
        EXPECT_EQ(messages[0].type, "resync");
        EXPECT_EQ(messages[0].reason, "epoch_changed");
        EXPECT_EQ(messages[1].id, new_id);
    }
    // A cursor of the old life resyncs: no event of the new stream is replayed for it.
    Session& late = open_resumed(old_cursor);
    const std::vector<Sent> messages = drain(late);
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_EQ(messages[0].type, "resync");
    EXPECT_EQ(messages[0].reason, "epoch_changed");
}

}  // namespace
}  // namespace shopcast
