#include "daemon/lws/ipc_listener.h"

#include <sys/socket.h>

#include <chrono>

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

std::int64_t steady_now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

void IpcListener::log_throttled(LogThrottle& throttle, std::string line) {
    if (auto admitted = throttle.admit(std::move(line), steady_now_ms())) {
        log_line(LogLevel::warning, *admitted);
    }
}

// The kernel records the peer's credentials at connect(); they cannot be forged. Root is
// trusted too: it passes any socket mode and can read the secret anyway, so refusing it would
// protect nothing.
bool IpcListener::is_trusted_peer(lws* wsi) {
    ucred peer{};
    socklen_t length = sizeof peer;
    if (::getsockopt(lws_get_socket_fd(wsi), SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0) {
        log_throttled(refused_peer_log_,
                      "refusing a publisher connection: its credentials are unknown");
        return false;
    }
    if (peer.uid == own_uid_ || peer.uid == 0) return true;
    log_throttled(refused_peer_log_, "refusing a publisher connection from uid " +
                                         std::to_string(peer.uid) + " (pid " +
                                         std::to_string(peer.pid) + "): only uid " +
                                         std::to_string(own_uid_) + " or root may publish");
    return false;
}

int IpcListener::on_adopt(lws* wsi) {
    if (!is_trusted_peer(wsi)) return -1;
    connections_[wsi] = std::make_unique<Connection>();
    return 0;
}

int IpcListener::on_receive(lws* wsi, std::string_view bytes) {
    auto it = connections_.find(wsi);
    if (it == connections_.end()) return -1;
    Connection& connection = *it->second;
    if (!connection.intake.feed(bytes)) {
        log_throttled(refused_request_log_, "dropping a publisher connection: oversized frame");
        return -1;
    }
    bool published = false;
    while (auto item = connection.intake.next()) {
        if (item->query) {
            std::string reply = ipc::encode_query_reply(ops_.answer(*item->query));
            const int written = lws_write(wsi, reinterpret_cast<unsigned char*>(reply.data()),
                                          reply.size(), LWS_WRITE_RAW);
            if (written < static_cast<int>(reply.size())) return -1;
            continue;
        }
        ipc::PublishAck ack;  // `rejected` unless the sink takes the request
        if (item->request && refuse_publishes_) {
            if (!refusal_logged_) {
                log_line(LogLevel::warning,
                         "refusing publish requests on the events socket: in Redis mode events "
                         "are appended to the stream (shopcast-fcgi with SHOPCAST_REDIS_URL)");
                refusal_logged_ = true;
            }
        } else if (item->request) {
            ack = sink_.publish(*item->request);
            published = true;
        } else {
            log_throttled(refused_request_log_, "refusing a publish request: " + item->refusal);
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
