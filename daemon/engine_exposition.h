// shopcastd's families for GET /metrics (the engine's and, in Redis mode, the stream reader's),
// which shopcast-fcgi asks for over the events socket.
#pragma once

#include <string>

#include "daemon/core/metrics.h"
#include "daemon/redis/stream_health.h"

namespace shopcast {

// Prometheus' text format, every family under the shopcast_ prefix. `stream`: in Redis mode the
// stream reader's health, whose families follow the engine's; nullptr outside it.
std::string engine_exposition(const EngineMetrics& metrics, const EngineGauges& gauges,
                              const StreamHealth* stream = nullptr);

}  // namespace shopcast
