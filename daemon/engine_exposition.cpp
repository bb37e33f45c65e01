#include "daemon/engine_exposition.h"

#include "common/exposition.h"

namespace shopcast {
namespace {

void add_engine_families(Exposition& out, const EngineMetrics& metrics,
                         const EngineGauges& gauges) {
    out.gauge("shopcast_connections", "Browser WebSocket connections open now.",
              static_cast<double>(gauges.connections));
    out.counter("shopcast_connections_opened_total", "Browser WebSocket connections opened.",
                static_cast<double>(metrics.connections_opened));
    out.counter_by("shopcast_connections_closed_total",
                   "Browser WebSocket connections closed, by close code (1006: no close frame).",
                   "code", kCloseCodeLabels, metrics.connections_closed);
    out.counter_by("shopcast_connections_refused_total",
                   "WebSocket upgrades refused before opening, by reason.", "reason",
                   kRefusalLabels, metrics.connections_refused);
    out.counter_by("shopcast_connections_closed_slow_total",
                   "Connections closed with 1013 for not keeping up, by reason.", "reason",
                   kSlowCloseLabels, metrics.slow_closes);
    out.counter_by("shopcast_events_published_total", "Events accepted for broadcast, by type.",
                   "type", kEventTypeLabels, metrics.events_published);
    out.counter("shopcast_events_duplicate_total",
                "Publish requests answered from the Idempotency-Key cache.",
                static_cast<double>(metrics.events_duplicate));
    out.counter("shopcast_events_rejected_total",
                "Publish requests the daemon refused as malformed.",
                static_cast<double>(metrics.events_rejected));
    out.counter("shopcast_deliveries_total", "Events written to browser connections.",
                static_cast<double>(metrics.deliveries));
    out.counter("shopcast_sent_bytes_total",
                "Bytes of WebSocket frames written to browsers, control messages included.",
                static_cast<double>(metrics.bytes_sent));
    out.counter_by("shopcast_resumes_total", "Resume requests, by outcome.", "outcome",
                   kResumeOutcomeLabels, metrics.resumes);
    out.counter_by("shopcast_resyncs_total", "Resync messages sent, by reason.", "reason",
                   kResyncReasonLabels, metrics.resyncs);
    out.counter_by("shopcast_auth_total", "Telegram initData checks, by result.", "result",
                   kAuthResultLabels, metrics.auth_results);
    out.gauge("shopcast_history_events", "Events kept for resume.",
              static_cast<double>(gauges.history_events));
    out.gauge("shopcast_history_bytes", "Bytes the events kept for resume take.",
              static_cast<double>(gauges.history_bytes));
    out.gauge("shopcast_history_oldest_event_age_seconds",
              "Age of the oldest event kept for resume (0 when none is kept).",
              gauges.oldest_event_age_seconds);
}

void add_stream_families(Exposition& out, const StreamHealth& stream) {
    out.gauge("shopcast_redis_connected", "1 while the shared event stream in Redis is read.",
              stream.connected ? 1 : 0);
    out.gauge("shopcast_redis_caught_up",
              "1 once the reader has reached the end of the stream since it connected.",
              stream.ready() ? 1 : 0);
    out.counter("shopcast_redis_connects_total", "Connections to Redis established.",
                static_cast<double>(stream.connects));
    out.counter("shopcast_redis_entries_read_total", "Stream entries taken into the history.",
                static_cast<double>(stream.entries_read));
    out.counter("shopcast_redis_entries_skipped_total",
                "Stream entries refused as not in the shape of an event.",
                static_cast<double>(stream.entries_skipped));
    out.counter("shopcast_redis_resets_total",
                "Times the history started over (new epoch or trimmed gap; every browser "
                "resynced).",
                static_cast<double>(stream.resets));
    out.gauge("shopcast_redis_last_entry_timestamp_seconds",
              "The time in the id of the newest stream entry read (0: none yet).",
              static_cast<double>(stream.last_entry_ms) / 1000.0);
}

}  // namespace

std::string engine_exposition(const EngineMetrics& metrics, const EngineGauges& gauges,
                              const StreamHealth* stream) {
    Exposition out;
    add_engine_families(out, metrics, gauges);
    if (stream != nullptr) add_stream_families(out, *stream);
    return out.text();
}

}  // namespace shopcast
