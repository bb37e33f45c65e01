// Throttles guessing the publish secret: failed secrets are counted per client address, and an
// address with too many of them is refused for a while, whatever secret it carries. The bot's
// own addresses are never counted, so nobody sharing them can lock the bot out.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "fcgi/client_address.h"

namespace shopcast::fcgi {

struct ThrottleSettings {
    unsigned max_failures = 10;                  // failed secrets within the window...
    std::chrono::seconds failure_window{60};     // ...counted from the first of them
    std::chrono::seconds lockout{300};           // how long the address is then refused
    std::size_t max_tracked_addresses = 10'000;  // about 1.5 MB at most
    AddressSet publisher_addresses;              // never counted, never refused
};

// One per process, shared by every worker thread. A request from an address that has no
// failures on record (the bot's case) costs an atomic load; anything else one short lock.
class SecretThrottle {
  public:
    using Clock = std::chrono::steady_clock;

    explicit SecretThrottle(ThrottleSettings settings);

    // How long `remote_address` is still refused (Retry-After, whole seconds, at least 1), or
    // nullopt when it may try its secret.
    std::optional<std::chrono::seconds> refusal(std::string_view remote_address,
                                                Clock::time_point now);

    // Counts one failed secret; true when it started a lockout (worth one log line).
    bool record_failure(std::string_view remote_address, Clock::time_point now);

    std::size_t tracked_addresses() const { return tracked_.load(std::memory_order_relaxed); }
    const ThrottleSettings& settings() const { return settings_; }

  private:
    // What the table is keyed by: the address, an IPv6 one cut to its /64 (one subscriber's
    // usual allocation, so a host cannot dodge the count by hopping within it). Every address
    // nginx cannot give as IP (a Unix socket's "unix:") shares the all-zero key.
    using Key = IpAddress;
    struct KeyHash {
        std::uint64_t seed;
        std::size_t operator()(const Key& key) const noexcept;
    };
    struct Record {
        Clock::time_point window_start;
        Clock::time_point locked_until;  // in the past when not locked
        Clock::time_point last_failure;
        unsigned failures = 0;
        std::list<Key>::iterator age;  // position in oldest_first_
    };

    // nullopt for an exempt address.
    std::optional<Key> key_for(std::string_view remote_address) const;
    // Drops records nothing refers to any more, oldest first; then, if the table is still
    // full, the oldest one, so a spray of addresses costs memory up to the bound and no more.
    void make_room(Clock::time_point now);

    const ThrottleSettings settings_;
    mutable std::mutex mutex_;
    std::unordered_map<Key, Record, KeyHash> records_;  // guarded by mutex_
    std::list<Key> oldest_first_;                       // by last failure; guarded by mutex_
    std::atomic<std::size_t> tracked_{0};               // records_.size(), read without the lock
};

}  // namespace shopcast::fcgi
