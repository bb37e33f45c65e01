// LogThrottle: a burst of lines per window, the rest counted and reported with the next line.
#include "common/log_throttle.h"

#include <gtest/gtest.h>

namespace shopcast {
namespace {

TEST(LogThrottle, LetsABurstThroughThenCountsUntilTheWindowEnds) {
    LogThrottle throttle(2, 1000);
    EXPECT_EQ(throttle.admit("a", 0), "a");
    EXPECT_EQ(throttle.admit("b", 10), "b");
    for (int i = 0; i < 1000; ++i) EXPECT_FALSE(throttle.admit("flood", 20 + i % 900));
    EXPECT_EQ(throttle.admit("c", 1000), "c (1000 similar lines suppressed)");
    EXPECT_EQ(throttle.admit("d", 1001), "d");
    EXPECT_FALSE(throttle.admit("e", 1002));
    EXPECT_EQ(throttle.admit("f", 5000), "f (1 similar lines suppressed)");
}

}  // namespace
}  // namespace shopcast
