// Listening sockets handed over by systemd (socket units): while the daemon restarts, the
// sockets stay open in systemd, so new connections wait in the kernel's backlog instead of being
// refused, and are served once the new daemon runs.
#pragma once

#include <libwebsockets.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/fd.h"

namespace shopcast {

// Owns the descriptors systemd passed ($LISTEN_FDS for this $LISTEN_PID), matched to our
// listeners by the address each one is bound to, so no naming convention has to be kept in step
// with the units.
class HandedOverSockets {
  public:
    static HandedOverSockets from_systemd();

    // The socket listening on this Unix path, or on this TCP address; invalid when none was
    // passed (the daemon then creates the listener itself).
    UniqueFd take_unix(const std::string& path);
    UniqueFd take_tcp(const std::string& host, int port);
    // Closes what no listener claimed, saying so: a socket unit that lists more than we serve.
    void close_unclaimed();
    bool empty() const { return fds_.empty(); }

  private:
    std::vector<UniqueFd> fds_;
};

// One per handed-over socket, alive as long as the lws context. Accepts connections from the
// loop and gives each to `target` as lws would have from a listener it made itself: WebSocket
// vhosts get an HTTP connection (upgraded to WebSocket, TLS when the vhost has it), the events
// vhost a raw socket bound to `raw_protocol`.
struct AcceptPump {
    UniqueFd listening;
    lws_vhost* target = nullptr;
    const char* raw_protocol = nullptr;  // null: adopt as HTTP
    lws* watcher = nullptr;              // the loop's wsi for `listening`, once started
    // A listener the daemon opened itself with SO_REUSEPORT (listeners.h), not one from systemd:
    // at shutdown it leaves the port's group, so the other daemons take new connections.
    bool port_shared = false;
};

// The protocol that watches handed-over listening sockets; it belongs on a vhost of its own.
lws_protocols accept_pump_protocol();
// Puts `pump.listening` into the lws loop of `pump_vhost` (which serves accept_pump_protocol()).
bool start_accept_pump(lws_vhost* pump_vhost, AcceptPump& pump);
// Stops accepting (at shutdown): what arrives from now on waits in the backlog for the next
// daemon instead of being accepted and then dropped. A shared port's listener is shut down
// instead: the kernel then sends new connections to the daemons still listening on the port.
void stop_accept_pump(AcceptPump& pump);

}  // namespace shopcast
