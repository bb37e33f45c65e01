#include "daemon/core/idempotency.h"

#include <algorithm>

namespace shopcast {

IdempotencyCache::IdempotencyCache(std::int64_t ttl_seconds, std::size_t max_entries)
    : ttl_seconds_(ttl_seconds), max_entries_(max_entries) {}

void IdempotencyCache::expire(std::int64_t now) {
    while (!order_.empty() &&
           (order_.front().created + ttl_seconds_ <= now || order_.size() > max_entries_)) {
        acks_.erase(order_.front().key);
        order_.pop_front();
    }
}

std::optional<ipc::PublishAck> IdempotencyCache::find(const std::string& key, std::int64_t now) {
    expire(now);
    auto it = acks_.find(key);
    if (it == acks_.end()) return std::nullopt;
    return it->second;
}

void IdempotencyCache::remember(const std::string& key, const ipc::PublishAck& ack,
                                std::int64_t now) {
    if (!acks_.emplace(key, ack).second) return;
    order_.push_back(Entry{key, now});
    expire(now);
}

void IdempotencyCache::save_into(SavedState& state, std::int64_t now) const {
    state.keys.clear();
    for (const Entry& entry : order_) {
        auto ack = acks_.find(entry.key);
        if (ack == acks_.end() || entry.created + ttl_seconds_ <= now) continue;
        state.keys.push_back(SavedKey{entry.key, ack->second, now - entry.created});
    }
}

void IdempotencyCache::restore_from(const SavedState& state, std::int64_t now,
                                    std::int64_t downtime) {
    for (const SavedKey& saved : state.keys) {
        const std::int64_t created = now - saved.age_seconds - std::max<std::int64_t>(downtime, 0);
        if (created + ttl_seconds_ <= now || !acks_.emplace(saved.key, saved.ack).second) continue;
        order_.push_back(Entry{saved.key, created});
    }
    expire(now);
}

}  // namespace shopcast
