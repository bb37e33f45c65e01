// Validation of Telegram WebApp initData as core.telegram.org/bots/webapps documents it:
// "Validating data received via the Mini App" (HMAC-SHA256 under a key derived from the bot
// token) and "Validating data for Third-Party Use" (Ed25519 signature by Telegram's key).
#include "daemon/core/telegram_auth.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace shopcast {
namespace {

constexpr std::size_t kMaxInitDataBytes = 4096;
constexpr std::uint64_t kMaxFutureSkewSeconds = 60;
constexpr std::uint64_t kMaxUserId = (std::uint64_t{1} << 53) - 1;  // what JavaScript holds exactly
constexpr std::string_view kWebAppData = "WebAppData";

using Digest = std::array<unsigned char, 32>;
using Ed25519Signature = std::array<unsigned char, 64>;

struct EvpMdCtxFree {
    void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree>;

// One decoded `key=value` pair of the query string.
struct Field {
    std::string key;
    std::string value;
};

enum class ParseStatus { ok, malformed, bad_escape, duplicate_key };

AuthOutcome refuse(std::string reason) {
    AuthOutcome outcome;
    outcome.error = std::move(reason);
    return outcome;
}

int hex_digit_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Percent-decoding with `+` as a space, as Telegram's own telegram-web-app.js does
// (`decodeURIComponent(s.replace(/\+/g, '%20'))`). False on a malformed escape.
bool url_decode(std::string_view in, std::string& out) {
    out.clear();
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '+') {
            out.push_back(' ');
        } else if (c != '%') {
            out.push_back(c);
        } else {
            if (in.size() - i < 3) return false;
            const int high = hex_digit_value(in[i + 1]);
            const int low = hex_digit_value(in[i + 2]);
            if (high < 0 || low < 0) return false;
            out.push_back(static_cast<char>(high * 16 + low));
            i += 2;
        }
    }
    return true;
}

// Splits `k=v&k=v` on `&`, each item on its first `=`, and decodes both sides. On success
// `fields` is sorted by key, every key non-empty and unique. The raw text is never
// re-serialized: the data-check-string is built from these decoded pairs.
ParseStatus parse_query(std::string_view query, std::vector<Field>& fields) {
    fields.clear();
    std::size_t start = 0;
    while (start <= query.size()) {
        std::size_t end = query.find('&', start);
        if (end == std::string_view::npos) end = query.size();
        const std::string_view item = query.substr(start, end - start);
        const std::size_t equals = item.find('=');
        if (equals == std::string_view::npos || equals == 0) return ParseStatus::malformed;
        Field field;
        if (!url_decode(item.substr(0, equals), field.key) ||
            !url_decode(item.substr(equals + 1), field.value)) {
            return ParseStatus::bad_escape;
        }
        if (field.key.empty()) return ParseStatus::malformed;
        fields.push_back(std::move(field));
        start = end + 1;
    }
    std::sort(fields.begin(), fields.end(),
              [](const Field& a, const Field& b) { return a.key < b.key; });
    const auto same_key = [](const Field& a, const Field& b) { return a.key == b.key; };
    if (std::adjacent_find(fields.begin(), fields.end(), same_key) != fields.end()) {
        return ParseStatus::duplicate_key;
    }
    return ParseStatus::ok;
}

const Field* find_field(const std::vector<Field>& fields, std::string_view key) {
    for (const Field& field : fields) {
        if (field.key == key) return &field;
    }
    return nullptr;
}

// `key=value` lines of the (sorted) fields, skipping `excluded` keys, joined with '\n'.
void append_data_check_string(const std::vector<Field>& fields,
                              std::initializer_list<std::string_view> excluded, std::string& out) {
    bool first = true;
    for (const Field& field : fields) {
        if (std::find(excluded.begin(), excluded.end(), field.key) != excluded.end()) continue;
        if (!first) out.push_back('\n');
        first = false;
        out.append(field.key).append("=").append(field.value);
    }
}

bool hmac_sha256(std::string_view key, std::string_view message, Digest& out) {
    unsigned int length = 0;
    const unsigned char* result = HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                                       reinterpret_cast<const unsigned char*>(message.data()),
                                       message.size(), out.data(), &length);
    return result != nullptr && length == out.size();
}

// Exactly 64 hex digits (either case) into 32 bytes.
bool decode_hex_digest(std::string_view text, Digest& out) {
    if (text.size() != out.size() * 2) return false;
    for (std::size_t i = 0; i < out.size(); ++i) {
        const int high = hex_digit_value(text[2 * i]);
        const int low = hex_digit_value(text[2 * i + 1]);
        if (high < 0 || low < 0) return false;
        out[i] = static_cast<unsigned char>(high * 16 + low);
    }
    return true;
}

int base64url_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

// Unpadded base64url of exactly 64 bytes: 86 characters, the last one carrying 2 bits and
// four zero bits (the canonical encoding, the only one Telegram produces).
bool decode_base64url_signature(std::string_view text, Ed25519Signature& out) {
    constexpr std::size_t kEncodedLength = (64 * 8 + 5) / 6;  // 86
    if (text.size() != kEncodedLength) return false;
    std::uint32_t bits = 0;
    int bit_count = 0;
    std::size_t written = 0;
    for (const char c : text) {
        const int value = base64url_value(c);
        if (value < 0) return false;
        bits = (bits << 6) | static_cast<std::uint32_t>(value);
        bit_count += 6;
        if (bit_count >= 8) {
            bit_count -= 8;
            out[written++] = static_cast<unsigned char>((bits >> bit_count) & 0xFFu);
        }
    }
    const std::uint32_t leftover = bits & ((1u << bit_count) - 1u);
    return written == out.size() && leftover == 0;
}

// Decimal seconds, digits only.
std::optional<std::int64_t> parse_unix_seconds(std::string_view text) {
    if (text.empty() || text.size() > 18) return std::nullopt;
    std::int64_t value = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + (c - '0');
    }
    return value;
}

// Empty when fresh, else the reason. Differences are taken in unsigned arithmetic, which
// cannot overflow whatever the clock says.
std::string check_auth_date(std::int64_t auth_date, std::int64_t now, std::int64_t max_age) {
    if (auth_date > now) {
        const std::uint64_t ahead =
            static_cast<std::uint64_t>(auth_date) - static_cast<std::uint64_t>(now);
        return ahead > kMaxFutureSkewSeconds ? "auth_date in the future" : "";
    }
    const std::uint64_t age =
        static_cast<std::uint64_t>(now) - static_cast<std::uint64_t>(auth_date);
    const std::uint64_t limit = max_age > 0 ? static_cast<std::uint64_t>(max_age) : 0;
    return age > limit ? "auth_date too old" : "";
}

// The decimal `id` of the `user` JSON object, or the reason it has none.
bool extract_user_id(std::string_view user_json, std::string& user_id, std::string& error) {
    rapidjson::Document document;
    constexpr unsigned kFlags =
        rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag;
    document.Parse<kFlags>(user_json.data(), user_json.size());
    if (document.HasParseError() || !document.IsObject()) {
        error = "user is not a JSON object";
        return false;
    }
    if (!document.HasMember("id")) {
        error = "user has no id";
        return false;
    }
    const rapidjson::Value& id = document["id"];
    if (!id.IsUint64() || id.GetUint64() == 0 || id.GetUint64() > kMaxUserId) {
        error = "invalid user id";
        return false;
    }
    user_id = std::to_string(id.GetUint64());
    return true;
}

enum class Mode { hmac, ed25519 };

}  // namespace

std::array<unsigned char, 32> telegram_production_public_key() {
    // e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d
    return {0xe7, 0xbf, 0x03, 0xa2, 0xfa, 0x46, 0x02, 0xaf, 0x45, 0x80, 0x70,
            0x3d, 0x88, 0xdd, 0xa5, 0xbb, 0x59, 0xf3, 0x2e, 0xd8, 0xb0, 0x2a,
            0x56, 0xc1, 0x87, 0xfe, 0x7d, 0x34, 0xca, 0xed, 0x24, 0x2d};
}

WebAppKey derive_webapp_key(std::string_view bot_token) {
    WebAppKey key{};
    if (!hmac_sha256(kWebAppData, bot_token, key)) {
        throw std::runtime_error("cannot derive the WebAppData key from the bot token");
    }
    return key;
}

void TelegramAuthenticator::PublicKeyFree::operator()(EVP_PKEY* key) const noexcept {
    EVP_PKEY_free(key);
}

TelegramAuthenticator::TelegramAuthenticator(TelegramAuthConfig config)
    : config_(std::move(config)) {
    // An all-zero key is "not set", never a key to trust: it is a small-order point, for
    // which signatures are easy to forge.
    const bool key_unset = std::all_of(config_.public_key.begin(), config_.public_key.end(),
                                       [](unsigned char byte) { return byte == 0; });
    if (key_unset) config_.public_key = telegram_production_public_key();
    public_key_.reset(EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr, config_.public_key.data(), config_.public_key.size()));
    if (!public_key_) {
        ERR_clear_error();
        throw std::runtime_error("cannot load the Telegram Ed25519 public key");
    }
}

bool TelegramAuthenticator::ed25519_verify(std::string_view message,
                                           const Ed25519Signature& signature) const {
    crypto_checks_.fetch_add(1, std::memory_order_relaxed);
    const EvpMdCtxPtr ctx(EVP_MD_CTX_new());
    const bool valid =
        ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, public_key_.get()) == 1 &&
        EVP_DigestVerify(ctx.get(), signature.data(), signature.size(),
                         reinterpret_cast<const unsigned char*>(message.data()),
                         message.size()) == 1;
    if (!valid) ERR_clear_error();  // a bad signature must not pile up in this thread's queue
    return valid;
}

AuthOutcome TelegramAuthenticator::verify_init_data(std::string_view init_data,
                                                    std::int64_t now_unix) const {
    const bool has_key = config_.webapp_key.has_value();
    const bool has_bot_id = !config_.bot_id.empty();
    if (!has_key && !has_bot_id) return refuse("auth not configured");
    if (init_data.size() > kMaxInitDataBytes) return refuse("initData too large");
    if (init_data.empty()) return refuse("empty initData");

    std::vector<Field> fields;
    switch (parse_query(init_data, fields)) {
        case ParseStatus::ok:
            break;
        case ParseStatus::malformed:
            return refuse("malformed initData");
        case ParseStatus::bad_escape:
            return refuse("bad percent-escape in initData");
        case ParseStatus::duplicate_key:
            return refuse("duplicate field in initData");
    }

    const Field* hash = find_field(fields, "hash");
    const Field* signature = find_field(fields, "signature");
    const Field* auth_date = find_field(fields, "auth_date");
    const Field* user = find_field(fields, "user");
    if (auth_date == nullptr) return refuse("missing auth_date");
    // Freshness first: replaying old data (or flooding with it) costs no cryptography.
    const std::optional<std::int64_t> issued = parse_unix_seconds(auth_date->value);
    if (!issued) return refuse("invalid auth_date");
    std::string stale = check_auth_date(*issued, now_unix, config_.max_age_seconds);
    if (!stale.empty()) return refuse(std::move(stale));
    if (user == nullptr) return refuse("missing user");

    // The signature is preferred: it needs no token. Without the mode the data calls for,
    // say which one is missing rather than falling back to nothing.
    Mode mode;
    if (signature != nullptr && has_bot_id) {
        mode = Mode::ed25519;
    } else if (hash != nullptr && has_key) {
        mode = Mode::hmac;
    } else if (hash == nullptr && signature == nullptr) {
        return refuse("missing hash");
    } else if (hash != nullptr) {
        return refuse("hash check not configured");
    } else {
        return refuse("signature check not configured");
    }

    if (mode == Mode::hmac) {
        Digest presented{};
        if (!decode_hex_digest(hash->value, presented)) return refuse("invalid hash");
        std::string data_check_string;
        append_data_check_string(fields, {"hash"}, data_check_string);
        Digest expected{};
        crypto_checks_.fetch_add(1, std::memory_order_relaxed);
        const WebAppKey& key = *config_.webapp_key;
        if (!hmac_sha256({reinterpret_cast<const char*>(key.data()), key.size()}, data_check_string,
                         expected)) {
            return refuse("internal error");
        }
        if (CRYPTO_memcmp(presented.data(), expected.data(), expected.size()) != 0) {
            return refuse("hash mismatch");
        }
    } else {
        Ed25519Signature presented{};
        if (!decode_base64url_signature(signature->value, presented)) {
            return refuse("invalid signature");
        }
        std::string message = config_.bot_id;
        message.append(":").append(kWebAppData).append("\n");
        append_data_check_string(fields, {"hash", "signature"}, message);
        if (!ed25519_verify(message, presented)) return refuse("signature mismatch");
    }

    AuthOutcome outcome;
    if (!extract_user_id(user->value, outcome.user_id, outcome.error)) return outcome;
    outcome.ok = true;
    return outcome;
}

AuthOutcome TelegramAuthenticator::verify(std::string_view init_data, std::int64_t now_unix) const {
    try {
        return verify_init_data(init_data, now_unix);
    } catch (...) {  // allocation failure: refuse rather than let it reach a C callback
        return refuse("internal error");
    }
}

}  // namespace shopcast
