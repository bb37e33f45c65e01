// The Idempotency-Key cache: retries are recognised by key and request digest, a key reused for
// another event is told apart, and both survive a save and restore.
#include "daemon/core/idempotency.h"
#include "common/cursor.h"

#include <gtest/gtest.h>

#include <string>

namespace shopcast {
namespace {

using Verdict = KeyLookup::Verdict;
constexpr std::int64_t kT0 = 1'700'000'000;

ipc::PublishRequest product_request() {
    ipc::PublishRequest request;
    request.idempotency_key = "k";
    request.type = "product_added";
    request.shop_id = "5";
    request.json = R"({"type":"product_added","shopId":5,"productId":1})";
    return request;
}

ipc::PublishRequest order_request() {
    ipc::PublishRequest request;
    request.idempotency_key = "k";
    request.type = "order_status";
    request.user_id = "302";
    request.json = R"({"type":"order_status","userId":302,"orderId":9,"status":"paid"})";
    return request;
}

ipc::PublishAck accepted(std::string id, std::uint32_t recipients) {
    return ipc::PublishAck{ipc::AckStatus::accepted, std::move(id), recipients};
}

TEST(RequestDigest, DependsOnTypeAndJsonOnly) {
    const ipc::PublishRequest product = product_request();
    ipc::PublishRequest same = product;
    same.idempotency_key = "another key";
    EXPECT_EQ(request_digest(product), request_digest(same)) << "the key is not part of it";

    ipc::PublishRequest other_value = product;
    other_value.json = R"({"type":"product_added","shopId":5,"productId":2})";
    EXPECT_NE(request_digest(product), request_digest(other_value));
    EXPECT_NE(request_digest(product), request_digest(order_request()));

    // The separator keeps "ab"+"c" apart from "a"+"bc".
    ipc::PublishRequest split_a = product, split_b = product;
    split_a.type = "ab";
    split_a.json = "c";
    split_b.type = "a";
    split_b.json = "bc";
    EXPECT_NE(request_digest(split_a), request_digest(split_b));
}

TEST(RequestDigest, KeepsItsValue) {
    // State files of the previous version hold this digest for their keys: it must not change.
    // (printf 'product_added\0{"type":"product_added","shopId":5,"productId":1}' | sha256sum)
    const RequestDigest digest = request_digest(product_request());
    std::string hex;
    for (unsigned char byte : digest) {
        constexpr char kHex[] = "0123456789abcdef";
        hex += kHex[byte >> 4];
        hex += kHex[byte & 0xf];
    }
    EXPECT_EQ(hex, "fad12975eb3d7d48fc8b213de5c79f90a5eb48bc947d10f44c76d26d017fc4fa");
}

TEST(IdempotencyCache, RemembersForTheTtl) {
    IdempotencyCache cache(300, 100);
    const RequestDigest digest = request_digest(product_request());
    EXPECT_EQ(cache.find("k", digest, kT0).verdict, Verdict::unseen);
    cache.remember("k", digest, accepted("ep:1", 3), kT0);
    for (const std::int64_t later : {kT0, kT0 + 1, kT0 + 299}) {
        const KeyLookup found = cache.find("k", digest, later);
        ASSERT_EQ(found.verdict, Verdict::same_request) << later - kT0;
        EXPECT_EQ(found.first_ack.id, "ep:1");
        EXPECT_EQ(found.first_ack.recipients, 3u);
    }
    EXPECT_EQ(cache.find("K", digest, kT0).verdict, Verdict::unseen) << "keys compare exactly";
    EXPECT_EQ(cache.find("k", digest, kT0 + 301).verdict, Verdict::unseen);
    EXPECT_EQ(cache.size(), 0u) << "expired entries are dropped";
}

TEST(IdempotencyCache, SameKeyWithAnotherEventIsAConflict) {
    IdempotencyCache cache(300, 100);
    cache.remember("k", request_digest(product_request()), accepted("ep:1", 3), kT0);
    EXPECT_EQ(cache.find("k", request_digest(order_request()), kT0 + 1).verdict,
              Verdict::other_request);
    EXPECT_EQ(cache.find("k", request_digest(product_request()), kT0 + 2).verdict,
              Verdict::same_request)
        << "the conflict does not replace what the key was first used for";
    cache.remember("k", request_digest(order_request()), accepted("ep:2", 1), kT0 + 3);
    EXPECT_EQ(cache.find("k", request_digest(product_request()), kT0 + 4).first_ack.id, "ep:1");
}

TEST(IdempotencyCache, BoundedOldestFirst) {
    IdempotencyCache cache(300, 3);
    const RequestDigest digest{};
    for (int i = 1; i <= 5; ++i) {
        cache.remember("key-" + std::to_string(i), digest, accepted("ep:" + std::to_string(i), 0),
                       kT0 + i);
        EXPECT_LE(cache.size(), 3u);
    }
    EXPECT_EQ(cache.find("key-1", digest, kT0 + 6).verdict, Verdict::unseen);
    EXPECT_EQ(cache.find("key-2", digest, kT0 + 6).verdict, Verdict::unseen);
    for (int i = 3; i <= 5; ++i) {
        const KeyLookup found = cache.find("key-" + std::to_string(i), digest, kT0 + 6);
        ASSERT_EQ(found.verdict, Verdict::same_request) << i;
        EXPECT_EQ(found.first_ack.id, "ep:" + std::to_string(i));
    }
}

// A planned restart keeps each key's digest: the retry after it is still a duplicate, another
// event under the same key still a conflict. Through the state file's bytes, not just the struct.
TEST(IdempotencyCache, DigestsSurviveSaveAndRestore) {
    IdempotencyCache cache(300, 100);
    cache.remember("k", request_digest(product_request()), accepted("ep:1", 3), kT0);
    SavedState state;
    state.epoch = "qa0ep";
    state.epoch_key.assign(Epoch::kKeyBytes, '\x5a');
    cache.save_into(state, kT0 + 10);
    const StateLoad load = decode_state(encode_state(state));
    ASSERT_TRUE(load.state.has_value()) << load.problem;

    IdempotencyCache restored(300, 100);
    restored.restore_from(*load.state, kT0 + 20, 5);
    const KeyLookup retry = restored.find("k", request_digest(product_request()), kT0 + 20);
    EXPECT_EQ(retry.verdict, Verdict::same_request);
    EXPECT_EQ(retry.first_ack.id, "ep:1");
    EXPECT_EQ(restored.find("k", request_digest(order_request()), kT0 + 20).verdict,
              Verdict::other_request);
}

}  // namespace
}  // namespace shopcast
