#include "fcgi/fcgi_config.h"

#include <sys/un.h>

#include <vector>

#include "common/config.h"

namespace shopcast::fcgi {
namespace {

constexpr std::string_view kSummary =
    "FastCGI endpoint for POST /api/internal/broadcast: checks the secret, validates the event\n"
    "and hands it to shopcastd over its events socket.";

// The bot on the same host as nginx, as in the development stack.
constexpr std::string_view kDefaultPublishers = "127.0.0.1,::1";

std::vector<SettingSpec> setting_specs() {
    const ThrottleSettings throttle;
    return {
        {"listen", "SHOPCAST_FCGI_LISTEN", "",
         "Unix socket path to create; without it the FastCGI socket is inherited on fd 0 "
         "(spawn-fcgi, systemd socket)"},
        {"threads", "SHOPCAST_FCGI_THREADS", "4", "worker threads, each with its own connection"},
        {"events-socket", "SHOPCAST_EVENTS_SOCKET", "/run/shopcast/events.sock",
         "shopcastd's IPC socket"},
        {"secret", "INTERNAL_SECRET", "",
         "the x-internal-secret bots send (at least 32 characters); --secret-file or "
         "INTERNAL_SECRET_FILE read it from a file",
         true},
        {"previous-secret", "INTERNAL_SECRET_PREVIOUS", "",
         "also accepted while rotating the secret (--previous-secret-file, "
         "INTERNAL_SECRET_PREVIOUS_FILE)",
         true},
        {"require-user-for", "SHOPCAST_REQUIRE_USER_FOR", "",
         "comma-separated event types that must carry userId"},
        {"ack-timeout-ms", "SHOPCAST_ACK_TIMEOUT_MS", "1000",
         "how long to wait for shopcastd's acknowledgement before answering 503"},
        {"publisher-addresses", "SHOPCAST_PUBLISHER_ADDRESSES", std::string(kDefaultPublishers),
         "comma-separated addresses and CIDR networks of the bot (as nginx sees them); wrong "
         "secrets from them are never throttled"},
        {"secret-failures", "SHOPCAST_SECRET_FAILURES", std::to_string(throttle.max_failures),
         "wrong secrets from one address within the window before it is locked out"},
        {"secret-failure-window", "SHOPCAST_SECRET_FAILURE_WINDOW",
         std::to_string(throttle.failure_window.count()),
         "seconds over which wrong secrets are counted"},
        {"secret-lockout", "SHOPCAST_SECRET_LOCKOUT", std::to_string(throttle.lockout.count()),
         "seconds a locked-out address gets 429, whatever secret it sends"},
        log_level_spec(),
    };
}

std::optional<std::string> listen_path(const Settings& settings) {
    std::optional<std::string> path = settings.raw("listen");
    if (!path || path->empty()) return std::nullopt;  // an empty variable means "inherit"
    if (path->size() >= sizeof(sockaddr_un::sun_path)) {
        throw ConfigError("SHOPCAST_FCGI_LISTEN must be a path of at most " +
                          std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes, got \"" +
                          *path + "\"");
    }
    return path;
}

std::string events_socket(const Settings& settings) {
    std::string path = settings.text("events-socket", "/run/shopcast/events.sock");
    if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) {
        throw ConfigError("SHOPCAST_EVENTS_SOCKET must be a path of 1-" +
                          std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
    }
    return path;
}

std::vector<std::string> require_user_for(const Settings& settings) {
    std::vector<std::string> types = split_list(settings.text("require-user-for", ""));
    for (const std::string& type : types) {
        if (!is_known_event_type(type)) {
            throw ConfigError("SHOPCAST_REQUIRE_USER_FOR: unknown event type \"" + type + "\"");
        }
    }
    return types;
}

ThrottleSettings throttle_settings(const Settings& settings) {
    ThrottleSettings throttle;
    throttle.max_failures = static_cast<unsigned>(
        settings.number("secret-failures", throttle.max_failures, 1, 1'000'000));
    throttle.failure_window = std::chrono::seconds(
        settings.number("secret-failure-window",
                        static_cast<std::uint64_t>(throttle.failure_window.count()), 1, 86'400));
    throttle.lockout = std::chrono::seconds(settings.number(
        "secret-lockout", static_cast<std::uint64_t>(throttle.lockout.count()), 1, 86'400));
    throttle.publisher_addresses = AddressSet::parse(
        settings.text("publisher-addresses", kDefaultPublishers), "SHOPCAST_PUBLISHER_ADDRESSES");
    return throttle;
}

}  // namespace

CommandLine parse_command_line(int argc, char** argv) {
    const Settings settings(argc, argv, setting_specs());
    CommandLine command;
    if (settings.help_requested()) {
        command.help_requested = true;
        command.usage = settings.usage("shopcast-fcgi", kSummary);
        return command;
    }

    FcgiConfig& config = command.config;
    config.listen_path = listen_path(settings);
    config.threads = static_cast<unsigned>(settings.number("threads", 4, 1, 256));
    config.events_socket = events_socket(settings);
    config.ack_timeout =
        std::chrono::milliseconds(settings.number("ack-timeout-ms", 1000, 1, 60'000));
    config.policy.require_user_for = require_user_for(settings);
    config.throttle = throttle_settings(settings);
    config.log_level = log_level_setting(settings);

    config.secret = settings.secret("secret");
    if (config.secret.empty()) {
        throw ConfigError(
            "INTERNAL_SECRET is not set (set INTERNAL_SECRET or INTERNAL_SECRET_FILE); refusing "
            "to start without it");
    }
    config.previous_secret = settings.secret("previous-secret");  // SecretVerifier checks both
    return command;
}

}  // namespace shopcast::fcgi
