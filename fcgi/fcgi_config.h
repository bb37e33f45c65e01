// shopcast-fcgi's settings (CONTRACT.md): flags override the environment.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "common/event.h"
#include "common/log.h"
#include "common/redis_endpoint.h"
#include "common/secret.h"
#include "fcgi/secret_throttle.h"

namespace shopcast::fcgi {

struct FcgiConfig {
    // Unix socket path to create; nullopt: the FastCGI socket is inherited (fd 0, or fd 3 with
    // systemd's LISTEN_FDS).
    std::optional<std::string> listen_path;
    unsigned threads = 4;
    std::string events_socket = "/run/shopcast/events.sock";
    // Digests of INTERNAL_SECRET (and INTERNAL_SECRET_PREVIOUS): the plaintext is wiped once
    // they are made. Always set after a successful parse.
    std::optional<SecretVerifier> secret;
    ValidationPolicy policy;
    std::chrono::milliseconds ack_timeout{1000};
    ThrottleSettings throttle;  // failed-secret lockout and the bot's exempt addresses
    LogLevel log_level = LogLevel::info;
    // SHOPCAST_REDIS_URL: events go into the shared Redis stream instead of to shopcastd.
    std::optional<RedisEndpoint> redis;
    std::uint64_t history = 10000;               // SHOPCAST_HISTORY: the stream's MAXLEN ~
    std::int64_t idempotency_ttl_seconds = 300;  // SHOPCAST_IDEMPOTENCY_TTL, kept in Redis
};

struct CommandLine {
    bool help_requested = false;
    std::string usage;  // printed for --help
    FcgiConfig config;  // filled only when help was not requested
};

// Throws ConfigError with one line naming the bad setting (main prints it and exits 2).
CommandLine parse_command_line(int argc, char** argv);

// The configuration a reload (SIGHUP) reads, from the same command line, the settings file and
// the secret files. Secrets that were given inline at start (and wiped) keep `running`'s.
// Throws ConfigError like parse_command_line; the caller keeps `running` then.
FcgiConfig reload_config(int argc, char** argv, const FcgiConfig& running);

// What a reload changes while requests are served: the secrets, SHOPCAST_REQUIRE_USER_FOR and
// SHOPCAST_LOG_LEVEL. The names of settings that differ but only take effect at the
// next start, comma-separated ("" when none).
std::string settings_needing_restart(const FcgiConfig& running, const FcgiConfig& loaded);

}  // namespace shopcast::fcgi
