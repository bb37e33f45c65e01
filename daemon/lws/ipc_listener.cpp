#include "daemon/lws/ipc_listener.h"

#include "common/log.h"
#include "daemon/lws/guarded_callback.h"

namespace shopcast {
namespace {

IpcListener& listener_of(lws* wsi) {
    return *static_cast<IpcListener*>(lws_get_vhost_user(lws_get_vhost(wsi)));
}

int callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, std::size_t len) {
    switch (reason) {
        case LWS_CALLBACK_RAW_ADOPT:
            return listener_of(wsi).on_adopt(wsi);
        case LWS_CALLBACK_RAW_RX:
            return listener_of(wsi).on_receive(wsi, {static_cast<const char*>(in), len});
        case LWS_CALLBACK_RAW_CLOSE:
            listener_of(wsi).on_close(wsi);
            return 0;
        default:
            return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

}  // namespace

int IpcListener::on_adopt(lws* wsi) {
    connections_[wsi] = std::make_unique<Connection>();
    return 0;
}

int IpcListener::on_receive(lws* wsi, std::string_view bytes) {
    auto it = connections_.find(wsi);
    if (it == connections_.end()) return -1;
    Connection& connection = *it->second;
    if (!connection.reader.feed(bytes)) {
        log_line(LogLevel::warning, "dropping a publisher connection: oversized frame");
        return -1;
    }
    bool published = false;
    while (auto payload = connection.reader.next_payload()) {
        if (std::optional<ipc::Query> query = ipc::decode_query(*payload)) {
            std::string reply = ipc::encode_query_reply(ops_.answer(*query));
            const int written = lws_write(wsi, reinterpret_cast<unsigned char*>(reply.data()),
                                          reply.size(), LWS_WRITE_RAW);
            if (written < static_cast<int>(reply.size())) return -1;
            continue;
        }
        ipc::PublishAck ack;
        if (auto request = ipc::decode_request(*payload)) {
            ack = sink_.publish(*request);
            published = true;
        } else {
            log_line(LogLevel::warning, "refusing a malformed publish request");
        }
        // Written at once: lws keeps whatever the socket does not take and sends it first.
        std::string frame = ipc::encode_ack(ack);
        const int written = lws_write(wsi, reinterpret_cast<unsigned char*>(frame.data()),
                                      frame.size(), LWS_WRITE_RAW);
        if (written < static_cast<int>(frame.size())) return -1;
    }
    if (published) schedule_delivery(wsi);
    return 0;
}

void IpcListener::schedule_delivery(lws* wsi) {
    if (delivery_scheduled_) return;
    delivery_scheduled_ = true;
    lws_sul_schedule(lws_get_context(wsi), 0, &delivery_.timer, deliver, 0);
}

void IpcListener::deliver(lws_sorted_usec_list_t* timer) {
    IpcListener& listener = *reinterpret_cast<DeliveryTimer*>(timer)->listener;
    listener.delivery_scheduled_ = false;
    listener.sink_.deliver_published();
}

lws_protocols ipc_protocol() {
    lws_protocols protocol{};
    protocol.name = kIpcProtocolName;
    protocol.callback = guarded_callback<callback>;
    return protocol;
}

}  // namespace shopcast
