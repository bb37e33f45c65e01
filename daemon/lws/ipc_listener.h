// The local event source: shopcast-fcgi connections on a Unix socket, framed requests in,
// acknowledgements out, all inside the daemon's lws event loop.
#pragma once

#include <libwebsockets.h>
#include <sys/types.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <unordered_map>

#include "common/log_throttle.h"
#include "daemon/core/event_sink.h"
#include "daemon/core/publish_intake.h"
#include "daemon/lws/ops.h"

namespace shopcast {

// One per daemon; the IPC vhost's user pointer. Owns the state of every publisher connection.
// Only a peer running as the daemon's own user (or root) may publish or query health and
// metrics, whatever the socket's mode says; every request is checked again against the event rules
// before it is published. Each request is acknowledged as soon as it is read; the fan-out of
// everything read in one pass of the event loop follows in the next pass, so acks never wait for
// browsers and a browser that is behind gets the burst in one write.
class IpcListener {
  public:
    IpcListener(EventSink& sink, const OpsResponder& ops)
        : sink_(sink), ops_(ops), own_uid_(::geteuid()) {}
    IpcListener(const IpcListener&) = delete;
    IpcListener& operator=(const IpcListener&) = delete;

    struct Connection {
        PublishIntake intake;
    };

    // Redis mode: events come from the shared stream, so requests here are refused (queries
    // are still answered).
    void refuse_publishes() { refuse_publishes_ = true; }

    int on_adopt(lws* wsi);
    int on_receive(lws* wsi, std::string_view bytes);
    void on_close(lws* wsi) { connections_.erase(wsi); }

  private:
    // lws timers hand back only the list node: `timer` must be the first member. It lives in
    // the context's timer list, which the context's destruction discards (never cancel after).
    struct DeliveryTimer {
        lws_sorted_usec_list_t timer;
        IpcListener* listener;
    };
    static void deliver(lws_sorted_usec_list_t* timer);
    void schedule_delivery(lws* wsi);
    bool is_trusted_peer(lws* wsi);
    void log_throttled(LogThrottle& throttle, std::string line);

    EventSink& sink_;
    const OpsResponder& ops_;
    const uid_t own_uid_;
    std::unordered_map<lws*, std::unique_ptr<Connection>> connections_;
    DeliveryTimer delivery_{{}, this};
    bool delivery_scheduled_ = false;
    bool refuse_publishes_ = false;
    bool refusal_logged_ = false;
    // A peer may retry as fast as it likes: a few lines a minute say enough about it.
    LogThrottle refused_peer_log_{5, 60'000};
    LogThrottle refused_request_log_{5, 60'000};
};

inline constexpr const char* kIpcProtocolName = "shopcast-ipc";
lws_protocols ipc_protocol();

}  // namespace shopcast
