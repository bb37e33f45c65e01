// The browser-facing WebSocket protocol: lws events in, Hub calls out.
#pragma once

#include <libwebsockets.h>

#include <string>
#include <vector>

#include "daemon/core/client_address.h"
#include "daemon/core/hub.h"
#include "daemon/core/keepalive_schedule.h"

namespace shopcast {

// One per listener; the WebSocket vhost's user pointer.
struct WebSocketContext {
    Hub* hub = nullptr;
    KeepaliveSchedule* keepalive = nullptr;  // one for the daemon: every listener's connections
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

// The daemon's one keepalive timer, on the context: every second it sends a PING to each
// connection the schedule says is due and drops each silent past the hangup timeout. It replaces
// lws' per-connection validity timers, which lws 4.1.6 keeps in one sorted list (an O(n) insert
// per PONG). Must go before the context does.
class KeepaliveTimer {
  public:
    KeepaliveTimer(lws_context* context, KeepaliveSchedule& schedule);
    ~KeepaliveTimer();
    KeepaliveTimer(const KeepaliveTimer&) = delete;
    KeepaliveTimer& operator=(const KeepaliveTimer&) = delete;

  private:
    static constexpr lws_usec_t kTickUsec = LWS_US_PER_SEC;
    static void tick(lws_sorted_usec_list_t* timer);

    lws_sorted_usec_list_t timer_{};
    lws_context* context_;
    KeepaliveSchedule* schedule_;
};

lws_protocols websocket_protocol();

}  // namespace shopcast
