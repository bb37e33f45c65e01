#include "common/event.h"

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>

namespace shopcast {
namespace {

constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag |
                                 rapidjson::kParseValidateEncodingFlag |
                                 rapidjson::kParseNumbersAsStringsFlag;
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

// A top-level member as the rules need it: its JSON kind and, for strings and numbers, its text.
struct TopLevelValue {
    enum class Kind { string, number, other } kind = Kind::other;
    std::string text;  // a string's decoded value, or a number's literal exactly as written
};

// One SAX pass over the raw bytes, without recursion: refuses nesting beyond kMaxJsonDepth,
// notes duplicate keys at any level (a DOM would keep both silently), and records the top-level
// members. Numbers arrive as their literal text, so 1e400 is valid JSON (an invalid ID), not a
// parse error, and an integer ID is judged by how it was written.
class EventReader : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, EventReader> {
  public:
    bool Null() { return scalar(TopLevelValue::Kind::other, {}); }
    bool Bool(bool) { return scalar(TopLevelValue::Kind::other, {}); }
    bool RawNumber(const char* text, rapidjson::SizeType length, bool) {
        return scalar(TopLevelValue::Kind::number, {text, length});
    }
    bool String(const char* text, rapidjson::SizeType length, bool) {
        return scalar(TopLevelValue::Kind::string, {text, length});
    }
    bool StartObject() { return open_container(); }
    bool StartArray() { return open_container(); }
    bool EndObject(rapidjson::SizeType) { return close_container(); }
    bool EndArray(rapidjson::SizeType) { return close_container(); }
    bool Key(const char* text, rapidjson::SizeType length, bool) {
        std::string key(text, length);
        if (!keys_.back().insert(key).second && duplicate_key_.empty()) duplicate_key_ = key;
        if (depth_ == 1) pending_key_ = std::move(key);
        return true;
    }

    bool too_deep() const { return too_deep_; }
    bool root_is_object() const { return root_is_object_; }
    const std::string& duplicate_key() const { return duplicate_key_; }
    const TopLevelValue* member(std::string_view key) const {
        auto it = members_.find(std::string(key));
        return it == members_.end() ? nullptr : &it->second;
    }

  private:
    bool scalar(TopLevelValue::Kind kind, std::string_view text) {
        if (depth_ == 1) members_[pending_key_] = TopLevelValue{kind, std::string(text)};
        return true;
    }
    bool open_container() {
        if (depth_ == 0) root_is_object_ = keys_.empty() && !seen_root_;
        seen_root_ = true;
        if (depth_ == 1) members_[pending_key_] = TopLevelValue{};
        keys_.emplace_back();
        if (++depth_ > kMaxJsonDepth) too_deep_ = true;
        return !too_deep_;
    }
    bool close_container() {
        keys_.pop_back();
        --depth_;
        return true;
    }

    std::vector<std::set<std::string>> keys_;
    std::map<std::string, TopLevelValue> members_;
    std::string pending_key_;
    std::string duplicate_key_;
    int depth_ = 0;
    bool too_deep_ = false;
    bool seen_root_ = false;
    bool root_is_object_ = false;
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

// An integer literal: digits only (no sign, fraction or exponent) and at most 2^53-1.
std::optional<std::string> id_from_literal(std::string_view literal) {
    if (literal.empty() || literal.size() > 16) return std::nullopt;
    std::uint64_t number = 0;
    for (char c : literal) {
        if (c < '0' || c > '9') return std::nullopt;
        number = number * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return id_from_integer(number);
}

std::optional<std::string> id_text(const TopLevelValue& value) {
    switch (value.kind) {
        case TopLevelValue::Kind::string:
            return id_from_string(value.text);
        case TopLevelValue::Kind::number:
            return id_from_literal(value.text);
        case TopLevelValue::Kind::other:
            break;
    }
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
    // RapidJSON reads a NUL as the end of input and would ignore whatever follows it; a raw NUL
    // is never valid JSON, so it is refused before parsing.
    if (json.find('\0') != std::string_view::npos) {
        return fail(EventError::invalid_json, "NUL byte in request body");
    }

    EventReader event;
    rapidjson::Reader reader;
    rapidjson::MemoryStream stream(json.data(), json.size());
    rapidjson::ParseResult parsed = reader.Parse<kParseFlags>(stream, event);
    if (event.too_deep()) {
        return fail(EventError::invalid_json,
                    "JSON nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    }
    if (parsed.IsError()) {
        return fail(EventError::invalid_json, std::string("invalid JSON at byte ") +
                                                  std::to_string(parsed.Offset()) + ": " +
                                                  rapidjson::GetParseError_En(parsed.Code()));
    }
    if (!event.root_is_object()) {
        return fail(EventError::invalid_event, "body must be a JSON object");
    }
    if (!event.duplicate_key().empty()) {
        return fail(EventError::invalid_event, "duplicate key \"" + event.duplicate_key() + "\"");
    }

    const TopLevelValue* type_value = event.member("type");
    if (type_value == nullptr) return fail(EventError::invalid_event, "type is required");
    if (type_value->kind != TopLevelValue::Kind::string) {
        return fail(EventError::invalid_event, "type must be a string");
    }
    const std::string& type = type_value->text;
    const TypeRule* rule = find_rule(type);
    if (rule == nullptr) {
        return fail(EventError::invalid_event,
                    "unknown type; expected one of product_added, product_updated, "
                    "product_deleted, order_status, new_subscriber, shop_updated");
    }
    if (event.member("id") != nullptr) {
        return fail(EventError::invalid_event, "id is reserved for the server");
    }
    for (std::string_view field : rule->required) {
        if (!field.empty() && event.member(field) == nullptr) {
            return fail(EventError::invalid_event, std::string(field) + " is required for " + type);
        }
    }

    ValidationResult result;
    for (std::string_view field : kIdFields) {
        const TopLevelValue* value = event.member(field);
        if (value == nullptr) continue;
        auto text = id_text(*value);
        if (!text) {
            return fail(EventError::invalid_event,
                        std::string(field) +
                            " must be an integer from 1 to 2^53-1 or a string of 1-64 characters "
                            "from [A-Za-z0-9_-]");
        }
        if (field == "shopId") result.event.shop_id = std::move(*text);
        if (field == "userId") result.event.user_id = std::move(*text);
    }

    if (const TopLevelValue* status = event.member("status")) {
        const bool valid = status->kind == TopLevelValue::Kind::string && !status->text.empty() &&
                           count_code_points(status->text) <= kMaxStatusLength;
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
    result.event.type = type;
    result.event.json.assign(json);
    return result;
}

std::optional<std::string> forwarded_event_error(const ValidatedEvent& claimed) {
    const ValidationResult checked = validate_event(claimed.json, ValidationPolicy{});
    if (!checked.ok) return checked.message;
    const ValidatedEvent& event = checked.event;
    if (event.json != claimed.json) return "event JSON has surrounding whitespace";
    if (event.type != claimed.type) return "type field disagrees with the event JSON";
    if (event.shop_id != claimed.shop_id) return "shop id field disagrees with the event JSON";
    if (event.user_id != claimed.user_id) return "user id field disagrees with the event JSON";
    return std::nullopt;
}

}  // namespace shopcast
