// Remembers recent Idempotency-Keys so a retried publish is answered, not broadcast again.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/ipc.h"
#include "daemon/core/state_file.h"

namespace shopcast {

// One per daemon. Entries expire after `ttl_seconds`; at most `max_entries` are kept (the
// oldest go first), so a flood of unique keys cannot grow memory without bound.
class IdempotencyCache {
  public:
    IdempotencyCache(std::int64_t ttl_seconds, std::size_t max_entries);

    std::optional<ipc::PublishAck> find(const std::string& key, std::int64_t now);
    void remember(const std::string& key, const ipc::PublishAck& ack, std::int64_t now);
    std::size_t size() const { return acks_.size(); }

    void save_into(SavedState& state, std::int64_t now) const;
    // Keys saved `downtime` seconds ago keep the rest of their TTL.
    void restore_from(const SavedState& state, std::int64_t now, std::int64_t downtime);

  private:
    void expire(std::int64_t now);

    struct Entry {
        std::string key;
        std::int64_t created = 0;
    };
    std::int64_t ttl_seconds_;
    std::size_t max_entries_;
    std::deque<Entry> order_;  // insertion order = expiry order
    std::unordered_map<std::string, ipc::PublishAck> acks_;
};

}  // namespace shopcast
