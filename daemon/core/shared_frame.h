// A serialized message with room in front for the WebSocket header.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

namespace shopcast {

// Headroom libwebsockets needs in front of a payload (LWS_PRE; checked in ws_protocol.cpp).
inline constexpr std::size_t kFrameHeadroom = 16;

// One per published event, shared by the history and every recipient: a payload is serialized
// once, never copied per connection. The headroom is scratch space the writer fills with the
// same WebSocket header for every recipient, so sharing it on one service thread is safe.
class SharedFrame {
  public:
    explicit SharedFrame(std::string_view payload) : bytes_(kFrameHeadroom + payload.size()) {
        std::copy(payload.begin(), payload.end(), bytes_.begin() + kFrameHeadroom);
    }

    std::string_view payload() const {
        return {reinterpret_cast<const char*>(bytes_.data()) + kFrameHeadroom,
                bytes_.size() - kFrameHeadroom};
    }
    std::size_t size() const { return bytes_.size() - kFrameHeadroom; }
    // The payload pointer handed to lws_write(), which writes the header into the headroom.
    unsigned char* payload_for_writer() const { return bytes_.data() + kFrameHeadroom; }

  private:
    mutable std::vector<unsigned char> bytes_;
};

using FramePtr = std::shared_ptr<const SharedFrame>;

inline FramePtr make_frame(std::string_view payload) {
    return std::make_shared<const SharedFrame>(payload);
}

}  // namespace shopcast
