// Fan-out: turns published events into deliveries, and browser actions into session state.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/core/admission.h"
#include "daemon/core/event_sink.h"
#include "daemon/core/gap_filler.h"
#include "daemon/core/history.h"
#include "daemon/core/idempotency.h"
#include "daemon/core/metrics.h"
#include "daemon/core/session.h"
#include "daemon/core/telegram_auth.h"
#include "daemon/core/transport.h"

namespace shopcast {

// What a stream entry carries besides its epoch (see common/redis_stream.h).
struct StreamedEvent {
    std::string_view type;
    std::string_view shop_id;
    std::string_view user_id;
    std::string_view json;  // the validated object without "id"
};

struct HubLimits {
    std::size_t max_connections = 10000;
    std::size_t max_connections_per_ip = 0;  // 0: no per-address limit (see AdmissionControl)
    std::uint64_t max_queue_bytes = 1024 * 1024;
    std::size_t max_shops = 100;
    std::size_t max_control_messages = 64;
    double actions_per_second = 20;  // sustained browser actions before 1008
    double action_burst = 40;
    unsigned max_strikes = 20;
    // Failed `auth` messages a connection may send within the window; later ones are refused
    // without any cryptography (and count as strikes) until the window has passed.
    unsigned max_auth_failures = 5;
    std::int64_t auth_failure_window_ms = 60000;
    // A choked connection that takes nothing for this long while events wait is closed (1013).
    std::int64_t stall_timeout_ms = 30000;
    // Resumes from below the history's floor that may wait for a gap fill at once (Redis
    // mode); more are answered `resync` as before.
    std::size_t max_gap_fills = 64;
};

// One per daemon, used only on the service thread. Owns every Session and the History.
class Hub final : public EventSink {
  public:
    using Clock = std::function<std::int64_t()>;  // milliseconds
    // Limits, stall timeouts and Idempotency-Key TTLs run on `steady` (monotonic: a step of the
    // wall clock must not expire keys or close clients early); only Telegram's auth_date and
    // the time a state file was saved need `wall` (since the Unix epoch).
    struct Clocks {
        Clock steady;
        Clock wall;
    };

    Hub(HubLimits limits, History history, IdempotencyCache idempotency,
        const TelegramAuthenticator& authenticator, SessionTransport& transport, Clocks clocks);

    Admission admit(std::string_view client_ip) const;
    // Registers a connection and queues its `hello`. Live events are held until release_hold().
    // `transport` is the glue's handle, stored before the first wake-up.
    Session& open_session(std::string client_ip, void* transport = nullptr);
    void close_session(Session& session);

    ipc::PublishAck publish(const ipc::PublishRequest& request) override;
    void deliver_published() override;

    // Stream mode. An event read from the shared stream at `position` (its entry id), in
    // stream order; false when it does not come after the newest one (nothing is appended).
    // deliver_published() sends it on.
    bool append_from_stream(std::uint64_t position, const StreamedEvent& event);
    // The history starts over in `epoch` with nothing known up to `floor`, then
    // `append_newest` fills it (append_from_stream) with what the stream still holds: every
    // connection gets `resync` with `reason` and is live after those, which stay for resume
    // only (a resynced page fetches its state afresh; replaying them would repeat what it had).
    void reset_stream(const Epoch& epoch, std::uint64_t floor, std::string_view reason,
                      const std::function<void()>& append_newest = {});

    // Redis mode: where a resume from below the floor fetches what the history no longer has.
    // `filler` must outlive its use (until the next call or the Hub's end); nullptr: none.
    void set_gap_filler(GapFiller* filler) { gap_filler_ = filler; }
    std::size_t parked_count() const { return parked_.size(); }

    void on_text_message(Session& session, std::string_view text);
    void on_binary_message(Session& session);
    // A ping or pong from the browser, charged to the same action budget as its messages.
    // Beyond the budget it is not refused (lws has answered it already) but owed: the answer
    // is how many milliseconds the transport should stop reading from this connection.
    std::int64_t on_control_frame(Session& session, std::uint64_t frames = 1);
    void release_hold(Session& session);

    // The connection can take a write again (lws' WRITEABLE): sends what is due to it.
    void on_writeable(Session& session);

    // Asks every connection to close with `code` (1001 on shutdown).
    void close_all(int code, std::string_view reason);

    // A reload: new limits and a new authenticator for every connection from now on. Open
    // connections stay, even above a lowered connection limit. `authenticator` must outlive
    // its use (until the next set_authenticator or the Hub's end).
    void apply_limits(const HubLimits& limits);
    void set_authenticator(const TelegramAuthenticator& authenticator);

    std::size_t session_count() const { return sessions_.size(); }
    const History& history() const { return history_; }
    // Counters for /metrics; the glue counts what only it sees (refusals) here too.
    EngineMetrics& metrics() { return metrics_; }
    const EngineMetrics& metrics() const { return metrics_; }
    EngineGauges gauges() const;
    // Everything a restart needs to continue where this run stops.
    SavedState save_state() const;

  private:
    void send_control(Session& session, std::string message);
    void refuse_action(Session& session, std::string_view message);
    void request_close(Session& session, int code, std::string reason);
    void refill_action_tokens(Session& session);
    bool take_action_token(Session& session);
    std::size_t count_recipients(const StoredEvent& event) const;
    void fan_out_to(Session& session, std::uint64_t first_new_seq);
    SendResult flush(Session& session);
    void count_sent(std::size_t control_frames);
    bool gather_batch(Session& session);

    void handle_auth(Session& session, std::string_view init_data);
    bool auth_throttled(Session& session);
    void handle_shops(Session& session, bool subscribe, const std::vector<std::string>& shops);
    void handle_resume(Session& session, std::string_view since);
    bool park_for_gap_fill(Session& session, std::uint64_t after);
    void finish_gap_fill(std::uint64_t fill_id, GapFill fill);
    void resync_after_resume(Session& session, std::string_view reason);

    HubLimits limits_;
    History history_;
    IdempotencyCache idempotency_;
    const TelegramAuthenticator* authenticator_;
    SessionTransport& transport_;
    Clock clock_;  // steady
    Clock wall_clock_;
    std::uint64_t delivered_seq_ = 0;        // the newest event deliver_published() has fanned out
    std::vector<const SharedFrame*> batch_;  // scratch for flush(), reused to avoid allocations
    std::size_t backfill_taken_ = 0;         // how many of batch_ are the session's backfill
    std::vector<std::unique_ptr<Session>> sessions_;
    AdmissionControl admission_;
    EngineMetrics metrics_;
    std::int64_t started_ms_ = 0;  // restored events count their age from here

    struct ParkedResume {
        Session* session = nullptr;
        std::uint64_t through = 0;  // the floor when the fill was asked for
    };
    GapFiller* gap_filler_ = nullptr;
    std::uint64_t next_fill_id_ = 1;
    std::unordered_map<std::uint64_t, ParkedResume> parked_;  // by Session::gap_fill
};

}  // namespace shopcast
