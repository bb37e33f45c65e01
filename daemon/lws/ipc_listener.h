// The local event source: shopcast-fcgi connections on a Unix socket, framed requests in,
// acknowledgements out, all inside the daemon's lws event loop.
#pragma once

#include <libwebsockets.h>

#include <deque>
#include <memory>
#include <string>
#include <unordered_map>

#include "common/ipc.h"
#include "daemon/core/event_sink.h"

namespace shopcast {

// One per daemon; the IPC vhost's user pointer. Owns the state of every publisher connection.
class IpcListener {
  public:
    explicit IpcListener(EventSink& sink) : sink_(sink) {}

    struct Connection {
        ipc::FrameReader reader;
        std::deque<std::string> acks;  // frames, each preceded by LWS_PRE bytes of headroom
    };

    int on_adopt(lws* wsi);
    int on_receive(lws* wsi, std::string_view bytes);
    int on_writeable(lws* wsi);
    void on_close(lws* wsi) { connections_.erase(wsi); }

  private:
    EventSink& sink_;
    std::unordered_map<lws*, std::unique_ptr<Connection>> connections_;
};

inline constexpr const char* kIpcProtocolName = "shopcast-ipc";
lws_protocols ipc_protocol();

}  // namespace shopcast
