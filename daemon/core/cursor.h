// Event cursors: the opaque `id` strings browsers hold. Only the history code looks inside one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shopcast {

// "<epoch>:<seq>": epoch is 1-16 characters [0-9a-z], new at every daemon start; seq counts
// events from 1 within the epoch (0 means "before the first event").
struct EventCursor {
    std::string epoch;
    std::uint64_t seq = 0;
};

std::string format_cursor(std::string_view epoch, std::uint64_t seq);
std::optional<EventCursor> parse_cursor(std::string_view text);

// A fresh random epoch of 6 base-36 characters.
std::string new_epoch();

}  // namespace shopcast
