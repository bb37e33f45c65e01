#include "daemon/core/frame_rules.h"

#include <cstdint>

namespace shopcast {

bool is_valid_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto lead = static_cast<std::uint8_t>(text[i]);
        if (lead < 0x80) {
            ++i;
            continue;
        }
        // The length of the sequence, and the range its second byte must fall in: the narrow
        // ranges after E0, ED, F0 and F4 exclude overlong forms, surrogates and > U+10FFFF.
        std::size_t length = 0;
        std::uint8_t second_min = 0x80;
        std::uint8_t second_max = 0xbf;
        if (lead >= 0xc2 && lead <= 0xdf) {
            length = 2;
        } else if (lead >= 0xe0 && lead <= 0xef) {
            length = 3;
            if (lead == 0xe0) second_min = 0xa0;
            if (lead == 0xed) second_max = 0x9f;
        } else if (lead >= 0xf0 && lead <= 0xf4) {
            length = 4;
            if (lead == 0xf0) second_min = 0x90;
            if (lead == 0xf4) second_max = 0x8f;
        } else {
            return false;  // a continuation byte, C0/C1 (overlong) or F5..FF
        }
        if (text.size() - i < length) return false;
        const auto second = static_cast<std::uint8_t>(text[i + 1]);
        if (second < second_min || second > second_max) return false;
        for (std::size_t k = 2; k < length; ++k) {
            const auto next = static_cast<std::uint8_t>(text[i + k]);
            if (next < 0x80 || next > 0xbf) return false;
        }
        i += length;
    }
    return true;
}

bool is_valid_close_code(unsigned code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

PeerCloseVerdict judge_peer_close(std::string_view payload) {
    if (payload.empty()) return {true, 0};                         // no code at all is allowed
    if (payload.size() == 1) return {false, kCloseProtocolError};  // half a code
    const unsigned code = (static_cast<unsigned>(static_cast<std::uint8_t>(payload[0])) << 8) |
                          static_cast<std::uint8_t>(payload[1]);
    if (!is_valid_close_code(code)) return {false, kCloseProtocolError};
    if (!is_valid_utf8(payload.substr(2))) return {false, kCloseInvalidPayload};
    return {true, 0};
}

}  // namespace shopcast
