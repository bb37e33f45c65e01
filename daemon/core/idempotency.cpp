#include "daemon/core/idempotency.h"

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

}  // namespace shopcast
