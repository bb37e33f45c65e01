// What a browser's actions cost the daemon (daemon/core/hub.h, history.h), counted in the
// history's work steps rather than timed: resume and subscribe cost the same whatever the
// history holds, a connection rewinds once, pings and pongs share the action budget, and
// cursors say nothing about events the connection cannot see.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "daemon/core/hub.h"
#include "tests/unit/test_epoch.h"

namespace shopcast {
namespace {

const std::string kEpoch = "cost1";

struct Sent {
    std::string type;  // "" for an event
    std::string id;
    std::string text;  // error message / resync reason
};

Sent read_sent(const SharedFrame& frame) {
    rapidjson::Document doc;
    doc.Parse(frame.payload().data(), frame.payload().size());
    Sent sent;
    const auto member = [&doc](const char* name) -> std::string {
        if (!doc.IsObject() || !doc.HasMember(name) || !doc[name].IsString()) return {};
        return doc[name].GetString();
    };
    sent.type = member("type");
    sent.id = member("id");
    sent.text = member("message") + member("reason");
    return sent;
}

// Stands in for lws: every write is taken whole.
class TakingTransport : public SessionTransport {
  public:
    SendResult send(Session& session, std::span<const SharedFrame* const> frames) override {
        for (const SharedFrame* frame : frames) sent[&session].push_back(read_sent(*frame));
        return SendResult::sent;
    }
    void wake(Session& session) override { woken.insert(&session); }
    std::map<const Session*, std::vector<Sent>> sent;
    std::set<const Session*> woken;
};

class ActionCostTest : public testing::Test {
  protected:
    void SetUp() override {
        hub_ = std::make_unique<Hub>(
            HubLimits{}, History(test_epoch(kEpoch), 10000, std::size_t{1} << 30),
            IdempotencyCache(300, 10000), authenticator_, transport_,
            Hub::Clocks{[this] { return now_ms_; }, [this] { return now_ms_; }});
    }

    std::string publish(const std::string& shop, const std::string& user = "") {
        ipc::PublishRequest request;
        request.type = user.empty() ? "product_added" : "order_status";
        request.shop_id = shop;
        request.user_id = user;
        request.json = R"({"type":")" + request.type + R"(","shopId":")" + shop + "\"" +
                       (user.empty() ? "" : R"(,"userId":)" + user) + "}";
        const ipc::PublishAck ack = hub_->publish(request);
        hub_->deliver_published();
        return ack.id;
    }

    std::vector<Sent> drain(Session& session) {
        for (int guard = 0; guard < 1000 && !session.close; ++guard) {
            transport_.woken.clear();
            hub_->on_writeable(session);
            if (!transport_.woken.contains(&session)) break;
        }
        std::vector<Sent> sent = std::move(transport_.sent[&session]);
        transport_.sent.erase(&session);
        return sent;
    }

    Session& open(const std::string& ip = "10.0.0.1") {
        Session& session = hub_->open_session(ip);
        drain(session);  // hello
        return session;
    }

    // The work one action and the writes it causes take, in history steps.
    std::uint64_t steps_of(Session& session, const std::string& action,
                           std::vector<Sent>* sent = nullptr) {
        now_ms_ += 1000;  // a fresh budget: the cost of the action is measured, not the limit
        const std::uint64_t before = hub_->history().work_steps();
        hub_->on_text_message(session, action);
        std::vector<Sent> got = drain(session);
        if (sent != nullptr) *sent = std::move(got);
        return hub_->history().work_steps() - before;
    }

    static std::string resume(const std::string& since) {
        return R"({"action":"resume","since":")" + since + "\"}";
    }

    static std::string subscribe_to_99_shops() {
        std::string shops;
        for (int shop = 100; shop < 199; ++shop)
            shops += (shops.empty() ? "" : ",") + std::to_string(shop);
        return R"({"action":"subscribe","shops":[)" + shops + "]}";
    }

    TelegramAuthenticator authenticator_{TelegramAuthConfig{}};
    TakingTransport transport_;
    std::int64_t now_ms_ = 1'000'000;
    std::unique_ptr<Hub> hub_;
};

// The flood of the threat model: a connection subscribed to 99 shops that get no events (or an
// anonymous one, while the traffic is private to others) resumes from the oldest cursor.
TEST_F(ActionCostTest, ResumeCostsTheSameWith10Or10000EventsRetained) {
    struct Audience {
        std::string name;
        bool subscribe;
        std::string user;  // whom the traffic is for ("" : public events of shop 1)
    };
    for (const Audience& audience : {Audience{"99 quiet shops", true, ""},
                                     Audience{"anonymous, private traffic", false, "301"}}) {
        SCOPED_TRACE(audience.name);
        std::vector<std::uint64_t> costs;
        for (const int retained : {10, 10000}) {
            SetUp();
            const std::string oldest = publish("1", audience.user);
            for (int i = 1; i < retained; ++i) publish(std::to_string(1 + i % 50), audience.user);
            ASSERT_EQ(hub_->history().size(), static_cast<std::size_t>(retained));
            Session& session = open();
            if (audience.subscribe) steps_of(session, subscribe_to_99_shops());
            std::vector<Sent> sent;
            costs.push_back(steps_of(session, resume(oldest), &sent));
            EXPECT_TRUE(sent.empty()) << "nothing it may see: " << sent.size() << " messages";
            EXPECT_FALSE(session.close.has_value());
        }
        EXPECT_EQ(costs[0], costs[1]);
        EXPECT_LE(costs[1], 101u) << "at most one step per index: 99 shops, no-shop, user";
    }
}

// A replay is paid per event delivered, not per event stepped over.
TEST_F(ActionCostTest, ReplayOfAFewEventsAmongManyCostsPerDeliveredEvent) {
    const std::string oldest = publish("1");
    std::vector<std::string> mine;
    for (int i = 1; i < 10000; ++i) {
        if (i % 1000 == 0) {
            mine.push_back(publish("150"));
        } else {
            publish(std::to_string(1 + i % 50));
        }
    }
    Session& session = open();
    steps_of(session, subscribe_to_99_shops());
    std::vector<Sent> sent;
    const std::uint64_t steps = steps_of(session, resume(oldest), &sent);
    std::vector<std::string> ids;
    for (const Sent& s : sent) ids.push_back(s.id);
    EXPECT_EQ(ids, mine);
    // Per delivered event: at most 16 events stepped over, then one seek of 101 indexes.
    EXPECT_LE(steps, (mine.size() + 1) * (16 + 101 + 1));
}

TEST_F(ActionCostTest, SubscribeCostsTheSameWith10Or10000EventsRetained) {
    std::vector<std::uint64_t> costs;
    for (const int retained : {10, 10000}) {
        SetUp();
        const std::string oldest = publish("1");
        for (int i = 1; i < retained; ++i) publish(std::to_string(1 + i % 50));
        Session& session = open();
        steps_of(session, subscribe_to_99_shops());
        steps_of(session, resume(oldest));  // placed at the oldest event, then caught up
        std::vector<Sent> sent;
        costs.push_back(steps_of(session, subscribe_to_99_shops(), &sent));
        ASSERT_EQ(sent.size(), 1u);
        EXPECT_EQ(sent[0].type, "subscribed");
        // A held connection (it may still resume) is not walked either.
        Session& held = hub_->open_session("10.0.0.2");
        costs.push_back(steps_of(held, subscribe_to_99_shops()));
    }
    EXPECT_EQ(costs[0], costs[2]);
    EXPECT_EQ(costs[1], costs[3]);
    EXPECT_LE(costs[2], 1u);
}

TEST_F(ActionCostTest, ASecondRewindingResumeIsRefusedCheaply) {
    const std::string oldest = publish("1");
    for (int i = 0; i < 5000; ++i) publish("2");
    Session& session = open();
    steps_of(session, subscribe_to_99_shops());
    EXPECT_GT(steps_of(session, resume(oldest)), 0u);
    for (int attempt = 0; attempt < 5; ++attempt) {
        std::vector<Sent> sent;
        EXPECT_EQ(steps_of(session, resume(oldest), &sent), 0u);
        ASSERT_EQ(sent.size(), 1u);
        EXPECT_EQ(sent[0].type, "error");
        EXPECT_NE(sent[0].text.find("already resumed"), std::string::npos) << sent[0].text;
        EXPECT_FALSE(session.close.has_value());
    }
    // Resuming from where it stands moves nothing back and is not refused.
    const std::string now = publish("2");
    std::vector<Sent> sent;
    steps_of(session, resume(now), &sent);
    EXPECT_TRUE(sent.empty());
    // Not a strike: answering costs less than the reconnect a close would bring. The action
    // budget still bounds how often (steps_of leaves a second between them).
    for (int attempt = 0; attempt < 30; ++attempt) steps_of(session, resume(oldest));
    EXPECT_FALSE(session.close.has_value());
    for (int burst = 0; burst < 60 && !session.close; ++burst) {
        hub_->on_text_message(session, resume(oldest));
    }
    ASSERT_TRUE(session.close.has_value());
    EXPECT_EQ(session.close->code, 1008);
    EXPECT_EQ(session.close->reason, "too many messages");
}

TEST_F(ActionCostTest, AfterLiveDeliveryTheFirstRewindResyncsAndTheNextIsRefused) {
    const std::string first = publish("1");
    Session& session = open();
    hub_->release_hold(session);
    publish("1");
    ASSERT_EQ(drain(session).size(), 1u);
    std::vector<Sent> sent;
    steps_of(session, resume(first), &sent);
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].type, "resync");
    EXPECT_EQ(sent[0].text, "resume_after_live_delivery");
    steps_of(session, resume(first), &sent);
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].type, "error");
}

TEST_F(ActionCostTest, PingsAndPongsShareTheActionBudget) {
    Session& session = open();
    // The burst (40) is read at once; the next frame is owed, and reading pauses until the
    // budget is back: 1/20 s for one action.
    for (int frame = 0; frame < 40; ++frame) EXPECT_EQ(hub_->on_control_frame(session), 0);
    EXPECT_EQ(hub_->on_control_frame(session), 50);
    EXPECT_FALSE(session.close.has_value()) << "lws answered it already: paused, not closed";
    // The pause paid the debt: the next frame is owed again, one each 1/20 s.
    now_ms_ += 50;
    EXPECT_EQ(hub_->on_control_frame(session), 50);
    // Frames lws had already taken in before the pause took effect add to the pause.
    EXPECT_EQ(hub_->on_control_frame(session), 100);
    // Text messages draw on the same budget: while it is spent, they close the connection.
    hub_->on_text_message(session, R"({"action":"subscribe","shops":[5]})");
    ASSERT_TRUE(session.close.has_value());
    EXPECT_EQ(session.close->code, 1008);

    // Twenty a second, pings and messages mixed, goes on for ever without a pause.
    Session& steady = open("10.0.0.2");
    for (int second = 0; second < 30; ++second) {
        for (int frame = 0; frame < 15; ++frame) {
            now_ms_ += 50;
            EXPECT_EQ(hub_->on_control_frame(steady), 0);
        }
        now_ms_ += 250;
        for (int message = 0; message < 5; ++message) {
            hub_->on_text_message(steady, R"({"action":"subscribe","shops":[5]})");
        }
        drain(steady);
    }
    EXPECT_FALSE(steady.close.has_value());
}

// Two public events around five private ones for someone else: the anonymous page's ids carry
// nothing it could read the gap from, yet resume between them still works exactly.
TEST_F(ActionCostTest, CursorsSayNothingAboutEventsTheConnectionCannotSee) {
    Session& page = open();
    hub_->release_hold(page);
    const std::string before = publish("1");
    for (int i = 0; i < 5; ++i) publish("1", "302");
    const std::string after = publish("1");
    std::vector<Sent> seen = drain(page);
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0].id, before);
    EXPECT_EQ(seen[1].id, after);

    // The same two events with nothing between them, in a history of the same epoch: the ids
    // are as unlike each other as with the gap (no shared prefix beyond the epoch name, no
    // digit of a count), so the text cannot tell the two histories apart.
    History plain(test_epoch(kEpoch), 100, 1 << 20);
    const std::string plain_after = plain.cursor_for(2);
    for (const std::string& id : {before, after, plain_after}) {
        ASSERT_EQ(id.substr(0, kEpoch.size() + 1), kEpoch + ":");
        EXPECT_EQ(id.size(), kEpoch.size() + 1 + 32) << id;
        EXPECT_EQ(id.find(':', kEpoch.size() + 1), std::string::npos) << id;
    }
    EXPECT_NE(after, plain_after);
    EXPECT_NE(after.substr(kEpoch.size() + 1, 4), before.substr(kEpoch.size() + 1, 4));

    // A bare connect learns no count: every hello differs, even with nothing published.
    std::set<std::string> hellos;
    for (int i = 0; i < 20; ++i) {
        Session& probe = hub_->open_session("10.0.1." + std::to_string(i));
        std::vector<Sent> hello = drain(probe);
        ASSERT_EQ(hello.size(), 1u);
        hellos.insert(hello[0].id);
        hub_->close_session(probe);
    }
    EXPECT_EQ(hellos.size(), 20u);
    for (const std::string& hello : hellos) EXPECT_NE(hello, after);

    // Yet the daemon reads them: resuming from the first id replays exactly the second.
    Session& back = open("10.0.0.9");
    std::vector<Sent> replay;
    steps_of(back, resume(before), &replay);
    ASSERT_EQ(replay.size(), 1u);
    EXPECT_EQ(replay[0].id, after);
    // And from a hello taken before the events: both, in order.
    Session& early = hub_->open_session("10.0.0.10");
    const std::string hello = drain(early).at(0).id;
    const std::string later = publish("1");
    steps_of(early, resume(hello), &replay);
    ASSERT_EQ(replay.size(), 1u);
    EXPECT_EQ(replay[0].id, later);
}

TEST_F(ActionCostTest, ForeignAndGarbledCursorsResync) {
    const std::string id = publish("1");
    std::string garbled = id;
    garbled.back() = garbled.back() == '0' ? '1' : '0';
    const std::map<std::string, std::string> expected = {
        {garbled, "malformed_cursor"},
        {kEpoch + ":1", "malformed_cursor"},  // the old decimal form
        {foreign_cursor("zz9", 1), "epoch_changed"},
        {"nonsense", "malformed_cursor"},
    };
    for (const auto& [since, reason] : expected) {
        Session& session = open();
        std::vector<Sent> sent;
        steps_of(session, resume(since), &sent);
        ASSERT_EQ(sent.size(), 1u) << since;
        EXPECT_EQ(sent[0].type, "resync") << since;
        EXPECT_EQ(sent[0].text, reason) << since;
        hub_->close_session(session);
    }
}

}  // namespace
}  // namespace shopcast
