// Process-level wiring of shopcastd: listeners, the event loop, signals and shutdown.
#pragma once

#include "daemon/daemon_config.h"

namespace shopcast {

// Runs until SIGTERM or SIGINT, then closes every browser with 1001. Returns the exit code.
// Throws ConfigError when a listener cannot be set up.
int run_daemon(const DaemonConfig& config);

}  // namespace shopcast
