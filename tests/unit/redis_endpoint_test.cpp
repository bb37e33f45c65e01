// SHOPCAST_REDIS_URL: the accepted forms with their defaults, and a clear refusal of the rest.
#include "common/redis_endpoint.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace shopcast {
namespace {

struct GoodUrl {
    std::string url;
    std::string host;
    int port;
    std::string unix_path;
    int db;
};

TEST(RedisEndpoint, AcceptedFormsAndDefaults) {
    const std::vector<GoodUrl> cases = {
        {"redis://localhost", "localhost", 6379, "", 0},
        {"redis://127.0.0.1:6380", "127.0.0.1", 6380, "", 0},
        {"redis://redis.internal:7000/3", "redis.internal", 7000, "", 3},
        {"redis://cache-1/15", "cache-1", 6379, "", 15},
        {"redis://cache-1/", "cache-1", 6379, "", 0},
        {"redis://[::1]:6379/2", "::1", 6379, "", 2},
        {"redis://[fe80::1%25eth0]", "fe80::1%25eth0", 6379, "", 0},
        {"unix:/run/redis/redis.sock", "", 6379, "/run/redis/redis.sock", 0},
        {"unix:/tmp/r.sock?db=4", "", 6379, "/tmp/r.sock", 4},
    };
    for (const GoodUrl& c : cases) {
        SCOPED_TRACE(c.url);
        const RedisEndpoint endpoint = parse_redis_url(c.url);
        EXPECT_EQ(endpoint.host, c.host);
        EXPECT_EQ(endpoint.unix_path, c.unix_path);
        if (c.unix_path.empty()) {
            EXPECT_EQ(endpoint.port, c.port);
        }
        EXPECT_EQ(endpoint.db, c.db);
        EXPECT_TRUE(endpoint.password.empty());
        // What logs show parses back to the same place.
        const RedisEndpoint again = parse_redis_url(endpoint.describe());
        EXPECT_EQ(again.host, endpoint.host);
        EXPECT_EQ(again.port, endpoint.port);
        EXPECT_EQ(again.unix_path, endpoint.unix_path);
        EXPECT_EQ(again.db, endpoint.db);
    }
}

struct BadUrl {
    std::string url;
    std::string says;  // a part of the message
};

TEST(RedisEndpoint, RefusalsSayWhatIsWrong) {
    const std::vector<BadUrl> cases = {
        {"", "unknown scheme"},
        {"localhost:6379", "unknown scheme"},
        {"http://localhost", "unknown scheme"},
        {"rediss://localhost", "TLS"},
        {"redis://", "no host"},
        {"redis://:6379", "no host"},
        {"redis:///0", "no host"},
        {"redis://host:", "empty port"},
        {"redis://host:0", "port must be a number from 1 to 65535"},
        {"redis://host:65536", "port must be a number from 1 to 65535"},
        {"redis://host:63x", "port must be"},
        {"redis://host:+80", "port must be"},
        {"redis://host/x", "database must be a number"},
        {"redis://host/-1", "database must be a number"},
        {"redis://host/1/2", "database must be a number"},
        {"redis://host/0?x=1", "database must be a number"},
        {"redis://::1", "IPv6 host goes in brackets"},
        {"redis://[::1", "closing ']'"},
        {"redis://[::1]x", "only :PORT"},
        {"redis://[]:6379", "no host"},
        {"redis://ho$t", "the host may hold"},
        {"redis://host name", "no spaces"},
        {"redis://host#frag", "'#'"},
        {"unix:", "must be absolute"},
        {"unix:relative.sock", "must be absolute"},
        {"unix:/tmp/r.sock?database=1", "only parameter is ?db=N"},
        {"unix:/tmp/r.sock?db=", "database must be a number"},
        {"unix:/tmp/r.sock?db=1&x=2", "database must be a number"},
    };
    for (const BadUrl& c : cases) {
        SCOPED_TRACE(c.url);
        try {
            parse_redis_url(c.url);
            ADD_FAILURE() << "accepted";
        } catch (const ConfigError& error) {
            const std::string message = error.what();
            EXPECT_NE(message.find("SHOPCAST_REDIS_URL"), std::string::npos) << message;
            EXPECT_NE(message.find(c.says), std::string::npos) << message;
        }
    }
}

TEST(RedisEndpoint, CredentialsInTheUrlAreRefusedWithoutRepeatingThem) {
    for (const std::string url :
         {"redis://:hunter2secret@localhost:6379", "redis://admin:hunter2secret@host/0",
          "unix:/tmp/hunter2secret@r.sock"}) {
        SCOPED_TRACE(url);
        try {
            parse_redis_url(url);
            ADD_FAILURE() << "accepted";
        } catch (const ConfigError& error) {
            const std::string message = error.what();
            EXPECT_NE(message.find("SHOPCAST_REDIS_PASSWORD_FILE"), std::string::npos);
            EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
        }
    }
}

TEST(RedisEndpoint, DescribeNeverShowsThePassword) {
    RedisEndpoint endpoint = parse_redis_url("redis://cache:6390/2");
    endpoint.password = "hunter2secret";
    EXPECT_EQ(endpoint.describe(), "redis://cache:6390/2");
}

}  // namespace
}  // namespace shopcast
