// shopcast-fcgi's settings (CONTRACT.md): flags override the environment.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "common/event.h"
#include "common/log.h"
#include "fcgi/secret_throttle.h"

namespace shopcast::fcgi {

struct FcgiConfig {
    // Unix socket path to create; nullopt: the FastCGI socket is inherited (fd 0, or fd 3 with
    // systemd's LISTEN_FDS).
    std::optional<std::string> listen_path;
    unsigned threads = 4;
    std::string events_socket = "/run/shopcast/events.sock";
    std::string secret;           // never logged
    std::string previous_secret;  // empty when no rotation is in progress
    ValidationPolicy policy;
    std::chrono::milliseconds ack_timeout{1000};
    ThrottleSettings throttle;  // failed-secret lockout and the bot's exempt addresses
    LogLevel log_level = LogLevel::info;
};

struct CommandLine {
    bool help_requested = false;
    std::string usage;  // printed for --help
    FcgiConfig config;  // filled only when help was not requested
};

// Throws ConfigError with one line naming the bad setting (main prints it and exits 2).
CommandLine parse_command_line(int argc, char** argv);

}  // namespace shopcast::fcgi
