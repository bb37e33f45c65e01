// The local event source: shopcast-fcgi connections on a Unix socket, framed requests in,
// acknowledgements out, all inside the daemon's lws event loop.
#pragma once

#include <libwebsockets.h>

#include <memory>
#include <string>
#include <unordered_map>

#include "common/ipc.h"
#include "daemon/core/event_sink.h"
#include "daemon/lws/ops.h"

namespace shopcast {

// One per daemon; the IPC vhost's user pointer. Owns the state of every publisher connection.
// Each request is acknowledged as soon as it is read; the fan-out of everything read in one
// pass of the event loop follows in the next pass, so acks never wait for browsers and a
// browser that is behind gets the burst in one write.
class IpcListener {
  public:
    IpcListener(EventSink& sink, const OpsResponder& ops) : sink_(sink), ops_(ops) {}
    IpcListener(const IpcListener&) = delete;
    IpcListener& operator=(const IpcListener&) = delete;

    struct Connection {
        ipc::FrameReader reader;
    };

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

    EventSink& sink_;
    const OpsResponder& ops_;
    std::unordered_map<lws*, std::unique_ptr<Connection>> connections_;
    DeliveryTimer delivery_{{}, this};
    bool delivery_scheduled_ = false;
};

inline constexpr const char* kIpcProtocolName = "shopcast-ipc";
lws_protocols ipc_protocol();

}  // namespace shopcast
