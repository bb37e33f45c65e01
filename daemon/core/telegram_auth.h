// Validation of Telegram WebApp initData, as Telegram documents it.
#pragma once

#include <openssl/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace shopcast {

// HMAC_SHA256("WebAppData", bot_token): all the hash check needs, so the token itself is not
// kept once this is derived.
using WebAppKey = std::array<unsigned char, 32>;
// Throws std::runtime_error when OpenSSL fails.
WebAppKey derive_webapp_key(std::string_view bot_token);

struct TelegramAuthConfig {
    std::optional<WebAppKey> webapp_key;  // unset: the HMAC (hash) mode is unavailable
    std::string bot_id;  // decimal; empty: the Ed25519 (signature) mode is unavailable
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

// One per daemon configuration (a reload builds a new one); its keys are built once, here.
class TelegramAuthenticator {
  public:
    explicit TelegramAuthenticator(TelegramAuthConfig config);

    bool configured() const { return config_.webapp_key.has_value() || !config_.bot_id.empty(); }
    const TelegramAuthConfig& config() const { return config_; }

    // Checks `init_data` (the raw query string Telegram.WebApp.initData) at time `now_unix`.
    // With `signature` present and a bot id configured it checks the Ed25519 signature, else
    // with `hash` present and a token configured the HMAC. At most 4096 bytes; `auth_date` no
    // older than max_age_seconds nor more than 60 s ahead; `user.id` a positive integer below
    // 2^53. The cheap checks (size, syntax, auth_date) come before any HMAC or signature, so
    // stale or malformed data costs no cryptography. Never throws.
    AuthOutcome verify(std::string_view init_data, std::int64_t now_unix) const;

    // HMAC and Ed25519 checks run so far, to show which refusals cost none.
    std::uint64_t crypto_checks() const { return crypto_checks_.load(std::memory_order_relaxed); }

  private:
    struct PublicKeyFree {
        void operator()(EVP_PKEY* key) const noexcept;
    };

    AuthOutcome verify_init_data(std::string_view init_data, std::int64_t now_unix) const;
    bool ed25519_verify(std::string_view message,
                        const std::array<unsigned char, 64>& signature) const;

    TelegramAuthConfig config_;
    std::unique_ptr<EVP_PKEY, PublicKeyFree> public_key_;  // built from config_.public_key
    mutable std::atomic<std::uint64_t> crypto_checks_{0};
};

}  // namespace shopcast
