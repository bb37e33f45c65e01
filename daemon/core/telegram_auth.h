// Validation of Telegram WebApp initData, as Telegram documents it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace shopcast {

struct TelegramAuthConfig {
    std::string bot_token;  // empty: the HMAC (hash) mode is unavailable
    std::string bot_id;     // decimal; empty: the Ed25519 (signature) mode is unavailable
    // Ed25519 key that signs `signature`; all zero (unset) means telegram_production_public_key().
    std::array<unsigned char, 32> public_key{};
    std::int64_t max_age_seconds = 86400;
};

// Telegram's production Ed25519 key for third-party validation.
std::array<unsigned char, 32> telegram_production_public_key();

struct AuthOutcome {
    bool ok = false;
    std::string user_id;  // decimal Telegram user id when ok
    std::string error;    // short reason for the browser when not ok; never contains secrets
};

// One per daemon; immutable after construction, so it may be shared freely.
class TelegramAuthenticator {
  public:
    explicit TelegramAuthenticator(TelegramAuthConfig config);

    bool configured() const { return !config_.bot_token.empty() || !config_.bot_id.empty(); }

    // Checks `init_data` (the raw query string Telegram.WebApp.initData) at time `now_unix`.
    // With `signature` present and a bot id configured it checks the Ed25519 signature, else
    // with `hash` present and a token configured the HMAC. At most 4096 bytes; `auth_date` no
    // older than max_age_seconds nor more than 60 s ahead; `user.id` a positive integer below
    // 2^53. Never throws.
    AuthOutcome verify(std::string_view init_data, std::int64_t now_unix) const;

  private:
    TelegramAuthConfig config_;
    std::array<unsigned char, 32> hmac_secret_key_{};  // HMAC_SHA256("WebAppData", bot_token)
};

}  // namespace shopcast
