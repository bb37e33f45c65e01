// Publish-event schema: what a bot may POST and what the daemon receives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shopcast {

inline constexpr std::size_t kMaxEventBytes = 64 * 1024;
inline constexpr int kMaxJsonDepth = 32;

enum class EventError { invalid_json, invalid_event };

// A publish body that passed every rule. IDs are kept as their text, so 7 and "7" are equal.
struct ValidatedEvent {
    std::string type;
    std::string shop_id;  // empty when the event names no shop
    std::string user_id;  // empty for a public event
    std::string json;     // the object exactly as received, surrounding whitespace trimmed
};

struct ValidationPolicy {
    // Event types that must carry userId (SHOPCAST_REQUIRE_USER_FOR).
    std::vector<std::string> require_user_for;
};

struct ValidationResult {
    bool ok = false;
    ValidatedEvent event;
    EventError error = EventError::invalid_json;
    std::string message;  // says what is wrong and, for event rules, which field
};

// Applies DESIGN.md's publish rules to one request body (not NUL-terminated).
ValidationResult validate_event(std::string_view body, const ValidationPolicy& policy);

// The textual form of an ID (DESIGN.md: integer 1..2^53-1, or 1-64 characters [A-Za-z0-9_-]),
// or nullopt when the value breaks the rule. Shared by the publish and subscribe paths.
std::optional<std::string> id_from_string(std::string_view text);
std::optional<std::string> id_from_integer(std::uint64_t number);

// True when `type` is one of the published event types.
bool is_known_event_type(std::string_view type);

// The daemon's check of an event that arrived over IPC: `claimed.json` must pass validate_event's
// rules (the publisher's ValidationPolicy is shopcast-fcgi's to apply), and the type and routing
// fields sent beside it must be exactly what that JSON holds, or a private event could be routed
// as public. nullopt when the event holds; otherwise what is wrong with it.
std::optional<std::string> forwarded_event_error(const ValidatedEvent& claimed);

}  // namespace shopcast
