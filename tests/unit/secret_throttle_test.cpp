// The failed-secret throttle (SecretThrottle) and the address lists it relies on, on a clock
// the tests move by hand.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "fcgi/client_address.h"
#include "fcgi/fcgi_config.h"
#include "fcgi/secret_throttle.h"

namespace shopcast::fcgi {
namespace {

using namespace std::chrono_literals;
using Clock = SecretThrottle::Clock;

ThrottleSettings small_limits() {
    ThrottleSettings settings;
    settings.max_failures = 3;
    settings.failure_window = 10s;
    settings.lockout = 30s;
    settings.publisher_addresses = AddressSet::parse("127.0.0.1, 10.1.0.0/16, 2001:db8::/32", "t");
    return settings;
}

class SecretThrottleTest : public ::testing::Test {
  protected:
    void fail(std::string_view address, int times = 1) {
        for (int i = 0; i < times; ++i) throttle_.record_failure(address, now_);
    }
    std::optional<std::chrono::seconds> refusal(std::string_view address) {
        return throttle_.refusal(address, now_);
    }

    Clock::time_point now_ = Clock::now();
    SecretThrottle throttle_{small_limits()};
};

TEST_F(SecretThrottleTest, LockoutStartsAtTheLastAllowedFailure) {
    EXPECT_FALSE(throttle_.record_failure("192.0.2.1", now_));
    EXPECT_FALSE(throttle_.record_failure("192.0.2.1", now_));
    EXPECT_FALSE(refusal("192.0.2.1"));
    EXPECT_TRUE(throttle_.record_failure("192.0.2.1", now_));
    EXPECT_EQ(refusal("192.0.2.1"), 30s);
    EXPECT_FALSE(refusal("192.0.2.2"));  // another address is not affected
}

TEST_F(SecretThrottleTest, FailuresOutsideTheWindowDoNotAddUp) {
    fail("192.0.2.1", 2);
    now_ += 10s;  // the window counted from the first failure is over
    fail("192.0.2.1", 2);
    EXPECT_FALSE(refusal("192.0.2.1"));
    fail("192.0.2.1");
    EXPECT_TRUE(refusal("192.0.2.1"));
}

TEST_F(SecretThrottleTest, LockoutExpiresAndRetryAfterCountsDown) {
    fail("192.0.2.1", 3);
    now_ += 12500ms;
    EXPECT_EQ(refusal("192.0.2.1"), 18s);  // 17.5 s left, rounded up
    now_ += 17400ms;
    EXPECT_EQ(refusal("192.0.2.1"), 1s);  // never 0 while still locked
    now_ += 100ms;
    EXPECT_FALSE(refusal("192.0.2.1"));
    // Counting starts afresh: one more failure is not a new lockout.
    fail("192.0.2.1");
    EXPECT_FALSE(refusal("192.0.2.1"));
}

TEST_F(SecretThrottleTest, FailuresDuringALockoutDoNotExtendIt) {
    fail("192.0.2.1", 3);
    now_ += 29s;
    fail("192.0.2.1", 5);
    now_ += 1s;
    EXPECT_FALSE(refusal("192.0.2.1"));
}

TEST_F(SecretThrottleTest, PublisherAddressesAreNeverCountedOrRefused) {
    for (const char* bot : {"127.0.0.1", "10.1.200.3", "2001:db8:ffff::1", "::ffff:127.0.0.1"}) {
        fail(bot, 10);
        EXPECT_FALSE(refusal(bot)) << bot;
    }
    EXPECT_EQ(throttle_.tracked_addresses(), 0u);
    fail("10.2.0.1", 3);  // just outside 10.1.0.0/16
    EXPECT_TRUE(refusal("10.2.0.1"));
}

TEST_F(SecretThrottleTest, AnIpv6HostCannotDodgeTheCountWithinItsSlash64) {
    fail("2001:db9:1:2::1");
    fail("2001:db9:1:2::2");
    fail("2001:db9:1:2:ffff::3");
    EXPECT_TRUE(refusal("2001:db9:1:2::99"));
    EXPECT_FALSE(refusal("2001:db9:1:3::1"));
}

TEST_F(SecretThrottleTest, AddressesThatAreNotIpShareOneRecord) {
    fail("unix:", 2);
    fail("");
    EXPECT_TRUE(refusal("unix:"));
    EXPECT_TRUE(refusal("garbage"));
}

TEST(SecretThrottleBound, ASprayOfAddressesNeverGrowsTheTableBeyondItsBound) {
    ThrottleSettings settings = small_limits();
    settings.max_tracked_addresses = 100;
    SecretThrottle throttle(settings);
    const Clock::time_point now = Clock::now();
    for (int i = 0; i < 3; ++i) throttle.record_failure("198.51.100.1", now);
    ASSERT_TRUE(throttle.refusal("198.51.100.1", now));
    for (int i = 0; i < 5000; ++i) {
        throttle.record_failure("203.0." + std::to_string(i / 256) + "." + std::to_string(i % 256),
                                now);
        ASSERT_LE(throttle.tracked_addresses(), 100u);
    }
    EXPECT_EQ(throttle.tracked_addresses(), 100u);
    // The oldest record made room: the bound wins over remembering the first lockout.
    EXPECT_FALSE(throttle.refusal("198.51.100.1", now));
}

TEST(SecretThrottleBound, RecordsNothingRefersToAnyMoreAreDroppedFirst) {
    ThrottleSettings settings = small_limits();
    settings.max_tracked_addresses = 10;
    SecretThrottle throttle(settings);
    const Clock::time_point start = Clock::now();
    for (int i = 0; i < 9; ++i) throttle.record_failure("192.0.2." + std::to_string(i), start);
    const Clock::time_point later = start + 1s;
    for (int i = 0; i < 3; ++i) throttle.record_failure("198.51.100.1", later);
    // Past the lockout and the window of the nine: a newcomer takes their place, one by one.
    const Clock::time_point much_later = start + 30s;
    throttle.record_failure("198.51.100.2", much_later);
    EXPECT_EQ(throttle.tracked_addresses(), 2u);
    EXPECT_TRUE(throttle.refusal("198.51.100.1", much_later));  // locked until later + 30 s
}

TEST(SecretThrottleThreads, ConcurrentFailuresAreAllCounted) {
    ThrottleSettings settings;
    settings.max_failures = 4 * 250;
    SecretThrottle throttle(settings);
    const Clock::time_point now = Clock::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < 4; ++t) {
        workers.emplace_back([&] {
            for (int i = 0; i < 250; ++i) {
                throttle.record_failure("192.0.2.1", now);
                throttle.refusal("192.0.2.1", now);
            }
        });
    }
    for (std::thread& worker : workers) worker.join();
    EXPECT_TRUE(throttle.refusal("192.0.2.1", now));  // exactly the 1,000th failure locked it
}

TEST(SecretThrottleDefaults, TenWrongSecretsInAMinuteLockOutForFiveMinutesLoopbackExempt) {
    char program[] = "shopcast-fcgi";
    char secret[] = "--secret=0123456789abcdef0123456789abcdef";
    char* argv[] = {program, secret, nullptr};
    const FcgiConfig config = parse_command_line(2, argv).config;
    EXPECT_EQ(config.throttle.max_failures, 10u);
    EXPECT_EQ(config.throttle.failure_window, 60s);
    EXPECT_EQ(config.throttle.lockout, 300s);
    EXPECT_EQ(config.throttle.max_tracked_addresses, 10'000u);
    EXPECT_TRUE(config.throttle.publisher_addresses.contains(*parse_ip_address("127.0.0.1")));
    EXPECT_TRUE(config.throttle.publisher_addresses.contains(*parse_ip_address("::1")));
    EXPECT_FALSE(config.throttle.publisher_addresses.contains(*parse_ip_address("127.0.0.2")));
}

TEST(SecretThrottleSettings, BadSettingsNameTheSetting) {
    char program[] = "shopcast-fcgi";
    char secret[] = "--secret=0123456789abcdef0123456789abcdef";
    for (std::string bad : {"--publisher-addresses=10.0.0.0/33", "--publisher-addresses=bot",
                            "--publisher-addresses=::1/129", "--secret-failures=0",
                            "--secret-lockout=0", "--secret-failure-window=x"}) {
        char* argv[] = {program, secret, bad.data(), nullptr};
        EXPECT_THROW(parse_command_line(3, argv), ConfigError) << bad;
    }
}

TEST(AddressSet, ParsesAddressesAndNetworksOfBothFamilies) {
    const AddressSet set = AddressSet::parse("192.0.2.0/24,2001:db8::/32 ::1", "t");
    EXPECT_TRUE(set.contains(*parse_ip_address("192.0.2.255")));
    EXPECT_FALSE(set.contains(*parse_ip_address("192.0.3.0")));
    EXPECT_TRUE(set.contains(*parse_ip_address("::ffff:192.0.2.9")));
    EXPECT_TRUE(set.contains(*parse_ip_address("2001:db8:1::")));
    EXPECT_FALSE(set.contains(*parse_ip_address("2001:db9::")));
    EXPECT_TRUE(set.contains(*parse_ip_address("::1")));
    EXPECT_FALSE(set.contains(*parse_ip_address("::2")));
    EXPECT_TRUE(AddressSet::parse("", "t").empty());
    EXPECT_TRUE(AddressSet::parse("0.0.0.0/0", "t").contains(*parse_ip_address("8.8.8.8")));
    EXPECT_FALSE(AddressSet::parse("0.0.0.0/0", "t").contains(*parse_ip_address("2001:db8::")));
}

}  // namespace
}  // namespace shopcast::fcgi
