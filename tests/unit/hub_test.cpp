// The fan-out hub (daemon/hub.h) driven without a network: publish, hold and resume, routing,
// subscriptions, idempotency, backpressure and slow connections, admission, rate limits and
// shutdown.
#include "daemon/core/hub.h"

#include "common/cursor.h"
#include "tests/unit/test_epoch.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shopcast {
namespace {

const std::string kEpoch = "hubqa1";

// One frame a session was sent, with the fields the tests look at.
struct Message {
    const SharedFrame* frame = nullptr;  // for identity only: events live in the history
    std::string text;
    std::string type;
    std::string id;                  // "" when absent
    std::string message;             // error's message / resync's reason
    std::vector<std::string> shops;  // subscribed's shops, as JSON text (5 or "a")
    bool valid_json = false;
};

Message read_message(const SharedFrame* frame) {
    Message m;
    m.text = std::string(frame->payload());
    m.frame = frame;
    rapidjson::Document doc;
    doc.Parse(m.text.data(), m.text.size());
    m.valid_json = !doc.HasParseError() && doc.IsObject();
    if (!m.valid_json) return m;
    const auto string_member = [&doc](const char* name) -> std::string {
        if (!doc.HasMember(name) || !doc[name].IsString()) return {};
        return std::string(doc[name].GetString(), doc[name].GetStringLength());
    };
    m.type = string_member("type");
    m.id = string_member("id");
    m.message = string_member("message");
    if (m.message.empty()) m.message = string_member("reason");
    if (doc.HasMember("shops") && doc["shops"].IsArray()) {
        for (const auto& shop : doc["shops"].GetArray()) {
            if (shop.IsString()) m.shops.push_back("\"" + std::string(shop.GetString()) + "\"");
            if (shop.IsUint64()) m.shops.push_back(std::to_string(shop.GetUint64()));
        }
    }
    return m;
}

// Stands in for lws: records every send per session, and answers with the backpressure value
// a test chooses for that session.
class RecordingTransport : public SessionTransport {
  public:
    SendResult send(Session& session, std::span<const SharedFrame* const> frames) override {
        ++sends[&session];
        for (const SharedFrame* frame : frames) sent[&session].push_back(read_message(frame));
        auto answer = answers.find(&session);
        return answer == answers.end() ? SendResult::sent : answer->second;
    }
    void wake(Session& session) override { woken.push_back(&session); }
    bool was_woken(const Session& session) const {
        return std::find(woken.begin(), woken.end(), &session) != woken.end();
    }
    // Read when sent: a control frame is freed once written.
    std::vector<Message> take(Session& session) {
        std::vector<Message> frames = std::move(sent[&session]);
        sent.erase(&session);
        return frames;
    }
    std::vector<Session*> woken;
    std::map<const Session*, std::vector<Message>> sent;
    std::map<const Session*, int> sends;
    std::map<const Session*, SendResult> answers;
};

std::string product_event(const std::string& shop, int product, std::size_t pad = 0) {
    return R"({"type":"product_added","shopId":)" + shop + R"(,"productId":)" +
           std::to_string(product) + R"(,"pad":")" + std::string(pad, 'p') + "\"}";
}

class HubTest : public testing::Test {
  protected:
    void make_hub(HubLimits limits = {}, std::size_t history_events = 1000,
                  std::size_t history_bytes = 1 << 24) {
        hub_ = std::make_unique<Hub>(
            limits, History(test_epoch(kEpoch), history_events, history_bytes),
            IdempotencyCache(300, 10000), authenticator_, transport_,
            Hub::Clocks{[this] { return now_ms_; }, [this] { return wall_ms_; }});
    }

    void SetUp() override { make_hub(); }

    // Publishes a product event of `shop` (a JSON literal such as 5 or "s5").
    ipc::PublishAck publish_product(const std::string& shop, int product = 1,
                                    const std::string& key = "", std::size_t pad = 0) {
        ipc::PublishRequest request;
        request.idempotency_key = key;
        request.type = "product_added";
        request.shop_id = shop.front() == '"' ? shop.substr(1, shop.size() - 2) : shop;
        request.json = product_event(shop, product, pad);
        return publish(request);
    }

    ipc::PublishAck publish_order(const std::string& user_id) {
        ipc::PublishRequest request;
        request.type = "order_status";
        request.user_id = user_id;
        request.json = R"({"type":"order_status","orderId":9,"status":"paid")" +
                       (user_id.empty() ? std::string() : R"(,"userId":)" + user_id) + "}";
        return publish(request);
    }

    // As the IPC listener does: the ack first, then the fan-out.
    ipc::PublishAck publish(const ipc::PublishRequest& request) {
        ipc::PublishAck ack = hub_->publish(request);
        hub_->deliver_published();
        return ack;
    }

    // Everything the session was sent so far, letting its socket drain as often as it asks.
    std::vector<Message> drain(Session& session) {
        for (int guard = 0; guard < 1000 && !session.close; ++guard) {
            transport_.woken.clear();
            hub_->on_writeable(session);
            if (!transport_.was_woken(session)) break;
        }
        return transport_.take(session);
    }

    // Opens a session, takes its hello, and starts live delivery.
    Session& open_live(const std::string& ip = "10.0.0.1") {
        Session& session = hub_->open_session(ip);
        drain(session);
        hub_->release_hold(session);
        return session;
    }

    std::string hello_id(Session& session) {
        const auto messages = drain(session);
        EXPECT_EQ(messages.size(), 1u);
        if (messages.empty()) return {};
        EXPECT_EQ(messages[0].type, "hello");
        return messages[0].id;
    }

    // What the daemon reads in a cursor: only a test that holds the epoch's key can.
    static std::uint64_t seq_of(const std::string& cursor) {
        const CursorPosition position = CursorCodec(test_epoch(kEpoch)).read(cursor);
        EXPECT_EQ(position.reading, CursorReading::ok) << cursor;
        return position.seq;
    }

    static std::string resume(const std::string& since) {
        return R"({"action":"resume","since":")" + since + "\"}";
    }

    static std::vector<std::string> types_of(const std::vector<Message>& messages) {
        std::vector<std::string> types;
        for (const auto& m : messages) types.push_back(m.type);
        return types;
    }

    static std::vector<std::string> ids_of(const std::vector<Message>& messages) {
        std::vector<std::string> ids;
        for (const auto& m : messages) ids.push_back(m.id);
        return ids;
    }

    TelegramAuthenticator authenticator_{TelegramAuthConfig{}};
    RecordingTransport transport_;
    std::int64_t now_ms_ = 5'000'000;           // the steady clock: limits, timeouts, key TTLs
    std::int64_t wall_ms_ = 1'700'000'000'000;  // the wall clock: auth_date
    std::unique_ptr<Hub> hub_;
};

TEST_F(HubTest, HelloCarriesTheCurrentCursor) {
    Session& first = hub_->open_session("10.0.0.1");
    EXPECT_TRUE(transport_.was_woken(first));
    const auto messages = drain(first);
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_TRUE(messages[0].valid_json) << messages[0].text;
    EXPECT_EQ(messages[0].type, "hello");
    EXPECT_EQ(seq_of(messages[0].id), 0u);
    EXPECT_TRUE(drain(first).empty());

    publish_product("5");
    publish_product("5");
    Session& second = hub_->open_session("10.0.0.2");
    EXPECT_EQ(seq_of(hello_id(second)), 2u);
}

TEST_F(HubTest, PublishAssignsIdsAndCountsRecipients) {
    const ipc::PublishAck nobody = publish_product("5");
    EXPECT_EQ(nobody.status, ipc::AckStatus::accepted);
    EXPECT_EQ(nobody.id, hub_->history().cursor_for(1));
    EXPECT_EQ(nobody.recipients, 0u);

    open_live("10.0.0.1");
    open_live("10.0.0.2");
    const ipc::PublishAck two = publish_product("5");
    EXPECT_EQ(two.status, ipc::AckStatus::accepted);
    EXPECT_EQ(two.id, hub_->history().cursor_for(2));
    EXPECT_EQ(two.recipients, 2u);
    EXPECT_EQ(hub_->history().last_seq(), 2u);
}

TEST_F(HubTest, EventIsPublishedObjectPlusIdSharedByAllRecipients) {
    Session& a = open_live("10.0.0.1");
    Session& b = open_live("10.0.0.2");
    const ipc::PublishAck ack = publish_product("5", 456);
    const auto got_a = drain(a);
    const auto got_b = drain(b);
    ASSERT_EQ(got_a.size(), 1u);
    ASSERT_EQ(got_b.size(), 1u);
    EXPECT_EQ(got_a[0].id, ack.id);
    EXPECT_EQ(got_a[0].type, "product_added");
    EXPECT_EQ(got_a[0].frame, got_b[0].frame) << "one frame for all recipients";

    rapidjson::Document sent;
    sent.Parse(got_a[0].text.c_str());
    ASSERT_TRUE(sent.IsObject());
    EXPECT_EQ(sent.MemberCount(), 5u);  // type, shopId, productId, pad, id
    EXPECT_TRUE(sent["shopId"].IsInt() && sent["shopId"].GetInt() == 5);
    EXPECT_TRUE(sent["productId"].IsInt() && sent["productId"].GetInt() == 456);
}

TEST_F(HubTest, EventsArriveInPublishOrder) {
    Session& session = open_live();
    std::vector<std::string> expected;
    for (int i = 1; i <= 50; ++i) expected.push_back(publish_product("5", i).id);
    EXPECT_EQ(ids_of(drain(session)), expected);
}

TEST_F(HubTest, LiveEventsAreHeldUntilRelease) {
    Session& session = hub_->open_session("10.0.0.1");
    hello_id(session);
    const ipc::PublishAck ack = publish_product("5");
    EXPECT_TRUE(drain(session).empty()) << "held: the browser may still send resume";
    hub_->release_hold(session);
    EXPECT_EQ(ids_of(drain(session)), std::vector<std::string>{ack.id});
}

// Held events wait in the history, not in a queue: however many arrive during the hold, none
// is lost and the connection is not treated as a laggard.
TEST_F(HubTest, EventsPublishedDuringTheHoldAreNotLost) {
    HubLimits limits;
    limits.max_queue_bytes = 4096;
    make_hub(limits);
    Session& session = hub_->open_session("10.0.0.1");
    hello_id(session);
    std::vector<std::string> held;
    for (int i = 1; i <= 40; ++i) held.push_back(publish_product("5", i, "", 500).id);
    EXPECT_FALSE(session.close.has_value());
    hub_->release_hold(session);
    EXPECT_EQ(ids_of(drain(session)), held);
    EXPECT_FALSE(session.close.has_value());
}

TEST_F(HubTest, ResumeFromHelloReplaysWhatWasPublishedSinceOpening) {
    publish_product("5", 1);  // before the connection: not replayed
    Session& session = hub_->open_session("10.0.0.1");
    const std::string hello = hello_id(session);
    const std::string second = publish_product("5", 2).id;
    const std::string third = publish_product("5", 3).id;
    hub_->on_text_message(session, resume(hello));
    EXPECT_EQ(ids_of(drain(session)), (std::vector<std::string>{second, third}));
    // Then live, with no gap and no duplicate.
    const std::string fourth = publish_product("5", 4).id;
    EXPECT_EQ(ids_of(drain(session)), std::vector<std::string>{fourth});
    EXPECT_TRUE(drain(session).empty());
}

TEST_F(HubTest, ResumeFromHelloStartsLiveAtOnce) {
    Session& session = hub_->open_session("10.0.0.1");
    const std::string hello = hello_id(session);
    hub_->on_text_message(session, resume(hello));
    EXPECT_TRUE(drain(session).empty());
    const std::string id = publish_product("5").id;
    EXPECT_EQ(ids_of(drain(session)), std::vector<std::string>{id});
}

TEST_F(HubTest, ResumeFromEarlierCursorReplaysMissedEvents) {
    const std::string first = publish_product("5", 1).id;
    const std::string second = publish_product("5", 2).id;
    const std::string third = publish_product("5", 3).id;
    Session& session = hub_->open_session("10.0.0.1");
    hello_id(session);
    hub_->on_text_message(session, resume(first));
    EXPECT_EQ(ids_of(drain(session)), (std::vector<std::string>{second, third}));
}

TEST_F(HubTest, ResumeReplaysOnlyWhatTheConnectionMaySee) {
    const std::string mine = publish_product("5", 1).id;
    Session& session = hub_->open_session("10.0.0.1");
    const std::string hello = hello_id(session);
    hub_->on_text_message(session, R"({"action":"subscribe","shops":[5]})");
    EXPECT_EQ(types_of(drain(session)), std::vector<std::string>{"subscribed"});
    const std::string five = publish_product("5", 2).id;
    publish_product("6", 3);
    publish_order("42");  // private to another user
    const std::string public_order = publish_order("").id;
    hub_->on_text_message(session, resume(mine));
    EXPECT_EQ(ids_of(drain(session)), (std::vector<std::string>{five, public_order}));
    (void)hello;
}

TEST_F(HubTest, ResumeBeyondHistoryOrFromOtherEpochAsksForResync) {
    make_hub({}, 3);
    const std::string oldest = publish_product("5", 1).id;
    for (int i = 2; i <= 10; ++i) publish_product("5", i);
    const std::vector<std::string> stale = {oldest, foreign_cursor("other1", 10)};
    for (const auto& since : stale) {
        SCOPED_TRACE(since);
        Session& session = hub_->open_session("10.0.0.1");
        hello_id(session);
        hub_->on_text_message(session, resume(since));
        const auto messages = drain(session);
        ASSERT_FALSE(messages.empty());
        EXPECT_EQ(messages[0].type, "resync") << messages[0].text;
        EXPECT_FALSE(messages[0].message.empty()) << "a resync says why";
        EXPECT_FALSE(session.close.has_value());
        hub_->close_session(session);
    }
}

TEST_F(HubTest, RoutingByShopAndUser) {
    Session& everyone = open_live("10.0.0.1");
    Session& shop5 = open_live("10.0.0.2");
    Session& shop6 = open_live("10.0.0.3");
    Session& user42 = open_live("10.0.0.4");
    user42.audience.user_id = "42";  // as a successful auth would leave it
    hub_->on_text_message(shop5, R"({"action":"subscribe","shops":[5]})");
    hub_->on_text_message(shop6, R"({"action":"subscribe","shops":["6"]})");
    drain(shop5);
    drain(shop6);

    struct Row {
        std::string name;
        ipc::PublishAck ack;
        std::vector<Session*> receivers;
    };
    std::vector<Row> table;
    table.push_back({"shop_5", publish_product("5"), {&everyone, &shop5, &user42}});
    table.push_back({"shop_6_as_text", publish_product("\"6\""), {&everyone, &shop6, &user42}});
    table.push_back({"public_order", publish_order(""), {&everyone, &shop5, &shop6, &user42}});
    table.push_back({"private_order", publish_order("42"), {&user42}});
    table.push_back({"private_order_other_user", publish_order("43"), {}});
    std::vector<Session*> all = {&everyone, &shop5, &shop6, &user42};
    std::vector<std::vector<std::string>> received;
    for (Session* s : all) received.push_back(ids_of(drain(*s)));
    for (const auto& row : table) {
        EXPECT_EQ(row.ack.recipients, row.receivers.size()) << row.name;
        for (std::size_t i = 0; i < all.size(); ++i) {
            const bool expected = std::find(row.receivers.begin(), row.receivers.end(), all[i]) !=
                                  row.receivers.end();
            const bool got =
                std::find(received[i].begin(), received[i].end(), row.ack.id) != received[i].end();
            EXPECT_EQ(got, expected) << row.name << " to session " << i;
        }
    }
}

TEST_F(HubTest, SubscribeAndUnsubscribeAnswerTheFullSet) {
    Session& session = open_live();
    struct Row {
        std::string action;
        std::vector<std::string> shops;  // JSON texts in the answer
    };
    const std::vector<Row> table = {
        {R"({"action":"subscribe","shops":[5]})", {"5"}},
        {R"({"action":"subscribe","shops":["7","s-1"]})", {"5", "7", "\"s-1\""}},
        {R"({"action":"subscribe","shops":[5]})", {"5", "7", "\"s-1\""}},
        {R"({"action":"unsubscribe","shops":[5,"s-1"]})", {"7"}},
        {R"({"action":"unsubscribe","shops":[8]})", {"7"}},
        {R"({"action":"unsubscribe","shops":["7"]})", {}},
    };
    for (const auto& row : table) {
        hub_->on_text_message(session, row.action);
        const auto messages = drain(session);
        ASSERT_EQ(messages.size(), 1u) << row.action;
        EXPECT_EQ(messages[0].type, "subscribed") << messages[0].text;
        EXPECT_EQ(messages[0].shops, row.shops) << messages[0].text;
    }
    // With an empty set again, every public event arrives.
    const std::string id = publish_product("99").id;
    EXPECT_EQ(ids_of(drain(session)), std::vector<std::string>{id});
}

TEST_F(HubTest, TooManyShopsRefused) {
    HubLimits limits;
    limits.max_shops = 3;
    make_hub(limits);
    Session& session = open_live();
    hub_->on_text_message(session, R"({"action":"subscribe","shops":[1,2,3]})");
    drain(session);
    hub_->on_text_message(session, R"({"action":"subscribe","shops":[4]})");
    const auto messages = drain(session);
    ASSERT_FALSE(messages.empty());
    EXPECT_EQ(messages[0].type, "error") << messages[0].text;
    EXPECT_EQ(session.audience.shops, (std::vector<std::string>{"1", "2", "3"}));
    EXPECT_FALSE(session.close.has_value());
}

TEST_F(HubTest, AuthWithoutConfigurationAnswersError) {
    ASSERT_FALSE(authenticator_.configured());
    Session& session = open_live();
    hub_->on_text_message(session, R"({"action":"auth","initData":"user=%7B%22id%22%3A1%7D"})");
    const auto messages = drain(session);
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_EQ(messages[0].type, "error");
    EXPECT_NE(messages[0].message.find("not configured"), std::string::npos) << messages[0].text;
    EXPECT_TRUE(session.audience.user_id.empty());
    EXPECT_FALSE(session.close.has_value());
}

TEST_F(HubTest, MalformedActionAnswersErrorAndStaysOpen) {
    Session& session = open_live();
    for (const std::string text :
         {"not json", R"({"action":"dance"})", R"({"action":"subscribe","shops":[0]})", "[]"}) {
        hub_->on_text_message(session, text);
        const auto messages = drain(session);
        ASSERT_EQ(messages.size(), 1u) << text;
        EXPECT_EQ(messages[0].type, "error") << text;
        EXPECT_TRUE(messages[0].valid_json) << messages[0].text;
        EXPECT_FALSE(session.close.has_value()) << text;
    }
}

TEST_F(HubTest, BinaryMessageIsNotAccepted) {
    Session& session = open_live();
    hub_->on_binary_message(session);
    const auto messages = drain(session);
    const bool answered = !messages.empty() && messages[0].type == "error";
    EXPECT_TRUE(answered || session.close.has_value());
}

TEST_F(HubTest, ControlMessagesComeBeforeEvents) {
    Session& session = open_live();
    transport_.answers[&session] = SendResult::backpressure;
    publish_product("5");  // written: the socket took part of it and pushed back
    publish_product("5");  // waits in the history
    hub_->on_text_message(session, R"({"action":"subscribe","shops":[5]})");
    transport_.answers.erase(&session);
    EXPECT_EQ(types_of(drain(session)),
              (std::vector<std::string>{"product_added", "subscribed", "product_added"}));
}

TEST_F(HubTest, IdempotencyKeyAnswersRetriesWithTheFirstId) {
    Session& session = open_live();
    const ipc::PublishAck first = publish_product("5", 1, "retry-key");
    EXPECT_EQ(first.status, ipc::AckStatus::accepted);
    EXPECT_EQ(first.recipients, 1u);

    now_ms_ += 299'000;
    const ipc::PublishAck retry = publish_product("5", 1, "retry-key");
    EXPECT_EQ(retry.status, ipc::AckStatus::duplicate);
    EXPECT_EQ(retry.id, first.id);
    EXPECT_EQ(retry.recipients, first.recipients);
    EXPECT_EQ(hub_->history().last_seq(), 1u) << "a retry is not broadcast again";
    EXPECT_EQ(drain(session).size(), 1u);

    const ipc::PublishAck other = publish_product("5", 1, "other-key");
    EXPECT_EQ(other.status, ipc::AckStatus::accepted);
    EXPECT_NE(other.id, first.id);

    const ipc::PublishAck no_key_a = publish_product("5", 1);
    const ipc::PublishAck no_key_b = publish_product("5", 1);
    EXPECT_EQ(no_key_b.status, ipc::AckStatus::accepted) << "no key, no deduplication";
    EXPECT_NE(no_key_a.id, no_key_b.id);

    now_ms_ += 302'000;  // more than 5 minutes after the first attempt
    const ipc::PublishAck late = publish_product("5", 1, "retry-key");
    EXPECT_EQ(late.status, ipc::AckStatus::accepted);
    EXPECT_NE(late.id, first.id);
}

// The same key with another event (a private order after a product) publishes nothing and says
// so; the key keeps answering for its first event.
TEST_F(HubTest, IdempotencyKeyReusedForAnotherEventPublishesNothing) {
    Session& session = open_live();
    hub_->on_text_message(session, R"({"action":"subscribe","shops":[5]})");
    const ipc::PublishAck first = publish_product("5", 1, "reused-key");
    drain(session);

    ipc::PublishRequest order;
    order.idempotency_key = "reused-key";
    order.type = "order_status";
    order.user_id = "302";
    order.json = R"({"type":"order_status","orderId":9,"status":"paid","userId":302})";
    const ipc::PublishAck conflict = publish(order);
    EXPECT_EQ(conflict.status, ipc::AckStatus::conflict);
    EXPECT_EQ(conflict.id, "");
    EXPECT_EQ(hub_->history().last_seq(), 1u) << "nothing was added to the history";
    EXPECT_TRUE(drain(session).empty());

    EXPECT_EQ(publish_product("5", 2, "reused-key").status, ipc::AckStatus::conflict)
        << "another product is another event too";
    const ipc::PublishAck retry = publish_product("5", 1, "reused-key");
    EXPECT_EQ(retry.status, ipc::AckStatus::duplicate);
    EXPECT_EQ(retry.id, first.id);
}

// A connection whose socket is not choked is written at publish time, without a wake-up.
TEST_F(HubTest, WritesThroughToLiveRecipientsOnPublish) {
    Session& live = open_live("10.0.0.1");
    Session& other_shop = open_live("10.0.0.2");
    Session& held = hub_->open_session("10.0.0.3");
    hub_->on_text_message(other_shop, R"({"action":"subscribe","shops":[6]})");
    drain(other_shop);
    drain(held);
    transport_.woken.clear();
    publish_product("5");
    EXPECT_FALSE(transport_.was_woken(live));
    EXPECT_EQ(transport_.take(live).size(), 1u);
    EXPECT_TRUE(transport_.take(other_shop).empty());
    EXPECT_TRUE(transport_.take(held).empty()) << "held until release";
}

// The ack (with its recipient count) is given before any browser is written to; the fan-out
// waits for deliver_published(), and all events published before it go in one send.
TEST_F(HubTest, AcksBeforeFanningOutAndCorksTheBurst) {
    Session& a = open_live("10.0.0.1");
    Session& b = open_live("10.0.0.2");
    ipc::PublishRequest request;
    request.type = "product_added";
    request.shop_id = "5";
    std::vector<std::string> ids;
    transport_.sends.clear();
    for (int i = 1; i <= 3; ++i) {
        request.json = product_event("5", i);
        const ipc::PublishAck ack = hub_->publish(request);
        EXPECT_EQ(ack.recipients, 2u);
        ids.push_back(ack.id);
    }
    EXPECT_TRUE(transport_.sent.empty()) << "nothing is written before the acks";
    hub_->deliver_published();
    for (Session* session : {&a, &b}) {
        EXPECT_EQ(transport_.sends[session], 1) << "three frames, one send";
        EXPECT_EQ(ids_of(transport_.take(*session)), ids);
    }
}

// A connection that does not read stops draining; what is published for it meanwhile is
// counted, and past the queue limit it is closed (1013) instead of being waited for forever.
// A connection that keeps up is not affected.
TEST_F(HubTest, ConnectionThatStopsDrainingIsClosedWith1013) {
    HubLimits limits;
    limits.max_queue_bytes = 4096;
    make_hub(limits);
    Session& laggard = open_live("10.0.0.1");
    Session& reader = open_live("10.0.0.2");
    transport_.answers[&laggard] = SendResult::backpressure;
    transport_.sends.clear();
    std::size_t read = 0;
    for (int i = 1; i <= 40; ++i) {
        publish_product("5", i, "", 500);
        read += drain(reader).size();
    }
    EXPECT_EQ(read, 40u);
    EXPECT_FALSE(reader.close.has_value());
    EXPECT_EQ(transport_.sends[&laggard], 1) << "nothing more is written to a choked socket";
    ASSERT_TRUE(laggard.close.has_value());
    EXPECT_EQ(laggard.close->code, 1013);
    EXPECT_NE(laggard.close->reason.find("resume"), std::string::npos) << laggard.close->reason;
}

// A socket that drains, however slowly, is never closed for the bytes that wait in the history:
// each write opportunity is progress.
TEST_F(HubTest, SlowButDrainingConnectionStaysOpen) {
    HubLimits limits;
    limits.max_queue_bytes = 4096;
    make_hub(limits);
    Session& session = open_live();
    transport_.answers[&session] = SendResult::backpressure;
    std::vector<std::string> expected;
    std::vector<std::string> got;
    for (int i = 1; i <= 40; ++i) {
        expected.push_back(publish_product("5", i, "", 500).id);
        publish_product("6", i, "", 500);  // visible too: 2 x 500 bytes per round
        expected.push_back(hub_->history().cursor_for(hub_->history().last_seq()));
        hub_->on_writeable(session);
        for (const Message& message : transport_.take(session)) got.push_back(message.id);
    }
    for (int guard = 0; guard < 100 && got.size() < expected.size(); ++guard) {
        hub_->on_writeable(session);
        for (const Message& message : transport_.take(session)) got.push_back(message.id);
    }
    EXPECT_FALSE(session.close.has_value());
    EXPECT_EQ(got, expected);
}

// Events published during the hold wait in the history; when the hold ends they go out even
// if they are far more than the queue limit and the socket pushes back at once.
TEST_F(HubTest, HoldBacklogDoesNotCountAgainstTheQueue) {
    HubLimits limits;
    limits.max_queue_bytes = 4096;
    make_hub(limits);
    Session& session = hub_->open_session("10.0.0.1");
    hello_id(session);
    std::vector<std::string> held;
    for (int i = 1; i <= 100; ++i) held.push_back(publish_product("5", i, "", 500).id);
    transport_.answers[&session] = SendResult::backpressure;
    hub_->release_hold(session);
    std::vector<std::string> got;
    for (int guard = 0; guard < 1000 && got.size() < held.size() && !session.close; ++guard) {
        hub_->on_writeable(session);
        for (const Message& message : transport_.take(session)) got.push_back(message.id);
        publish_order("77");  // others' private events keep coming; this one sees none
    }
    EXPECT_FALSE(session.close.has_value());
    EXPECT_EQ(got, held);
}

TEST_F(HubTest, ChokedConnectionWithNoProgressIsClosedAfterTheStallTimeout) {
    HubLimits limits;
    limits.stall_timeout_ms = 5000;
    make_hub(limits);
    Session& session = open_live();
    transport_.answers[&session] = SendResult::backpressure;
    publish_product("5");
    now_ms_ += 4000;
    publish_product("5");
    EXPECT_FALSE(session.close.has_value()) << "a few bytes, not yet the timeout";
    now_ms_ += 2000;
    publish_product("5");
    ASSERT_TRUE(session.close.has_value());
    EXPECT_EQ(session.close->code, 1013);
}

TEST_F(HubTest, DroppedSendEndsDelivery) {
    Session& session = open_live();
    transport_.answers[&session] = SendResult::dropped;
    publish_product("5");
    EXPECT_TRUE(session.close.has_value());
    transport_.take(session);
    publish_product("5");
    EXPECT_TRUE(transport_.take(session).empty());
}

TEST_F(HubTest, ResumeWithLargeBacklogMakesProgress) {
    HubLimits limits;
    limits.max_queue_bytes = 4096;
    make_hub(limits);
    const std::string since = publish_product("5", 0).id;
    std::vector<std::string> missed;
    for (int i = 1; i <= 40; ++i) missed.push_back(publish_product("5", i, "", 500).id);
    Session& session = hub_->open_session("10.0.0.1");
    hello_id(session);
    hub_->on_text_message(session, resume(since));
    const auto messages = drain(session);
    const bool replayed = ids_of(messages) == missed && !session.close.has_value();
    const bool resynced = !messages.empty() && messages[0].type == "resync";
    EXPECT_TRUE(replayed || resynced) << messages.size() << " messages, closed with "
                                      << (session.close ? session.close->code : 0);
}

TEST_F(HubTest, ConnectionThatFellOutOfHistoryIsClosed) {
    make_hub({}, 3);
    Session& session = open_live();
    transport_.answers[&session] = SendResult::backpressure;
    for (int i = 1; i <= 10; ++i) publish_product("5", i, "", 0);
    ASSERT_TRUE(session.close.has_value());
    EXPECT_EQ(session.close->code, 1013);
    // The reason tells the client library to reconnect and resume (it then gets resync).
    EXPECT_NE(session.close->reason.find("resume"), std::string::npos) << session.close->reason;
}

TEST_F(HubTest, CloseAllAsksEveryConnectionToGo) {
    Session& a = open_live("10.0.0.1");
    Session& b = hub_->open_session("10.0.0.2");  // still held
    transport_.woken.clear();
    hub_->close_all(1001, "server shutting down");
    for (Session* s : {&a, &b}) {
        ASSERT_TRUE(s->close.has_value());
        EXPECT_EQ(s->close->code, 1001);
        EXPECT_TRUE(transport_.was_woken(*s));
    }
}

TEST_F(HubTest, AdmissionLimits) {
    HubLimits limits;
    limits.max_connections = 3;
    limits.max_connections_per_ip = 2;
    make_hub(limits);
    EXPECT_EQ(hub_->admit("10.0.0.1"), Admission::accepted);
    Session& a1 = hub_->open_session("10.0.0.1");
    hub_->open_session("10.0.0.1");
    EXPECT_EQ(hub_->admit("10.0.0.1"), Admission::address_full);
    EXPECT_EQ(hub_->admit("10.0.0.2"), Admission::accepted);
    hub_->open_session("10.0.0.2");
    EXPECT_EQ(hub_->session_count(), 3u);
    EXPECT_EQ(hub_->admit("10.0.0.3"), Admission::server_full);
    hub_->close_session(a1);
    EXPECT_EQ(hub_->session_count(), 2u);
    EXPECT_EQ(hub_->admit("10.0.0.1"), Admission::accepted);
    EXPECT_EQ(hub_->admit("10.0.0.3"), Admission::accepted);
}

TEST_F(HubTest, ClosedSessionsReceiveNothing) {
    Session& a = open_live("10.0.0.1");
    open_live("10.0.0.2");
    hub_->close_session(a);
    EXPECT_EQ(publish_product("5").recipients, 1u);
}

TEST_F(HubTest, FloodOfActionsIsClosedWith1008) {
    Session& session = open_live();
    for (int i = 0; i < 500 && !session.close.has_value(); ++i) {
        hub_->on_text_message(session, R"({"action":"subscribe","shops":[5]})");
        drain(session);
    }
    ASSERT_TRUE(session.close.has_value());
    EXPECT_EQ(session.close->code, 1008);
}

TEST_F(HubTest, ActionsAtAModestPaceAreFine) {
    Session& session = open_live();
    for (int i = 0; i < 200; ++i) {
        now_ms_ += 100;  // ten a second, under the sustained rate
        hub_->on_text_message(session, R"({"action":"subscribe","shops":[5]})");
        const auto messages = drain(session);
        ASSERT_EQ(types_of(messages), std::vector<std::string>{"subscribed"}) << i;
    }
    EXPECT_FALSE(session.close.has_value());
}

// Limits and TTLs run on the steady clock: a step of the wall clock (NTP, an operator) neither
// expires Idempotency-Keys early nor refills a flooding connection's action budget.
TEST_F(HubTest, AWallClockStepChangesNoLimitOrTtl) {
    Session& session = open_live();
    const ipc::PublishAck first = publish_product("5", 1, "step-key");
    wall_ms_ += 24LL * 3600 * 1000;  // the wall clock jumps a day ahead
    EXPECT_EQ(publish_product("5", 1, "step-key").status, ipc::AckStatus::duplicate);
    wall_ms_ -= 48LL * 3600 * 1000;  // and then a day behind where it started
    EXPECT_EQ(publish_product("5", 1, "step-key").id, first.id);

    for (int i = 0; i < 500 && !session.close.has_value(); ++i) {
        wall_ms_ += 60'000;  // a minute of wall time per message: no budget comes back
        hub_->on_text_message(session, R"({"action":"subscribe","shops":[5]})");
        drain(session);
    }
    ASSERT_TRUE(session.close.has_value());
    EXPECT_EQ(session.close->code, 1008);
}

TEST(Session, AssemblesFragmentsUpToTheLimit) {
    Session session;
    EXPECT_EQ(session.append_fragment("abc", false, 10), InboundStatus::incomplete);
    EXPECT_EQ(session.append_fragment("defg", false, 10), InboundStatus::incomplete);
    EXPECT_EQ(session.append_fragment("hij", true, 10), InboundStatus::complete);
    EXPECT_EQ(session.inbound, "abcdefghij");

    Session big;
    EXPECT_EQ(big.append_fragment("abcdef", false, 10), InboundStatus::incomplete);
    EXPECT_EQ(big.append_fragment("ghijk", true, 10), InboundStatus::too_large);

    Session single;
    EXPECT_EQ(single.append_fragment(std::string(11, 'x'), true, 10), InboundStatus::too_large);
}

}  // namespace
}  // namespace shopcast
