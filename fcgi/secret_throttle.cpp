#include "fcgi/secret_throttle.h"

#include <algorithm>
#include <iterator>
#include <random>
#include <stdexcept>
#include <utility>

namespace shopcast::fcgi {
namespace {

constexpr std::size_t kIpv6GroupBytes = 8;  // the /64 an address is counted under

std::uint64_t random_seed() {
    std::random_device device;
    return (std::uint64_t{device()} << 32) ^ device();
}

}  // namespace

// FNV-1a under a per-process seed: an attacker choosing addresses cannot aim at one bucket.
std::size_t SecretThrottle::KeyHash::operator()(const Key& key) const noexcept {
    std::uint64_t hash = 14695981039346656037ull ^ seed;
    for (const std::uint8_t byte : key) {
        hash ^= byte;
        hash *= 1099511628211ull;
    }
    return static_cast<std::size_t>(hash ^ (hash >> 29));
}

SecretThrottle::SecretThrottle(ThrottleSettings settings)
    : settings_(std::move(settings)), records_(0, KeyHash{random_seed()}) {
    if (settings_.max_failures == 0 || settings_.max_tracked_addresses == 0) {
        throw std::invalid_argument("SecretThrottle: limits must be at least 1");
    }
}

std::optional<SecretThrottle::Key> SecretThrottle::key_for(std::string_view remote_address) const {
    const std::optional<IpAddress> address = parse_ip_address(remote_address);
    if (!address) return Key{};
    if (settings_.publisher_addresses.contains(*address)) return std::nullopt;
    Key key = *address;
    if (!is_ipv4_mapped(key)) {
        for (std::size_t i = kIpv6GroupBytes; i < key.size(); ++i) key[i] = 0;
    }
    return key;
}

std::optional<std::chrono::seconds> SecretThrottle::refusal(std::string_view remote_address,
                                                            Clock::time_point now) {
    if (tracked_.load(std::memory_order_relaxed) == 0) return std::nullopt;
    const std::optional<Key> key = key_for(remote_address);
    if (!key) return std::nullopt;
    Clock::time_point locked_until;
    {
        const std::lock_guard lock(mutex_);
        const auto found = records_.find(*key);
        if (found == records_.end()) return std::nullopt;
        locked_until = found->second.locked_until;
    }
    if (locked_until <= now) return std::nullopt;
    // Rounded up: a bot that waits exactly Retry-After seconds finds the lockout over.
    const auto remaining = std::chrono::ceil<std::chrono::seconds>(locked_until - now);
    return std::max(remaining, std::chrono::seconds(1));
}

bool SecretThrottle::record_failure(std::string_view remote_address, Clock::time_point now) {
    const std::optional<Key> key = key_for(remote_address);
    if (!key) return false;
    const std::lock_guard lock(mutex_);
    auto found = records_.find(*key);
    if (found == records_.end()) {
        make_room(now);
        oldest_first_.push_back(*key);
        Record fresh;
        fresh.window_start = now;
        fresh.locked_until = now;
        fresh.age = std::prev(oldest_first_.end());
        found = records_.emplace(*key, fresh).first;
        tracked_.store(records_.size(), std::memory_order_relaxed);
    } else {
        oldest_first_.splice(oldest_first_.end(), oldest_first_, found->second.age);
    }
    Record& record = found->second;
    record.last_failure = now;
    // Two workers may both have let a request through just before the lockout began.
    if (record.locked_until > now) return false;
    if (record.failures == 0 || now - record.window_start >= settings_.failure_window) {
        record.window_start = now;
        record.failures = 0;
    }
    if (++record.failures < settings_.max_failures) return false;
    record.locked_until = now + settings_.lockout;
    record.failures = 0;
    return true;
}

void SecretThrottle::make_room(Clock::time_point now) {
    const auto forgotten_after =
        std::max<Clock::duration>(settings_.failure_window, settings_.lockout);
    while (!oldest_first_.empty()) {
        const auto oldest = records_.find(oldest_first_.front());
        const bool stale = now - oldest->second.last_failure >= forgotten_after;
        if (!stale && records_.size() < settings_.max_tracked_addresses) break;
        records_.erase(oldest);
        oldest_first_.pop_front();
    }
}

}  // namespace shopcast::fcgi
