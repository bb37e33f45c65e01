// The daemon's state across a planned restart: read at start, written at a clean stop.
#pragma once

#include <string>

#include "daemon/core/history.h"
#include "daemon/core/hub.h"
#include "daemon/core/idempotency.h"
#include "daemon/daemon_config.h"

namespace shopcast {

struct RestoredEngine {
    History history;
    IdempotencyCache idempotency;
};

// The previous run's history and keys when its state file is sound, else a new epoch (and a
// log line saying why). Either way the file is gone afterwards.
// `now` is the Idempotency-Keys' (monotonic) clock; the downtime is measured on the wall clock.
RestoredEngine restore_engine(const DaemonConfig& config, std::int64_t now, std::int64_t now_unix);
// Writes the state file after the last connection closed; logs the outcome.
void save_engine(const DaemonConfig& config, const Hub& hub);

}  // namespace shopcast
