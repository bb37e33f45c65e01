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
        case LWS_CALLBACK_RAW_WRITEABLE:
            return listener_of(wsi).on_writeable(wsi);
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
    while (auto payload = connection.reader.next_payload()) {
        ipc::PublishAck ack;
        if (auto request = ipc::decode_request(*payload)) {
            ack = sink_.publish(*request);
        } else {
            log_line(LogLevel::warning, "refusing a malformed publish request");
        }
        connection.acks.push_back(std::string(LWS_PRE, '\0') + ipc::encode_ack(ack));
    }
    if (!connection.acks.empty()) lws_callback_on_writable(wsi);
    return 0;
}

int IpcListener::on_writeable(lws* wsi) {
    auto it = connections_.find(wsi);
    if (it == connections_.end() || it->second->acks.empty()) return 0;
    auto& acks = it->second->acks;
    std::string& frame = acks.front();
    auto* payload = reinterpret_cast<unsigned char*>(frame.data()) + LWS_PRE;
    const std::size_t length = frame.size() - LWS_PRE;
    if (lws_write(wsi, payload, length, LWS_WRITE_RAW) < static_cast<int>(length)) return -1;
    acks.pop_front();
    if (!acks.empty()) lws_callback_on_writable(wsi);
    return 0;
}

lws_protocols ipc_protocol() {
    lws_protocols protocol{};
    protocol.name = kIpcProtocolName;
    protocol.callback = guarded_callback<callback>;
    return protocol;
}

}  // namespace shopcast
