// The browser-facing WebSocket protocol: lws events in, Hub calls out.
#pragma once

#include <libwebsockets.h>

#include <string>
#include <vector>

#include "daemon/core/client_address.h"
#include "daemon/core/hub.h"

namespace shopcast {

// One per listener; the WebSocket vhost's user pointer.
struct WebSocketContext {
    Hub* hub = nullptr;
    const std::vector<std::string>* allowed_origins = nullptr;
    const std::vector<AddressRange>* trusted_proxies = nullptr;
    bool unix_listener = false;  // only nginx can reach it: X-Real-IP is the client
    std::int64_t live_hold_ms = 1000;
    std::string listener_name;  // the vhost's name: lws keeps the pointer, not a copy
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
