// The publish endpoint's rules (PublishHandler with a fake daemon) and its IPC client
// (DaemonClient against a real Unix socket served by a scripted fake daemon).
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/ipc.h"
#include "common/secret.h"
#include "fcgi/daemon_client.h"
#include "fcgi/publish_handler.h"
#include "tests/unit/fake_daemon.h"

namespace shopcast::fcgi {
namespace {

using namespace std::chrono_literals;
using test::Answer;
using test::FakeDaemon;

constexpr std::string_view kSecret = "0123456789abcdef0123456789abcdef";
constexpr std::string_view kPreviousSecret = "fedcba9876543210fedcba9876543210";
constexpr std::string_view kValidBody = R"({"type":"product_added","shopId":1,"productId":2})";

// ---------------------------------------------------------------------------------------------
// PublishHandler with a fake daemon

class FakeForwarder final : public EventForwarder {
  public:
    std::optional<ipc::PublishAck> forward(const ipc::PublishRequest& request) override {
        received.push_back(request);
        return answer;
    }

    std::optional<ipc::PublishAck> answer = ipc::PublishAck{ipc::AckStatus::accepted, "k3:7", 3};
    std::vector<ipc::PublishRequest> received;
};

// The request body as the FastCGI stream would deliver it; counts how often it is read.
class FakeBody final : public BodySource {
  public:
    explicit FakeBody(std::string bytes) : bytes_(std::move(bytes)) {}

    std::optional<std::string> read(std::size_t length) override {
        ++reads;
        if (length > bytes_.size()) return std::nullopt;
        return bytes_.substr(0, length);
    }

    int reads = 0;

  private:
    std::string bytes_;
};

struct TestRequest {
    std::string method = "POST";
    std::optional<std::string> content_type = "application/json";
    std::optional<std::string> content_length;  // default: the body's size
    std::string body{kValidBody};
    std::optional<std::string> secret{kSecret};
    std::optional<std::string> idempotency_key;
    std::string remote_address = "192.0.2.7";
};

struct Outcome {
    Reply reply;
    int body_reads = 0;
    rapidjson::Document json;

    std::string text(const char* member) const {
        if (!json.IsObject() || !json.HasMember(member) || !json[member].IsString()) return "";
        return json[member].GetString();
    }
    std::string header(std::string_view name) const {
        for (const auto& [key, value] : reply.headers) {
            if (key == name) return value;
        }
        return "";
    }
};

ThrottleSettings bot_on_loopback() {
    ThrottleSettings settings;
    settings.publisher_addresses = AddressSet::parse("127.0.0.1", "test");
    return settings;
}

class PublishHandlerTest : public ::testing::Test {
  protected:
    Outcome send(const TestRequest& request) {
        const std::string length =
            request.content_length.value_or(std::to_string(request.body.size()));
        RequestFacts facts;
        facts.method = request.method;
        facts.content_type = request.content_type;
        facts.content_length = length;
        facts.secret = request.secret;
        facts.idempotency_key = request.idempotency_key;
        facts.remote_address = request.remote_address;
        FakeBody body(request.body);
        const PublishRulesSource rules(
            std::make_shared<const PublishRules>(PublishRules{verifier_, policy_}));
        PublishHandler handler(rules, throttle_, daemon_);
        Outcome outcome;
        outcome.reply = handler.handle(facts, body);
        outcome.body_reads = body.reads;
        outcome.json.Parse(outcome.reply.body.c_str());
        EXPECT_FALSE(outcome.json.HasParseError()) << outcome.reply.body;
        return outcome;
    }

    SecretVerifier verifier_{kSecret, kPreviousSecret};
    SecretThrottle throttle_{bot_on_loopback()};
    ValidationPolicy policy_;
    FakeForwarder daemon_;
};

void expect_error(const Outcome& outcome, int status, std::string_view code) {
    EXPECT_EQ(outcome.reply.status, status) << outcome.reply.body;
    ASSERT_TRUE(outcome.json.IsObject());
    ASSERT_TRUE(outcome.json.HasMember("success"));
    EXPECT_TRUE(outcome.json["success"].IsFalse());
    EXPECT_EQ(outcome.text("error"), code);
    EXPECT_FALSE(outcome.text("message").empty());
}

std::string padded_body(std::size_t size) {
    std::string body(kValidBody);
    body.pop_back();
    body += R"(,"pad":")";
    body.append(size - body.size() - 2, 'x');
    body += "\"}";
    return body;
}

TEST_F(PublishHandlerTest, AcceptedEventIsForwardedAndAnsweredAsTheSeedExpects) {
    const Outcome outcome = send({});
    EXPECT_EQ(outcome.reply.status, 200);
    EXPECT_EQ(outcome.reply.body,
              R"({"success":true,"message":"Broadcast sent","type":"product_added",)"
              R"("id":"k3:7","recipients":3})");
    EXPECT_TRUE(outcome.reply.headers.empty());
    ASSERT_EQ(daemon_.received.size(), 1u);
    const ipc::PublishRequest& forwarded = daemon_.received[0];
    EXPECT_EQ(forwarded.type, "product_added");
    EXPECT_EQ(forwarded.shop_id, "1");
    EXPECT_EQ(forwarded.user_id, "");
    EXPECT_EQ(forwarded.idempotency_key, "");
    EXPECT_EQ(forwarded.json, kValidBody);
}

TEST_F(PublishHandlerTest, PreviousSecretIsAcceptedDuringRotation) {
    TestRequest request;
    request.secret = std::string(kPreviousSecret);
    EXPECT_EQ(send(request).reply.status, 200);
}

TEST_F(PublishHandlerTest, DuplicateAckAnswersWithTheFirstAttemptsId) {
    daemon_.answer = ipc::PublishAck{ipc::AckStatus::duplicate, "k3:1", 5};
    TestRequest request;
    request.idempotency_key = "order-42-confirmed";
    const Outcome outcome = send(request);
    EXPECT_EQ(outcome.reply.status, 200);
    EXPECT_EQ(outcome.text("id"), "k3:1");
    EXPECT_EQ(outcome.json["recipients"].GetInt(), 5);
    ASSERT_EQ(daemon_.received.size(), 1u);
    EXPECT_EQ(daemon_.received[0].idempotency_key, "order-42-confirmed");
}

TEST_F(PublishHandlerTest, UnreachableDaemonIs503WithRetryAfter) {
    daemon_.answer = std::nullopt;
    const Outcome outcome = send({});
    expect_error(outcome, 503, "unavailable");
    EXPECT_EQ(outcome.header("Retry-After"), "1");
}

// The daemon found the Idempotency-Key already used for another event: 422, nothing published.
TEST_F(PublishHandlerTest, KeyReusedForAnotherEventIs422) {
    daemon_.answer = ipc::PublishAck{ipc::AckStatus::conflict, "", 0};
    TestRequest request;
    request.idempotency_key = "order-42-confirmed";
    const Outcome outcome = send(request);
    expect_error(outcome, 422, "idempotency_key_reused");
    EXPECT_EQ(outcome.json.HasMember("id"), false);
}

TEST_F(PublishHandlerTest, RejectedByDaemonIsInternalError) {
    daemon_.answer = ipc::PublishAck{ipc::AckStatus::rejected, "", 0};
    expect_error(send({}), 500, "internal_error");
}

// One row per line of DESIGN.md's error table that this process answers.
struct ErrorRow {
    std::string name;
    std::function<void(TestRequest&)> change;
    int status;
    std::string code;
};

TEST_F(PublishHandlerTest, ErrorTable) {
    const std::vector<ErrorRow> rows = {
        {"GET", [](TestRequest& r) { r.method = "GET"; }, 405, "method_not_allowed"},
        {"PUT", [](TestRequest& r) { r.method = "PUT"; }, 405, "method_not_allowed"},
        {"lowercase post", [](TestRequest& r) { r.method = "post"; }, 405, "method_not_allowed"},
        {"no secret", [](TestRequest& r) { r.secret.reset(); }, 401, "unauthorized"},
        {"empty secret", [](TestRequest& r) { r.secret = ""; }, 401, "unauthorized"},
        {"wrong secret", [](TestRequest& r) { r.secret = std::string(32, 'z'); }, 401,
         "unauthorized"},
        {"secret prefix", [](TestRequest& r) { r.secret = std::string(kSecret.substr(0, 31)); },
         401, "unauthorized"},
        {"secret plus one", [](TestRequest& r) { *r.secret += "x"; }, 401, "unauthorized"},
        {"text/plain", [](TestRequest& r) { r.content_type = "text/plain"; }, 415,
         "unsupported_media_type"},
        {"no content type", [](TestRequest& r) { r.content_type.reset(); }, 415,
         "unsupported_media_type"},
        {"65537 bytes", [](TestRequest& r) { r.body = padded_body(65537); }, 413,
         "payload_too_large"},
        {"not JSON", [](TestRequest& r) { r.body = "type=product_added"; }, 400, "invalid_json"},
        {"trailing garbage", [](TestRequest& r) { r.body = std::string(kValidBody) + "x"; }, 400,
         "invalid_json"},
        {"empty body", [](TestRequest& r) { r.body = ""; }, 400, "invalid_json"},
        {"not an object", [](TestRequest& r) { r.body = "[1]"; }, 400, "invalid_event"},
        {"unknown type", [](TestRequest& r) { r.body = R"({"type":"nope","shopId":1})"; }, 400,
         "invalid_event"},
        {"missing field", [](TestRequest& r) { r.body = R"({"type":"product_added","shopId":1})"; },
         400, "invalid_event"},
        {"reserved id",
         [](TestRequest& r) { r.body = R"({"type":"shop_updated","shopId":1,"id":"x"})"; }, 400,
         "invalid_event"},
        {"bad key", [](TestRequest& r) { r.idempotency_key = "has space"; }, 400, "invalid_event"},
    };
    for (const ErrorRow& row : rows) {
        SCOPED_TRACE(row.name);
        TestRequest request;
        row.change(request);
        expect_error(send(request), row.status, row.code);
    }
    EXPECT_TRUE(daemon_.received.empty());
}

TEST_F(PublishHandlerTest, MethodNotAllowedNamesPost) {
    TestRequest request;
    request.method = "GET";
    EXPECT_EQ(send(request).header("Allow"), "POST");
}

TEST_F(PublishHandlerTest, WrongSecretsLockTheAddressOutWhateverSecretItSendsNext) {
    TestRequest wrong;
    wrong.secret = "not-the-secret-not-the-secret-xx";
    for (unsigned i = 0; i < ThrottleSettings{}.max_failures; ++i) {
        expect_error(send(wrong), 401, "unauthorized");
    }
    const Outcome locked = send(TestRequest{});  // the right secret
    expect_error(locked, 429, "rate_limited");
    EXPECT_EQ(locked.header("Retry-After"), "300");
    EXPECT_EQ(locked.body_reads, 0);
    EXPECT_TRUE(daemon_.received.empty());

    TestRequest elsewhere;
    elsewhere.remote_address = "192.0.2.8";
    EXPECT_EQ(send(elsewhere).reply.status, 200);
}

TEST_F(PublishHandlerTest, TheBotsAddressIsNeverLockedOut) {
    TestRequest wrong;
    wrong.remote_address = "127.0.0.1";
    wrong.secret = std::nullopt;
    for (int i = 0; i < 50; ++i) expect_error(send(wrong), 401, "unauthorized");
    TestRequest right;
    right.remote_address = "127.0.0.1";
    EXPECT_EQ(send(right).reply.status, 200);
    EXPECT_EQ(throttle_.tracked_addresses(), 0u);
}

TEST_F(PublishHandlerTest, MethodIsCheckedBeforeTheLockout) {
    TestRequest wrong;
    wrong.secret = std::nullopt;
    for (unsigned i = 0; i < ThrottleSettings{}.max_failures; ++i) send(wrong);
    TestRequest get;
    get.method = "GET";
    expect_error(send(get), 405, "method_not_allowed");
}

// The first failing check answers, in DESIGN.md's order; nothing before the size check (or
// the size check itself) reads the body.
TEST_F(PublishHandlerTest, ChecksRunInOrder) {
    const auto wrong_method = [](TestRequest& r) { r.method = "DELETE"; };
    const auto wrong_secret = [](TestRequest& r) { r.secret = std::string(40, 'w'); };
    const auto wrong_type = [](TestRequest& r) { r.content_type = "text/plain"; };
    const auto too_large = [](TestRequest& r) { r.content_length = "70000"; };
    const auto bad_json = [](TestRequest& r) { r.body = "{"; };
    const auto bad_event = [](TestRequest& r) { r.body = R"({"type":"nope"})"; };
    const auto bad_key = [](TestRequest& r) { r.idempotency_key = std::string(129, 'k'); };
    struct Row {
        std::string name;
        std::vector<std::function<void(TestRequest&)>> changes;
        int status;
        std::string code;
        bool body_read;
    };
    const std::vector<Row> rows = {
        {"method before secret", {wrong_method, wrong_secret}, 405, "method_not_allowed", false},
        {"method before all",
         {wrong_method, wrong_secret, wrong_type, too_large, bad_json, bad_key},
         405,
         "method_not_allowed",
         false},
        {"secret before content type", {wrong_secret, wrong_type}, 401, "unauthorized", false},
        {"secret before size", {wrong_secret, too_large}, 401, "unauthorized", false},
        {"content type before size", {wrong_type, too_large}, 415, "unsupported_media_type", false},
        {"size before JSON", {too_large, bad_json}, 413, "payload_too_large", false},
        {"JSON before key", {bad_json, bad_key}, 400, "invalid_json", true},
        {"event before key", {bad_event, bad_key}, 400, "invalid_event", true},
    };
    for (const Row& row : rows) {
        SCOPED_TRACE(row.name);
        TestRequest request;
        for (const auto& change : row.changes) change(request);
        const Outcome outcome = send(request);
        expect_error(outcome, row.status, row.code);
        EXPECT_EQ(outcome.body_reads > 0, row.body_read);
    }
    EXPECT_TRUE(daemon_.received.empty());
}

TEST_F(PublishHandlerTest, EventErrorsCarryTheValidatorsMessage) {
    TestRequest request;
    request.body = R"({"type":"product_added","shopId":1})";
    const Outcome outcome = send(request);
    EXPECT_NE(outcome.text("message").find("productId"), std::string::npos) << outcome.reply.body;
}

TEST_F(PublishHandlerTest, ContentTypeVariants) {
    const std::vector<std::pair<std::optional<std::string>, int>> rows = {
        {"application/json", 200},
        {"application/json; charset=utf-8", 200},
        {"APPLICATION/JSON", 200},
        {R"(application/json;charset="UTF-8")", 200},
        {"Application/Json ; Charset=UTF-8", 200},
        {"application/json; boundary=x; charset=utf-8", 200},
        {"application/json;", 200},
        {"text/plain", 415},
        {"application/json; charset=latin1", 415},
        {"application/json; charset=iso-8859-1", 415},
        {"application/json; charset=utf-16", 415},
        {"application/json; charset", 415},
        {"application/jsonp", 415},
        {"application/json-patch+json", 415},
        {"text/json", 415},
        {"application/x-www-form-urlencoded", 415},
        {"", 415},
        {std::nullopt, 415},
    };
    for (const auto& [content_type, status] : rows) {
        SCOPED_TRACE(content_type.value_or("(absent)"));
        TestRequest request;
        request.content_type = content_type;
        const Outcome outcome = send(request);
        EXPECT_EQ(outcome.reply.status, status);
        if (status == 415) {
            EXPECT_EQ(outcome.text("error"), "unsupported_media_type");
        }
    }
}

TEST_F(PublishHandlerTest, SizeBounds) {
    TestRequest exact;
    exact.body = padded_body(65536);
    ASSERT_EQ(exact.body.size(), 65536u);
    EXPECT_EQ(send(exact).reply.status, 200);

    TestRequest over;
    over.body = padded_body(65537);
    const Outcome refused = send(over);
    expect_error(refused, 413, "payload_too_large");
    EXPECT_EQ(refused.body_reads, 0);

    // Announced length is what counts: the body is never read past 64 KiB.
    TestRequest huge;
    huge.content_length = "99999999999999999999999999";
    expect_error(send(huge), 413, "payload_too_large");
}

TEST_F(PublishHandlerTest, ContentLengthEdgeCases) {
    TestRequest no_body;  // nginx passes an empty CONTENT_LENGTH
    no_body.body = "";
    no_body.content_length = "";
    expect_error(send(no_body), 400, "invalid_json");

    TestRequest not_a_number;
    not_a_number.content_length = "12abc";
    expect_error(send(not_a_number), 400, "invalid_json");

    TestRequest negative;
    negative.content_length = "-1";
    expect_error(send(negative), 400, "invalid_json");

    TestRequest cut_short;  // the client went away mid-body
    cut_short.content_length = std::to_string(kValidBody.size() + 10);
    expect_error(send(cut_short), 400, "invalid_json");
}

TEST_F(PublishHandlerTest, IdempotencyKeyBounds) {
    const std::vector<std::pair<std::string, bool>> rows = {
        {"k", true},
        {std::string(128, 'k'), true},
        {"!~", true},
        {"order:42/confirmed?v=1", true},
        {std::string(129, 'k'), false},
        {"has space", false},
        {"tab\there", false},
        {"del\x7f", false},
        {"caf\xC3\xA9", false},
        {std::string("nul\0", 4), false},
    };
    for (const auto& [key, valid] : rows) {
        SCOPED_TRACE(key);
        daemon_.received.clear();
        TestRequest request;
        request.idempotency_key = key;
        const Outcome outcome = send(request);
        if (valid) {
            EXPECT_EQ(outcome.reply.status, 200);
            ASSERT_EQ(daemon_.received.size(), 1u);
            EXPECT_EQ(daemon_.received[0].idempotency_key, key);
        } else {
            expect_error(outcome, 400, "invalid_event");
            EXPECT_NE(outcome.text("message").find("Idempotency-Key"), std::string::npos);
            EXPECT_TRUE(daemon_.received.empty());
        }
    }
}

TEST_F(PublishHandlerTest, EmptyIdempotencyKeyMeansNone) {
    TestRequest request;
    request.idempotency_key = "";
    EXPECT_EQ(send(request).reply.status, 200);
    ASSERT_EQ(daemon_.received.size(), 1u);
    EXPECT_EQ(daemon_.received[0].idempotency_key, "");
}

TEST_F(PublishHandlerTest, RequireUserForPolicyApplies) {
    policy_.require_user_for = {"order_status"};
    TestRequest request;
    request.body = R"({"type":"order_status","orderId":9,"status":"confirmed"})";
    expect_error(send(request), 400, "invalid_event");
    request.body = R"({"type":"order_status","orderId":9,"status":"confirmed","userId":"u7"})";
    EXPECT_EQ(send(request).reply.status, 200);
    EXPECT_EQ(daemon_.received.back().user_id, "u7");
}

TEST(JsonString, EscapesAndRepairs) {
    const std::vector<std::pair<std::string, std::string>> rows = {
        {"plain", R"("plain")"},
        {"q\"b\\", R"("q\"b\\")"},
        {"a\nb\tc\r", R"("a\nb\tc\r")"},
        {std::string("\x01\x1f\x7f", 3), R"("\u0001\u001f\u007f")"},
        {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
         "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\""},
        {"bad\xFF", "\"bad\xEF\xBF\xBD\""},
        {"cut\xE2\x82", "\"cut\xEF\xBF\xBD\xEF\xBF\xBD\""},
        {"overlong\xC0\xAF", "\"overlong\xEF\xBF\xBD\xEF\xBF\xBD\""},
        {"surrogate\xED\xA0\x80", "\"surrogate\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},
    };
    for (const auto& [text, expected] : rows) {
        std::string out;
        append_json_string(out, text);
        EXPECT_EQ(out, expected);
        rapidjson::Document parsed;
        parsed.Parse<rapidjson::kParseValidateEncodingFlag>(out.c_str());
        EXPECT_FALSE(parsed.HasParseError()) << out;
    }
}

// ---------------------------------------------------------------------------------------------
// DaemonClient against a real Unix socket

constexpr auto kTestAckTimeout = 200ms;
// For failures that must not wait for the ack timeout: far longer than any scheduling delay.
constexpr auto kLongAckTimeout = 5000ms;

ipc::PublishRequest sample_request() {
    ipc::PublishRequest request;
    request.type = "product_added";
    request.shop_id = "1";
    request.json = kValidBody;
    return request;
}

// Runs forward() and measures how long it took.
struct TimedForward {
    std::optional<ipc::PublishAck> ack;
    std::chrono::milliseconds took;
};
TimedForward timed_forward(DaemonClient& client) {
    const auto start = std::chrono::steady_clock::now();
    TimedForward result;
    result.ack = client.forward(sample_request());
    result.took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    return result;
}

TEST(DaemonClient, AcksArriveOverOneKeptConnection) {
    FakeDaemon daemon([](int) { return Answer::ack; });
    DaemonClient client(daemon.path(), kTestAckTimeout);
    for (int i = 1; i <= 3; ++i) {
        const std::optional<ipc::PublishAck> ack = client.forward(sample_request());
        ASSERT_TRUE(ack);
        EXPECT_EQ(ack->status, ipc::AckStatus::accepted);
        EXPECT_EQ(ack->id, "e:" + std::to_string(i));
        EXPECT_EQ(ack->recipients, 13u);
    }
    EXPECT_TRUE(client.connected());
    EXPECT_EQ(daemon.connections(), 1);
}

TEST(DaemonClient, NoDaemonIsUnavailableAtOnce) {
    DaemonClient client("/nonexistent/shopcast/events.sock", kLongAckTimeout);
    const TimedForward result = timed_forward(client);
    EXPECT_FALSE(result.ack);
    EXPECT_LT(result.took, 1000ms);
    EXPECT_FALSE(client.connected());
}

TEST(DaemonClient, StaleSocketFileIsUnavailableAtOnce) {
    FakeDaemon daemon([](int) { return Answer::ack; });
    daemon.stop();  // ECONNREFUSED from here on
    DaemonClient client(daemon.path(), kLongAckTimeout);
    const TimedForward result = timed_forward(client);
    EXPECT_FALSE(result.ack);
    EXPECT_LT(result.took, 1000ms);
}

TEST(DaemonClient, SilentDaemonTimesOutAndTheConnectionIsDropped) {
    FakeDaemon daemon([](int) { return Answer::silence; });
    DaemonClient client(daemon.path(), kTestAckTimeout);
    const TimedForward result = timed_forward(client);
    EXPECT_FALSE(result.ack);
    EXPECT_GE(result.took, kTestAckTimeout);
    EXPECT_LT(result.took, kTestAckTimeout + 1000ms);
    EXPECT_FALSE(client.connected());
}

TEST(DaemonClient, DaemonClosingBeforeAckIsUnavailableThenReconnects) {
    FakeDaemon daemon([](int n) { return n == 1 ? Answer::close : Answer::ack; });
    DaemonClient client(daemon.path(), kTestAckTimeout);
    EXPECT_FALSE(client.forward(sample_request()));
    EXPECT_FALSE(client.connected());
    const std::optional<ipc::PublishAck> ack = client.forward(sample_request());
    ASSERT_TRUE(ack);
    EXPECT_EQ(ack->id, "e:2");
    EXPECT_EQ(daemon.connections(), 2);
}

TEST(DaemonClient, GarbledAckIsUnavailableAndDropsTheConnection) {
    FakeDaemon daemon([](int n) { return n == 1 ? Answer::garbage : Answer::ack; });
    DaemonClient client(daemon.path(), kTestAckTimeout);
    EXPECT_FALSE(client.forward(sample_request()));
    EXPECT_FALSE(client.connected());
    ASSERT_TRUE(client.forward(sample_request()));
}

// The ack for a timed-out request arrives later; it must not answer the next request.
TEST(DaemonClient, LateAckIsNeverTakenForTheNextOne) {
    FakeDaemon daemon([](int n) { return n == 1 ? Answer::late_ack : Answer::ack; });
    DaemonClient client(daemon.path(), kTestAckTimeout);
    EXPECT_FALSE(client.forward(sample_request()));
    std::this_thread::sleep_for(200ms);  // the late ack is sent by now
    const std::optional<ipc::PublishAck> ack = client.forward(sample_request());
    ASSERT_TRUE(ack);
    EXPECT_EQ(ack->id, "e:2");
}

// After a daemon restart the kept connection is dead; the next request goes out on a new one
// instead of failing.
TEST(DaemonClient, DaemonRestartCostsNoFailedRequest) {
    FakeDaemon daemon([](int) { return Answer::ack; });
    DaemonClient client(daemon.path(), kTestAckTimeout);
    ASSERT_TRUE(client.forward(sample_request()));
    daemon.restart();
    const std::optional<ipc::PublishAck> ack = client.forward(sample_request());
    ASSERT_TRUE(ack);
    EXPECT_EQ(ack->id, "e:2");
    EXPECT_EQ(daemon.connections(), 2);
}

// A kept connection that fails on send never delivered the request, so it is sent again on a
// new connection rather than answered 503.
TEST(DaemonClient, SendFailingOnAKeptConnectionIsRetriedOnce) {
    FakeDaemon daemon([](int n) { return n == 1 ? Answer::ack_then_stop_reading : Answer::ack; });
    DaemonClient client(daemon.path(), kTestAckTimeout);
    ASSERT_TRUE(client.forward(sample_request()));
    const std::optional<ipc::PublishAck> ack = client.forward(sample_request());
    ASSERT_TRUE(ack);
    EXPECT_EQ(ack->id, "e:2");
    EXPECT_EQ(daemon.connections(), 2);
}

TEST(DaemonClient, DaemonAwayThenBack) {
    FakeDaemon daemon([](int) { return Answer::ack; });
    DaemonClient client(daemon.path(), kTestAckTimeout);
    ASSERT_TRUE(client.forward(sample_request()));
    daemon.stop();
    EXPECT_FALSE(client.forward(sample_request()));
    EXPECT_FALSE(client.forward(sample_request()));
    daemon.restart();
    EXPECT_TRUE(client.forward(sample_request()));
}

TEST(DaemonClient, PathTooLongForASocketIsAConfigError) {
    EXPECT_THROW(DaemonClient(std::string(200, 'p'), kTestAckTimeout), ConfigError);
}

}  // namespace
}  // namespace shopcast::fcgi
