// The history ring (daemon/history.h): seq assignment, the "id" added to each event, eviction
// by count and by bytes, lookups of evicted and future seqs, and resume verdicts.
#include "daemon/core/history.h"

#include "common/cursor.h"
#include "tests/unit/test_epoch.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace shopcast {
namespace {

const std::string kEpoch = "qa0ep";

std::string event_json(std::uint64_t n, std::size_t pad = 0) {
    return R"({"type":"product_added","shopId":1,"productId":)" + std::to_string(n) +
           R"(,"pad":")" + std::string(pad, 'p') + "\"}";
}

// The payload browsers get must be the published object plus "id" = the event's cursor.
void expect_payload_is_object_plus_id(std::string_view payload, std::string_view json,
                                      const std::string& cursor) {
    rapidjson::Document sent;
    sent.Parse(payload.data(), payload.size());
    ASSERT_FALSE(sent.HasParseError()) << payload;
    ASSERT_TRUE(sent.IsObject()) << payload;
    rapidjson::Document published;
    published.Parse(json.data(), json.size());
    ASSERT_TRUE(published.IsObject());
    ASSERT_TRUE(sent.HasMember("id")) << payload;
    ASSERT_TRUE(sent["id"].IsString()) << payload;
    EXPECT_EQ(std::string(sent["id"].GetString(), sent["id"].GetStringLength()), cursor);
    EXPECT_EQ(sent.MemberCount(), published.MemberCount() + 1) << payload;
    // Indexed, not iterator comparison: RapidJSON's iterators are ambiguous under C++20 in clang.
    for (rapidjson::SizeType i = 0; i < published.MemberCount(); ++i) {
        const auto& member = *(published.MemberBegin() + i);
        const char* name = member.name.GetString();
        ASSERT_TRUE(sent.HasMember(name)) << name << " missing from " << payload;
        EXPECT_TRUE(sent[name] == member.value) << name << " differs in " << payload;
    }
}

TEST(History, AssignsSeqsFromOne) {
    History history(test_epoch(kEpoch), 100, 1 << 20);
    EXPECT_EQ(history.epoch(), kEpoch);
    EXPECT_EQ(history.size(), 0u);
    EXPECT_EQ(history.bytes(), 0u);
    EXPECT_EQ(history.last_seq(), 0u);
    EXPECT_EQ(history.find(0), nullptr);
    EXPECT_EQ(history.find(1), nullptr);
    for (std::uint64_t n = 1; n <= 5; ++n) {
        const StoredEvent& event = history.append(event_json(n), "1", n % 2 ? "" : "42");
        EXPECT_EQ(event.seq, n);
        EXPECT_EQ(event.shop_id, "1");
        EXPECT_EQ(event.user_id, n % 2 ? "" : "42");
        ASSERT_NE(event.frame, nullptr);
        EXPECT_EQ(history.last_seq(), n);
        EXPECT_EQ(history.size(), n);
    }
    EXPECT_EQ(history.first_retained_seq(), 1u);
    EXPECT_GT(history.bytes(), 0u);
}

TEST(History, PayloadIsPublishedObjectPlusId) {
    History history(test_epoch(kEpoch), 100, 1 << 20);
    const std::vector<std::string> bodies = {
        R"({"type":"product_added","shopId":123,"productId":456})",
        R"({"type":"order_status","orderId":"o-1","status":"\u0430","userId":7,"x":[1,{"y":null}]})",
        R"({ "type" : "shop_updated" , "shopId" : "s" , "note" : "a\"}\\" })",
        R"({"type":"new_subscriber","shopId":5,"nested":{"id":"not the event id"}})",
    };
    for (const auto& body : bodies) {
        const StoredEvent& event = history.append(body, "", "");
        const std::string cursor = history.cursor_for(event.seq);
        expect_payload_is_object_plus_id(event.frame->payload(), body, cursor);
    }
}

TEST(History, FindRetainedEvictedAndFuture) {
    History history(test_epoch(kEpoch), 3, 1 << 20);
    for (std::uint64_t n = 1; n <= 5; ++n) history.append(event_json(n), "", "");
    EXPECT_EQ(history.size(), 3u);
    EXPECT_EQ(history.first_retained_seq(), 3u);
    EXPECT_EQ(history.last_seq(), 5u);
    EXPECT_EQ(history.find(0), nullptr);
    EXPECT_EQ(history.find(1), nullptr);  // evicted
    EXPECT_EQ(history.find(2), nullptr);  // evicted
    for (std::uint64_t seq = 3; seq <= 5; ++seq) {
        const StoredEvent* event = history.find(seq);
        ASSERT_NE(event, nullptr) << seq;
        EXPECT_EQ(event->seq, seq);
    }
    EXPECT_EQ(history.find(6), nullptr);  // not yet published
    EXPECT_EQ(history.find(UINT64_MAX), nullptr);
}

// Long runs through a small ring: the window slides, seqs keep counting, lookups stay right.
TEST(History, WrapsAroundManyTimes) {
    constexpr std::size_t kCapacity = 7;
    History history(test_epoch(kEpoch), kCapacity, 1 << 20);
    for (std::uint64_t n = 1; n <= 10000; ++n) {
        const StoredEvent& event = history.append(event_json(n), std::to_string(n % 5), "");
        ASSERT_EQ(event.seq, n);
        ASSERT_EQ(history.size(), std::min<std::size_t>(n, kCapacity));
        ASSERT_EQ(history.first_retained_seq(), n < kCapacity ? 1 : n - kCapacity + 1);
        if (n % 997 == 0) {
            for (std::uint64_t seq = history.first_retained_seq(); seq <= n; ++seq) {
                const StoredEvent* found = history.find(seq);
                ASSERT_NE(found, nullptr);
                EXPECT_EQ(found->seq, seq);
                EXPECT_EQ(found->shop_id, std::to_string(seq % 5));
                expect_payload_is_object_plus_id(found->frame->payload(), event_json(seq),
                                                 history.cursor_for(seq));
            }
            EXPECT_EQ(history.find(history.first_retained_seq() - 1), nullptr);
        }
    }
}

// What each event costs the byte budget, measured in a history that evicts nothing. The cost
// depends on the event and its cursor only, so it is the same in any history of this epoch.
std::vector<std::size_t> costs_of(const std::vector<std::string>& events) {
    History probe(test_epoch(kEpoch), events.size() + 1, std::numeric_limits<std::size_t>::max());
    std::vector<std::size_t> costs = {0};  // costs[seq]
    for (const auto& json : events) {
        const std::size_t before = probe.bytes();
        probe.append(json, "", "");
        costs.push_back(probe.bytes() - before);
    }
    return costs;
}

// Appends `events` to a history limited to `max_events` / `max_bytes` and checks, after each,
// that exactly the newest events that fit are kept: oldest first out, no more than needed.
void check_eviction(const std::vector<std::string>& events, std::size_t max_events,
                    std::size_t max_bytes) {
    const std::vector<std::size_t> costs = costs_of(events);
    History history(test_epoch(kEpoch), max_events, max_bytes);
    std::uint64_t first = 1;
    std::size_t bytes = 0;
    for (std::uint64_t seq = 1; seq <= events.size(); ++seq) {
        history.append(events[seq - 1], "", "");
        bytes += costs[seq];
        while (seq - first + 1 > max_events || (bytes > max_bytes && first < seq)) {
            bytes -= costs[first];
            ++first;
        }
        ASSERT_EQ(history.first_retained_seq(), first) << "after event " << seq;
        ASSERT_EQ(history.size(), seq - first + 1) << "after event " << seq;
        ASSERT_EQ(history.bytes(), bytes) << "after event " << seq;
        ASSERT_EQ(history.find(first - 1), nullptr) << "after event " << seq;
        ASSERT_NE(history.find(first), nullptr) << "after event " << seq;
    }
}

TEST(History, EvictsByBytes) {
    std::vector<std::string> events;
    for (std::uint64_t n = 1; n <= 60; ++n) events.push_back(event_json(n, 1000));
    const std::size_t one = costs_of({events[0]})[1];
    ASSERT_GT(one, 1000u);
    check_eviction(events, 1000, one * 10 + one / 2);  // about ten fit
}

TEST(History, WhicheverLimitIsReachedFirstEvicts) {
    std::vector<std::string> events;
    for (std::uint64_t n = 1; n <= 40; ++n) events.push_back(event_json(n, 100));
    const std::size_t one = costs_of({events[0]})[1];
    check_eviction(events, 4, one * 100);      // the count binds
    check_eviction(events, 100, one * 4 + 1);  // the bytes bind
    check_eviction(events, 6, one * 6 + 3);    // both about equal
}

TEST(History, EventsOfMixedSizes) {
    std::vector<std::string> events;
    for (std::uint64_t n = 1; n <= 200; ++n) {
        events.push_back(event_json(n, (n * 7919) % 3000));
    }
    check_eviction(events, 1000, 20000);
    check_eviction(events, 15, 20000);
    check_eviction(events, 1000, 3500);  // at times only the newest fits
}

TEST(History, BigEventEvictsSeveralSmallOnes) {
    std::vector<std::string> events;
    for (std::uint64_t n = 1; n <= 10; ++n) events.push_back(event_json(n, 100));
    const std::size_t small = costs_of({events[0]})[1];
    events.push_back(event_json(11, small * 5));
    check_eviction(events, 1000, small * 10 + small / 2);
}

// An event bigger than the whole byte budget is still kept (alone): every connection is
// delivered events by walking the history, so an event evicted at once would reach nobody.
TEST(History, NewestEventIsAlwaysKept) {
    History history(test_epoch(kEpoch), 100, 64);
    for (std::uint64_t n = 1; n <= 3; ++n) {
        const StoredEvent& event = history.append(event_json(n, 500), "", "");
        EXPECT_EQ(event.seq, n);
        EXPECT_NE(event.frame, nullptr);
        const StoredEvent* newest = history.find(n);
        ASSERT_NE(newest, nullptr) << n;
        EXPECT_EQ(newest->seq, n);
        EXPECT_EQ(history.size(), 1u);
        EXPECT_EQ(history.last_seq(), n);
    }
}

TEST(History, CountLimitOfOne) {
    History history(test_epoch(kEpoch), 1, 1 << 20);
    for (std::uint64_t n = 1; n <= 4; ++n) {
        history.append(event_json(n), "", "");
        EXPECT_EQ(history.size(), 1u);
        EXPECT_EQ(history.first_retained_seq(), n);
        EXPECT_NE(history.find(n), nullptr);
        EXPECT_EQ(history.find(n - 1), nullptr);
    }
}

// The indexes answer what a walk through the history with may_receive() would, for every
// audience and starting point, while events come and go.
TEST(History, NextVisibleAgreesWithAWalk) {
    History history(test_epoch(kEpoch), 50, 1 << 20);
    const std::vector<std::string> shops = {"", "1", "2", "3", "x"};
    const std::vector<std::string> users = {"", "", "", "301", "302"};
    std::vector<Audience> audiences;
    for (const std::string& user : {std::string(), std::string("301")}) {
        for (const std::vector<std::string>& subscribed :
             std::vector<std::vector<std::string>>{{}, {"1"}, {"2", "x"}, {"9"}}) {
            audiences.push_back(Audience{user, subscribed});
        }
    }
    std::uint64_t state = 12345;
    auto next_random = [&state] {
        state = state * 6364136223846793005u + 1442695040888963407u;
        return static_cast<std::size_t>(state >> 33);
    };
    for (int n = 1; n <= 400; ++n) {
        history.append(event_json(static_cast<std::uint64_t>(n)),
                       shops[next_random() % shops.size()], users[next_random() % users.size()]);
        if (n % 7 != 0) continue;
        for (const Audience& audience : audiences) {
            for (std::uint64_t from = history.first_retained_seq() - 1;
                 from <= history.last_seq() + 1; ++from) {
                std::uint64_t walked = std::max(from, history.first_retained_seq());
                while (walked <= history.last_seq()) {
                    const StoredEvent* event = history.find(walked);
                    if (may_receive(audience, event->shop_id, event->user_id)) break;
                    ++walked;
                }
                ASSERT_EQ(history.next_visible(audience, from), walked)
                    << "after " << n << " events, from " << from << ", user '" << audience.user_id
                    << "', " << audience.shops.size() << " shops";
            }
        }
    }
}

TEST(History, ResumePoints) {
    History history(test_epoch(kEpoch), 5, 1 << 20);
    // Empty history: the hello cursor resumes at the first event.
    {
        const ResumePoint point = history.resume_point(history.hello_cursor());
        EXPECT_EQ(point.verdict, ResumeVerdict::ok);
        EXPECT_EQ(point.next_seq, 1u);
    }
    for (std::uint64_t n = 1; n <= 8; ++n) history.append(event_json(n), "", "");
    ASSERT_EQ(history.first_retained_seq(), 4u);  // 4..8 retained

    struct Row {
        std::string name;
        std::string cursor;
        ResumeVerdict verdict;
        std::uint64_t next_seq;  // checked when ok
    };
    const std::vector<Row> table = {
        {"last_event", history.cursor_for(8), ResumeVerdict::ok, 9},
        {"middle", history.cursor_for(5), ResumeVerdict::ok, 6},
        {"first_retained", history.cursor_for(4), ResumeVerdict::ok, 5},
        // Seen up to 3: the next one (4) is still retained, so nothing is missing.
        {"just_before_first_retained", history.cursor_for(3), ResumeVerdict::ok, 4},
        {"gap_of_one", history.cursor_for(2), ResumeVerdict::too_old, 0},
        {"before_everything", history.cursor_for(0), ResumeVerdict::too_old, 0},
        {"future", history.cursor_for(9), ResumeVerdict::unknown, 0},
        {"far_future", history.cursor_for(1000000), ResumeVerdict::unknown, 0},
        {"other_epoch", foreign_cursor("zz9", 8), ResumeVerdict::other_epoch, 0},
        {"other_epoch_prefix", foreign_cursor(kEpoch + "x", 8), ResumeVerdict::other_epoch, 0},
        {"empty", "", ResumeVerdict::malformed, 0},
        {"no_colon", "qa0ep8", ResumeVerdict::malformed, 0},
        {"not_a_number", kEpoch + ":x", ResumeVerdict::malformed, 0},
        {"decimal_seq", kEpoch + ":8", ResumeVerdict::malformed, 0},
        // Same name, another key (a new daemon drawing the same name): its blocks do not decrypt.
        {"same_name_other_key", CursorCodec(Epoch{kEpoch, {}}).event_cursor(8),
         ResumeVerdict::malformed, 0},
        {"negative", kEpoch + ":-1", ResumeVerdict::malformed, 0},
        {"upper_case_epoch", "QA0EP:8", ResumeVerdict::malformed, 0},
    };
    for (const auto& row : table) {
        const ResumePoint point = history.resume_point(row.cursor);
        EXPECT_EQ(static_cast<int>(point.verdict), static_cast<int>(row.verdict)) << row.name;
        if (row.verdict == ResumeVerdict::ok && point.verdict == ResumeVerdict::ok) {
            EXPECT_EQ(point.next_seq, row.next_seq) << row.name;
        }
    }
}

}  // namespace
}  // namespace shopcast
