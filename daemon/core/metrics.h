// What the engine counts for operators: plain counters the Hub bumps in place on the service
// thread (no lock, no allocation), read when /metrics is scraped. Every label set is a fixed
// table, so no input can grow the number of series.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "daemon/core/telegram_auth.h"

namespace shopcast {

// Label values, in the order of the counters that use them. The last entry of each table
// catches whatever the others do not name.
inline constexpr std::array<std::string_view, 8> kCloseCodeLabels{"1000", "1001", "1006", "1008",
                                                                  "1009", "1011", "1013", "other"};
inline constexpr std::array<std::string_view, 3> kRefusalLabels{"origin", "server_full",
                                                                "address_full"};
inline constexpr std::array<std::string_view, 7> kEventTypeLabels{
    "product_added", "product_updated", "product_deleted",
    "order_status",  "new_subscriber",  "shop_updated",
    "other"};
inline constexpr std::array<std::string_view, 4> kResumeOutcomeLabels{"replayed", "resynced",
                                                                      "already_live", "refused"};
inline constexpr std::array<std::string_view, 7> kResyncReasonLabels{
    "malformed_cursor",           "epoch_changed", "unknown_cursor", "history_exhausted",
    "resume_after_live_delivery", "gap_trimmed",   "other"};
inline constexpr std::array<std::string_view, 7> kAuthResultLabels{
    "ok", "not_configured", "stale", "malformed", "bad_signature", "throttled", "other"};
inline constexpr std::array<std::string_view, 2> kSlowCloseLabels{"stalled", "fell_behind"};

enum class Refusal : std::size_t { origin, server_full, address_full };
enum class ResumeOutcome : std::size_t { replayed, resynced, already_live, refused };
enum class SlowClose : std::size_t { stalled, fell_behind };

template <std::size_t N>
using CountsBy = std::array<std::uint64_t, N>;

// One per daemon, inside the Hub; counts since this process started.
struct EngineMetrics {
    std::uint64_t connections_opened = 0;
    CountsBy<kCloseCodeLabels.size()> connections_closed{};
    CountsBy<kRefusalLabels.size()> connections_refused{};
    CountsBy<kEventTypeLabels.size()> events_published{};
    std::uint64_t events_duplicate = 0;  // answered from the Idempotency-Key cache
    std::uint64_t events_rejected = 0;   // malformed requests; nothing was broadcast
    std::uint64_t deliveries = 0;        // events written to a connection
    std::uint64_t bytes_sent = 0;        // every frame written to browsers, control ones too
    CountsBy<kResumeOutcomeLabels.size()> resumes{};
    CountsBy<kResyncReasonLabels.size()> resyncs{};
    CountsBy<kAuthResultLabels.size()> auth_results{};
    CountsBy<kSlowCloseLabels.size()> slow_closes{};

    // `code` 0: the connection ended without a close frame (1006).
    void count_close(int code) { ++connections_closed[close_code_index(code)]; }
    void count_refusal(Refusal reason) { ++connections_refused[std::size_t(reason)]; }
    void count_published(std::string_view type) { ++events_published[event_type_index(type)]; }
    void count_resume(ResumeOutcome outcome) { ++resumes[std::size_t(outcome)]; }
    void count_resync(std::string_view reason) { ++resyncs[resync_reason_index(reason)]; }
    void count_auth(const AuthOutcome& outcome) { ++auth_results[auth_result_index(outcome)]; }
    void count_auth_not_configured() { ++auth_results[1]; }
    void count_auth_throttled() { ++auth_results[5]; }
    void count_slow_close(SlowClose reason) { ++slow_closes[std::size_t(reason)]; }

    static std::size_t close_code_index(int code);
    static std::size_t event_type_index(std::string_view type);
    static std::size_t resync_reason_index(std::string_view reason);
    // Sorts the authenticator's refusal into a few operator-facing reasons.
    static std::size_t auth_result_index(const AuthOutcome& outcome);
};

// Gauges read from the engine's state at scrape time.
struct EngineGauges {
    std::uint64_t connections = 0;
    std::uint64_t history_events = 0;
    std::uint64_t history_bytes = 0;
    double oldest_event_age_seconds = 0;  // 0 with an empty history
};

}  // namespace shopcast
