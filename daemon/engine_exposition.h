// shopcastd's families for GET /metrics, which shopcast-fcgi asks for over the events socket.
#pragma once

#include <string>

#include "daemon/core/metrics.h"

namespace shopcast {

// Prometheus' text format, every family under the shopcast_ prefix.
std::string engine_exposition(const EngineMetrics& metrics, const EngineGauges& gauges);

}  // namespace shopcast
