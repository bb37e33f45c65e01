// Event cursors "<epoch>:<seq>" (daemon/cursor.h): formatting, strict parsing, fresh epochs.
#include "daemon/core/cursor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace shopcast {
namespace {

TEST(Cursor, Format) {
    EXPECT_EQ(format_cursor("k3f9", 17), "k3f9:17");
    EXPECT_EQ(format_cursor("a", 0), "a:0");
    EXPECT_EQ(format_cursor("0123456789abcdef", std::numeric_limits<std::uint64_t>::max()),
              "0123456789abcdef:18446744073709551615");
}

TEST(Cursor, ParseAccepted) {
    struct Row {
        std::string text;
        std::string epoch;
        std::uint64_t seq;
    };
    const std::vector<Row> table = {
        {"k3f9:17", "k3f9", 17},
        {"a:0", "a", 0},
        {"z:1", "z", 1},
        {"0123456789abcdef:5", "0123456789abcdef", 5},  // 16-character epoch
        {"abc123:9007199254740991", "abc123", 9007199254740991u},
    };
    for (const auto& row : table) {
        const auto cursor = parse_cursor(row.text);
        ASSERT_TRUE(cursor.has_value()) << row.text;
        EXPECT_EQ(cursor->epoch, row.epoch) << row.text;
        EXPECT_EQ(cursor->seq, row.seq) << row.text;
        EXPECT_EQ(format_cursor(cursor->epoch, cursor->seq), row.text);
    }
}

TEST(Cursor, ParseRefused) {
    const std::vector<std::string> table = {
        "",
        ":",
        "abc",
        "abc:",
        ":1",
        "ABC:1",  // epoch is lower case only
        "a-b:1",
        "a_b:1",
        "a b:1",
        "0123456789abcdefg:1",  // 17-character epoch
        "abc:01",               // one text per cursor
        "abc:-1",
        "abc:+1",
        "abc:1x",
        "abc:x1",
        "abc: 1",
        "abc:1 ",
        " abc:1",
        "abc:1.0",
        "abc:1e3",
        "abc:1:2",
        "abc::1",
        "abc:18446744073709551616",  // beyond 64 bits
        "abc:99999999999999999999999",
        std::string("abc:1\0", 6),
        std::string("ab\0:1", 5),
        "\xD0\xB0:1",
        "abc:\xD9\xA1",  // ARABIC-INDIC DIGIT ONE
    };
    for (const auto& text : table) {
        EXPECT_FALSE(parse_cursor(text).has_value()) << testing::PrintToString(text);
    }
}

TEST(Cursor, NewEpochIsSixBase36Characters) {
    std::set<std::string> seen;
    for (int i = 0; i < 50; ++i) {
        const std::string epoch = new_epoch();
        ASSERT_EQ(epoch.size(), 6u) << epoch;
        for (const char c : epoch) {
            EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) << epoch;
        }
        // A fresh epoch makes a valid cursor.
        const auto cursor = parse_cursor(format_cursor(epoch, 1));
        ASSERT_TRUE(cursor.has_value()) << epoch;
        EXPECT_EQ(cursor->epoch, epoch);
        seen.insert(epoch);
    }
    // 36^6 values: fifty draws practically never collide, unless the epoch is not random.
    EXPECT_GE(seen.size(), 49u);
}

}  // namespace
}  // namespace shopcast
