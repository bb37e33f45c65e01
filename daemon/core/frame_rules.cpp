#include "daemon/core/frame_rules.h"

#include <algorithm>
#include <cstdint>

namespace shopcast {

namespace {
constexpr unsigned kOpcodePing = 0x9;
}  // namespace

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

std::size_t FrameHeaderScanner::feed(std::span<const unsigned char> bytes) {
    if (unmasked_) return 0;
    std::size_t at = 0;
    std::size_t header_start = 0;  // where the header being read began in `bytes`
    while (at < bytes.size()) {
        if (skip_left_ > 0) {  // neither the key nor the payload says anything about masking
            const auto skip = std::min<std::uint64_t>(skip_left_, bytes.size() - at);
            skip_left_ -= skip;
            at += static_cast<std::size_t>(skip);
            continue;
        }
        if (header_have_ == 0) header_start = at;
        header_[header_have_++] = bytes[at++];
        if (header_have_ < 2) continue;
        if ((header_[1] & 0x80) == 0) {
            unmasked_ = true;
            // Its first byte may have come in an earlier piece.
            return header_have_ == at - header_start ? header_start : 0;
        }
        const unsigned length7 = header_[1] & 0x7f;
        const std::size_t length_bytes = length7 == 126 ? 2 : length7 == 127 ? 8 : 0;
        if (header_have_ < 2 + length_bytes) continue;
        std::uint64_t length = length7;
        if (length_bytes > 0) {
            length = 0;
            for (std::size_t k = 0; k < length_bytes; ++k) length = (length << 8) | header_[2 + k];
        }
        if ((header_[0] & 0x0f) == kOpcodePing) ++pings_;
        header_have_ = 0;
        // The 4-byte key, then the payload (lws refuses lengths with the top bit set).
        skip_left_ = 4 + std::min<std::uint64_t>(length, UINT64_MAX - 4);
    }
    return bytes.size();
}

}  // namespace shopcast
