// Where events enter the daemon. The local IPC listener feeds it today; a Redis Stream reader
// would feed the same interface, so the fan-out never knows where an event came from.
#pragma once

#include "common/ipc.h"

namespace shopcast {

class EventSink {
  public:
    virtual ~EventSink() = default;
    // Records one validated event (or answers a duplicate) and says what happened. The answer
    // comes first: the event reaches browsers at the next deliver_published(), so the
    // publisher's wait does not grow with the number of browsers.
    virtual ipc::PublishAck publish(const ipc::PublishRequest& request) = 0;
    // Fans out everything published since the last call. The source calls it once the acks of
    // what it just published are written.
    virtual void deliver_published() = 0;
};

}  // namespace shopcast
