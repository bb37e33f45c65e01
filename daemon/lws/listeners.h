// The browser-facing listeners: one lws vhost per SHOPCAST_WS_LISTEN entry.
#pragma once

#include <libwebsockets.h>

#include <deque>
#include <string>
#include <vector>

#include "daemon/daemon_config.h"
#include "daemon/lws/socket_handover.h"
#include "daemon/lws/ws_protocol.h"

namespace shopcast {

// What every listener shares; each vhost gets its own WebSocketContext made from it.
struct ListenerSettings {
    const lws_protocols* protocols = nullptr;
    WebSocketContext shared;  // the per-listener fields are filled in per vhost
};

// Whether TCP listeners are opened with SO_REUSEPORT, so that several daemons serve one port.
// Only with Redis (SHOPCAST_REDIS_URL), where every daemon delivers the same stream; in local
// mode a second daemon on the port fails to bind, as two daemons with two histories must not
// split browsers between them. lws 4.1.6 sets SO_REUSEPORT only for multi-threaded contexts and
// takes no listening socket, so such a listener is the daemon's own, served by an AcceptPump
// (socket_handover.h) exactly like a socket systemd hands over, TLS included.
bool shares_tcp_ports(const DaemonConfig& config);

// True when the context must initialise OpenSSL for server use.
bool needs_tls(const DaemonConfig& config);

// Creates a vhost for each listener, in order. `contexts` receives each vhost's user data
// (a deque: elements never move). A listener whose socket systemd handed over gets a vhost
// without a listener of its own and an entry in `pumps`, and so does a TCP listener on a shared
// port (shares_tcp_ports); the Unix sockets it created itself go
// to `own_socket_paths` (to chmod now and remove at exit). Throws ConfigError naming the
// listener that failed.
void create_websocket_listeners(lws_context* context, const DaemonConfig& config,
                                const ListenerSettings& settings,
                                std::deque<WebSocketContext>& contexts,
                                HandedOverSockets& handed_over, std::deque<AcceptPump>& pumps,
                                std::vector<std::string>& own_socket_paths);

std::string describe_listeners(const DaemonConfig& config);

}  // namespace shopcast
