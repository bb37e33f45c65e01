// What the daemon makes of the bytes a publisher connection sends: frames reassembled, each
// request decoded and its event checked against common/event's rules, whatever shopcast-fcgi
// already checked. No lws in here: the IPC listener feeds it and acts on what comes out.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/ipc.h"

namespace shopcast {

// One complete frame's verdict: an operator query (health, metrics; not an event, so not checked
// against the event rules), a request fit to publish, or why it is refused.
struct IntakeItem {
    std::optional<ipc::Query> query;
    std::optional<ipc::PublishRequest> request;
    std::string refusal;  // set exactly when `query` and `request` are both empty
};

// The verdict on one frame payload (without its header).
IntakeItem check_publish_payload(std::string_view payload);

// One per publisher connection, owned by the IPC listener.
class PublishIntake {
  public:
    // Appends received bytes. False once a frame announces more than ipc::kMaxPayloadBytes: the
    // stream is then unusable and the connection should be dropped.
    bool feed(std::string_view bytes) { return reader_.feed(bytes); }

    // The verdict on the next complete frame, if one has fully arrived.
    std::optional<IntakeItem> next();

  private:
    ipc::FrameReader reader_;
};

}  // namespace shopcast
