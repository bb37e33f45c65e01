#include "daemon/core/cursor.h"

#include <openssl/rand.h>

#include <array>
#include <charconv>
#include <stdexcept>

namespace shopcast {
namespace {

constexpr std::size_t kMaxEpochLength = 16;
constexpr std::size_t kNewEpochLength = 6;
constexpr std::string_view kBase36 = "0123456789abcdefghijklmnopqrstuvwxyz";

bool is_epoch_character(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
}

}  // namespace

std::string format_cursor(std::string_view epoch, std::uint64_t seq) {
    std::string text(epoch);
    text.push_back(':');
    text.append(std::to_string(seq));
    return text;
}

std::optional<EventCursor> parse_cursor(std::string_view text) {
    auto colon = text.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon > kMaxEpochLength) {
        return std::nullopt;
    }
    std::string_view epoch = text.substr(0, colon);
    std::string_view digits = text.substr(colon + 1);
    for (char c : epoch) {
        if (!is_epoch_character(c)) return std::nullopt;
    }
    if (digits.empty() || digits.size() > 19 || (digits.size() > 1 && digits[0] == '0')) {
        return std::nullopt;
    }
    EventCursor cursor{std::string(epoch), 0};
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), cursor.seq);
    if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
    return cursor;
}

std::string new_epoch() {
    std::array<unsigned char, kNewEpochLength> random{};
    if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
        throw std::runtime_error("cannot draw random bytes for the epoch");
    }
    std::string epoch;
    for (unsigned char byte : random) epoch.push_back(kBase36[byte % kBase36.size()]);
    return epoch;
}

}  // namespace shopcast
