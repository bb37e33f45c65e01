#include "daemon/core/history.h"

#include "daemon/core/cursor.h"

namespace shopcast {

History::History(std::string epoch, std::size_t max_events, std::size_t max_bytes)
    : epoch_(std::move(epoch)), max_events_(max_events), max_bytes_(max_bytes) {}

std::size_t History::cost_of(const StoredEvent& event) {
    return sizeof(StoredEvent) + event.shop_id.capacity() + event.user_id.capacity() +
           event.frame->wire().size();
}

const StoredEvent& History::append(std::string_view json, std::string shop_id, std::string user_id,
                                   std::int64_t published_at_ms) {
    const std::uint64_t seq = next_seq_++;
    const std::string cursor = format_cursor(epoch_, seq);
    // The validated object ends with '}'; the id goes in front of it, so nothing is re-parsed.
    std::string payload;
    payload.reserve(json.size() + cursor.size() + 8);
    payload.append(json.substr(0, json.size() - 1));
    payload.append(",\"id\":\"").append(cursor).append("\"}");

    events_.push_back(StoredEvent{seq, std::move(shop_id), std::move(user_id), make_frame(payload),
                                  published_at_ms});
    bytes_ += cost_of(events_.back());
    evict_to_limits();
    return events_.back();
}

void History::evict_to_limits() {
    // The newest event always stays, even when it alone exceeds the byte limit.
    while (events_.size() > 1 && (events_.size() > max_events_ || bytes_ > max_bytes_)) {
        bytes_ -= cost_of(events_.front());
        events_.pop_front();
    }
}

const StoredEvent* History::find(std::uint64_t seq) const {
    if (seq < first_retained_seq() || seq >= next_seq_) return nullptr;
    return &events_[seq - first_retained_seq()];
}

std::string History::cursor_for(std::uint64_t seq) const {
    return format_cursor(epoch_, seq);
}

void History::save_into(SavedState& state) const {
    state.epoch = epoch_;
    state.last_seq = last_seq();
    state.events.clear();
    state.events.reserve(events_.size());
    for (const StoredEvent& event : events_) {
        state.events.push_back(SavedEvent{event.seq, event.shop_id, event.user_id,
                                          std::string(event.frame->payload())});
    }
}

void History::restore_from(const SavedState& state) {
    epoch_ = state.epoch;
    events_.clear();
    bytes_ = 0;
    for (const SavedEvent& event : state.events) {
        events_.push_back(
            StoredEvent{event.seq, event.shop_id, event.user_id, make_frame(event.payload)});
        bytes_ += cost_of(events_.back());
    }
    next_seq_ = state.last_seq + 1;
    evict_to_limits();
}

ResumePoint History::resume_point(std::string_view text) const {
    auto cursor = parse_cursor(text);
    if (!cursor) return {ResumeVerdict::malformed, 0};
    if (cursor->epoch != epoch_) return {ResumeVerdict::other_epoch, 0};
    if (cursor->seq > last_seq()) return {ResumeVerdict::unknown, 0};
    // Every event after the cursor must still be here, else the replay would have a hole.
    if (cursor->seq + 1 < first_retained_seq()) return {ResumeVerdict::too_old, 0};
    return {ResumeVerdict::ok, cursor->seq + 1};
}

}  // namespace shopcast
