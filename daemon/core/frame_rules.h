// What RFC 6455 asks of the frames a browser sends that libwebsockets 4.1.6 leaves to us: the
// text of a message and the payload of a close frame.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

namespace shopcast {

constexpr int kCloseProtocolError = 1002;
constexpr int kCloseInvalidPayload = 1007;

// Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF, no
// sequence cut short.
bool is_valid_utf8(std::string_view text);

// A code a peer may put in its close frame (RFC 6455 7.4): 1000-1003, 1007-1011 and the
// application range 3000-4999. 1004-1006 and 1015 are never sent; 1012-1014 are for servers to
// send, and libwebsockets already answers them with 1002.
bool is_valid_close_code(unsigned code);

// What a close frame from the peer calls for: echoing it (the normal closing handshake), or
// failing the connection with `code` (1002 for a malformed frame or a code no peer may send,
// 1007 for a reason that is not UTF-8).
struct PeerCloseVerdict {
    bool echo;
    int code;  // when !echo
};
PeerCloseVerdict judge_peer_close(std::string_view payload);

// Follows the frame headers in the byte stream a client sends after the handshake, to see what
// libwebsockets 4.1.6 does not tell: whether each frame is masked (RFC 6455 5.1: a server must
// fail a connection whose client sends a frame without a mask). One per watched connection.
class FrameHeaderScanner {
  public:
    // Takes the next bytes of the stream and says how many of them come before the first frame
    // without a mask (all of them while every frame is masked; none once one was seen).
    std::size_t feed(std::span<const unsigned char> bytes);
    bool unmasked_frame_seen() const { return unmasked_; }
    // The PING frames whose headers were fed since the last call.
    std::uint64_t take_pings() { return std::exchange(pings_, 0); }

  private:
    std::uint64_t skip_left_ = 0;  // key and payload bytes of the current frame still to come
    std::array<unsigned char, 10> header_{};  // the next header up to its length
    std::size_t header_have_ = 0;
    bool unmasked_ = false;
    std::uint64_t pings_ = 0;
};

}  // namespace shopcast
