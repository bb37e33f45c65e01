// Process-level wiring of shopcastd: listeners, the event loop, signals and shutdown.
#pragma once

#include <functional>

#include "daemon/daemon_config.h"

namespace shopcast {

// Reads the configuration anew for a reload; throws ConfigError for a bad value.
using ConfigReloader = std::function<DaemonConfig(const DaemonConfig& running)>;

// Runs until SIGTERM or SIGINT, then closes every browser with 1001. Returns the exit code.
// On SIGHUP applies what `reload` reads (see daemon_settings_needing_restart) to the running
// daemon, connections kept; a bad value is refused with one log line. Throws ConfigError when
// a listener cannot be set up.
int run_daemon(DaemonConfig config, const ConfigReloader& reload);

}  // namespace shopcast
