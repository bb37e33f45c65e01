#include "daemon/core/history.h"

#include <algorithm>

namespace shopcast {

void SeqIndex::pop_front() {
    ++start_;
    // Compacting once half is dead keeps pop_front amortized O(1) and the memory bounded.
    if (start_ == seqs_.size()) {
        seqs_.clear();
        start_ = 0;
    } else if (start_ > 32 && start_ * 2 > seqs_.size()) {
        seqs_.erase(seqs_.begin(), seqs_.begin() + static_cast<long>(start_));
        start_ = 0;
    }
}

std::uint64_t SeqIndex::first_from(std::uint64_t seq) const {
    const auto begin = seqs_.begin() + static_cast<long>(start_);
    const auto found = std::lower_bound(begin, seqs_.end(), seq);
    return found == seqs_.end() ? 0 : *found;
}

std::string event_payload(std::string_view json, std::string_view cursor) {
    // The validated object ends with '}'; the id goes in front of it, so nothing is re-parsed.
    std::string payload;
    payload.reserve(json.size() + cursor.size() + 8);
    payload.append(json.substr(0, json.size() - 1));
    payload.append(",\"id\":\"").append(cursor).append("\"}");
    return payload;
}

History::History(const Epoch& epoch, std::size_t max_events, std::size_t max_bytes)
    : epoch_(epoch), codec_(epoch), max_events_(max_events), max_bytes_(max_bytes) {}

std::size_t History::cost_of(const StoredEvent& event) {
    return sizeof(StoredEvent) + event.shop_id.capacity() + event.user_id.capacity() +
           event.frame->wire().size();
}

void History::push_event(StoredEvent event) {
    if (!event.user_id.empty()) {
        by_user_[event.user_id].push_back(event.seq);
    } else {
        public_.push_back(event.seq);
        (event.shop_id.empty() ? public_unshopped_ : by_shop_[event.shop_id]).push_back(event.seq);
    }
    bytes_ += cost_of(event);
    last_position_ = event.position;
    events_.push_back(std::move(event));
}

const StoredEvent& History::append(std::string_view json, std::string shop_id, std::string user_id,
                                   std::int64_t published_at_ms) {
    return append_event(next_seq_, json, std::move(shop_id), std::move(user_id), published_at_ms);
}

const StoredEvent* History::append_at(std::uint64_t position, std::string_view json,
                                      std::string shop_id, std::string user_id,
                                      std::int64_t published_at_ms) {
    if (position <= last_position_) return nullptr;
    return &append_event(position, json, std::move(shop_id), std::move(user_id), published_at_ms);
}

void History::reset(const Epoch& epoch, std::uint64_t floor) {
    History fresh(epoch, max_events_, max_bytes_);
    fresh.next_seq_ = next_seq_;
    fresh.floor_ = floor;
    fresh.last_position_ = floor;
    fresh.stream_mode_ = true;
    fresh.work_steps_ = work_steps_;
    *this = std::move(fresh);
}

const StoredEvent& History::append_event(std::uint64_t position, std::string_view json,
                                         std::string shop_id, std::string user_id,
                                         std::int64_t published_at_ms) {
    const std::uint64_t seq = next_seq_++;
    const std::string payload = event_payload(json, cursor_for(position));
    push_event(StoredEvent{seq, position, std::move(shop_id), std::move(user_id),
                           make_frame(payload), published_at_ms});
    evict_to_limits();
    return events_.back();
}

void History::evict_to_limits() {
    // The newest event always stays, even when it alone exceeds the byte limit.
    while (events_.size() > 1 && (events_.size() > max_events_ || bytes_ > max_bytes_)) {
        const StoredEvent& oldest = events_.front();
        // The oldest event is the front of each of its indexes; an index left empty goes, so
        // the maps hold only keys that still have retained events.
        if (!oldest.user_id.empty()) {
            auto index = by_user_.find(oldest.user_id);
            index->second.pop_front();
            if (index->second.empty()) by_user_.erase(index);
        } else {
            public_.pop_front();
            if (oldest.shop_id.empty()) {
                public_unshopped_.pop_front();
            } else {
                auto index = by_shop_.find(oldest.shop_id);
                index->second.pop_front();
                if (index->second.empty()) by_shop_.erase(index);
            }
        }
        bytes_ -= cost_of(oldest);
        floor_ = oldest.position;
        events_.pop_front();
    }
}

const StoredEvent* History::find(std::uint64_t seq) const {
    ++work_steps_;
    if (seq < first_retained_seq() || seq >= next_seq_) return nullptr;
    return &events_[seq - first_retained_seq()];
}

std::uint64_t History::probe(const SeqIndex& index, std::uint64_t seq) const {
    ++work_steps_;
    const std::uint64_t found = index.first_from(seq);
    return found == 0 ? next_seq_ : found;
}

std::uint64_t History::probe(const std::unordered_map<std::string, SeqIndex>& indexes,
                             const std::string& key, std::uint64_t seq) const {
    const auto index = indexes.find(key);
    if (index == indexes.end()) {
        ++work_steps_;
        return next_seq_;
    }
    return probe(index->second, seq);
}

// The same rules as may_receive(), read from the indexes instead of from each event.
std::uint64_t History::next_visible(const Audience& audience, std::uint64_t seq) const {
    seq = std::max(seq, first_retained_seq());
    if (seq >= next_seq_) return next_seq_;
    std::uint64_t next = next_seq_;
    if (!audience.user_id.empty()) next = probe(by_user_, audience.user_id, seq);
    if (audience.shops.empty()) return std::min(next, probe(public_, seq));
    next = std::min(next, probe(public_unshopped_, seq));
    for (const std::string& shop : audience.shops)
        next = std::min(next, probe(by_shop_, shop, seq));
    return next;
}

void History::save_into(SavedState& state) const {
    state.epoch = epoch_.name;
    state.epoch_key.assign(epoch_.key.begin(), epoch_.key.end());
    state.last_seq = last_seq();
    state.events.clear();
    state.events.reserve(events_.size());
    for (const StoredEvent& event : events_) {
        state.events.push_back(SavedEvent{event.seq, event.shop_id, event.user_id,
                                          std::string(event.frame->payload())});
    }
}

void History::restore_from(const SavedState& state) {
    Epoch saved;
    saved.name = state.epoch;
    std::copy_n(state.epoch_key.begin(), std::min(state.epoch_key.size(), saved.key.size()),
                saved.key.begin());
    History restored(saved, max_events_, max_bytes_);
    for (const SavedEvent& event : state.events) {
        restored.push_event(StoredEvent{event.seq, event.seq, event.shop_id, event.user_id,
                                        make_frame(event.payload)});
    }
    restored.next_seq_ = state.last_seq + 1;
    restored.last_position_ = state.last_seq;
    restored.floor_ = state.last_seq - restored.events_.size();
    restored.evict_to_limits();
    *this = std::move(restored);
}

ResumePoint History::resume_point(std::string_view text) const {
    const CursorPosition cursor = codec_.read(text);
    if (cursor.reading == CursorReading::malformed) return {ResumeVerdict::malformed, 0};
    if (cursor.reading == CursorReading::other_epoch) return {ResumeVerdict::other_epoch, 0};
    const std::uint64_t position = cursor.seq;
    if (position > last_position_) {
        // Locally nothing past the newest event was ever handed out; from the stream another
        // daemon may have read further than this one has yet.
        if (!stream_mode_) return {ResumeVerdict::unknown, 0};
        return {ResumeVerdict::ahead, next_seq_, position};
    }
    // Every event after the cursor must still be here, else the replay would have a hole.
    if (position < floor_) return {ResumeVerdict::too_old, 0, position};
    const auto after = std::upper_bound(
        events_.begin(), events_.end(), position,
        [](std::uint64_t wanted, const StoredEvent& event) { return wanted < event.position; });
    return {ResumeVerdict::ok, after == events_.end() ? next_seq_ : after->seq};
}

}  // namespace shopcast
