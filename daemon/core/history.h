// The bounded history of recent events: the source of live delivery and of resume.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "daemon/core/shared_frame.h"
#include "daemon/core/state_file.h"

namespace shopcast {

// One published event as every connection sees it.
struct StoredEvent {
    std::uint64_t seq = 0;
    std::string shop_id;               // empty: concerns no shop
    std::string user_id;               // empty: public
    FramePtr frame;                    // the object with "id" added, serialized once
    std::int64_t published_at_ms = 0;  // steady clock; 0 for events restored from a state file
};

enum class ResumeVerdict { ok, malformed, other_epoch, unknown, too_old };

struct ResumePoint {
    ResumeVerdict verdict = ResumeVerdict::malformed;
    std::uint64_t next_seq = 0;  // with ok: the first event the client has not seen
};

// One per daemon, owned by the Hub. Events are kept in publish order and evicted oldest first
// once either the count or the byte limit is reached. Sessions refer to events by seq only.
class History {
  public:
    History(std::string epoch, std::size_t max_events, std::size_t max_bytes);

    // Appends an event whose JSON object (without "id") is `json`, assigning the next seq.
    const StoredEvent& append(std::string_view json, std::string shop_id, std::string user_id,
                              std::int64_t published_at_ms = 0);
    // The oldest retained event; nullptr when the history is empty.
    const StoredEvent* oldest() const { return events_.empty() ? nullptr : &events_.front(); }

    // nullptr when `seq` was evicted or not yet published.
    const StoredEvent* find(std::uint64_t seq) const;

    std::uint64_t last_seq() const { return next_seq_ - 1; }
    std::uint64_t first_retained_seq() const { return next_seq_ - events_.size(); }
    std::string cursor_for(std::uint64_t seq) const;
    ResumePoint resume_point(std::string_view cursor) const;

    std::size_t size() const { return events_.size(); }
    std::size_t bytes() const { return bytes_; }
    const std::string& epoch() const { return epoch_; }

    // What a restart needs to continue this history: same epoch, seqs and payloads.
    void save_into(SavedState& state) const;
    // Continues a saved history (decode_state checked its consistency); the limits stay ours.
    void restore_from(const SavedState& state);

  private:
    static std::size_t cost_of(const StoredEvent& event);
    void evict_to_limits();

    std::string epoch_;
    std::size_t max_events_;
    std::size_t max_bytes_;
    std::deque<StoredEvent> events_;
    std::uint64_t next_seq_ = 1;
    std::size_t bytes_ = 0;
};

}  // namespace shopcast
