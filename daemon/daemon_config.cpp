#include "daemon/daemon_config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>

namespace shopcast {
namespace {

std::array<unsigned char, 32> parse_public_key(const std::string& hex) {
    std::array<unsigned char, 32> key{};
    if (hex.size() != 64) {
        throw ConfigError("SHOPCAST_TELEGRAM_PUBLIC_KEY must be 64 hexadecimal characters");
    }
    for (std::size_t i = 0; i < key.size(); ++i) {
        auto [end, ec] = std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, key[i], 16);
        if (ec != std::errc() || end != hex.data() + 2 * i + 2) {
            throw ConfigError("SHOPCAST_TELEGRAM_PUBLIC_KEY must be 64 hexadecimal characters");
        }
    }
    // OpenSSL accepts forged signatures against the all-zero point; it is never a real key.
    if (std::all_of(key.begin(), key.end(), [](unsigned char byte) { return byte == 0; })) {
        throw ConfigError("SHOPCAST_TELEGRAM_PUBLIC_KEY must not be all zeros");
    }
    return key;
}

bool is_origin(const std::string& origin) {
    return (origin.rfind("http://", 0) == 0 || origin.rfind("https://", 0) == 0) &&
           origin.find('/', origin.find("//") + 2) == std::string::npos && origin.back() != ':';
}

}  // namespace

std::vector<SettingSpec> daemon_setting_specs() {
    return {
        {"ws-listen", "SHOPCAST_WS_LISTEN", "unix:/run/shopcast/ws.sock",
         "comma-separated WebSocket listeners: unix:/path, host:port (ws://), tls:host:port "
         "(wss://); IPv6 as [addr]:port"},
        {"tls-cert-file", "SHOPCAST_TLS_CERT_FILE", "", "PEM certificate chain for tls: listeners"},
        {"tls-key-file", "SHOPCAST_TLS_KEY_FILE", "", "PEM private key for tls: listeners"},
        {"trusted-proxies", "SHOPCAST_TRUSTED_PROXIES", "",
         "comma-separated addresses/CIDRs whose X-Real-IP a TCP listener believes"},
        {"events-socket", "SHOPCAST_EVENTS_SOCKET", "/run/shopcast/events.sock",
         "Unix socket shopcast-fcgi publishes to"},
        {"allowed-origins", "SHOPCAST_ALLOWED_ORIGINS", "",
         "comma-separated browser origins (scheme://host[:port]) allowed to connect"},
        {"history", "SHOPCAST_HISTORY", "10000", "events kept for resume"},
        {"history-bytes", "SHOPCAST_HISTORY_BYTES", "67108864", "bytes kept for resume"},
        {"max-connections", "SHOPCAST_MAX_CONNECTIONS", "10000", "open WebSockets at most"},
        {"max-connections-per-ip", "SHOPCAST_MAX_CONNECTIONS_PER_IP", "0",
         "open WebSockets per client address (IPv6: per /64) at most; 0 = no limit"},
        {"max-queue", "SHOPCAST_MAX_QUEUE", "1048576",
         "bytes published for a connection whose socket stopped draining before it is "
         "closed (1013)"},
        {"max-shops", "SHOPCAST_MAX_SHOPS", "100", "shop subscriptions per connection"},
        {"ping-interval", "SHOPCAST_PING_INTERVAL", "25", "seconds of silence before a ping"},
        {"hangup-timeout", "SHOPCAST_HANGUP_TIMEOUT", "40",
         "seconds without a pong before the peer is dropped"},
        {"live-hold-ms", "SHOPCAST_LIVE_HOLD_MS", "1000",
         "how long a new connection's live events wait for its resume"},
        {"idempotency-ttl", "SHOPCAST_IDEMPOTENCY_TTL", "300",
         "seconds an Idempotency-Key is remembered"},
        {"state-directory", "SHOPCAST_STATE_DIRECTORY", "",
         "where history, epoch and Idempotency-Keys are kept across a restart (default: "
         "systemd's $STATE_DIRECTORY; none: every start is a new epoch)"},
        redis_url_spec(),
        redis_password_spec(),
        {"bot-token", "BOT_TOKEN", "", "bot token for initData hash checks (or BOT_TOKEN_FILE)",
         true},
        {"bot-id", "SHOPCAST_BOT_ID", "", "bot id for initData signature checks"},
        {"auth-max-age", "SHOPCAST_AUTH_MAX_AGE", "86400", "oldest accepted auth_date, seconds"},
        {"telegram-public-key", "SHOPCAST_TELEGRAM_PUBLIC_KEY", "Telegram's production key",
         "Ed25519 key (hex) that signs initData"},
        log_level_spec(),
    };
}

std::string ListenAddress::describe() const {
    if (kind == Kind::unix_socket) return "unix:" + unix_path;
    const std::string address = ipv6 ? "[" + host + "]" : host;
    return (kind == Kind::tls ? "tls:" : "") + address + ":" + std::to_string(port);
}

ListenAddress parse_listen_address(const std::string& text) {
    ListenAddress address;
    if (text.rfind("unix:", 0) == 0) {
        address.unix_path = text.substr(5);
        if (address.unix_path.empty() || address.unix_path[0] != '/') {
            throw ConfigError("SHOPCAST_WS_LISTEN: unix: needs an absolute path, got \"" + text +
                              "\"");
        }
        return address;
    }
    std::string_view rest(text);
    address.kind = ListenAddress::Kind::tcp;
    if (rest.rfind("tls:", 0) == 0) {
        address.kind = ListenAddress::Kind::tls;
        rest.remove_prefix(4);
    }
    const auto colon = rest.rfind(':');
    const std::string bad = "SHOPCAST_WS_LISTEN: \"" + text +
                            "\" is not unix:/path, host:port or tls:host:port (IPv4 host, or "
                            "[IPv6]:port)";
    if (colon == std::string_view::npos) throw ConfigError(bad);
    std::string_view host = rest.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
        in6_addr parsed{};
        if (inet_pton(AF_INET6, std::string(host).c_str(), &parsed) != 1) throw ConfigError(bad);
        address.ipv6 = true;
    } else {
        in_addr parsed{};
        if (inet_pton(AF_INET, std::string(host).c_str(), &parsed) != 1) throw ConfigError(bad);
    }
    address.host = std::string(host);
    const std::string_view port = rest.substr(colon + 1);
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), address.port);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || address.port < 1 ||
        address.port > 65535) {
        throw ConfigError("SHOPCAST_WS_LISTEN: port must be 1-65535, got \"" + text + "\"");
    }
    return address;
}

std::vector<ListenAddress> parse_listen_list(const std::string& text) {
    std::vector<ListenAddress> listeners;
    for (const std::string& entry : split_list(text)) {
        ListenAddress address = parse_listen_address(entry);
        for (const ListenAddress& earlier : listeners) {
            const bool same = address.kind == ListenAddress::Kind::unix_socket
                                  ? address.unix_path == earlier.unix_path
                                  : address.port == earlier.port && address.host == earlier.host;
            if (same) {
                throw ConfigError("SHOPCAST_WS_LISTEN: " + address.describe() + " is listed twice");
            }
        }
        listeners.push_back(std::move(address));
    }
    if (listeners.empty()) throw ConfigError("SHOPCAST_WS_LISTEN must name at least one listener");
    return listeners;
}

namespace {

DaemonConfig load(const Settings& settings, const DaemonConfig* running) {
    DaemonConfig config;
    config.ws_listeners =
        parse_listen_list(settings.text("ws-listen", "unix:/run/shopcast/ws.sock"));
    config.tls_cert_file = settings.text("tls-cert-file", "");
    config.tls_key_file = settings.text("tls-key-file", "");
    const bool wants_tls = std::any_of(
        config.ws_listeners.begin(), config.ws_listeners.end(),
        [](const ListenAddress& address) { return address.kind == ListenAddress::Kind::tls; });
    const bool has_files = !config.tls_cert_file.empty() || !config.tls_key_file.empty();
    if (wants_tls && (config.tls_cert_file.empty() || config.tls_key_file.empty())) {
        throw ConfigError(
            "SHOPCAST_WS_LISTEN has a tls: listener: set both SHOPCAST_TLS_CERT_FILE and "
            "SHOPCAST_TLS_KEY_FILE");
    }
    if (has_files && !wants_tls) {
        throw ConfigError(
            "SHOPCAST_TLS_CERT_FILE/SHOPCAST_TLS_KEY_FILE are set but SHOPCAST_WS_LISTEN has no "
            "tls: listener to use them");
    }
    config.trusted_proxies =
        parse_address_ranges(settings.text("trusted-proxies", ""), "SHOPCAST_TRUSTED_PROXIES");
    config.events_socket = settings.text("events-socket", "/run/shopcast/events.sock");
    if (config.events_socket.empty() || config.events_socket[0] != '/') {
        throw ConfigError("SHOPCAST_EVENTS_SOCKET must be an absolute path");
    }
    config.allowed_origins = split_list(settings.text("allowed-origins", ""));
    for (const auto& origin : config.allowed_origins) {
        if (!is_origin(origin)) {
            throw ConfigError("SHOPCAST_ALLOWED_ORIGINS: \"" + origin +
                              "\" is not scheme://host[:port]");
        }
    }
    config.history_events = settings.number("history", 10000, 1, 10'000'000);
    config.history_bytes = settings.number("history-bytes", 64u << 20, 4096, 1ull << 36);
    config.limits.max_connections = settings.number("max-connections", 10000, 1, 1'000'000);
    config.limits.max_connections_per_ip =
        settings.number("max-connections-per-ip", 0, 0, 1'000'000);
    config.limits.max_queue_bytes = settings.number("max-queue", 1u << 20, 4096, 1ull << 32);
    config.limits.max_shops = settings.number("max-shops", 100, 1, 100000);
    config.ping_interval_seconds = static_cast<int>(settings.number("ping-interval", 25, 1, 3600));
    config.hangup_timeout_seconds =
        static_cast<int>(settings.number("hangup-timeout", 40, 2, 7200));
    if (config.hangup_timeout_seconds <= config.ping_interval_seconds) {
        throw ConfigError("SHOPCAST_HANGUP_TIMEOUT must exceed SHOPCAST_PING_INTERVAL");
    }
    config.live_hold_ms =
        static_cast<std::int64_t>(settings.number("live-hold-ms", 1000, 0, 60000));
    config.idempotency_ttl_seconds =
        static_cast<std::int64_t>(settings.number("idempotency-ttl", 300, 1, 86400));
    // systemd's StateDirectory= names the directory in $STATE_DIRECTORY.
    const char* systemd_state = std::getenv("STATE_DIRECTORY");
    config.state_directory = settings.text("state-directory", systemd_state ? systemd_state : "");
    if (!config.state_directory.empty() && config.state_directory[0] != '/') {
        throw ConfigError("SHOPCAST_STATE_DIRECTORY must be an absolute path");
    }
    config.redis = redis_endpoint_setting(settings);

    {
        const SecretSetting token = settings.take_secret("bot-token");
        if (!token.value.empty()) {
            config.auth.webapp_key = derive_webapp_key(token.value);
        } else if (token.origin == SecretOrigin::consumed && running != nullptr) {
            config.auth.webapp_key = running->auth.webapp_key;
        }
    }
    config.auth.bot_id = settings.text("bot-id", "");
    if (!config.auth.bot_id.empty() &&
        !std::all_of(config.auth.bot_id.begin(), config.auth.bot_id.end(),
                     [](char c) { return c >= '0' && c <= '9'; })) {
        throw ConfigError("SHOPCAST_BOT_ID must be the bot's numeric id");
    }
    config.auth.max_age_seconds =
        static_cast<std::int64_t>(settings.number("auth-max-age", 86400, 1, 365ull * 86400));
    auto key = settings.raw("telegram-public-key");
    config.auth.public_key = key ? parse_public_key(*key) : telegram_production_public_key();
    config.log_level = log_level_setting(settings);
    return config;
}

bool same_listeners(const std::vector<ListenAddress>& a, const std::vector<ListenAddress>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i].describe() != b[i].describe()) return false;
    }
    return true;
}

}  // namespace

DaemonConfig load_daemon_config(const Settings& settings) {
    return load(settings, nullptr);
}

DaemonConfig reload_daemon_config(const Settings& settings, const DaemonConfig& running) {
    return load(settings, &running);
}

std::string daemon_settings_needing_restart(const DaemonConfig& running,
                                            const DaemonConfig& loaded) {
    std::vector<std::string> names;
    const auto note = [&names](bool differs, const char* name) {
        if (differs) names.emplace_back(name);
    };
    note(!same_listeners(running.ws_listeners, loaded.ws_listeners), "SHOPCAST_WS_LISTEN");
    note(running.tls_cert_file != loaded.tls_cert_file, "SHOPCAST_TLS_CERT_FILE");
    note(running.tls_key_file != loaded.tls_key_file, "SHOPCAST_TLS_KEY_FILE");
    note(running.events_socket != loaded.events_socket, "SHOPCAST_EVENTS_SOCKET");
    note(running.history_events != loaded.history_events, "SHOPCAST_HISTORY");
    note(running.history_bytes != loaded.history_bytes, "SHOPCAST_HISTORY_BYTES");
    note(running.ping_interval_seconds != loaded.ping_interval_seconds, "SHOPCAST_PING_INTERVAL");
    note(running.hangup_timeout_seconds != loaded.hangup_timeout_seconds,
         "SHOPCAST_HANGUP_TIMEOUT");
    note(running.live_hold_ms != loaded.live_hold_ms, "SHOPCAST_LIVE_HOLD_MS");
    note(running.idempotency_ttl_seconds != loaded.idempotency_ttl_seconds,
         "SHOPCAST_IDEMPOTENCY_TTL");
    note(running.state_directory != loaded.state_directory, "SHOPCAST_STATE_DIRECTORY");
    const auto redis_of = [](const DaemonConfig& config) {
        return config.redis ? config.redis->describe() : std::string();
    };
    note(redis_of(running) != redis_of(loaded), "SHOPCAST_REDIS_URL");
    note(running.trusted_proxies.size() != loaded.trusted_proxies.size(),
         "SHOPCAST_TRUSTED_PROXIES");
    std::string joined;
    for (const std::string& name : names) joined += (joined.empty() ? "" : ", ") + name;
    return joined;
}

}  // namespace shopcast
