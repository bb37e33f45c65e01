// Remembers recent Idempotency-Keys so a retried publish is answered, not broadcast again.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/ipc.h"
#include "common/request_digest.h"
#include "daemon/core/state_file.h"

namespace shopcast {

// What a key lookup found.
struct KeyLookup {
    enum class Verdict { unseen, same_request, other_request };
    Verdict verdict = Verdict::unseen;
    ipc::PublishAck first_ack;  // the first attempt's answer (same_request and other_request)
};

// One per daemon. Entries expire after `ttl_seconds`; at most `max_entries` are kept (the
// oldest go first), so a flood of unique keys cannot grow memory without bound.
class IdempotencyCache {
  public:
    IdempotencyCache(std::int64_t ttl_seconds, std::size_t max_entries);

    KeyLookup find(const std::string& key, const RequestDigest& digest, std::int64_t now);
    void remember(const std::string& key, const RequestDigest& digest, const ipc::PublishAck& ack,
                  std::int64_t now);
    std::size_t size() const { return entries_.size(); }

    void save_into(SavedState& state, std::int64_t now) const;
    // Keys saved `downtime` seconds ago keep the rest of their TTL.
    void restore_from(const SavedState& state, std::int64_t now, std::int64_t downtime);

  private:
    void expire(std::int64_t now);

    struct Remembered {
        ipc::PublishAck ack;
        RequestDigest digest{};
    };
    struct Entry {
        std::string key;
        std::int64_t created = 0;
    };
    std::int64_t ttl_seconds_;
    std::size_t max_entries_;
    std::deque<Entry> order_;  // insertion order = expiry order
    std::unordered_map<std::string, Remembered> entries_;
};

}  // namespace shopcast
