// The restart state file (daemon/core/state_file.h): what a clean stop writes is what the next
// start continues with, and any damage means "no state" (a new epoch), never a wrong replay.
#include "daemon/core/state_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "daemon/core/history.h"
#include "daemon/core/idempotency.h"
#include "tests/unit/test_epoch.h"

namespace shopcast {
namespace {

History history_with(std::size_t events) {
    History history(test_epoch("qa0ep"), 100, 1 << 20);
    for (std::size_t i = 1; i <= events; ++i) {
        history.append(R"({"type":"product_added","shopId":)" + std::to_string(i % 3 + 1) + "}",
                       std::to_string(i % 3 + 1), i % 4 == 0 ? "301" : "");
    }
    return history;
}

SavedState saved_history(std::size_t events) {
    SavedState state;
    history_with(events).save_into(state);
    state.saved_at_unix = 1'700'000'000;
    state.keys.push_back(
        SavedKey{"import-1", {ipc::AckStatus::accepted, "qa0ep:2", 3}, RequestDigest{7, 8, 9}, 12});
    return state;
}

std::string temporary_path() {
    std::string path = ::testing::TempDir() + "shopcast-state-XXXXXX";
    const int fd = ::mkstemp(path.data());
    ::close(fd);
    return path;
}

TEST(StateFile, RoundTripKeepsEveryField) {
    const SavedState state = saved_history(7);
    const StateLoad load = decode_state(encode_state(state));
    ASSERT_TRUE(load.state) << load.problem;
    EXPECT_EQ(load.state->epoch, "qa0ep");
    const Epoch epoch = test_epoch("qa0ep");
    EXPECT_EQ(load.state->epoch_key, std::string(epoch.key.begin(), epoch.key.end()));
    EXPECT_EQ(load.state->last_seq, 7u);
    EXPECT_EQ(load.state->saved_at_unix, 1'700'000'000);
    ASSERT_EQ(load.state->events.size(), 7u);
    for (std::size_t i = 0; i < 7; ++i) {
        EXPECT_EQ(load.state->events[i].seq, state.events[i].seq);
        EXPECT_EQ(load.state->events[i].shop_id, state.events[i].shop_id);
        EXPECT_EQ(load.state->events[i].user_id, state.events[i].user_id);
        EXPECT_EQ(load.state->events[i].payload, state.events[i].payload);
    }
    ASSERT_EQ(load.state->keys.size(), 1u);
    EXPECT_EQ(load.state->keys[0].key, "import-1");
    EXPECT_EQ(load.state->keys[0].ack.id, "qa0ep:2");
    EXPECT_EQ(load.state->keys[0].ack.recipients, 3u);
    EXPECT_EQ(load.state->keys[0].age_seconds, 12);
    EXPECT_EQ(load.state->keys[0].request_digest, (RequestDigest{7, 8, 9}));
}

TEST(StateFile, RestoredHistoryContinuesTheSameEpochAndSeqs) {
    History original = history_with(5);
    SavedState state;
    original.save_into(state);
    History restored(test_epoch("other"), 100, 1 << 20);
    restored.restore_from(*decode_state(encode_state(state)).state);
    EXPECT_EQ(restored.epoch(), "qa0ep");
    EXPECT_EQ(restored.last_seq(), 5u);
    for (std::uint64_t seq = 1; seq <= 5; ++seq) {
        ASSERT_NE(restored.find(seq), nullptr);
        EXPECT_EQ(restored.find(seq)->frame->payload(), original.find(seq)->frame->payload());
        EXPECT_EQ(restored.find(seq)->user_id, original.find(seq)->user_id);
    }
    // A cursor from before the restart resumes exactly; the next event continues the seqs.
    EXPECT_EQ(restored.resume_point(original.cursor_for(3)).verdict, ResumeVerdict::ok);
    EXPECT_EQ(restored.resume_point(original.cursor_for(3)).next_seq, 4u);
    EXPECT_EQ(restored.append(R"({"type":"shop_updated","shopId":1})", "1", "").seq, 6u);
}

TEST(StateFile, EmptyHistoryKeepsItsEpochAndSeq) {
    History history(test_epoch("qa0ep"), 100, 1 << 20);
    SavedState state;
    history.save_into(state);
    const StateLoad load = decode_state(encode_state(state));
    ASSERT_TRUE(load.state) << load.problem;
    EXPECT_EQ(load.state->last_seq, 0u);
    EXPECT_TRUE(load.state->events.empty());
}

TEST(StateFile, EveryTruncationIsRefused) {
    const std::string bytes = encode_state(saved_history(4));
    for (std::size_t length = 0; length < bytes.size(); ++length) {
        EXPECT_FALSE(decode_state(bytes.substr(0, length)).state) << "length " << length;
    }
}

TEST(StateFile, EveryFlippedByteIsRefused) {
    const std::string bytes = encode_state(saved_history(3));
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        std::string damaged = bytes;
        damaged[i] = static_cast<char>(damaged[i] ^ 0x20);
        EXPECT_FALSE(decode_state(damaged).state) << "byte " << i;
    }
}

TEST(StateFile, InconsistentContentIsRefusedEvenWithAValidChecksum) {
    SavedState gap = saved_history(4);
    gap.events.erase(gap.events.begin() + 1);
    EXPECT_EQ(decode_state(encode_state(gap)).problem, "events are not consecutive");

    SavedState foreign = saved_history(2);
    foreign.events[1].payload = R"({"type":"product_added","shopId":1,"id":"qa0ep:9"})";
    EXPECT_EQ(decode_state(encode_state(foreign)).problem, "an event does not match its cursor");

    SavedState past_head = saved_history(2);
    past_head.last_seq = 1;
    EXPECT_FALSE(decode_state(encode_state(past_head)).state);

    SavedState bad_epoch = saved_history(1);
    bad_epoch.epoch = "NOT AN EPOCH";
    EXPECT_FALSE(decode_state(encode_state(bad_epoch)).state);

    // The ids were made under the saved key: another key would read them as other seqs.
    SavedState other_key = saved_history(2);
    other_key.epoch_key[0] = static_cast<char>(other_key.epoch_key[0] ^ 1);
    EXPECT_EQ(decode_state(encode_state(other_key)).problem, "an event does not match its cursor");

    SavedState short_key = saved_history(2);
    short_key.epoch_key.pop_back();
    EXPECT_EQ(decode_state(encode_state(short_key)).problem, "invalid cursor key");
}

TEST(StateFile, TakingTheFileRemovesIt) {
    const std::string path = temporary_path();
    std::string error;
    ASSERT_TRUE(write_state_file(path, saved_history(3), error)) << error;
    const StateLoad first = take_state_file(path);
    ASSERT_TRUE(first.state) << first.problem;
    EXPECT_EQ(first.state->last_seq, 3u);
    // A run that crashes after this point must not hand the same state to the next start.
    EXPECT_EQ(take_state_file(path).problem, "none");
}

TEST(StateFile, ADamagedFileIsRefusedAndRemoved) {
    const std::string path = temporary_path();
    std::string error;
    ASSERT_TRUE(write_state_file(path, saved_history(3), error)) << error;
    std::string bytes;
    {
        std::ifstream in(path, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << bytes.substr(0, bytes.size() / 2);
    }
    EXPECT_FALSE(take_state_file(path).state);
    EXPECT_EQ(take_state_file(path).problem, "none");
}

TEST(StateFile, IdempotencyKeysKeepTheRestOfTheirTtl) {
    IdempotencyCache cache(300, 100);
    cache.remember("early", RequestDigest{}, {ipc::AckStatus::accepted, "qa0ep:1", 1}, 1000);
    cache.remember("late", RequestDigest{}, {ipc::AckStatus::accepted, "qa0ep:2", 1}, 1200);
    SavedState state;
    cache.save_into(state, 1250);
    ASSERT_EQ(state.keys.size(), 2u);

    // Restarted 40 s later: "early" (250 s + 40 s old) has 10 s left, "late" 210 s.
    IdempotencyCache restored(300, 100);
    restored.restore_from(state, 5000, 40);
    const auto verdict = [&](const std::string& key, std::int64_t now) {
        return restored.find(key, RequestDigest{}, now).verdict;
    };
    using Verdict = KeyLookup::Verdict;
    ASSERT_EQ(verdict("early", 5000), Verdict::same_request);
    EXPECT_EQ(restored.find("early", RequestDigest{}, 5000).first_ack.id, "qa0ep:1");
    EXPECT_EQ(verdict("early", 5010), Verdict::unseen);
    EXPECT_EQ(verdict("late", 5209), Verdict::same_request);
    EXPECT_EQ(verdict("late", 5210), Verdict::unseen);
}

TEST(StateFile, KeysOlderThanTheTtlAreNotRestored) {
    IdempotencyCache cache(300, 100);
    cache.remember("key", RequestDigest{}, {ipc::AckStatus::accepted, "qa0ep:1", 1}, 1000);
    SavedState state;
    cache.save_into(state, 1100);
    IdempotencyCache restored(300, 100);
    restored.restore_from(state, 9000, 200);  // 100 s + 200 s of downtime = the whole TTL
    EXPECT_EQ(restored.size(), 0u);
}

}  // namespace
}  // namespace shopcast
