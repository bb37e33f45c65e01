#include "daemon/core/idempotency.h"

#include <openssl/crypto.h>

#include <algorithm>

namespace shopcast {

IdempotencyCache::IdempotencyCache(std::int64_t ttl_seconds, std::size_t max_entries)
    : ttl_seconds_(ttl_seconds), max_entries_(max_entries) {}

void IdempotencyCache::expire(std::int64_t now) {
    while (!order_.empty() &&
           (order_.front().created + ttl_seconds_ <= now || order_.size() > max_entries_)) {
        entries_.erase(order_.front().key);
        order_.pop_front();
    }
}

KeyLookup IdempotencyCache::find(const std::string& key, const RequestDigest& digest,
                                 std::int64_t now) {
    expire(now);
    KeyLookup lookup;
    auto it = entries_.find(key);
    if (it == entries_.end()) return lookup;
    lookup.first_ack = it->second.ack;
    const bool same = CRYPTO_memcmp(it->second.digest.data(), digest.data(), digest.size()) == 0;
    lookup.verdict = same ? KeyLookup::Verdict::same_request : KeyLookup::Verdict::other_request;
    return lookup;
}

void IdempotencyCache::remember(const std::string& key, const RequestDigest& digest,
                                const ipc::PublishAck& ack, std::int64_t now) {
    if (!entries_.emplace(key, Remembered{ack, digest}).second) return;
    order_.push_back(Entry{key, now});
    expire(now);
}

void IdempotencyCache::save_into(SavedState& state, std::int64_t now) const {
    state.keys.clear();
    for (const Entry& entry : order_) {
        auto remembered = entries_.find(entry.key);
        if (remembered == entries_.end() || entry.created + ttl_seconds_ <= now) continue;
        state.keys.push_back(SavedKey{entry.key, remembered->second.ack, remembered->second.digest,
                                      now - entry.created});
    }
}

void IdempotencyCache::restore_from(const SavedState& state, std::int64_t now,
                                    std::int64_t downtime) {
    for (const SavedKey& saved : state.keys) {
        const std::int64_t created = now - saved.age_seconds - std::max<std::int64_t>(downtime, 0);
        if (created + ttl_seconds_ <= now ||
            !entries_.emplace(saved.key, Remembered{saved.ack, saved.request_digest}).second) {
            continue;
        }
        order_.push_back(Entry{saved.key, created});
    }
    expire(now);
}

}  // namespace shopcast
