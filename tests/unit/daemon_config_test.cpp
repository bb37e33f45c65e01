// shopcastd's settings as shipped: every default in README.md's settings table, and --help
// showing the values the daemon really uses.
#include "daemon/daemon_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace shopcast {
namespace {

// Every setting's environment variable unset, so the test sees what a newcomer gets.
class DaemonDefaultsTest : public testing::Test {
  protected:
    void SetUp() override { clear_env(); }
    void TearDown() override { clear_env(); }

    static void clear_env() {
        ::unsetenv("STATE_DIRECTORY");
        for (const SettingSpec& spec : daemon_setting_specs()) {
            ::unsetenv(spec.env.c_str());
            if (spec.from_file) ::unsetenv((spec.env + "_FILE").c_str());
        }
    }

    static DaemonConfig load(std::vector<std::string> args = {}) {
        args.insert(args.begin(), "shopcastd");
        std::vector<char*> argv;
        for (std::string& arg : args) argv.push_back(arg.data());
        argv.push_back(nullptr);
        const Settings settings(static_cast<int>(args.size()), argv.data(), daemon_setting_specs());
        return load_daemon_config(settings);
    }
};

// The values README.md's settings table documents; a changed default must change both.
TEST_F(DaemonDefaultsTest, DefaultsAreTheDocumentedOnes) {
    const DaemonConfig config = load();
    ASSERT_EQ(config.ws_listeners.size(), 1u);
    EXPECT_EQ(config.ws_listeners[0].kind, ListenAddress::Kind::unix_socket);
    EXPECT_EQ(config.ws_listeners[0].unix_path, "/run/shopcast/ws.sock");
    EXPECT_TRUE(config.tls_cert_file.empty());
    EXPECT_TRUE(config.trusted_proxies.empty());
    EXPECT_EQ(config.events_socket, "/run/shopcast/events.sock");
    EXPECT_TRUE(config.allowed_origins.empty());
    EXPECT_EQ(config.history_events, 10000u);
    EXPECT_EQ(config.history_bytes, 64u * 1024 * 1024);
    EXPECT_EQ(config.limits.max_connections, 10000u);
    // Off: thousands of mobile users share one carrier-grade NAT address.
    EXPECT_EQ(config.limits.max_connections_per_ip, 0u);
    EXPECT_EQ(config.limits.max_queue_bytes, 1024u * 1024);
    EXPECT_EQ(config.log_level, LogLevel::info);
    EXPECT_EQ(config.limits.max_shops, 100u);
    // nginx's proxy_read_timeout is 60 s: an idle browser must be pinged well before that.
    EXPECT_EQ(config.ping_interval_seconds, 25);
    EXPECT_EQ(config.hangup_timeout_seconds, 40);
    EXPECT_EQ(config.live_hold_ms, 1000);
    EXPECT_EQ(config.idempotency_ttl_seconds, 300);
    EXPECT_EQ(config.state_directory, "");  // systemd's $STATE_DIRECTORY when it sets one
    EXPECT_FALSE(config.auth.webapp_key.has_value());
    EXPECT_EQ(config.auth.bot_id, "");
    EXPECT_EQ(config.auth.max_age_seconds, 86400);
    EXPECT_EQ(config.auth.public_key, telegram_production_public_key());
}

// The keepalive has to fit inside the production nginx site's proxy_read_timeout (60 s), or
// nginx cuts every idle browser before the daemon's ping reaches it.
TEST_F(DaemonDefaultsTest, KeepaliveFitsInsideNginxReadTimeout) {
    const DaemonConfig config = load();
    constexpr int kNginxProxyReadTimeoutSeconds = 60;
    EXPECT_LT(config.ping_interval_seconds, kNginxProxyReadTimeoutSeconds);
    EXPECT_GT(config.hangup_timeout_seconds, config.ping_interval_seconds);
}

// --help shows each default: setting a variable to the value --help names loads the same
// configuration as leaving it unset.
TEST_F(DaemonDefaultsTest, HelpShowsTheDefaultsInUse) {
    const DaemonConfig unset = load();
    for (const SettingSpec& spec : daemon_setting_specs()) {
        if (spec.default_text.empty() || spec.flag == "telegram-public-key") continue;
        SCOPED_TRACE(spec.env + "=" + spec.default_text);
        const DaemonConfig set = load({"--" + spec.flag, spec.default_text});
        EXPECT_EQ(set.ws_listeners.size(), unset.ws_listeners.size());
        EXPECT_EQ(set.events_socket, unset.events_socket);
        EXPECT_EQ(set.history_events, unset.history_events);
        EXPECT_EQ(set.history_bytes, unset.history_bytes);
        EXPECT_EQ(set.limits.max_connections, unset.limits.max_connections);
        EXPECT_EQ(set.limits.max_connections_per_ip, unset.limits.max_connections_per_ip);
        EXPECT_EQ(set.limits.max_queue_bytes, unset.limits.max_queue_bytes);
        EXPECT_EQ(set.limits.max_shops, unset.limits.max_shops);
        EXPECT_EQ(set.ping_interval_seconds, unset.ping_interval_seconds);
        EXPECT_EQ(set.hangup_timeout_seconds, unset.hangup_timeout_seconds);
        EXPECT_EQ(set.live_hold_ms, unset.live_hold_ms);
        EXPECT_EQ(set.idempotency_ttl_seconds, unset.idempotency_ttl_seconds);
        EXPECT_EQ(set.auth.max_age_seconds, unset.auth.max_age_seconds);
    }
}

TEST_F(DaemonDefaultsTest, WithoutARedisUrlTheDaemonRunsAlone) {
    EXPECT_FALSE(load().redis.has_value());
}

TEST_F(DaemonDefaultsTest, ARedisUrlTurnsOnRedisModeWithItsPasswordFile) {
    char pattern[] = "/tmp/shopcast-redis-password-XXXXXX";
    const int fd = ::mkstemp(pattern);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "s3cret\n", 7), 7);
    ::close(fd);
    ::setenv("SHOPCAST_REDIS_URL", "unix:/run/shopcast/redis.sock?db=2", 1);
    ::setenv("SHOPCAST_REDIS_PASSWORD_FILE", pattern, 1);
    const DaemonConfig config = load();
    ::unlink(pattern);
    ASSERT_TRUE(config.redis.has_value());
    EXPECT_EQ(config.redis->unix_path, "/run/shopcast/redis.sock");
    EXPECT_EQ(config.redis->db, 2);
    EXPECT_EQ(config.redis->password, "s3cret");

    DaemonConfig alone = config;
    alone.redis.reset();
    EXPECT_EQ(daemon_settings_needing_restart(alone, config), "SHOPCAST_REDIS_URL")
        << "switching the event source takes a restart";
    EXPECT_EQ(daemon_settings_needing_restart(config, config), "");
}

TEST_F(DaemonDefaultsTest, ABadRedisUrlStopsTheStart) {
    ::setenv("SHOPCAST_REDIS_URL", "http://localhost:6379", 1);
    EXPECT_THROW(load(), ConfigError);
}

}  // namespace
}  // namespace shopcast
