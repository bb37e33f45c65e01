// shopcastd's settings: every name, default and bound in one table.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"
#include "daemon/core/hub.h"
#include "daemon/core/telegram_auth.h"

namespace shopcast {

// Where the WebSocket listener binds: a Unix socket path, or an IPv4 address and port.
struct ListenAddress {
    std::string unix_path;  // set for `unix:/path`
    std::string host;       // set for `host:port`
    int port = 0;
};

struct DaemonConfig {
    ListenAddress ws_listen;
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
    TelegramAuthConfig auth;
};

std::vector<SettingSpec> daemon_setting_specs();
// Throws ConfigError naming the setting at fault.
DaemonConfig load_daemon_config(const Settings& settings);
ListenAddress parse_listen_address(const std::string& text);

}  // namespace shopcast
