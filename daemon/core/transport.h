// What the engine needs from the WebSocket library, as values it can decide on.
#pragma once

#include <span>

#include "daemon/core/shared_frame.h"

namespace shopcast {

struct Session;

// The outcome of one write, modelled on uWebSockets' send(): the Hub alone decides from it
// whether a connection keeps receiving, waits for its socket, or is closed as slow.
enum class SendResult {
    sent,          // the socket took every byte; more may follow at once
    backpressure,  // accepted, but part of it waits in the transport: write nothing more
                   // until on_writeable()
    dropped,       // the connection is gone; nothing was or will be delivered
};

// Implemented by the glue (lws). Called on the service thread only.
class SessionTransport {
  public:
    virtual ~SessionTransport() = default;
    // Writes `frames` back to back, in one send where the transport can.
    virtual SendResult send(Session& session, std::span<const SharedFrame* const> frames) = 0;
    // Asks for Hub::on_writeable(session) once the connection can take a write.
    virtual void wake(Session& session) = 0;
};

}  // namespace shopcast
