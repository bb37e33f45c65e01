// `auth` through the Hub: who a connection is after a failed auth, what private events it then
// gets, and the per-connection throttle of failed attempts.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "daemon/core/hub.h"
#include "tests/unit/test_epoch.h"

namespace shopcast {
namespace {

constexpr std::string_view kToken = "123456:hub-auth-test-token";
constexpr std::int64_t kNowSeconds = 1'700'000'000;

// Records the payload of every frame each session is sent.
class PayloadTransport : public SessionTransport {
  public:
    SendResult send(Session& session, std::span<const SharedFrame* const> frames) override {
        for (const SharedFrame* frame : frames) sent[&session].emplace_back(frame->payload());
        return SendResult::sent;
    }
    void wake(Session&) override {}
    std::map<const Session*, std::vector<std::string>> sent;
};

std::string hex(const unsigned char* bytes, std::size_t size) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < size; ++i) {
        out += kDigits[bytes[i] >> 4];
        out += kDigits[bytes[i] & 0xF];
    }
    return out;
}

// initData for `user_id` issued at `auth_date`, with the hash Telegram computes for kToken.
std::string init_data(int user_id, std::int64_t auth_date) {
    const std::string user = R"({"id":)" + std::to_string(user_id) + "}";
    const std::string check =
        "auth_date=" + std::to_string(auth_date) + "\nquery_id=q\nuser=" + user;
    const WebAppKey key = derive_webapp_key(kToken);
    std::array<unsigned char, 32> hash{};
    unsigned int length = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(check.data()), check.size(), hash.data(), &length);
    // The user JSON needs no escaping beyond these characters.
    std::string encoded_user;
    for (const char c : user) {
        if (c == '{')
            encoded_user += "%7B";
        else if (c == '}')
            encoded_user += "%7D";
        else if (c == '"')
            encoded_user += "%22";
        else if (c == ':')
            encoded_user += "%3A";
        else
            encoded_user += c;
    }
    return "query_id=q&user=" + encoded_user + "&auth_date=" + std::to_string(auth_date) +
           "&hash=" + hex(hash.data(), hash.size());
}

std::string auth_message(const std::string& data) {
    return R"({"action":"auth","initData":")" + data + "\"}";
}

class HubAuthTest : public testing::Test {
  protected:
    HubAuthTest() {
        TelegramAuthConfig config;
        config.webapp_key = derive_webapp_key(kToken);
        authenticator_ = std::make_unique<TelegramAuthenticator>(config);
        hub_ = std::make_unique<Hub>(
            HubLimits{}, History(test_epoch("authqa1"), 100, 1 << 20), IdempotencyCache(300, 100),
            *authenticator_, transport_,
            Hub::Clocks{[this] { return now_ms_; }, [] { return kNowSeconds * 1000; }});
    }

    Session& open_live() {
        Session& session = hub_->open_session("10.0.0.1");
        hub_->release_hold(session);
        take(session);
        return session;
    }

    std::vector<std::string> take(Session& session) {
        hub_->on_writeable(session);
        std::vector<std::string> frames = std::move(transport_.sent[&session]);
        transport_.sent.erase(&session);
        return frames;
    }

    void publish_order(int user_id, int order) {
        ipc::PublishRequest request;
        request.type = "order_status";
        request.user_id = std::to_string(user_id);
        request.json = R"({"type":"order_status","userId":)" + std::to_string(user_id) +
                       R"(,"orderId":)" + std::to_string(order) + "}";
        hub_->publish(request);
        hub_->deliver_published();
    }

    static bool any_contains(const std::vector<std::string>& frames, std::string_view text) {
        for (const std::string& frame : frames) {
            if (frame.find(text) != std::string::npos) return true;
        }
        return false;
    }

    PayloadTransport transport_;
    std::unique_ptr<TelegramAuthenticator> authenticator_;
    std::int64_t now_ms_ = 1'000'000;
    std::unique_ptr<Hub> hub_;
};

TEST_F(HubAuthTest, FailedReauthLeavesTheConnectionAnonymous) {
    Session& session = open_live();
    hub_->on_text_message(session, auth_message(init_data(301, kNowSeconds - 5)));
    ASSERT_TRUE(any_contains(take(session), R"("type":"auth_ok")"));
    publish_order(301, 1);
    ASSERT_TRUE(any_contains(take(session), R"("orderId":1)")) << "authenticated as 301";

    // Stale initData for 302: refused, and 301's identity does not survive it.
    hub_->on_text_message(session, auth_message(init_data(302, kNowSeconds - 90'000)));
    const std::vector<std::string> refusal = take(session);
    ASSERT_TRUE(any_contains(refusal, "auth_date too old"));
    EXPECT_TRUE(session.audience.user_id.empty());
    publish_order(301, 2);
    publish_order(302, 3);
    const std::vector<std::string> after = take(session);
    EXPECT_FALSE(any_contains(after, R"("orderId":2)")) << "no private event of the old user";
    EXPECT_FALSE(any_contains(after, R"("orderId":3)"));

    // A good auth afterwards works as before.
    hub_->on_text_message(session, auth_message(init_data(302, kNowSeconds - 5)));
    ASSERT_TRUE(any_contains(take(session), R"("userId":302)"));
    publish_order(302, 4);
    EXPECT_TRUE(any_contains(take(session), R"("orderId":4)"));
}

TEST_F(HubAuthTest, AMalformedAuthAlsoEndsTheEarlierIdentity) {
    Session& session = open_live();
    hub_->on_text_message(session, auth_message(init_data(301, kNowSeconds - 5)));
    take(session);
    hub_->on_text_message(session, auth_message("user=garbage"));
    take(session);
    EXPECT_TRUE(session.audience.user_id.empty());
}

// After max_auth_failures failures in the window, further auth is refused without any
// cryptography, until the window has passed.
TEST_F(HubAuthTest, FailedAuthIsThrottledPerConnection) {
    const HubLimits limits;
    Session& session = open_live();
    std::string forged = init_data(301, kNowSeconds - 5);
    forged.replace(forged.size() - 64, 64, std::string(64, '0'));
    for (unsigned i = 0; i < limits.max_auth_failures; ++i) {
        hub_->on_text_message(session, auth_message(forged));
        ASSERT_TRUE(any_contains(take(session), "hash mismatch")) << i;
    }
    const std::uint64_t checks = authenticator_->crypto_checks();
    EXPECT_EQ(checks, limits.max_auth_failures);

    // Even a valid one waits for the window: the throttle does not reveal what would pass.
    hub_->on_text_message(session, auth_message(init_data(301, kNowSeconds - 5)));
    EXPECT_TRUE(any_contains(take(session), "too many failed attempts"));
    hub_->on_text_message(session, auth_message(forged));
    EXPECT_TRUE(any_contains(take(session), "too many failed attempts"));
    EXPECT_EQ(authenticator_->crypto_checks(), checks) << "throttled attempts cost no crypto";
    EXPECT_TRUE(session.audience.user_id.empty());
    const auto counted = [this](std::string_view result) {
        const auto label = std::find(kAuthResultLabels.begin(), kAuthResultLabels.end(), result);
        return hub_->metrics().auth_results[std::size_t(label - kAuthResultLabels.begin())];
    };
    EXPECT_EQ(counted("bad_signature"), limits.max_auth_failures);
    EXPECT_EQ(counted("throttled"), 2u);

    // Another connection is not affected.
    Session& other = open_live();
    hub_->on_text_message(other, auth_message(init_data(302, kNowSeconds - 5)));
    EXPECT_TRUE(any_contains(take(other), R"("type":"auth_ok")"));

    now_ms_ += limits.auth_failure_window_ms;
    hub_->on_text_message(session, auth_message(init_data(301, kNowSeconds - 5)));
    EXPECT_TRUE(any_contains(take(session), R"("type":"auth_ok")"));
}

// A reload swaps the authenticator: connections authenticated before keep their identity,
// new auth messages are checked by the new one.
TEST_F(HubAuthTest, ReloadedAuthenticatorChecksWhatComesNext) {
    Session& session = open_live();
    hub_->on_text_message(session, auth_message(init_data(301, kNowSeconds - 5)));
    take(session);
    TelegramAuthConfig other;
    other.webapp_key = derive_webapp_key("654321:another-token");
    const TelegramAuthenticator replacement(other);
    hub_->set_authenticator(replacement);
    EXPECT_EQ(session.audience.user_id, "301");
    Session& next = open_live();
    hub_->on_text_message(next, auth_message(init_data(302, kNowSeconds - 5)));
    EXPECT_TRUE(any_contains(take(next), "hash mismatch"));
    hub_->set_authenticator(*authenticator_);  // before `replacement` goes
}

}  // namespace
}  // namespace shopcast
