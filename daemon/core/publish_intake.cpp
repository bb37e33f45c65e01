#include "daemon/core/publish_intake.h"

#include "common/event.h"

namespace shopcast {

IntakeItem check_publish_payload(std::string_view payload) {
    IntakeItem item;
    std::optional<ipc::PublishRequest> request = ipc::decode_request(payload);
    if (!request) {
        item.refusal = "malformed request frame";
        return item;
    }
    const ValidatedEvent claimed{request->type, request->shop_id, request->user_id, request->json};
    if (std::optional<std::string> error = forwarded_event_error(claimed)) {
        item.refusal = "invalid event: " + *error;
        return item;
    }
    item.request = std::move(request);
    return item;
}

std::optional<IntakeItem> PublishIntake::next() {
    std::optional<std::string> payload = reader_.next_payload();
    if (!payload) return std::nullopt;
    return check_publish_payload(*payload);
}

}  // namespace shopcast
