#include "daemon/core/publish_intake.h"

#include "common/event.h"

namespace shopcast {
namespace {

// A refusal goes to the log and may quote the payload (a duplicate key's name): one line of
// printable text, whatever the peer sent.
std::string printable(std::string_view text) {
    constexpr std::size_t kMaxLength = 200;
    std::string line(text.substr(0, kMaxLength));
    for (char& c : line) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    if (text.size() > kMaxLength) line += "...";
    return line;
}

}  // namespace

IntakeItem check_publish_payload(std::string_view payload) {
    IntakeItem item;
    std::optional<ipc::PublishRequest> request = ipc::decode_request(payload);
    if (!request) {
        item.refusal = "malformed request frame";
        return item;
    }
    const ValidatedEvent claimed{request->type, request->shop_id, request->user_id, request->json};
    if (std::optional<std::string> error = forwarded_event_error(claimed)) {
        item.refusal = "invalid event: " + printable(*error);
        return item;
    }
    item.request = std::move(request);
    return item;
}

std::optional<IntakeItem> PublishIntake::next() {
    std::optional<std::string> payload = reader_.next_payload();
    if (!payload) return std::nullopt;
    if (std::optional<ipc::Query> query = ipc::decode_query(*payload)) {
        IntakeItem item;
        item.query = *query;
        return item;
    }
    return check_publish_payload(*payload);
}

}  // namespace shopcast
