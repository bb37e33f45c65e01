// TelegramAuthenticator: initData built and signed here (HMAC with a test token, Ed25519 with a
// key generated here), plus two vectors published with their tokens by the Telegram Mini Apps
// project, one of them signed by Telegram's production Ed25519 key.
#include "daemon/core/telegram_auth.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shopcast {
namespace {

constexpr std::int64_t kNow = 1'700'000'000;
constexpr std::string_view kToken = "7000000001:AAE-unit-test-token_0123456789abcdefXYZ";
constexpr std::string_view kBotId = "7000000001";

using Fields = std::vector<std::pair<std::string, std::string>>;  // decoded, in wire order

struct EvpPkeyFree {
    void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
};
struct EvpPkeyCtxFree {
    void operator()(EVP_PKEY_CTX* ctx) const noexcept { EVP_PKEY_CTX_free(ctx); }
};
struct EvpMdCtxFree {
    void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;

EvpPkeyPtr generate_ed25519_key() {
    std::unique_ptr<EVP_PKEY_CTX, EvpPkeyCtxFree> ctx(
        EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
    EVP_PKEY* key = nullptr;
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &key) != 1) {
        return nullptr;
    }
    return EvpPkeyPtr(key);
}

std::array<unsigned char, 32> raw_public_key(EVP_PKEY* key) {
    std::array<unsigned char, 32> raw{};
    std::size_t length = raw.size();
    EXPECT_EQ(EVP_PKEY_get_raw_public_key(key, raw.data(), &length), 1);
    EXPECT_EQ(length, raw.size());
    return raw;
}

std::string ed25519_sign(EVP_PKEY* key, std::string_view message) {
    std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree> ctx(EVP_MD_CTX_new());
    std::string signature(64, '\0');
    std::size_t length = signature.size();
    EXPECT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key), 1);
    EXPECT_EQ(
        EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()),
        1);
    EXPECT_EQ(length, 64u);
    return signature;
}

bool raw_ed25519_verify(const std::array<unsigned char, 32>& public_key, std::string_view message,
                        std::string_view signature) {
    EvpPkeyPtr key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, public_key.data(),
                                               public_key.size()));
    std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree> ctx(EVP_MD_CTX_new());
    return key && ctx &&
           EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) == 1 &&
           EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                            signature.size(),
                            reinterpret_cast<const unsigned char*>(message.data()),
                            message.size()) == 1;
}

std::string hmac_sha256(std::string_view key, std::string_view message) {
    std::string out(32, '\0');
    unsigned int length = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(),
         reinterpret_cast<unsigned char*>(out.data()), &length);
    EXPECT_EQ(length, 32u);
    return out;
}

std::string to_hex(std::string_view bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (const char c : bytes) {
        const auto byte = static_cast<unsigned char>(c);
        out.push_back(kDigits[byte >> 4]);
        out.push_back(kDigits[byte & 0x0F]);
    }
    return out;
}

std::string to_base64url(std::string_view bytes) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t bits = 0;
    int count = 0;
    for (const char c : bytes) {
        bits = (bits << 8) | static_cast<unsigned char>(c);
        count += 8;
        while (count >= 6) {
            count -= 6;
            out.push_back(kAlphabet[(bits >> count) & 0x3F]);
        }
    }
    if (count > 0) out.push_back(kAlphabet[(bits << (6 - count)) & 0x3F]);
    return out;
}

// encodeURIComponent, optionally with spaces as '+'.
std::string url_encode(std::string_view text, bool space_as_plus = false) {
    static constexpr char kDigits[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            std::string_view("-_.!~*'()").find(c) != std::string_view::npos) {
            out.push_back(c);
        } else if (c == ' ' && space_as_plus) {
            out.push_back('+');
        } else {
            out.push_back('%');
            out.push_back(kDigits[byte >> 4]);
            out.push_back(kDigits[byte & 0x0F]);
        }
    }
    return out;
}

std::string serialize(const Fields& fields, bool space_as_plus = false) {
    std::string out;
    for (const auto& [key, value] : fields) {
        if (!out.empty()) out.push_back('&');
        out.append(url_encode(key)).append("=").append(url_encode(value, space_as_plus));
    }
    return out;
}

std::string data_check_string(Fields fields, std::initializer_list<std::string_view> excluded) {
    std::sort(fields.begin(), fields.end());
    std::string out;
    for (const auto& [key, value] : fields) {
        if (std::find(excluded.begin(), excluded.end(), key) != excluded.end()) continue;
        if (!out.empty()) out.push_back('\n');
        out.append(key).append("=").append(value);
    }
    return out;
}

// `fields` plus the hash Telegram would compute for `token` (over every field, `signature`
// included).
Fields with_hash(Fields fields, std::string_view token = kToken) {
    const std::string secret = hmac_sha256("WebAppData", token);
    fields.emplace_back("hash", to_hex(hmac_sha256(secret, data_check_string(fields, {}))));
    return fields;
}

// `fields` plus the Ed25519 `signature` for `bot_id`.
Fields with_signature(Fields fields, EVP_PKEY* key, std::string_view bot_id = kBotId) {
    const std::string message =
        std::string(bot_id) + ":WebAppData\n" + data_check_string(fields, {"hash", "signature"});
    fields.emplace_back("signature", to_base64url(ed25519_sign(key, message)));
    return fields;
}

Fields base_fields(std::int64_t auth_date = kNow - 10) {
    return {
        {"query_id", "AAHdF6IQAAAAAN0XohDhrOrc"},
        {"user", R"({"id":123456789,"first_name":"Ann","username":"ann"})"},
        {"auth_date", std::to_string(auth_date)},
    };
}

Fields replace_field(Fields fields, std::string_view key, std::string value) {
    for (auto& [k, v] : fields) {
        if (k == key) v = std::move(value);
    }
    return fields;
}

Fields without_field(Fields fields, std::string_view key) {
    std::erase_if(fields, [&](const auto& field) { return field.first == key; });
    return fields;
}

class TelegramAuthTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        key_ = generate_ed25519_key().release();
        other_key_ = generate_ed25519_key().release();
        ASSERT_NE(key_, nullptr);
        ASSERT_NE(other_key_, nullptr);
    }
    static void TearDownTestSuite() {
        EVP_PKEY_free(key_);
        EVP_PKEY_free(other_key_);
    }

    static TelegramAuthConfig config(bool token, bool bot_id) {
        TelegramAuthConfig result;
        if (token) result.webapp_key = derive_webapp_key(kToken);
        if (bot_id) result.bot_id = std::string(kBotId);
        result.public_key = raw_public_key(key_);
        return result;
    }

    static AuthOutcome verify(const TelegramAuthConfig& cfg, std::string_view init_data,
                              std::int64_t now = kNow) {
        const AuthOutcome outcome = TelegramAuthenticator(cfg).verify(init_data, now);
        EXPECT_EQ(outcome.error.find(kToken), std::string::npos);
        EXPECT_EQ(outcome.ok, outcome.error.empty());
        return outcome;
    }

    static EVP_PKEY* key_;
    static EVP_PKEY* other_key_;
};

EVP_PKEY* TelegramAuthTest::key_ = nullptr;
EVP_PKEY* TelegramAuthTest::other_key_ = nullptr;

TEST(TelegramProductionKey, MatchesTelegramDocumentation) {
    const auto key = telegram_production_public_key();
    EXPECT_EQ(to_hex({reinterpret_cast<const char*>(key.data()), key.size()}),
              "e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d");
}

TEST_F(TelegramAuthTest, HmacModeAcceptsGenuineData) {
    const AuthOutcome outcome = verify(config(true, false), serialize(with_hash(base_fields())));
    EXPECT_TRUE(outcome.ok) << outcome.error;
    EXPECT_EQ(outcome.user_id, "123456789");
}

TEST_F(TelegramAuthTest, SignatureModeAcceptsGenuineData) {
    const AuthOutcome outcome =
        verify(config(false, true), serialize(with_signature(base_fields(), key_)));
    EXPECT_TRUE(outcome.ok) << outcome.error;
    EXPECT_EQ(outcome.user_id, "123456789");
}

TEST_F(TelegramAuthTest, SignatureModeIgnoresHash) {
    // As Telegram sends it: signature first, then a hash over every field including it.
    const Fields genuine = with_hash(with_signature(base_fields(), key_));
    EXPECT_TRUE(verify(config(false, true), serialize(genuine)).ok);
    EXPECT_TRUE(verify(config(true, false), serialize(genuine)).ok);
    EXPECT_TRUE(verify(config(true, true), serialize(genuine)).ok);
}

TEST_F(TelegramAuthTest, BothConfiguredPrefersSignature) {
    // A valid hash does not rescue a bad signature, and a bad hash does not matter when the
    // signature is good.
    const Fields bad_signature = with_hash(with_signature(base_fields(), other_key_));
    EXPECT_EQ(verify(config(true, true), serialize(bad_signature)).error, "signature mismatch");
    EXPECT_TRUE(verify(config(true, false), serialize(bad_signature)).ok);

    Fields bad_hash = with_signature(base_fields(), key_);
    bad_hash.emplace_back("hash", std::string(64, '0'));
    EXPECT_TRUE(verify(config(true, true), serialize(bad_hash)).ok);
}

TEST_F(TelegramAuthTest, BothConfiguredUsesHmacWithoutSignature) {
    EXPECT_TRUE(verify(config(true, true), serialize(with_hash(base_fields()))).ok);
    EXPECT_EQ(verify(config(true, true), serialize(with_hash(base_fields(), "1:other"))).error,
              "hash mismatch");
}

TEST_F(TelegramAuthTest, TamperedFieldIsRefused) {
    struct Case {
        std::string_view key;
        std::string value;
    };
    const std::vector<Case> cases = {
        {"user", R"({"id":123456780,"first_name":"Ann","username":"ann"})"},
        {"user", R"({"id":123456789,"first_name":"Ann","username":"ann" })"},
        {"auth_date", std::to_string(kNow - 9)},
        {"query_id", "AAHdF6IQAAAAAN0XohDhrOrd"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.value);
        const Fields hashed = replace_field(with_hash(base_fields()), c.key, c.value);
        EXPECT_EQ(verify(config(true, false), serialize(hashed)).error, "hash mismatch");
        const Fields signed_ = replace_field(with_signature(base_fields(), key_), c.key, c.value);
        EXPECT_EQ(verify(config(false, true), serialize(signed_)).error, "signature mismatch");
    }
    // Adding or removing a field breaks it too.
    Fields added = with_hash(base_fields());
    added.emplace_back("start_param", "x");
    EXPECT_EQ(verify(config(true, false), serialize(added)).error, "hash mismatch");
    const Fields removed = without_field(with_signature(base_fields(), key_), "query_id");
    EXPECT_EQ(verify(config(false, true), serialize(removed)).error, "signature mismatch");
}

TEST_F(TelegramAuthTest, WrongOrMalformedHashIsRefused) {
    const Fields genuine = with_hash(base_fields());
    std::string hash;
    for (const auto& [k, v] : genuine) {
        if (k == "hash") hash = v;
    }
    std::string flipped = hash;
    flipped[10] = flipped[10] == 'a' ? 'b' : 'a';
    std::string upper = hash;
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](char c) { return c >= 'a' && c <= 'f' ? static_cast<char>(c - 32) : c; });

    struct Case {
        std::string hash;
        std::string_view error;
    };
    const std::vector<Case> cases = {
        {upper, ""},
        {flipped, "hash mismatch"},
        {std::string(64, 'f'), "hash mismatch"},
        {hash.substr(0, 63), "invalid hash"},
        {hash + "0", "invalid hash"},
        {hash.substr(0, 62) + "zz", "invalid hash"},
        {hash.substr(0, 32), "invalid hash"},
        {"", "invalid hash"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.hash);
        EXPECT_EQ(
            verify(config(true, false), serialize(replace_field(genuine, "hash", c.hash))).error,
            c.error);
    }
}

TEST_F(TelegramAuthTest, MalformedSignatureIsRefused) {
    const Fields genuine = with_signature(base_fields(), key_);
    std::string signature;
    for (const auto& [k, v] : genuine) {
        if (k == "signature") signature = v;
    }
    ASSERT_EQ(signature.size(), 86u);
    std::string non_canonical = signature;
    non_canonical.back() = non_canonical.back() == 'B' ? 'C' : 'B';  // low bits no longer zero
    std::string standard_alphabet = signature;
    standard_alphabet[3] = '+';

    const std::vector<std::string> cases = {
        signature + "==", signature.substr(0, 85), signature + "A",
        non_canonical,    standard_alphabet,       "",
    };
    for (const std::string& bad : cases) {
        SCOPED_TRACE(bad);
        EXPECT_EQ(
            verify(config(false, true), serialize(replace_field(genuine, "signature", bad))).error,
            "invalid signature");
    }
}

TEST_F(TelegramAuthTest, SignatureFromAnotherKeyOrBotIsRefused) {
    EXPECT_EQ(
        verify(config(false, true), serialize(with_signature(base_fields(), other_key_))).error,
        "signature mismatch");
    EXPECT_EQ(
        verify(config(false, true), serialize(with_signature(base_fields(), key_, "7000000002")))
            .error,
        "signature mismatch");
    // Telegram's production key does not accept a test signature.
    TelegramAuthConfig production = config(false, true);
    production.public_key = telegram_production_public_key();
    EXPECT_EQ(verify(production, serialize(with_signature(base_fields(), key_))).error,
              "signature mismatch");
}

TEST_F(TelegramAuthTest, AuthDateWindow) {
    struct Case {
        std::int64_t auth_date;
        std::string_view error;
    };
    const std::vector<Case> cases = {
        {kNow, ""},
        {kNow - 86400, ""},
        {kNow - 86401, "auth_date too old"},
        {0, "auth_date too old"},
        {kNow + 60, ""},
        {kNow + 61, "auth_date in the future"},
        {999'999'999'999'999'999, "auth_date in the future"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.auth_date);
        EXPECT_EQ(verify(config(true, false), serialize(with_hash(base_fields(c.auth_date)))).error,
                  c.error);
        EXPECT_EQ(
            verify(config(false, true), serialize(with_signature(base_fields(c.auth_date), key_)))
                .error,
            c.error);
    }
}

TEST_F(TelegramAuthTest, MaxAgeIsConfigurable) {
    TelegramAuthConfig cfg = config(true, false);
    cfg.max_age_seconds = 300;
    EXPECT_TRUE(verify(cfg, serialize(with_hash(base_fields(kNow - 300)))).ok);
    EXPECT_EQ(verify(cfg, serialize(with_hash(base_fields(kNow - 301)))).error,
              "auth_date too old");
}

// auth_date is checked before any cryptography: stale data with a forged hash or signature is
// refused as stale, and neither the HMAC nor the Ed25519 check runs for it.
TEST_F(TelegramAuthTest, StaleDataIsRefusedBeforeAnyCryptography) {
    const TelegramAuthenticator authenticator(config(true, true));
    const std::int64_t stale = kNow - 86401;
    Fields forged_hash = with_hash(base_fields(stale));
    forged_hash = replace_field(forged_hash, "hash", std::string(64, '0'));
    Fields forged_signature = with_signature(base_fields(stale), other_key_);
    for (const Fields& fields : {forged_hash, forged_signature}) {
        EXPECT_EQ(authenticator.verify(serialize(fields), kNow).error, "auth_date too old");
    }
    EXPECT_EQ(
        authenticator.verify(serialize(replace_field(base_fields(), "auth_date", "x")), kNow).error,
        "invalid auth_date");
    EXPECT_EQ(authenticator.crypto_checks(), 0u) << "no HMAC or signature work for these";

    // Fresh data with the same forgeries reaches the checks, which refuse it.
    EXPECT_EQ(authenticator
                  .verify(serialize(replace_field(with_hash(base_fields()), "hash",
                                                  std::string(64, '0'))),
                          kNow)
                  .error,
              "hash mismatch");
    EXPECT_EQ(
        authenticator.verify(serialize(with_signature(base_fields(), other_key_)), kNow).error,
        "signature mismatch");
    EXPECT_EQ(authenticator.crypto_checks(), 2u);
}

// The Ed25519 key is built once and reused: many checks against one authenticator all agree.
TEST_F(TelegramAuthTest, OneAuthenticatorChecksManySignatures) {
    const TelegramAuthenticator authenticator(config(false, true));
    for (int i = 0; i < 50; ++i) {
        const std::string good = serialize(with_signature(base_fields(kNow - i), key_));
        ASSERT_TRUE(authenticator.verify(good, kNow).ok) << i;
        ASSERT_EQ(
            authenticator.verify(serialize(with_signature(base_fields(kNow - i), other_key_)), kNow)
                .error,
            "signature mismatch")
            << i;
    }
    EXPECT_EQ(authenticator.crypto_checks(), 100u);
}

TEST(WebAppKey, IsTheDocumentedDerivation) {
    // HMAC_SHA256(key="WebAppData", message=token), computed independently.
    std::array<unsigned char, 32> expected{};
    unsigned int length = 0;
    const std::string token = "12345:token";
    HMAC(EVP_sha256(), "WebAppData", 10, reinterpret_cast<const unsigned char*>(token.data()),
         token.size(), expected.data(), &length);
    EXPECT_EQ(derive_webapp_key(token), expected);
}

TEST_F(TelegramAuthTest, MalformedAuthDateIsRefused) {
    for (const std::string bad :
         {"", "-5", "+1700000000", "1700000000.0", "1e9", " 1700000000", "1234567890123456789"}) {
        SCOPED_TRACE(bad);
        const Fields fields = replace_field(base_fields(), "auth_date", bad);
        EXPECT_EQ(verify(config(true, false), serialize(with_hash(fields))).error,
                  "invalid auth_date");
    }
}

TEST_F(TelegramAuthTest, UserMustCarryPositiveIntegerId) {
    struct Case {
        std::string user;
        std::string_view error;
        std::string_view user_id;
    };
    const std::vector<Case> cases = {
        {R"({"id":1})", "", "1"},
        {R"({"first_name":"Ann","id":9007199254740991})", "", "9007199254740991"},
        {R"({"first_name":"Ann"})", "user has no id", ""},
        {R"({"id":0})", "invalid user id", ""},
        {R"({"id":-7})", "invalid user id", ""},
        {R"({"id":1.5})", "invalid user id", ""},
        {R"({"id":1e3})", "invalid user id", ""},
        {R"({"id":"123"})", "invalid user id", ""},
        {R"({"id":null})", "invalid user id", ""},
        {R"({"id":9007199254740992})", "invalid user id", ""},
        {R"([123])", "user is not a JSON object", ""},
        {R"(123)", "user is not a JSON object", ""},
        {R"({"id":1)", "user is not a JSON object", ""},
        {R"({"id":1} x)", "user is not a JSON object", ""},
        {"{\"id\":1,\"n\":\"\xff\"}", "user is not a JSON object", ""},
        {"", "user is not a JSON object", ""},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.user);
        const AuthOutcome outcome =
            verify(config(true, false),
                   serialize(with_hash(replace_field(base_fields(), "user", c.user))));
        EXPECT_EQ(outcome.error, c.error);
        EXPECT_EQ(outcome.user_id, c.user_id);
    }
}

TEST_F(TelegramAuthTest, RequiredFieldsMustBePresent) {
    EXPECT_EQ(
        verify(config(true, false), serialize(with_hash(without_field(base_fields(), "user"))))
            .error,
        "missing user");
    EXPECT_EQ(verify(config(false, true),
                     serialize(with_signature(without_field(base_fields(), "auth_date"), key_)))
                  .error,
              "missing auth_date");
    EXPECT_EQ(verify(config(true, true), serialize(base_fields())).error, "missing hash");
}

TEST_F(TelegramAuthTest, DuplicateKeysAreRefused) {
    const std::string genuine = serialize(with_hash(base_fields()));
    for (const std::string extra : {"&user=%7B%22id%22%3A1%7D", "&auth_date=1700000000", "&hash=00",
                                    "&query_id=AAHdF6IQAAAAAN0XohDhrOrc", "&%75ser=x"}) {
        SCOPED_TRACE(extra);
        EXPECT_EQ(verify(config(true, false), genuine + extra).error,
                  "duplicate field in initData");
    }
}

TEST_F(TelegramAuthTest, MalformedQueryStringIsRefused) {
    const std::string genuine = serialize(with_hash(base_fields()));
    struct Case {
        std::string init_data;
        std::string_view error;
    };
    const std::vector<Case> cases = {
        {"", "empty initData"},
        {genuine + "&", "malformed initData"},
        {"&" + genuine, "malformed initData"},
        {genuine + "&&x=1", "malformed initData"},
        {genuine + "&flag", "malformed initData"},
        {genuine + "&=value", "malformed initData"},
        {genuine + "&x=%", "bad percent-escape in initData"},
        {genuine + "&x=%4", "bad percent-escape in initData"},
        {genuine + "&x=%zz", "bad percent-escape in initData"},
        {genuine + "&x=%G0", "bad percent-escape in initData"},
        {genuine + "&x=a%2", "bad percent-escape in initData"},
        {genuine + "&x%=1", "bad percent-escape in initData"},
        {std::string(4097, 'a'), "initData too large"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.init_data);
        EXPECT_EQ(verify(config(true, true), c.init_data).error, c.error);
    }
}

TEST_F(TelegramAuthTest, SizeLimitIs4096Bytes) {
    Fields fields = base_fields();
    fields.emplace_back("start_param", "");
    const std::size_t base = serialize(with_hash(fields)).size();
    ASSERT_LT(base, 4096u);
    fields.back().second.assign(4096 - base, 'p');
    const std::string at_limit = serialize(with_hash(fields));
    ASSERT_EQ(at_limit.size(), 4096u);
    EXPECT_TRUE(verify(config(true, false), at_limit).ok);

    fields.back().second.push_back('p');
    const std::string over = serialize(with_hash(fields));
    ASSERT_EQ(over.size(), 4097u);
    EXPECT_EQ(verify(config(true, false), over).error, "initData too large");
}

TEST_F(TelegramAuthTest, ModeNotConfigured) {
    const std::string hashed = serialize(with_hash(base_fields()));
    const std::string signed_only = serialize(with_signature(base_fields(), key_));
    EXPECT_EQ(verify(config(false, false), hashed).error, "auth not configured");
    EXPECT_FALSE(TelegramAuthenticator(config(false, false)).configured());
    EXPECT_TRUE(TelegramAuthenticator(config(true, false)).configured());
    EXPECT_TRUE(TelegramAuthenticator(config(false, true)).configured());
    EXPECT_EQ(verify(config(false, true), hashed).error, "hash check not configured");
    EXPECT_EQ(verify(config(true, false), signed_only).error, "signature check not configured");
}

TEST_F(TelegramAuthTest, ValuesArePercentDecodedNeverReserialized) {
    const std::string user =
        R"({"id":42,"first_name":"Zoë 日本 + ok","last_name":"a&b=c%d","username":"z"})";
    Fields fields = replace_field(base_fields(), "user", user);
    fields.emplace_back("start_param", "two words");

    for (const bool plus : {false, true}) {
        SCOPED_TRACE(plus);
        const std::string hashed = serialize(with_hash(fields), plus);
        EXPECT_NE(hashed.find(plus ? "two+words" : "two%20words"), std::string::npos);
        EXPECT_NE(hashed.find("%E6%97%A5"), std::string::npos);  // 日 as UTF-8 escapes
        const AuthOutcome outcome = verify(config(true, false), hashed);
        EXPECT_TRUE(outcome.ok) << outcome.error;
        EXPECT_EQ(outcome.user_id, "42");
        EXPECT_TRUE(verify(config(false, true), serialize(with_signature(fields, key_), plus)).ok);
    }

    // Lower-case hex in escapes decodes to the same bytes.
    std::string lower = serialize(with_hash(fields));
    for (std::size_t i = 0; i + 2 < lower.size(); ++i) {
        if (lower[i] != '%') continue;
        for (std::size_t j = i + 1; j <= i + 2; ++j) {
            if (lower[j] >= 'A' && lower[j] <= 'F') lower[j] = static_cast<char>(lower[j] + 32);
        }
    }
    ASSERT_NE(lower.find("%e6%97%a5"), std::string::npos);
    EXPECT_TRUE(verify(config(true, false), lower).ok);

    // '+' is a space and "%2B" a plus: sending the plus as a bare '+' changes the value.
    Fields with_plus = base_fields();
    with_plus.emplace_back("start_param", "a+b");
    std::string sent = serialize(with_hash(with_plus));
    const std::size_t at = sent.find("a%2Bb");
    ASSERT_NE(at, std::string::npos);
    sent.replace(at, 5, "a+b");
    EXPECT_EQ(verify(config(true, false), sent).error, "hash mismatch");
}

TEST_F(TelegramAuthTest, UnknownFieldsAreKeptInTheCheck) {
    Fields fields = base_fields();
    fields.emplace_back("chat_instance", "-8134722200314281151");
    fields.emplace_back("chat_type", "sender");
    fields.emplace_back("start_param", "shop_12");
    fields.emplace_back("receiver", R"({"id":7,"first_name":"Bob"})");
    fields.emplace_back("a_field_from_the_future", "x");
    fields.emplace_back("can_send_after", "10");

    EXPECT_TRUE(verify(config(true, false), serialize(with_hash(fields))).ok);
    EXPECT_TRUE(verify(config(false, true), serialize(with_signature(fields, key_))).ok);

    // Signed without the unknown field: adding it is noticed.
    Fields added = with_hash(base_fields());
    added.insert(added.begin(), {"a_field_from_the_future", "x"});
    EXPECT_EQ(verify(config(true, false), serialize(added)).error, "hash mismatch");
    // Signed with it: dropping it is noticed.
    EXPECT_EQ(verify(config(false, true),
                     serialize(without_field(with_signature(fields, key_), "chat_type")))
                  .error,
              "signature mismatch");
}

TEST_F(TelegramAuthTest, HmacCoversTheSignatureField) {
    // Telegram's hash covers `signature` like any other field: only `hash` is left out.
    Fields fields = base_fields();
    fields.emplace_back("signature", "not-checked-in-hmac-mode");
    EXPECT_TRUE(verify(config(true, false), serialize(with_hash(fields))).ok);
    const Fields dropped = without_field(with_hash(fields), "signature");
    EXPECT_EQ(verify(config(true, false), serialize(dropped)).error, "hash mismatch");
}

TEST_F(TelegramAuthTest, UnsetPublicKeyMeansTelegramsProductionKey) {
    // An all-zero key is a point of order 4. OpenSSL accepts R = identity, S = 0 under it for
    // about one message in four, so it must never be the key signatures are checked against.
    TelegramAuthConfig cfg = config(false, true);
    cfg.public_key = {};
    std::string forged(64, '\0');
    forged[0] = 1;  // encoding of the identity point
    const std::array<unsigned char, 32> zero_key{};
    int forgeable = 0;
    for (int i = 0; i < 32; ++i) {
        Fields fields = base_fields();
        fields.emplace_back("n", std::to_string(i));
        const std::string message =
            std::string(kBotId) + ":WebAppData\n" + data_check_string(fields, {});
        if (raw_ed25519_verify(zero_key, message, forged)) ++forgeable;
        fields.emplace_back("signature", to_base64url(forged));
        EXPECT_EQ(verify(cfg, serialize(fields)).error, "signature mismatch");
    }
    EXPECT_GT(forgeable, 0);  // the danger is real, so the test above means something
}

// Published by the Telegram Mini Apps project (docs.telegram-mini-apps.com, init-data
// packages) with its bot token; checked independently with node:crypto.
TEST(TelegramAuthVectors, PublishedHmacVector) {
    TelegramAuthConfig cfg;
    cfg.webapp_key = derive_webapp_key("5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8");
    const std::string init_data =
        "query_id=AAHdF6IQAAAAAN0XohDhrOrc"
        "&user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%22%2C%22last_name%22%"
        "3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22%2C%"
        "22is_premium%22%3Atrue%7D"
        "&auth_date=1662771648"
        "&hash=c501b71e775f74ce10e377dea85a7ea24ecd640b223ea86dfe453e0eaed2e2b2";
    const TelegramAuthenticator auth(cfg);
    const AuthOutcome outcome = auth.verify(init_data, 1662771648 + 5);
    EXPECT_TRUE(outcome.ok) << outcome.error;
    EXPECT_EQ(outcome.user_id, "279058397");
    EXPECT_EQ(auth.verify(init_data, 1662771648 + 86401).error, "auth_date too old");
}

// Real initData from Telegram (bot 7342037359): its hash covers `signature`, and the
// signature is by Telegram's production Ed25519 key. The first name "Vladislav + - ? /"
// exercises %20, %2B and escaped JSON slashes.
constexpr std::string_view kTelegramSignedVector =
    "user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%20%2B%20-%20%3F%20%5C%2F%22%"
    "2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%"
    "3A%22ru%22%2C%22is_premium%22%3Atrue%2C%22allows_write_to_pm%22%3Atrue%2C%22photo_url%22%"
    "3A%22https%3A%5C%2F%5C%2Ft.me%5C%2Fi%5C%2Fuserpic%5C%2F320%5C%2F4FPEE4tmP3ATHa57u6MqTDih13LT"
    "OiMoKoLDRG4PnSA.svg%22%7D&chat_instance=8134722200314281151&chat_type=private&auth_date="
    "1733509682&signature=TYJxVcisqbWjtodPepiJ6ghziUL94-KNpG8Pau-X7oNNLNBM72APCpi_RKiUlBvcqo5L-"
    "LAxIc3dnTzcZX_PDg&hash=a433d8f9847bd6addcc563bff7cc82c89e97ea0d90c11fe5729cae6796a36d73";
constexpr std::int64_t kTelegramSignedAt = 1733509682;

TEST(TelegramAuthVectors, PublishedVectorByHmac) {
    TelegramAuthConfig cfg;
    cfg.webapp_key = derive_webapp_key("7342037359:AAHI25ES9xCOMPokpYoz-p8XVrZUdygo2J4");
    const AuthOutcome outcome =
        TelegramAuthenticator(cfg).verify(kTelegramSignedVector, kTelegramSignedAt);
    EXPECT_TRUE(outcome.ok) << outcome.error;
    EXPECT_EQ(outcome.user_id, "279058397");
}

TEST(TelegramAuthVectors, PublishedVectorByProductionSignature) {
    TelegramAuthConfig cfg;
    cfg.bot_id = "7342037359";  // public_key left unset: Telegram's production key
    const TelegramAuthenticator auth(cfg);
    const AuthOutcome outcome = auth.verify(kTelegramSignedVector, kTelegramSignedAt);
    EXPECT_TRUE(outcome.ok) << outcome.error;
    EXPECT_EQ(outcome.user_id, "279058397");

    cfg.bot_id = "7342037358";
    EXPECT_EQ(TelegramAuthenticator(cfg).verify(kTelegramSignedVector, kTelegramSignedAt).error,
              "signature mismatch");
    std::string tampered(kTelegramSignedVector);
    tampered.replace(tampered.find("chat_type=private"), 17, "chat_type=channel");
    EXPECT_EQ(auth.verify(tampered, kTelegramSignedAt).error, "signature mismatch");
}

}  // namespace
}  // namespace shopcast
