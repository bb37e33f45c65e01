#include "fcgi/fcgi_config.h"

#include <sys/un.h>

#include <vector>

#include "common/config.h"

namespace shopcast::fcgi {
namespace {

constexpr std::string_view kSummary =
    "FastCGI endpoint for POST /api/internal/broadcast: checks the secret, validates the event\n"
    "and hands it to shopcastd over its events socket, or with SHOPCAST_REDIS_URL appends it\n"
    "to the Redis stream every shopcastd reads.";

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
        redis_url_spec(),
        redis_password_spec(),
        // The daemon's settings of the same names: with Redis the stream keeps the history and
        // the Idempotency-Keys, and this side writes both.
        {"history", "SHOPCAST_HISTORY", "10000",
         "with SHOPCAST_REDIS_URL: events the stream keeps (XADD MAXLEN ~)"},
        {"idempotency-ttl", "SHOPCAST_IDEMPOTENCY_TTL", "300",
         "with SHOPCAST_REDIS_URL: seconds Redis remembers an Idempotency-Key"},
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

// The verifier for this configuration. `running` (a reload) supplies what a secret consumed
// at start can no longer be read from.
SecretVerifier make_verifier(const Settings& settings, const SecretVerifier* running) {
    const SecretSetting current = settings.take_secret("secret");
    const SecretSetting previous = settings.take_secret("previous-secret");
    const bool keep_current = current.origin == SecretOrigin::consumed && running != nullptr;
    if (current.value.empty() && !keep_current) {
        throw ConfigError(
            "INTERNAL_SECRET is not set (set INTERNAL_SECRET or INTERNAL_SECRET_FILE); refusing "
            "to start without it");
    }
    if (running == nullptr) return SecretVerifier(current.value, previous.value);
    std::optional<std::string_view> new_current;
    if (!keep_current) new_current = current.value;
    std::optional<std::string_view> new_previous;
    if (previous.origin != SecretOrigin::consumed) new_previous = previous.value;
    return running->with_secrets(new_current, new_previous);
}

FcgiConfig load_config(const Settings& settings, const SecretVerifier* running) {
    FcgiConfig config;
    config.listen_path = listen_path(settings);
    config.threads = static_cast<unsigned>(settings.number("threads", 4, 1, 256));
    config.events_socket = events_socket(settings);
    config.ack_timeout =
        std::chrono::milliseconds(settings.number("ack-timeout-ms", 1000, 1, 60'000));
    config.policy.require_user_for = require_user_for(settings);
    config.throttle = throttle_settings(settings);
    config.log_level = log_level_setting(settings);
    config.redis = redis_endpoint_setting(settings);
    config.history = settings.number("history", 10000, 1, 10'000'000);
    config.idempotency_ttl_seconds =
        static_cast<std::int64_t>(settings.number("idempotency-ttl", 300, 1, 86400));
    config.secret.emplace(make_verifier(settings, running));
    return config;
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
    command.config = load_config(settings, nullptr);
    return command;
}

FcgiConfig reload_config(int argc, char** argv, const FcgiConfig& running) {
    const Settings settings(argc, argv, setting_specs());
    return load_config(settings, running.secret ? &*running.secret : nullptr);
}

std::string settings_needing_restart(const FcgiConfig& running, const FcgiConfig& loaded) {
    std::vector<std::string> names;
    if (running.listen_path != loaded.listen_path) names.emplace_back("SHOPCAST_FCGI_LISTEN");
    if (running.threads != loaded.threads) names.emplace_back("SHOPCAST_FCGI_THREADS");
    if (running.events_socket != loaded.events_socket) names.emplace_back("SHOPCAST_EVENTS_SOCKET");
    if (running.ack_timeout != loaded.ack_timeout) names.emplace_back("SHOPCAST_ACK_TIMEOUT_MS");
    const auto redis_place = [](const FcgiConfig& config) {
        return config.redis ? config.redis->describe() : std::string();
    };
    if (redis_place(running) != redis_place(loaded)) names.emplace_back("SHOPCAST_REDIS_URL");
    if (running.history != loaded.history) names.emplace_back("SHOPCAST_HISTORY");
    if (running.idempotency_ttl_seconds != loaded.idempotency_ttl_seconds) {
        names.emplace_back("SHOPCAST_IDEMPOTENCY_TTL");
    }
    const ThrottleSettings& a = running.throttle;
    const ThrottleSettings& b = loaded.throttle;
    if (a.max_failures != b.max_failures || a.failure_window != b.failure_window ||
        a.lockout != b.lockout) {
        names.emplace_back("SHOPCAST_SECRET_FAILURES/_WINDOW/_LOCKOUT");
    }
    std::string joined;
    for (const std::string& name : names) joined += (joined.empty() ? "" : ", ") + name;
    return joined;
}

}  // namespace shopcast::fcgi
