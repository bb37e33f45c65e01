#include "daemon/core/shared_frame.h"

#include <algorithm>
#include <cstdint>

namespace shopcast {
namespace {

constexpr unsigned char kFinalTextFrame = 0x81;  // FIN bit + opcode 1 (RFC 6455 5.2)
constexpr unsigned char kLength16 = 126;
constexpr unsigned char kLength64 = 127;

}  // namespace

SharedFrame::SharedFrame(std::string_view payload) {
    const std::uint64_t length = payload.size();
    std::size_t length_bytes = 0;
    unsigned char length_code = static_cast<unsigned char>(length);
    if (length >= 65536) {
        length_code = kLength64;
        length_bytes = 8;
    } else if (length >= kLength16) {
        length_code = kLength16;
        length_bytes = 2;
    }
    header_size_ = 2 + length_bytes;
    wire_.resize(header_size_ + payload.size());
    wire_[0] = kFinalTextFrame;
    wire_[1] = length_code;
    for (std::size_t i = 0; i < length_bytes; ++i) {  // network byte order
        wire_[2 + i] = static_cast<unsigned char>(length >> (8 * (length_bytes - 1 - i)));
    }
    std::copy(payload.begin(), payload.end(), wire_.begin() + static_cast<long>(header_size_));
}

}  // namespace shopcast
