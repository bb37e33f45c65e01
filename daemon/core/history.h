// The bounded history of recent events: the source of live delivery and of resume.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/cursor.h"
#include "daemon/core/audience.h"
#include "daemon/core/shared_frame.h"
#include "daemon/core/state_file.h"

namespace shopcast {

// One published event as every connection sees it.
struct StoredEvent {
    std::uint64_t seq = 0;       // dense and local: this daemon's order of arrival
    std::uint64_t position = 0;  // what its cursor names: == seq locally, from the stream id else
    std::string shop_id;         // empty: concerns no shop
    std::string user_id;         // empty: public
    FramePtr frame;              // the object with "id" added, serialized once
    std::int64_t published_at_ms = 0;  // steady clock; 0 for events restored from a state file
};

// The frame payload of the event `json` (the validated object without "id") whose cursor is
// `cursor`: the object with "id" added, without re-parsing it.
std::string event_payload(std::string_view json, std::string_view cursor);

// ahead: a cursor of this epoch past the newest event here (only in stream mode, where another
// daemon may have read further): the client is live from here, skipping up to that position.
enum class ResumeVerdict { ok, malformed, other_epoch, unknown, too_old, ahead };

struct ResumePoint {
    ResumeVerdict verdict = ResumeVerdict::malformed;
    std::uint64_t next_seq = 0;  // with ok and ahead: the first event the client has not seen
    std::uint64_t position = 0;  // with ahead and too_old: the position the cursor names
};

// The seqs of the retained events one audience key (a shop, a user, ...) selects, oldest first.
// Eviction removes from the front only, so a vector with a moving start does it in amortized
// O(1) and keeps one small allocation per key.
class SeqIndex {
  public:
    void push_back(std::uint64_t seq) { seqs_.push_back(seq); }
    void pop_front();
    bool empty() const { return start_ == seqs_.size(); }
    std::uint64_t front() const { return seqs_[start_]; }
    // The first seq >= `seq`, or 0 when there is none (a binary search).
    std::uint64_t first_from(std::uint64_t seq) const;

  private:
    std::vector<std::uint64_t> seqs_;
    std::size_t start_ = 0;
};

// One per daemon, owned by the Hub. Events are kept in publish order and evicted oldest first
// once either the count or the byte limit is reached. Each event has a position, strictly
// increasing; the floor is the position below which the history cannot answer: every event
// after the floor up to the newest is here. In local mode positions are the seqs; in stream
// mode (after reset()) they are the stream's entry ids and may have holes. Sessions refer to events
// by seq only; seq -> event is arithmetic on the ring, and per-audience indexes let a connection
// skip every event it may not see without looking at them, so no browser action costs more with a
// longer history.
class History {
  public:
    History(const Epoch& epoch, std::size_t max_events, std::size_t max_bytes);

    // Appends an event whose JSON object (without "id") is `json`, assigning the next seq.
    // Its position is its seq (local mode).
    const StoredEvent& append(std::string_view json, std::string shop_id, std::string user_id,
                              std::int64_t published_at_ms = 0);
    // Stream mode: appends an event at `position`, which must lie after last_position();
    // nullptr (and nothing appended) otherwise.
    const StoredEvent* append_at(std::uint64_t position, std::string_view json, std::string shop_id,
                                 std::string user_id, std::int64_t published_at_ms = 0);
    // Stream mode from now on: forgets every event and continues in `epoch` with nothing
    // known at or before `floor`. Seqs continue (they stay dense and increasing).
    void reset(const Epoch& epoch, std::uint64_t floor);
    bool stream_mode() const { return stream_mode_; }
    // The oldest retained event; nullptr when the history is empty.
    const StoredEvent* oldest() const { return events_.empty() ? nullptr : &events_.front(); }

    // nullptr when `seq` was evicted or not yet published. One work step.
    const StoredEvent* find(std::uint64_t seq) const;
    // The first retained event from `seq` on that `audience` may receive, or last_seq() + 1.
    // One work step per index it consults (at most the number of shops + 2).
    std::uint64_t next_visible(const Audience& audience, std::uint64_t seq) const;

    std::uint64_t last_seq() const { return next_seq_ - 1; }
    std::uint64_t first_retained_seq() const { return next_seq_ - events_.size(); }
    // The id of the event at `position`: also the cursor that resumes after it.
    std::string cursor_for(std::uint64_t position) const { return codec_.event_cursor(position); }
    // A cursor for "after the newest event" that differs on every call.
    std::string hello_cursor() const { return codec_.hello_cursor(last_position_); }
    std::uint64_t floor() const { return floor_; }
    // The newest position known: the newest event's, or the floor when none is retained.
    std::uint64_t last_position() const { return last_position_; }
    ResumePoint resume_point(std::string_view cursor) const;

    std::size_t size() const { return events_.size(); }
    std::size_t bytes() const { return bytes_; }
    const std::string& epoch() const { return epoch_.name; }
    // Events looked at plus indexes consulted since the start: what delivery and actions cost,
    // counted so that tests can compare work without timing it.
    std::uint64_t work_steps() const { return work_steps_; }

    // What a restart needs to continue this history: same epoch, key, seqs and payloads.
    void save_into(SavedState& state) const;
    // Continues a saved history (decode_state checked its consistency); the limits stay ours.
    void restore_from(const SavedState& state);

  private:
    static std::size_t cost_of(const StoredEvent& event);
    void push_event(StoredEvent event);
    const StoredEvent& append_event(std::uint64_t position, std::string_view json,
                                    std::string shop_id, std::string user_id,
                                    std::int64_t published_at_ms);
    void evict_to_limits();
    std::uint64_t probe(const SeqIndex& index, std::uint64_t seq) const;
    std::uint64_t probe(const std::unordered_map<std::string, SeqIndex>& indexes,
                        const std::string& key, std::uint64_t seq) const;

    Epoch epoch_;
    CursorCodec codec_;
    std::size_t max_events_;
    std::size_t max_bytes_;
    std::deque<StoredEvent> events_;
    std::uint64_t next_seq_ = 1;
    std::uint64_t floor_ = 0;
    std::uint64_t last_position_ = 0;
    bool stream_mode_ = false;
    std::size_t bytes_ = 0;

    // Every retained private event is in by_user_; every public one in public_ and in either
    // public_unshopped_ or by_shop_.
    SeqIndex public_;            // public events (what a connection without shops sees)
    SeqIndex public_unshopped_;  // public events that name no shop
    std::unordered_map<std::string, SeqIndex> by_shop_;  // public events of each shop
    std::unordered_map<std::string, SeqIndex> by_user_;  // private events of each user
    mutable std::uint64_t work_steps_ = 0;
};

}  // namespace shopcast
