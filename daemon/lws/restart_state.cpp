#include "daemon/lws/restart_state.h"

#include "common/cursor.h"
#include "common/log.h"
#include "daemon/core/state_file.h"

namespace shopcast {
namespace {

std::string state_path(const DaemonConfig& config) {
    return config.state_directory + "/shopcastd.state";
}

}  // namespace

RestoredEngine restore_engine(const DaemonConfig& config, std::int64_t now, std::int64_t now_unix) {
    RestoredEngine engine{History(Epoch::generate(), config.history_events, config.history_bytes),
                          IdempotencyCache(config.idempotency_ttl_seconds, 100000)};
    // In Redis mode the stream is the history and Redis keeps the Idempotency-Keys.
    if (config.state_directory.empty() || config.redis) return engine;
    const StateLoad load = take_state_file(state_path(config));
    if (!load.state) {
        if (load.problem != "none") {
            log_line(LogLevel::warning, "state file " + state_path(config) + " not used (" +
                                            load.problem + "): new epoch " +
                                            engine.history.epoch());
        }
        return engine;
    }
    engine.history.restore_from(*load.state);
    engine.idempotency.restore_from(*load.state, now, now_unix - load.state->saved_at_unix);
    log_line(LogLevel::info, "continuing epoch " + engine.history.epoch() + " with " +
                                 std::to_string(engine.history.size()) + " events and " +
                                 std::to_string(engine.idempotency.size()) +
                                 " Idempotency-Keys from the last run");
    return engine;
}

void save_engine(const DaemonConfig& config, const Hub& hub) {
    if (config.state_directory.empty() || config.redis) return;
    std::string error;
    const SavedState state = hub.save_state();
    if (write_state_file(state_path(config), state, error)) {
        log_line(LogLevel::info, "saved " + std::to_string(state.events.size()) +
                                     " events of epoch " + state.epoch + " for the next start");
    } else {
        log_line(LogLevel::error, "cannot save the state for the next start: " + error);
    }
}

}  // namespace shopcast
