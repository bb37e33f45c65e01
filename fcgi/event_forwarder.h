// The seam between the publish handler and the daemon: production code talks to shopcastd over
// its events socket (DaemonClient); tests substitute a fake.
#pragma once

#include <optional>

#include "common/ipc.h"

namespace shopcast::fcgi {

class EventForwarder {
  public:
    virtual ~EventForwarder() = default;

    // Hands one validated event to the daemon and waits for its acknowledgement. nullopt when
    // the daemon could not be reached or did not answer in time; the event may then still have
    // been broadcast, which is why bots retry with the same Idempotency-Key.
    virtual std::optional<ipc::PublishAck> forward(const ipc::PublishRequest& request) = 0;
};

}  // namespace shopcast::fcgi
