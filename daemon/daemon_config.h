// shopcastd's settings: every name, default and bound in one table.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/redis_endpoint.h"
#include "daemon/core/client_address.h"
#include "daemon/core/hub.h"
#include "daemon/core/telegram_auth.h"

namespace shopcast {

// One WebSocket listener: `unix:/path` (behind nginx), `host:port` (ws://) or
// `tls:host:port` (wss://). host is an IPv4 literal or a bracketed IPv6 one (`[::1]:8443`).
struct ListenAddress {
    enum class Kind { unix_socket, tcp, tls };
    Kind kind = Kind::unix_socket;
    std::string unix_path;  // unix_socket only
    std::string host;       // tcp and tls: the address, without brackets
    bool ipv6 = false;
    int port = 0;

    std::string describe() const;  // as written in SHOPCAST_WS_LISTEN
};

struct DaemonConfig {
    std::vector<ListenAddress> ws_listeners;
    std::string tls_cert_file;  // required by, and only with, a tls: listener
    std::string tls_key_file;
    std::vector<AddressRange> trusted_proxies;  // TCP peers whose X-Real-IP is believed
    std::string events_socket;
    std::vector<std::string> allowed_origins;
    std::size_t history_events = 10000;
    std::size_t history_bytes = 64u << 20;
    HubLimits limits;
    int ping_interval_seconds = 25;
    int hangup_timeout_seconds = 40;
    std::int64_t live_hold_ms = 1000;
    std::int64_t idempotency_ttl_seconds = 300;
    std::string state_directory;  // empty: every start is a new epoch
    // Set: events come from the shared stream there (Redis mode); unset: from the events socket.
    std::optional<RedisEndpoint> redis;
    TelegramAuthConfig auth;  // holds the key derived from the bot token, never the token
    LogLevel log_level = LogLevel::info;
};

std::vector<SettingSpec> daemon_setting_specs();
// Throws ConfigError naming the setting at fault.
DaemonConfig load_daemon_config(const Settings& settings);
// The configuration a reload (SIGHUP) reads: as load_daemon_config, except that a bot token
// given inline at start (and wiped from the environment since) keeps `running`'s key.
DaemonConfig reload_daemon_config(const Settings& settings, const DaemonConfig& running);

// What a reload applies to a running daemon: SHOPCAST_ALLOWED_ORIGINS, the connection and
// queue limits (SHOPCAST_MAX_CONNECTIONS, _PER_IP, SHOPCAST_MAX_QUEUE, SHOPCAST_MAX_SHOPS) and
// Telegram auth (bot token file, SHOPCAST_BOT_ID, SHOPCAST_AUTH_MAX_AGE, the public key).
// The names of the other settings that differ, comma-separated: they wait for a restart.
std::string daemon_settings_needing_restart(const DaemonConfig& running,
                                            const DaemonConfig& loaded);
ListenAddress parse_listen_address(const std::string& text);
// A comma-separated list of listeners; at least one, none repeated.
std::vector<ListenAddress> parse_listen_list(const std::string& text);

}  // namespace shopcast
