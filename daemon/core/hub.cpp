#include "daemon/core/hub.h"

#include <algorithm>
#include <iterator>

#include "common/log.h"
#include "daemon/core/client_action.h"
#include "daemon/core/control_messages.h"

namespace shopcast {
namespace {

constexpr int kCloseTryAgainLater = 1013;
constexpr int kClosePolicyViolation = 1008;

// One flush() sends at most this much in one write: enough frames to cork a burst into one
// send, little enough that the transport takes it whole (its packet limit is above this).
constexpr std::size_t kMaxBatchBytes = 64 * 1024;
constexpr std::size_t kMaxBatchFrames = 64;
// Writes one connection gets in a row before the others get their turn.
constexpr int kMaxWritesPerTurn = 4;
// Events a connection may not see that delivery steps over one by one before it asks the
// history's indexes for the next one it may: cheap for live delivery (a few new events), and
// what bounds the cost of a backlog of other shops' or other users' events.
constexpr std::size_t kSkipsBeforeSeek = 16;

constexpr std::string_view kFellBehind = "fell behind; resume to catch up";
constexpr std::string_view kTooSlow = "too slow; resume to catch up";
constexpr std::string_view kSecondRewind =
    "resume refused: this connection already resumed; reconnect to resume again";

std::string_view resync_reason(ResumeVerdict verdict) {
    switch (verdict) {
        case ResumeVerdict::malformed:
            return "malformed_cursor";
        case ResumeVerdict::other_epoch:
            return "epoch_changed";
        case ResumeVerdict::unknown:
            return "unknown_cursor";
        case ResumeVerdict::too_old:
            return "history_exhausted";
        case ResumeVerdict::ok:
        case ResumeVerdict::ahead:
            break;
    }
    return "unknown_cursor";
}

// The type as a log line shows it: one of the known names, so no input can shape the line.
std::string_view logged_type(std::string_view type) {
    return kEventTypeLabels[EngineMetrics::event_type_index(type)];
}

}  // namespace

Hub::Hub(HubLimits limits, History history, IdempotencyCache idempotency,
         const TelegramAuthenticator& authenticator, SessionTransport& transport, Clocks clocks)
    : limits_(limits),
      history_(std::move(history)),
      idempotency_(std::move(idempotency)),
      authenticator_(&authenticator),
      transport_(transport),
      clock_(std::move(clocks.steady)),
      wall_clock_(std::move(clocks.wall)),
      delivered_seq_(history_.last_seq()),
      admission_(limits.max_connections, limits.max_connections_per_ip),
      started_ms_(clock_()) {
    batch_.reserve(kMaxBatchFrames);
}

void Hub::apply_limits(const HubLimits& limits) {
    limits_ = limits;
    // Recounted from the open connections: the per-address counts are only kept while a
    // per-address limit is set, so one switched on now must start from what is open.
    AdmissionControl admission(limits.max_connections, limits.max_connections_per_ip);
    for (const auto& session : sessions_) admission.opened(session->client_ip);
    admission_ = std::move(admission);
}

void Hub::set_authenticator(const TelegramAuthenticator& authenticator) {
    authenticator_ = &authenticator;
}

Admission Hub::admit(std::string_view client_ip) const {
    return admission_.admit(client_ip);
}

Session& Hub::open_session(std::string client_ip, void* transport) {
    auto session = std::make_unique<Session>();
    session->client_ip = std::move(client_ip);
    session->transport = transport;
    session->next_seq = history_.last_seq() + 1;
    session->action_tokens = limits_.action_burst;
    session->action_tokens_at_ms = clock_();
    session->registry_index = sessions_.size();
    admission_.opened(session->client_ip);
    ++metrics_.connections_opened;
    Session& opened = *session;
    sessions_.push_back(std::move(session));
    send_control(opened, control::hello(history_.hello_cursor()));
    return opened;
}

void Hub::close_session(Session& session) {
    if (session.gap_fill != 0) parked_.erase(session.gap_fill);  // its answer is then ignored
    admission_.closed(session.client_ip);
    // The code that went over the wire: ours once our close frame is out, else the browser's.
    metrics_.count_close(session.close_written ? session.close->code : session.peer_close_code);
    // Swap-remove keeps the registry dense for the fan-out loop.
    const std::size_t index = session.registry_index;
    if (index != sessions_.size() - 1) {
        std::swap(sessions_[index], sessions_.back());
        sessions_[index]->registry_index = index;
    }
    sessions_.pop_back();
}

ipc::PublishAck Hub::publish(const ipc::PublishRequest& request) {
    const std::int64_t now_seconds = clock_() / 1000;
    RequestDigest digest{};
    if (!request.idempotency_key.empty()) {
        digest = request_digest(request);
        const KeyLookup seen = idempotency_.find(request.idempotency_key, digest, now_seconds);
        switch (seen.verdict) {
            case KeyLookup::Verdict::unseen:
                break;
            case KeyLookup::Verdict::same_request: {
                ipc::PublishAck ack = seen.first_ack;
                ack.status = ipc::AckStatus::duplicate;
                ++metrics_.events_duplicate;
                log_pieces(LogLevel::info, {"Broadcast skipped (repeated Idempotency-Key): ",
                                            logged_type(request.type), " id=", ack.id});
                return ack;
            }
            case KeyLookup::Verdict::other_request:
                log_pieces(LogLevel::warning,
                           {"Broadcast refused: Idempotency-Key reused for another event (",
                            logged_type(request.type), ")"});
                return ipc::PublishAck{ipc::AckStatus::conflict, {}, 0};
        }
    }
    if (request.json.size() < 2 || request.json.front() != '{' || request.json.back() != '}') {
        ++metrics_.events_rejected;
        return ipc::PublishAck{ipc::AckStatus::rejected, {}, 0};
    }
    const StoredEvent& event =
        history_.append(request.json, request.shop_id, request.user_id, clock_());
    metrics_.count_published(request.type);
    ipc::PublishAck ack{ipc::AckStatus::accepted, history_.cursor_for(event.position), 0};
    ack.recipients = static_cast<std::uint32_t>(count_recipients(event));
    if (!request.idempotency_key.empty()) {
        idempotency_.remember(request.idempotency_key, digest, ack, now_seconds);
    }
    // The guide's `grep "Broadcast"`: one line per event, assembled without allocating.
    log_pieces(LogLevel::info, {"Broadcast sent: ", logged_type(request.type), " id=", ack.id,
                                " recipients=", LogNumber(ack.recipients)});
    return ack;
}

std::size_t Hub::count_recipients(const StoredEvent& event) const {
    std::size_t recipients = 0;
    for (const auto& session : sessions_) {
        if (!session->close && may_receive(session->audience, event.shop_id, event.user_id)) {
            ++recipients;
        }
    }
    return recipients;
}

bool Hub::append_from_stream(std::uint64_t position, const StreamedEvent& event) {
    if (event.json.size() < 2 || event.json.front() != '{' || event.json.back() != '}') {
        return false;
    }
    if (history_.append_at(position, event.json, std::string(event.shop_id),
                           std::string(event.user_id), clock_()) == nullptr) {
        return false;
    }
    metrics_.count_published(event.type);
    return true;
}

void Hub::reset_stream(const Epoch& epoch, std::uint64_t floor, std::string_view reason,
                       const std::function<void()>& append_newest) {
    history_.reset(epoch, floor);
    if (append_newest) append_newest();
    delivered_seq_ = history_.last_seq();
    // A gap fill asked for in the old history would not join the new one.
    parked_.clear();
    for (auto& session : sessions_) {
        session->gap_fill = 0;
        session->backfill.clear();
        session->next_seq = history_.last_seq() + 1;
        session->skip_through_position = 0;
        if (session->close) continue;
        metrics_.count_resync(reason);
        send_control(*session, control::resync(reason));
        release_hold(*session);
    }
}

void Hub::deliver_published() {
    if (delivered_seq_ == history_.last_seq()) return;
    const std::uint64_t first_new_seq = delivered_seq_ + 1;
    delivered_seq_ = history_.last_seq();
    for (auto& session : sessions_) fan_out_to(*session, first_new_seq);
}

// The one place that decides, per connection and per burst of new events, between writing,
// waiting for the socket, and closing as slow.
void Hub::fan_out_to(Session& session, std::uint64_t first_new_seq) {
    if (session.close || !session.live) return;  // a held connection gets it at release
    if (session.next_seq < history_.first_retained_seq()) {
        metrics_.count_slow_close(SlowClose::fell_behind);
        request_close(session, kCloseTryAgainLater, std::string(kFellBehind));
        return;
    }
    if (!session.choked) {
        flush(session);
        return;
    }
    // Only what is published while its own socket does not drain counts against it: not what
    // was due before (a hold, a replay) nor how long the daemon itself took to get here.
    for (std::uint64_t seq = std::max(first_new_seq, session.next_seq); seq <= history_.last_seq();
         ++seq) {
        const StoredEvent* event = history_.find(seq);
        if (may_receive(session.audience, event->shop_id, event->user_id)) {
            session.stalled_bytes += event->frame->wire().size();
        }
    }
    if (session.stalled_bytes > limits_.max_queue_bytes ||
        clock_() - session.choked_since_ms > limits_.stall_timeout_ms) {
        metrics_.count_slow_close(SlowClose::stalled);
        request_close(session, kCloseTryAgainLater, std::string(kTooSlow));
    }
}

void Hub::on_writeable(Session& session) {
    session.choked = false;  // lws calls back only once what it held has gone out
    session.stalled_bytes = 0;
    flush(session);
}

// Puts what is due into batch_: control messages first, then (when live) the visible events
// from next_seq, advancing it. False when the connection's place is no longer in the history.
bool Hub::gather_batch(Session& session) {
    batch_.clear();
    std::size_t bytes = 0;
    for (const FramePtr& frame : session.control) {
        if (batch_.size() == kMaxBatchFrames) break;
        batch_.push_back(frame.get());
        bytes += frame->wire().size();
    }
    if (!session.live) return true;
    backfill_taken_ = 0;
    for (const FramePtr& frame : session.backfill) {
        const std::size_t size = frame->wire().size();
        if (batch_.size() == kMaxBatchFrames || (!batch_.empty() && bytes + size > kMaxBatchBytes))
            return true;  // the history's events wait until every filled one is out
        batch_.push_back(frame.get());
        bytes += size;
        ++backfill_taken_;
        session.sent_events = true;
    }
    std::size_t skipped = 0;
    while (session.next_seq <= history_.last_seq() && batch_.size() < kMaxBatchFrames) {
        if (skipped == kSkipsBeforeSeek) {
            session.next_seq = history_.next_visible(session.audience, session.next_seq);
            skipped = 0;
            continue;
        }
        const StoredEvent* event = history_.find(session.next_seq);
        if (event == nullptr) {
            metrics_.count_slow_close(SlowClose::fell_behind);
            request_close(session, kCloseTryAgainLater, std::string(kFellBehind));
            return false;
        }
        if (event->position <= session.skip_through_position) {
            ++session.next_seq;  // the browser has it from another daemon
            continue;
        }
        if (may_receive(session.audience, event->shop_id, event->user_id)) {
            const std::size_t size = event->frame->wire().size();
            if (!batch_.empty() && bytes + size > kMaxBatchBytes) break;
            batch_.push_back(event->frame.get());
            bytes += size;
            session.sent_events = true;
        } else {
            ++skipped;
        }
        ++session.next_seq;
    }
    return true;
}

SendResult Hub::flush(Session& session) {
    for (int write = 0; write < kMaxWritesPerTurn; ++write) {
        if (session.close || session.choked) return SendResult::backpressure;
        const std::size_t control_taken = std::min(session.control.size(), kMaxBatchFrames);
        backfill_taken_ = 0;
        if (!gather_batch(session)) return SendResult::dropped;
        if (batch_.empty()) return SendResult::sent;
        const SendResult result = transport_.send(session, batch_);
        if (result != SendResult::dropped) count_sent(control_taken);
        batch_.clear();
        session.control.erase(session.control.begin(),
                              session.control.begin() + static_cast<long>(control_taken));
        session.backfill.erase(session.backfill.begin(),
                               session.backfill.begin() + static_cast<long>(backfill_taken_));
        switch (result) {
            case SendResult::sent:
                break;
            case SendResult::backpressure:
                session.choked = true;
                session.choked_since_ms = clock_();
                session.stalled_bytes = 0;
                transport_.wake(session);
                return result;
            case SendResult::dropped:
                // The transport closes the connection itself; nothing more is owed to it.
                session.close = CloseRequest{kCloseTryAgainLater, "connection lost"};
                return result;
        }
    }
    // Still behind after its turn: continue when lws next finds the socket writable.
    transport_.wake(session);
    return SendResult::sent;
}

void Hub::release_hold(Session& session) {
    if (session.live || session.gap_fill != 0) return;  // parked: its fill releases it
    session.live = true;
    if (session.next_seq <= history_.last_seq() || !session.backfill.empty()) {
        transport_.wake(session);
    }
}

void Hub::close_all(int code, std::string_view reason) {
    for (auto& session : sessions_) request_close(*session, code, std::string(reason));
}

// batch_ holds `control_frames` control messages first, then events.
void Hub::count_sent(std::size_t control_frames) {
    metrics_.deliveries += batch_.size() - std::min(control_frames, batch_.size());
    for (const SharedFrame* frame : batch_) metrics_.bytes_sent += frame->wire().size();
}

EngineGauges Hub::gauges() const {
    EngineGauges gauges;
    gauges.connections = sessions_.size();
    gauges.history_events = history_.size();
    gauges.history_bytes = history_.bytes();
    if (const StoredEvent* oldest = history_.oldest()) {
        const std::int64_t since =
            oldest->published_at_ms != 0 ? oldest->published_at_ms : started_ms_;
        gauges.oldest_event_age_seconds =
            static_cast<double>(std::max<std::int64_t>(0, clock_() - since)) / 1000.0;
    }
    return gauges;
}

SavedState Hub::save_state() const {
    SavedState state;
    state.saved_at_unix = wall_clock_() / 1000;
    history_.save_into(state);
    idempotency_.save_into(state, clock_() / 1000);
    return state;
}

void Hub::send_control(Session& session, std::string message) {
    if (session.close) return;  // the close frame is the last thing this connection gets
    if (session.control.size() >= limits_.max_control_messages) {
        request_close(session, kClosePolicyViolation, "too many unanswered messages");
        return;
    }
    session.control.push_back(make_frame(message));
    transport_.wake(session);
}

void Hub::refuse_action(Session& session, std::string_view message) {
    if (++session.strikes > limits_.max_strikes) {
        request_close(session, kClosePolicyViolation, "too many invalid messages");
        return;
    }
    send_control(session, control::error(message));
}

void Hub::request_close(Session& session, int code, std::string reason) {
    if (session.close) return;
    session.close = CloseRequest{code, std::move(reason)};
    session.control.clear();
    transport_.wake(session);
}

void Hub::refill_action_tokens(Session& session) {
    const std::int64_t now = clock_();
    const double elapsed = static_cast<double>(now - session.action_tokens_at_ms) / 1000.0;
    session.action_tokens_at_ms = now;
    session.action_tokens = std::min(limits_.action_burst,
                                     session.action_tokens + elapsed * limits_.actions_per_second);
}

bool Hub::take_action_token(Session& session) {
    refill_action_tokens(session);
    if (session.action_tokens < 1) return false;
    session.action_tokens -= 1;
    return true;
}

void Hub::on_binary_message(Session& session) {
    if (session.close) return;
    if (!take_action_token(session)) {
        request_close(session, kClosePolicyViolation, "too many messages");
        return;
    }
    refuse_action(session, "binary messages are not supported; send JSON text");
}

std::int64_t Hub::on_control_frame(Session& session, std::uint64_t frames) {
    if (session.close) return 0;
    refill_action_tokens(session);
    session.action_tokens -= static_cast<double>(frames);
    if (session.action_tokens >= 0) return 0;
    // In debt by the frames of one read at most: nothing more is read until the budget is back
    // above zero, so a flood of pings is paid for in full, however many one read held.
    const double wait_ms = -session.action_tokens / limits_.actions_per_second * 1000.0;
    return std::max<std::int64_t>(1, static_cast<std::int64_t>(wait_ms + 0.999));
}

void Hub::on_text_message(Session& session, std::string_view text) {
    if (session.close) return;
    if (!take_action_token(session)) {
        request_close(session, kClosePolicyViolation, "too many messages");
        return;
    }
    ClientActionResult parsed = parse_client_action(text);
    if (!parsed.ok) {
        refuse_action(session, parsed.error);
        return;
    }
    switch (parsed.action.kind) {
        case ClientActionKind::auth:
            handle_auth(session, parsed.action.init_data);
            break;
        case ClientActionKind::subscribe:
            handle_shops(session, true, parsed.action.shops);
            break;
        case ClientActionKind::unsubscribe:
            handle_shops(session, false, parsed.action.shops);
            break;
        case ClientActionKind::resume:
            handle_resume(session, parsed.action.since);
            break;
    }
}

void Hub::handle_auth(Session& session, std::string_view init_data) {
    // Whatever the outcome, the identity the connection had ends here: a failed `auth` leaves
    // it anonymous, so no private event of an earlier user follows it (DESIGN.md).
    session.audience.user_id.clear();
    if (!authenticator_->configured()) {
        metrics_.count_auth_not_configured();
        refuse_action(session, "auth not configured");
        return;
    }
    if (auth_throttled(session)) {
        metrics_.count_auth_throttled();
        refuse_action(session, "auth failed: too many failed attempts; retry later");
        return;
    }
    AuthOutcome outcome = authenticator_->verify(init_data, wall_clock_() / 1000);
    metrics_.count_auth(outcome);
    if (!outcome.ok) {
        if (session.auth_failures++ == 0) session.auth_failures_since_ms = clock_();
        refuse_action(session, "auth failed: " + outcome.error);
        return;
    }
    session.audience.user_id = outcome.user_id;
    send_control(session, control::auth_ok(outcome.user_id));
}

bool Hub::auth_throttled(Session& session) {
    if (session.auth_failures == 0) return false;
    if (clock_() - session.auth_failures_since_ms >= limits_.auth_failure_window_ms) {
        session.auth_failures = 0;
        return false;
    }
    return session.auth_failures >= limits_.max_auth_failures;
}

void Hub::handle_shops(Session& session, bool subscribe, const std::vector<std::string>& shops) {
    const auto& current = session.audience.shops;
    std::vector<std::string> updated;
    if (subscribe) {
        std::set_union(current.begin(), current.end(), shops.begin(), shops.end(),
                       std::back_inserter(updated));
    } else {
        std::set_difference(current.begin(), current.end(), shops.begin(), shops.end(),
                            std::back_inserter(updated));
    }
    if (updated.size() > limits_.max_shops) {
        refuse_action(session, "at most " + std::to_string(limits_.max_shops) +
                                   " shop subscriptions per connection");
        return;
    }
    session.audience.shops = std::move(updated);
    send_control(session, control::subscribed(session.audience.shops));
}

void Hub::handle_resume(Session& session, std::string_view since) {
    if (session.gap_fill != 0) {
        metrics_.count_resume(ResumeOutcome::refused);
        send_control(session, control::error(kSecondRewind));
        return;
    }
    ResumePoint point = history_.resume_point(since);
    if (point.verdict == ResumeVerdict::ahead) {
        if (session.sent_events) {
            metrics_.count_resume(ResumeOutcome::already_live);
            return;
        }
        // Nothing here comes before the cursor yet: live from now on, without what the
        // browser already has.
        metrics_.count_resume(ResumeOutcome::replayed);
        session.next_seq = point.next_seq;
        session.skip_through_position = point.position;
        release_hold(session);
        return;
    }
    if (point.verdict == ResumeVerdict::too_old && park_for_gap_fill(session, point.position)) {
        return;
    }
    if (point.verdict != ResumeVerdict::ok) {
        resync_after_resume(session, resync_reason(point.verdict));
        return;
    }
    if (point.next_seq < session.next_seq) {
        if (session.rewound) {
            // One rewind per connection is all a page needs (it resumes once, on connect);
            // more would let one connection make the daemon replay the same span repeatedly.
            metrics_.count_resume(ResumeOutcome::refused);
            // Not a strike: the refusal costs one small frame, the action budget bounds how
            // often, and closing would only turn the sender into a costlier reconnect loop.
            send_control(session, control::error(kSecondRewind));
            return;
        }
        session.rewound = true;
        if (session.sent_events) {
            // Live events already went out on this connection; a replay would now arrive out
            // of order.
            metrics_.count_resync("resume_after_live_delivery");
            metrics_.count_resume(ResumeOutcome::resynced);
            send_control(session, control::resync("resume_after_live_delivery"));
            return;
        }
    } else if (session.sent_events) {
        metrics_.count_resume(ResumeOutcome::already_live);
        return;  // from where it stands or later: nothing it has not been sent is skipped
    }
    // A replay is as long as the history allows: only a socket that stops draining is slow.
    metrics_.count_resume(ResumeOutcome::replayed);
    // It starts at the first event this connection may see, found without looking at the
    // others, so a resume costs the same whatever lies between the cursor and that event.
    session.next_seq = history_.next_visible(session.audience, point.next_seq);
    session.skip_through_position = 0;
    session.live = false;
    release_hold(session);
}

void Hub::resync_after_resume(Session& session, std::string_view reason) {
    metrics_.count_resync(reason);
    metrics_.count_resume(ResumeOutcome::resynced);
    send_control(session, control::resync(reason));
    release_hold(session);
}

// Only a first rewind of a connection that has had no event yet, as for a replay from the
// history: the filled events and then the history's must be all it gets, in order.
bool Hub::park_for_gap_fill(Session& session, std::uint64_t after) {
    if (gap_filler_ == nullptr || !history_.stream_mode() || session.sent_events ||
        session.rewound || parked_.size() >= limits_.max_gap_fills) {
        return false;
    }
    const std::uint64_t fill_id = next_fill_id_++;
    parked_[fill_id] = ParkedResume{&session, history_.floor()};
    session.gap_fill = fill_id;
    session.rewound = true;
    session.live = false;
    const bool asked = gap_filler_->fill(after, history_.floor(), [this, fill_id](GapFill fill) {
        finish_gap_fill(fill_id, std::move(fill));
    });
    if (!asked) {
        parked_.erase(fill_id);
        session.gap_fill = 0;
        session.rewound = false;
    }
    return asked;
}

void Hub::finish_gap_fill(std::uint64_t fill_id, GapFill fill) {
    const auto found = parked_.find(fill_id);
    if (found == parked_.end()) return;  // closed, or the history was reset meanwhile
    const ParkedResume parked = found->second;
    parked_.erase(found);
    Session& session = *parked.session;
    session.gap_fill = 0;
    // The history evicted past the asked floor meanwhile: what lies between is in neither.
    bool exact = fill.exact && history_.floor() <= parked.through;
    for (const FilledEntry& entry : fill.entries) {
        if (entry.epoch != history_.epoch() || entry.position > parked.through) exact = false;
    }
    if (!exact) {
        resync_after_resume(session, resync_reason(ResumeVerdict::too_old));
        return;
    }
    for (const FilledEntry& entry : fill.entries) {
        const bool well_formed =
            entry.json.size() >= 2 && entry.json.front() == '{' && entry.json.back() == '}';
        if (!well_formed || !may_receive(session.audience, entry.shop_id, entry.user_id)) continue;
        session.backfill.push_back(
            make_frame(event_payload(entry.json, history_.cursor_for(entry.position))));
    }
    metrics_.count_resume(ResumeOutcome::replayed);
    // Every retained event lies after the floor: the history takes over where the fill ends.
    session.next_seq = history_.next_visible(session.audience, history_.first_retained_seq());
    session.skip_through_position = 0;
    release_hold(session);
}

}  // namespace shopcast
