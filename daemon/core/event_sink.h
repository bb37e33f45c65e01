// Where events enter the daemon. The local IPC listener feeds it today; a Redis Stream reader
// would feed the same interface, so the fan-out never knows where an event came from.
#pragma once

#include "common/ipc.h"

namespace shopcast {

class EventSink {
  public:
    virtual ~EventSink() = default;
    // Broadcasts one validated event (or answers a duplicate) and says what happened.
    virtual ipc::PublishAck publish(const ipc::PublishRequest& request) = 0;
};

}  // namespace shopcast
