// The browser-facing WebSocket protocol: lws events in, Hub calls out.
#pragma once

#include <libwebsockets.h>

#include <string>
#include <vector>

#include "daemon/core/hub.h"

namespace shopcast {

// One per daemon; the WebSocket vhost's user pointer.
struct WebSocketContext {
    Hub* hub = nullptr;
    std::vector<std::string> allowed_origins;
    bool trust_real_ip_header = false;  // only nginx can reach a Unix-socket listener
    std::int64_t live_hold_ms = 1000;
};

// Writes the Hub's pre-framed bytes to a session's connection and reports lws' backpressure.
class LwsSessionTransport final : public SessionTransport {
  public:
    SendResult send(Session& session, std::span<const SharedFrame* const> frames) override;
    void wake(Session& session) override;

  private:
    std::vector<unsigned char> cork_;  // several frames copied into one send
};

lws_protocols websocket_protocol();

}  // namespace shopcast
