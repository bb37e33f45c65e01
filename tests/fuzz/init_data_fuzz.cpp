// Fuzz target for TelegramAuthenticator::verify: any bytes, both modes configured, a fixed
// clock. It must never crash, and its answer must be consistent (ok with a user id, or an
// error). The config is Telegram's published example bot, so the seed taken from Telegram's
// real initData reaches the accepting path.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "daemon/core/telegram_auth.h"

namespace {

constexpr std::int64_t kNow = 1733509682 + 30;  // the real seed's auth_date, plus a little

const shopcast::TelegramAuthenticator& authenticator() {
    static const shopcast::TelegramAuthenticator instance([] {
        shopcast::TelegramAuthConfig config;
        config.webapp_key =
            shopcast::derive_webapp_key("7342037359:AAHI25ES9xCOMPokpYoz-p8XVrZUdygo2J4");
        config.bot_id = "7342037359";
        config.public_key = shopcast::telegram_production_public_key();
        return config;
    }());
    return instance;
}

bool is_decimal(std::string_view text) {
    if (text.empty()) return false;
    for (const char c : text) {
        if (c < '0' || c > '9') return false;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const shopcast::AuthOutcome outcome = authenticator().verify(input, kNow);
    const bool consistent = outcome.ok ? outcome.error.empty() && is_decimal(outcome.user_id)
                                       : !outcome.error.empty() && outcome.user_id.empty();
    if (!consistent) std::abort();
    return 0;
}
