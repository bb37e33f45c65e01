// When each connection is due for a keepalive PING or a hangup, in O(1) per event: a connection
// that was heard from moves to the tail of a list ordered by when it was last heard, and the
// daemon's one timer walks from the heads only while the heads are due.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shopcast {

// One per connection, owned by whoever holds the connection's data. All zeros (no list) is the
// unscheduled state, so it can live in memory libwebsockets hands out zeroed. It must not move
// while scheduled.
struct KeepaliveEntry {
    KeepaliveEntry* previous = nullptr;
    KeepaliveEntry* next = nullptr;
    std::int64_t heard_ms = 0;  // when anything last arrived from the connection
    std::uint8_t list = 0;      // the schedule's: none, silent or pinged
};

class KeepaliveSchedule {
  public:
    // A connection heard from `ping_after_ms` ago gets a PING; one heard from `hangup_after_ms`
    // ago (more than ping_after_ms) is hung up, pinged or not.
    KeepaliveSchedule(std::int64_t ping_after_ms, std::int64_t hangup_after_ms);
    KeepaliveSchedule(const KeepaliveSchedule&) = delete;
    KeepaliveSchedule& operator=(const KeepaliveSchedule&) = delete;

    // Schedules a new connection as heard from at `now_ms`.
    void add(KeepaliveEntry& entry, std::int64_t now_ms) { heard(entry, now_ms); }
    // Anything arrived from the connection (a message, a PONG, a PING): its silence starts again.
    void heard(KeepaliveEntry& entry, std::int64_t now_ms);
    // The connection is gone or being closed; nothing happens if it was not scheduled.
    void remove(KeepaliveEntry& entry);

    // Calls `ping(entry)` for each connection silent for ping_after_ms that has not been pinged
    // since it was last heard, and `hang_up(entry)` for each silent for hangup_after_ms, which
    // leaves the schedule first. Costs O(1) plus the connections that are due. The callbacks
    // must not change the schedule.
    template <typename Ping, typename HangUp>
    void run_due(std::int64_t now_ms, Ping&& ping, HangUp&& hang_up);

    bool scheduled(const KeepaliveEntry& entry) const { return entry.list != kNone; }
    bool pinged(const KeepaliveEntry& entry) const { return entry.list == kPinged; }
    std::size_t size() const { return silent_.size + pinged_.size; }

  private:
    static constexpr std::uint8_t kNone = 0;
    static constexpr std::uint8_t kSilent = 1;  // not pinged since last heard
    static constexpr std::uint8_t kPinged = 2;

    // Both lists stay ordered by heard_ms: `heard` appends with the latest time, and the silent
    // head moves to the pinged tail only once its time is the oldest of all that are not pinged
    // and newer than every pinged one.
    struct List {
        KeepaliveEntry* head = nullptr;
        KeepaliveEntry* tail = nullptr;
        std::size_t size = 0;
    };

    List& list_of(std::uint8_t list) { return list == kSilent ? silent_ : pinged_; }
    void append(KeepaliveEntry& entry, std::uint8_t list);

    std::int64_t ping_after_ms_;
    std::int64_t hangup_after_ms_;
    List silent_;
    List pinged_;
};

template <typename Ping, typename HangUp>
void KeepaliveSchedule::run_due(std::int64_t now_ms, Ping&& ping, HangUp&& hang_up) {
    while (pinged_.head != nullptr && pinged_.head->heard_ms + hangup_after_ms_ <= now_ms) {
        KeepaliveEntry& entry = *pinged_.head;
        remove(entry);
        hang_up(entry);
    }
    while (silent_.head != nullptr && silent_.head->heard_ms + ping_after_ms_ <= now_ms) {
        KeepaliveEntry& entry = *silent_.head;
        remove(entry);
        if (entry.heard_ms + hangup_after_ms_ <= now_ms) {
            hang_up(entry);  // the timer ran late past both
        } else {
            append(entry, kPinged);
            ping(entry);
        }
    }
}

}  // namespace shopcast
