// The daemon's intake of publish requests: frames from shopcast-fcgi are published only when
// they carry a JSON object with a known type whose routing fields agree with it; everything
// else is refused with a reason, however the bytes arrive.
#include "daemon/core/publish_intake.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shopcast {
namespace {

ipc::PublishRequest request(std::string type, std::string shop, std::string user,
                            std::string json) {
    ipc::PublishRequest r;
    r.type = std::move(type);
    r.shop_id = std::move(shop);
    r.user_id = std::move(user);
    r.json = std::move(json);
    return r;
}

std::string payload_of(const ipc::PublishRequest& r) {
    return ipc::encode_request(r).substr(ipc::kFrameHeaderBytes);
}

// Health and metrics queries are not events: they come out as queries, never refused by the
// event rules and never taken for a publish request.
TEST(PublishIntake, PassesQueriesOnAsQueries) {
    PublishIntake intake;
    ASSERT_TRUE(intake.feed(ipc::encode_query(ipc::Query::metrics) +
                            ipc::encode_query(ipc::Query::health)));
    for (const ipc::Query expected : {ipc::Query::metrics, ipc::Query::health}) {
        std::optional<IntakeItem> item = intake.next();
        ASSERT_TRUE(item.has_value());
        EXPECT_EQ(item->query, expected);
        EXPECT_FALSE(item->request.has_value());
        EXPECT_TRUE(item->refusal.empty());
    }
    EXPECT_FALSE(intake.next().has_value());
}

struct RefusedCase {
    const char* name;
    ipc::PublishRequest request;
};

TEST(PublishIntake, RefusesWhatIsNotAnEventObjectWithAKnownType) {
    const std::vector<RefusedCase> cases = {
        {"empty object", request("product_added", "1", "", "{}")},
        {"array", request("product_added", "1", "", "[]")},
        {"unknown type", request("nope", "", "", R"({"type":"nope"})")},
        {"type missing", request("product_added", "1", "", R"({"shopId":1,"productId":2})")},
        {"type not a string", request("product_added", "1", "", R"({"type":7,"shopId":1})")},
        {"truncated JSON",
         request("product_added", "1", "", R"({"type":"product_added","shopId":1,"produ)")},
        {"braces around nothing valid", request("product_added", "1", "", "{,}")},
        {"empty payload JSON", request("product_added", "1", "", "")},
        {"type field disagrees", request("product_deleted", "1", "",
                                         R"({"type":"product_added","shopId":1,"productId":2})")},
        {"private event sent as public",
         request("order_status", "", "",
                 R"({"type":"order_status","orderId":5,"status":"paid","userId":9})")},
        {"public event sent as private",
         request("product_added", "1", "9",
                 R"({"type":"product_added","shopId":1,"productId":2})")},
        {"shop field disagrees",
         request("product_added", "2", "", R"({"type":"product_added","shopId":1,"productId":2})")},
        {"id reserved",
         request("shop_updated", "1", "", R"({"type":"shop_updated","shopId":1,"id":"x"})")},
        {"surrounding whitespace",
         request("shop_updated", "1", "", R"( {"type":"shop_updated","shopId":1})")},
        {"trailing garbage",
         request("shop_updated", "1", "", R"({"type":"shop_updated","shopId":1}})")},
    };
    for (const auto& c : cases) {
        const IntakeItem item = check_publish_payload(payload_of(c.request));
        EXPECT_FALSE(item.request.has_value()) << c.name;
        EXPECT_FALSE(item.refusal.empty()) << c.name;
    }
}

TEST(PublishIntake, RefusesMalformedFrames) {
    std::string payload =
        payload_of(request("shop_updated", "1", "", R"({"type":"shop_updated","shopId":1})"));
    for (const std::string& bad : {std::string(), payload.substr(0, payload.size() - 1),
                                   payload + "x", std::string(1, '\x02') + payload.substr(1)}) {
        const IntakeItem item = check_publish_payload(bad);
        EXPECT_FALSE(item.request) << testing::PrintToString(bad);
        EXPECT_EQ(item.refusal, "malformed request frame");
    }
}

TEST(PublishIntake, PassesValidEvents) {
    const std::vector<ipc::PublishRequest> valid = {
        request("product_added", "123", "",
                R"({"type":"product_added","shopId":123,"productId":456})"),
        request("order_status", "", "42",
                R"({"type":"order_status","orderId":"A-1","status":"paid","userId":42})"),
        request("shop_updated", "s-1", "",
                R"({"type":"shop_updated","shopId":"s-1","name":{"ru":"x"}})"),
        request("new_subscriber", "7", "", R"({"type":"new_subscriber","shopId":7})"),
    };
    for (ipc::PublishRequest r : valid) {
        r.idempotency_key = "key-1";
        const IntakeItem item = check_publish_payload(payload_of(r));
        ASSERT_TRUE(item.request) << r.json << ": " << item.refusal;
        EXPECT_TRUE(item.refusal.empty());
        EXPECT_EQ(item.request->json, r.json);
        EXPECT_EQ(item.request->user_id, r.user_id);
        EXPECT_EQ(item.request->idempotency_key, "key-1");
    }
}

TEST(PublishIntake, ARefusalIsOnePrintableLine) {
    const IntakeItem item = check_publish_payload(
        payload_of(request("shop_updated", "1", "",
                           "{\"type\":\"shop_updated\",\"shopId\":1,\"a\\nb\":1,\"a\\nb\":2}")));
    ASSERT_FALSE(item.request);
    EXPECT_EQ(item.refusal, "invalid event: duplicate key \"a?b\"");
}

// Frames split at every byte and coalesced: each gets its own verdict, in order.
TEST(PublishIntake, GivesOneVerdictPerFrameHoweverTheBytesArrive) {
    const std::string stream =
        ipc::encode_request(
            request("new_subscriber", "7", "", R"({"type":"new_subscriber","shopId":7})")) +
        ipc::encode_request(request("product_added", "1", "", "{}")) +
        ipc::encode_request(
            request("shop_updated", "1", "", R"({"type":"shop_updated","shopId":1})"));
    PublishIntake intake;
    std::vector<bool> verdicts;
    for (char byte : stream) {
        ASSERT_TRUE(intake.feed(std::string_view(&byte, 1)));
        while (auto item = intake.next()) verdicts.push_back(item->request.has_value());
    }
    EXPECT_EQ(verdicts, (std::vector<bool>{true, false, true}));
}

TEST(PublishIntake, AnOversizedFrameBreaksTheStream) {
    PublishIntake intake;
    const std::string header("\x00\x04\x00\x01", 4);  // 256 KiB + 1
    EXPECT_FALSE(intake.feed(header));
    EXPECT_FALSE(intake.next());
}

}  // namespace
}  // namespace shopcast
