#include "daemon/core/client_action.h"

#include <rapidjson/document.h>

#include <algorithm>

#include "common/event.h"

namespace shopcast {
namespace {

constexpr unsigned kParseFlags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;
constexpr std::size_t kMaxCursorLength = 64;

ClientActionResult refuse(std::string error) {
    ClientActionResult result;
    result.error = std::move(error);
    return result;
}

// HasMember + operator[] rather than FindMember() == MemberEnd(): RapidJSON's iterator comparison
// is ambiguous under C++20's reversed operators, which clang rejects with -Werror.
const rapidjson::Value* find_member(const rapidjson::Value& object, const char* name) {
    return object.HasMember(name) ? &object[name] : nullptr;
}

std::optional<std::string> shop_text(const rapidjson::Value& value) {
    if (value.IsString()) return id_from_string({value.GetString(), value.GetStringLength()});
    if (value.IsUint64() && !value.IsDouble()) return id_from_integer(value.GetUint64());
    return std::nullopt;
}

bool parse_shops(const rapidjson::Value& document, ClientActionResult& result) {
    const rapidjson::Value* member = find_member(document, "shops");
    if (member == nullptr || !member->IsArray()) {
        result.error = "shops must be an array of shop ids";
        return false;
    }
    auto& shops = result.action.shops;
    for (const auto& item : member->GetArray()) {
        auto text = shop_text(item);
        if (!text) {
            result.error =
                "each shop id must be an integer from 1 to 2^53-1 or a string of 1-64 "
                "characters from [A-Za-z0-9_-]";
            return false;
        }
        shops.push_back(std::move(*text));
    }
    std::sort(shops.begin(), shops.end());
    shops.erase(std::unique(shops.begin(), shops.end()), shops.end());
    return true;
}

bool parse_string_field(const rapidjson::Value& document, const char* name, std::size_t max_length,
                        std::string& out, ClientActionResult& result) {
    const rapidjson::Value* member = find_member(document, name);
    if (member == nullptr || !member->IsString() || member->GetStringLength() == 0 ||
        member->GetStringLength() > max_length) {
        result.error = std::string(name) + " must be a non-empty string";
        return false;
    }
    out.assign(member->GetString(), member->GetStringLength());
    return true;
}

}  // namespace

ClientActionResult parse_client_action(std::string_view text) {
    if (text.size() > kMaxClientMessageBytes) return refuse("message too large");
    // A raw NUL would end RapidJSON's input early; it is never valid JSON.
    if (text.find('\0') != std::string_view::npos) return refuse("NUL byte in message");
    // Messages are at most 4 KiB: stack buffers spare RapidJSON's default 64 KiB heap chunk.
    char value_buffer[16 * 1024];
    char parse_buffer[4 * 1024];
    rapidjson::MemoryPoolAllocator<> value_allocator(value_buffer, sizeof(value_buffer));
    rapidjson::MemoryPoolAllocator<> parse_allocator(parse_buffer, sizeof(parse_buffer));
    rapidjson::GenericDocument<rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<>,
                               rapidjson::MemoryPoolAllocator<>>
        document(&value_allocator, sizeof(parse_buffer), &parse_allocator);
    document.Parse<kParseFlags>(text.data(), text.size());
    if (document.HasParseError() || !document.IsObject()) {
        return refuse("messages must be JSON objects with an action");
    }
    const rapidjson::Value* action = find_member(document, "action");
    if (action == nullptr || !action->IsString()) return refuse("action is required");
    std::string_view name(action->GetString(), action->GetStringLength());

    ClientActionResult result;
    bool ok = false;
    if (name == "auth") {
        result.action.kind = ClientActionKind::auth;
        ok = parse_string_field(document, "initData", kMaxClientMessageBytes,
                                result.action.init_data, result);
    } else if (name == "subscribe" || name == "unsubscribe") {
        result.action.kind =
            name == "subscribe" ? ClientActionKind::subscribe : ClientActionKind::unsubscribe;
        ok = parse_shops(document, result);
    } else if (name == "resume") {
        result.action.kind = ClientActionKind::resume;
        ok = parse_string_field(document, "since", kMaxCursorLength, result.action.since, result);
    } else {
        return refuse("unknown action; expected auth, subscribe, unsubscribe or resume");
    }
    result.ok = ok;
    return result;
}

}  // namespace shopcast
