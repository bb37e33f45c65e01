// A serialized message, already framed as the WebSocket text frame every browser receives.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace shopcast {

// One per published event, shared by the history and every recipient: a payload is serialized
// and framed once, never copied or re-framed per connection. Server-to-browser frames are not
// masked, so the same bytes are right for every recipient.
class SharedFrame {
  public:
    explicit SharedFrame(std::string_view payload);

    std::string_view payload() const {
        return {reinterpret_cast<const char*>(wire_.data()) + header_size_,
                wire_.size() - header_size_};
    }
    std::size_t size() const { return wire_.size() - header_size_; }
    // The whole frame (FIN + text opcode, length, payload) as it goes on the socket.
    std::span<const unsigned char> wire() const { return wire_; }

  private:
    std::vector<unsigned char> wire_;
    std::size_t header_size_ = 0;
};

using FramePtr = std::shared_ptr<const SharedFrame>;

inline FramePtr make_frame(std::string_view payload) {
    return std::make_shared<const SharedFrame>(payload);
}

}  // namespace shopcast
