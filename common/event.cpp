#include "common/event.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <set>

namespace shopcast {
namespace {

constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag |
                                 rapidjson::kParseValidateEncodingFlag |
                                 rapidjson::kParseFullPrecisionFlag;
constexpr std::uint64_t kMaxIntegerId = (std::uint64_t{1} << 53) - 1;
constexpr std::size_t kMaxStringIdLength = 64;
constexpr std::size_t kMaxStatusLength = 32;

struct TypeRule {
    std::string_view type;
    std::array<std::string_view, 2> required;
};

constexpr std::array<TypeRule, 6> kTypeRules{{
    {"product_added", {"shopId", "productId"}},
    {"product_updated", {"shopId", "productId"}},
    {"product_deleted", {"shopId", "productId"}},
    {"order_status", {"orderId", "status"}},
    {"new_subscriber", {"shopId", {}}},
    {"shop_updated", {"shopId", {}}},
}};

constexpr std::array<std::string_view, 4> kIdFields{"shopId", "productId", "orderId", "userId"};

// First pass over the raw bytes: rejects nesting beyond kMaxJsonDepth (without recursion) and
// notes duplicate keys at any level, which RapidJSON's DOM would otherwise silently accept.
class StructureCheck : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, StructureCheck> {
  public:
    bool Default() { return true; }
    bool StartObject() {
        keys_.emplace_back();
        return enter();
    }
    bool EndObject(rapidjson::SizeType) {
        keys_.pop_back();
        --depth_;
        return true;
    }
    bool StartArray() {
        keys_.emplace_back();
        return enter();
    }
    bool EndArray(rapidjson::SizeType) {
        keys_.pop_back();
        --depth_;
        return true;
    }
    bool Key(const char* text, rapidjson::SizeType length, bool) {
        std::string key(text, length);
        if (!keys_.back().insert(key).second && duplicate_key_.empty()) duplicate_key_ = key;
        return true;
    }

    bool too_deep() const { return too_deep_; }
    const std::string& duplicate_key() const { return duplicate_key_; }

  private:
    bool enter() {
        if (++depth_ > kMaxJsonDepth) too_deep_ = true;
        return !too_deep_;
    }

    std::vector<std::set<std::string>> keys_;
    int depth_ = 0;
    bool too_deep_ = false;
    std::string duplicate_key_;
};

std::string_view trim_json_whitespace(std::string_view text) {
    constexpr std::string_view kWhitespace = " \t\n\r";
    auto first = text.find_first_not_of(kWhitespace);
    if (first == std::string_view::npos) return {};
    auto last = text.find_last_not_of(kWhitespace);
    return text.substr(first, last - first + 1);
}

std::size_t count_code_points(std::string_view utf8) {
    return static_cast<std::size_t>(std::count_if(utf8.begin(), utf8.end(), [](char c) {
        return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    }));
}

bool is_id_character(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

// The textual form of a valid ID, or nullopt. Integer IDs must be written as integer literals.
std::optional<std::string> id_text(const rapidjson::Value& value) {
    if (value.IsString()) return id_from_string({value.GetString(), value.GetStringLength()});
    if (value.IsUint64() && !value.IsDouble()) return id_from_integer(value.GetUint64());
    return std::nullopt;
}

ValidationResult fail(EventError error, std::string message) {
    ValidationResult result;
    result.error = error;
    result.message = std::move(message);
    return result;
}

const TypeRule* find_rule(std::string_view type) {
    for (const auto& rule : kTypeRules) {
        if (rule.type == type) return &rule;
    }
    return nullptr;
}

}  // namespace

std::optional<std::string> id_from_string(std::string_view text) {
    if (text.empty() || text.size() > kMaxStringIdLength) return std::nullopt;
    if (!std::all_of(text.begin(), text.end(), is_id_character)) return std::nullopt;
    return std::string(text);
}

std::optional<std::string> id_from_integer(std::uint64_t number) {
    if (number < 1 || number > kMaxIntegerId) return std::nullopt;
    return std::to_string(number);
}

bool is_known_event_type(std::string_view type) {
    return find_rule(type) != nullptr;
}

ValidationResult validate_event(std::string_view body, const ValidationPolicy& policy) {
    const std::string_view json = trim_json_whitespace(body);
    if (json.empty()) return fail(EventError::invalid_json, "request body is empty");

    StructureCheck structure;
    rapidjson::Reader reader;
    rapidjson::MemoryStream stream(json.data(), json.size());
    rapidjson::ParseResult parsed = reader.Parse<kParseFlags>(stream, structure);
    if (structure.too_deep()) {
        return fail(EventError::invalid_json,
                    "JSON nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    }
    if (parsed.IsError()) {
        return fail(EventError::invalid_json, std::string("invalid JSON at byte ") +
                                                  std::to_string(parsed.Offset()) + ": " +
                                                  rapidjson::GetParseError_En(parsed.Code()));
    }

    rapidjson::Document document;
    document.Parse<kParseFlags>(json.data(), json.size());
    if (document.HasParseError()) return fail(EventError::invalid_json, "invalid JSON");
    if (!document.IsObject()) return fail(EventError::invalid_event, "body must be a JSON object");
    if (!structure.duplicate_key().empty()) {
        return fail(EventError::invalid_event,
                    "duplicate key \"" + structure.duplicate_key() + "\"");
    }

    auto type_member = document.FindMember("type");
    if (type_member == document.MemberEnd()) {
        return fail(EventError::invalid_event, "type is required");
    }
    if (!type_member->value.IsString()) {
        return fail(EventError::invalid_event, "type must be a string");
    }
    std::string type(type_member->value.GetString(), type_member->value.GetStringLength());
    const TypeRule* rule = find_rule(type);
    if (rule == nullptr) {
        return fail(EventError::invalid_event,
                    "unknown type; expected one of product_added, product_updated, "
                    "product_deleted, order_status, new_subscriber, shop_updated");
    }
    if (document.HasMember("id")) {
        return fail(EventError::invalid_event, "id is reserved for the server");
    }
    for (std::string_view field : rule->required) {
        if (!field.empty() &&
            !document.HasMember(rapidjson::StringRef(field.data(), field.size()))) {
            return fail(EventError::invalid_event, std::string(field) + " is required for " + type);
        }
    }

    ValidationResult result;
    for (std::string_view field : kIdFields) {
        auto member = document.FindMember(rapidjson::StringRef(field.data(), field.size()));
        if (member == document.MemberEnd()) continue;
        auto text = id_text(member->value);
        if (!text) {
            return fail(EventError::invalid_event,
                        std::string(field) +
                            " must be an integer from 1 to 2^53-1 or a string of 1-64 characters "
                            "from [A-Za-z0-9_-]");
        }
        if (field == "shopId") result.event.shop_id = std::move(*text);
        if (field == "userId") result.event.user_id = std::move(*text);
    }

    if (auto status = document.FindMember("status"); status != document.MemberEnd()) {
        const bool valid = status->value.IsString() && status->value.GetStringLength() > 0 &&
                           count_code_points({status->value.GetString(),
                                              status->value.GetStringLength()}) <= kMaxStatusLength;
        if (!valid) {
            return fail(EventError::invalid_event, "status must be a string of 1-32 characters");
        }
    }

    const auto& required_user = policy.require_user_for;
    if (result.event.user_id.empty() &&
        std::find(required_user.begin(), required_user.end(), type) != required_user.end()) {
        return fail(EventError::invalid_event, "userId is required for " + type);
    }

    result.ok = true;
    result.event.type = std::move(type);
    result.event.json.assign(json);
    return result;
}

}  // namespace shopcast
