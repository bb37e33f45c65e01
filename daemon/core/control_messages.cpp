#include "daemon/core/control_messages.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstdint>

namespace shopcast::control {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void write_string(Writer& writer, std::string_view text) {
    writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
}

bool is_decimal(std::string_view text) {
    return !text.empty() && text[0] != '0' &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// IDs keep the form a bot would use: 123 stays a number, "abc" a string.
void write_id(Writer& writer, std::string_view id) {
    if (is_decimal(id) && id.size() <= 16) {
        writer.Uint64(std::stoull(std::string(id)));
    } else {
        write_string(writer, id);
    }
}

std::string typed_message(std::string_view type, std::string_view key, std::string_view value) {
    rapidjson::StringBuffer buffer;
    Writer writer(buffer);
    writer.StartObject();
    writer.Key("type");
    write_string(writer, type);
    write_string(writer, key);
    write_string(writer, value);
    writer.EndObject();
    return {buffer.GetString(), buffer.GetSize()};
}

}  // namespace

std::string hello(std::string_view cursor) {
    return typed_message("hello", "id", cursor);
}
std::string resync(std::string_view reason) {
    return typed_message("resync", "reason", reason);
}
std::string error(std::string_view message) {
    return typed_message("error", "message", message);
}

std::string auth_ok(std::string_view user_id) {
    rapidjson::StringBuffer buffer;
    Writer writer(buffer);
    writer.StartObject();
    writer.Key("type");
    writer.String("auth_ok");
    writer.Key("userId");
    write_id(writer, user_id);
    writer.EndObject();
    return {buffer.GetString(), buffer.GetSize()};
}

std::string subscribed(const std::vector<std::string>& shops) {
    rapidjson::StringBuffer buffer;
    Writer writer(buffer);
    writer.StartObject();
    writer.Key("type");
    writer.String("subscribed");
    writer.Key("shops");
    writer.StartArray();
    for (const auto& shop : shops) write_id(writer, shop);
    writer.EndArray();
    writer.EndObject();
    return {buffer.GetString(), buffer.GetSize()};
}

}  // namespace shopcast::control
