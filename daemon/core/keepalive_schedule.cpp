#include "daemon/core/keepalive_schedule.h"

namespace shopcast {

KeepaliveSchedule::KeepaliveSchedule(std::int64_t ping_after_ms, std::int64_t hangup_after_ms)
    : ping_after_ms_(ping_after_ms), hangup_after_ms_(hangup_after_ms) {}

void KeepaliveSchedule::heard(KeepaliveEntry& entry, std::int64_t now_ms) {
    remove(entry);
    entry.heard_ms = now_ms;
    append(entry, kSilent);
}

void KeepaliveSchedule::remove(KeepaliveEntry& entry) {
    if (entry.list == kNone) return;
    List& list = list_of(entry.list);
    (entry.previous != nullptr ? entry.previous->next : list.head) = entry.next;
    (entry.next != nullptr ? entry.next->previous : list.tail) = entry.previous;
    entry.previous = nullptr;
    entry.next = nullptr;
    entry.list = kNone;
    --list.size;
}

void KeepaliveSchedule::append(KeepaliveEntry& entry, std::uint8_t which) {
    List& list = list_of(which);
    entry.list = which;
    entry.previous = list.tail;
    entry.next = nullptr;
    (list.tail != nullptr ? list.tail->next : list.head) = &entry;
    list.tail = &entry;
    ++list.size;
}

}  // namespace shopcast
