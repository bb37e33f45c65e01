#include "daemon/core/keepalive_schedule.h"

#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace shopcast {
namespace {

constexpr std::int64_t kPingMs = 25'000;
constexpr std::int64_t kHangupMs = 40'000;

// What one run_due call asked for, as indexes into the test's connections.
struct Due {
    std::vector<int> pings;
    std::vector<int> hangups;
};

template <std::size_t N>
Due run(KeepaliveSchedule& schedule, std::array<KeepaliveEntry, N>& entries, std::int64_t now) {
    Due due;
    const auto index = [&](KeepaliveEntry& entry) {
        return static_cast<int>(&entry - &entries[0]);
    };
    schedule.run_due(
        now, [&](KeepaliveEntry& entry) { due.pings.push_back(index(entry)); },
        [&](KeepaliveEntry& entry) { due.hangups.push_back(index(entry)); });
    return due;
}

using Indexes = std::vector<int>;

TEST(KeepaliveSchedule, ZeroedEntryIsUnscheduledAndRemovingItIsHarmless) {
    KeepaliveSchedule schedule(kPingMs, kHangupMs);
    KeepaliveEntry entry{};
    EXPECT_FALSE(schedule.scheduled(entry));
    schedule.remove(entry);
    EXPECT_EQ(schedule.size(), 0u);
}

TEST(KeepaliveSchedule, PingsOnlyAfterThePingIntervalOfSilence) {
    KeepaliveSchedule schedule(kPingMs, kHangupMs);
    std::array<KeepaliveEntry, 1> entries{};
    schedule.add(entries[0], 1000);
    EXPECT_EQ(run(schedule, entries, 1000 + kPingMs - 1).pings, Indexes{});
    EXPECT_EQ(run(schedule, entries, 1000 + kPingMs).pings, Indexes{0});
    EXPECT_TRUE(schedule.pinged(entries[0]));
    // Pinged once per silence, not on every tick.
    EXPECT_EQ(run(schedule, entries, 1000 + kPingMs + 5000).pings, Indexes{});
}

TEST(KeepaliveSchedule, PingsAndHangsUpInTheOrderConnectionsWentSilent) {
    KeepaliveSchedule schedule(kPingMs, kHangupMs);
    std::array<KeepaliveEntry, 4> entries{};
    schedule.add(entries[2], 0);
    schedule.add(entries[0], 100);
    schedule.add(entries[3], 200);
    schedule.add(entries[1], 300);
    EXPECT_EQ(run(schedule, entries, 200 + kPingMs).pings, (Indexes{2, 0, 3}));
    EXPECT_EQ(run(schedule, entries, 300 + kPingMs).pings, Indexes{1});
    EXPECT_EQ(run(schedule, entries, 100 + kHangupMs).hangups, (Indexes{2, 0}));
    EXPECT_EQ(run(schedule, entries, 300 + kHangupMs).hangups, (Indexes{3, 1}));
    EXPECT_EQ(schedule.size(), 0u);
}

TEST(KeepaliveSchedule, AnythingHeardMovesTheConnectionToTheBackAndCancelsItsHangup) {
    KeepaliveSchedule schedule(kPingMs, kHangupMs);
    std::array<KeepaliveEntry, 3> entries{};
    for (auto& entry : entries) schedule.add(entry, 0);
    EXPECT_EQ(run(schedule, entries, kPingMs).pings, (Indexes{0, 1, 2}));
    schedule.heard(entries[0], kPingMs + 10);  // its PONG
    EXPECT_FALSE(schedule.pinged(entries[0]));
    schedule.heard(entries[1], kPingMs + 20);
    const Due at_hangup = run(schedule, entries, kHangupMs);
    EXPECT_EQ(at_hangup.hangups, Indexes{2});
    EXPECT_EQ(at_hangup.pings, Indexes{});
    EXPECT_EQ(run(schedule, entries, 2 * kPingMs + 10).pings, Indexes{0});
    EXPECT_EQ(run(schedule, entries, 2 * kPingMs + 20).pings, Indexes{1});
    EXPECT_EQ(schedule.size(), 2u);
}

TEST(KeepaliveSchedule, AMessageBeforeThePingIntervalPostponesThePing) {
    KeepaliveSchedule schedule(kPingMs, kHangupMs);
    std::array<KeepaliveEntry, 2> entries{};
    schedule.add(entries[0], 0);
    schedule.add(entries[1], 0);
    schedule.heard(entries[0], 20'000);
    EXPECT_EQ(run(schedule, entries, kPingMs).pings, Indexes{1});
    EXPECT_EQ(run(schedule, entries, 20'000 + kPingMs).pings, Indexes{0});
}

TEST(KeepaliveSchedule, ALateTimerHangsUpWithoutPingingWhenBothAreDue) {
    KeepaliveSchedule schedule(kPingMs, kHangupMs);
    std::array<KeepaliveEntry, 2> entries{};
    schedule.add(entries[0], 0);
    schedule.add(entries[1], 10'000);
    const Due due = run(schedule, entries, kHangupMs);
    EXPECT_EQ(due.hangups, Indexes{0});
    EXPECT_EQ(due.pings, Indexes{1});
}

TEST(KeepaliveSchedule, RemovedConnectionsAreNeverDue) {
    KeepaliveSchedule schedule(kPingMs, kHangupMs);
    std::array<KeepaliveEntry, 3> entries{};
    for (auto& entry : entries) schedule.add(entry, 0);
    schedule.remove(entries[1]);  // from the middle of the silent list
    EXPECT_EQ(run(schedule, entries, kPingMs).pings, (Indexes{0, 2}));
    schedule.remove(entries[2]);  // from the tail of the pinged list
    schedule.remove(entries[0]);  // and its head
    schedule.remove(entries[0]);  // twice: harmless
    const Due due = run(schedule, entries, 10 * kHangupMs);
    EXPECT_EQ(due.pings, Indexes{});
    EXPECT_EQ(due.hangups, Indexes{});
    EXPECT_EQ(schedule.size(), 0u);
    // A removed entry can be scheduled again.
    schedule.add(entries[1], 0);
    EXPECT_EQ(run(schedule, entries, kPingMs).pings, Indexes{1});
}

TEST(KeepaliveSchedule, ARunVisitsOnlyTheConnectionsThatAreDue) {
    KeepaliveSchedule schedule(kPingMs, kHangupMs);
    std::vector<KeepaliveEntry> entries(10'000);
    for (std::size_t i = 0; i < entries.size(); ++i) {
        schedule.add(entries[i], static_cast<std::int64_t>(i));
    }
    int pinged = 0;
    schedule.run_due(
        kPingMs + 9, [&](KeepaliveEntry&) { ++pinged; }, [](KeepaliveEntry&) { FAIL(); });
    EXPECT_EQ(pinged, 10);
    EXPECT_EQ(schedule.size(), entries.size());
    // Being heard from is O(1) wherever the connection is: from the middle to the tail.
    schedule.heard(entries[5000], 20'000);
    schedule.remove(entries[7]);
    EXPECT_EQ(schedule.size(), entries.size() - 1);
}

}  // namespace
}  // namespace shopcast
