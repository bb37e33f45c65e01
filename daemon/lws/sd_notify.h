// systemd readiness and watchdog notifications, without libsystemd.
#pragma once

#include <cstdint>
#include <string_view>

namespace shopcast {

// Sends `state` (e.g. "READY=1") to $NOTIFY_SOCKET; does nothing outside systemd.
void notify_systemd(std::string_view state);
// Half of $WATCHDOG_USEC in microseconds, or 0 when no watchdog is configured.
std::int64_t watchdog_ping_interval_usec();

}  // namespace shopcast
