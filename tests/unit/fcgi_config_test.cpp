// shopcast-fcgi's settings as shipped: every default in README.md's settings table.
#include "fcgi/fcgi_config.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "common/config.h"

namespace shopcast::fcgi {
namespace {

const char* const kSecret = "0123456789abcdef0123456789abcdef";  // the shortest accepted

class FcgiDefaultsTest : public testing::Test {
  protected:
    void SetUp() override { clear_env(); }
    void TearDown() override { clear_env(); }

    static void clear_env() {
        for (const char* name :
             {"SHOPCAST_FCGI_LISTEN", "SHOPCAST_FCGI_THREADS", "SHOPCAST_EVENTS_SOCKET",
              "INTERNAL_SECRET", "INTERNAL_SECRET_FILE", "INTERNAL_SECRET_PREVIOUS",
              "INTERNAL_SECRET_PREVIOUS_FILE", "SHOPCAST_REQUIRE_USER_FOR",
              "SHOPCAST_ACK_TIMEOUT_MS", "SHOPCAST_REDIS_URL", "SHOPCAST_REDIS_PASSWORD",
              "SHOPCAST_REDIS_PASSWORD_FILE", "SHOPCAST_HISTORY", "SHOPCAST_IDEMPOTENCY_TTL"}) {
            ::unsetenv(name);
        }
    }

    static CommandLine parse(std::vector<std::string> args) {
        args.insert(args.begin(), "shopcast-fcgi");
        std::vector<char*> argv;
        for (std::string& arg : args) argv.push_back(arg.data());
        argv.push_back(nullptr);
        return parse_command_line(static_cast<int>(args.size()), argv.data());
    }
};

// The values README.md's settings table documents; a changed default must change both.
TEST_F(FcgiDefaultsTest, DefaultsAreTheDocumentedOnes) {
    ::setenv("INTERNAL_SECRET", kSecret, 1);  // required: there is no default secret
    const FcgiConfig config = parse({}).config;
    EXPECT_EQ(config.listen_path, std::nullopt);  // inherited from systemd's socket
    EXPECT_EQ(config.threads, 4u);
    EXPECT_EQ(config.events_socket, "/run/shopcast/events.sock");
    EXPECT_EQ(config.ack_timeout, std::chrono::milliseconds(1000));
    EXPECT_EQ(config.log_level, LogLevel::info);
    EXPECT_TRUE(config.policy.require_user_for.empty());
    ASSERT_TRUE(config.secret.has_value());
    EXPECT_TRUE(config.secret->matches(kSecret));
    EXPECT_FALSE(config.secret->has_previous());
    EXPECT_EQ(config.redis, std::nullopt);  // one machine, events to shopcastd
    EXPECT_EQ(config.history, 10000u);
    EXPECT_EQ(config.idempotency_ttl_seconds, 300);
}

TEST_F(FcgiDefaultsTest, RedisModeTakesTheUrlThePasswordFileAndTheStreamSettings) {
    ::setenv("INTERNAL_SECRET", kSecret, 1);
    char path[] = "/tmp/shopcast-redis-password-XXXXXX";
    const int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "s3cret-redis\n", 13), 13);
    ::close(fd);
    ::setenv("SHOPCAST_REDIS_URL", "redis://cache.internal:6390/2", 1);
    ::setenv("SHOPCAST_REDIS_PASSWORD_FILE", path, 1);
    ::setenv("SHOPCAST_HISTORY", "500", 1);
    ::setenv("SHOPCAST_IDEMPOTENCY_TTL", "60", 1);
    const FcgiConfig config = parse({}).config;
    ::unlink(path);
    ASSERT_TRUE(config.redis.has_value());
    EXPECT_EQ(config.redis->host, "cache.internal");
    EXPECT_EQ(config.redis->port, 6390);
    EXPECT_EQ(config.redis->db, 2);
    EXPECT_EQ(config.redis->password, "s3cret-redis");  // the trailing newline stripped
    EXPECT_EQ(config.history, 500u);
    EXPECT_EQ(config.idempotency_ttl_seconds, 60);

    // A bad URL or a password for no Redis stops the start with the setting's name.
    ::setenv("SHOPCAST_REDIS_URL", "redis://:pw@cache", 1);
    EXPECT_THROW(parse({}), ConfigError);
    ::unsetenv("SHOPCAST_REDIS_URL");
    ::unsetenv("SHOPCAST_REDIS_PASSWORD_FILE");
    ::setenv("SHOPCAST_REDIS_PASSWORD", "inline", 1);
    try {
        parse({});
        ADD_FAILURE() << "a password without SHOPCAST_REDIS_URL was accepted";
    } catch (const ConfigError& error) {
        EXPECT_NE(std::string(error.what()).find("SHOPCAST_REDIS_URL is not"), std::string::npos)
            << error.what();
    }
}

TEST_F(FcgiDefaultsTest, NoSecretIsNoStart) {
    EXPECT_THROW(parse({}), ConfigError);
}

// --help names the defaults the code uses.
TEST_F(FcgiDefaultsTest, HelpShowsTheDefaultsInUse) {
    const CommandLine help = parse({"--help"});
    ASSERT_TRUE(help.help_requested);
    for (const char* expected : {"SHOPCAST_FCGI_THREADS", "[default: 4]", "SHOPCAST_ACK_TIMEOUT_MS",
                                 "[default: 1000]", "[default: /run/shopcast/events.sock]"}) {
        EXPECT_NE(help.usage.find(expected), std::string::npos) << expected << " missing from\n"
                                                                << help.usage;
    }
}

}  // namespace
}  // namespace shopcast::fcgi
