#include "common/redis_endpoint.h"

#include <charconv>
#include <cstdint>

namespace shopcast {
namespace {

constexpr std::string_view kTcpScheme = "redis://";
constexpr std::string_view kUnixScheme = "unix:";
constexpr std::string_view kDbParameter = "db=";
constexpr int kMaxPort = 65535;
// Redis numbers its databases from 0 to `databases - 1`; 16 by default, configurable. A larger
// number than anyone configures is a typo.
constexpr int kMaxDb = 1 << 20;

[[noreturn]] void refuse(std::string_view why) {
    throw ConfigError("SHOPCAST_REDIS_URL: " + std::string(why) +
                      " (expected redis://HOST[:PORT][/DB] or unix:/PATH[?db=N])");
}

int decimal(std::string_view text, int min, int max, std::string_view what) {
    int value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc{} || end != text.data() + text.size() || value < min ||
        value > max) {
        refuse(std::string(what) + " must be a number from " + std::to_string(min) + " to " +
               std::to_string(max) + ", not \"" + std::string(text) + "\"");
    }
    return value;
}

RedisEndpoint parse_tcp(std::string_view rest) {
    RedisEndpoint endpoint;
    const std::size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    if (slash != std::string_view::npos) {
        const std::string_view db = rest.substr(slash + 1);
        // "redis://host/" names no database: the default one.
        if (!db.empty()) endpoint.db = decimal(db, 0, kMaxDb, "the database");
    }
    if (authority.empty()) refuse("no host");
    std::string_view port;
    if (authority.front() == '[') {
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) refuse("an IPv6 host needs its closing ']'");
        endpoint.host = authority.substr(1, close - 1);
        const std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') refuse("only :PORT may follow an IPv6 host");
            port = after.substr(1);
            if (port.empty()) refuse("an empty port");
        }
        if (endpoint.host.empty()) refuse("no host");
    } else {
        const std::size_t colon = authority.rfind(':');
        endpoint.host = authority.substr(0, colon);
        if (colon != std::string_view::npos) {
            port = authority.substr(colon + 1);
            if (port.empty()) refuse("an empty port");
        }
        if (endpoint.host.empty()) refuse("no host");
        if (endpoint.host.find(':') != std::string::npos) {
            refuse("an IPv6 host goes in brackets: redis://[::1]:6379");
        }
    }
    for (char c : endpoint.host) {
        const bool allowed = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                             (c >= 'A' && c <= 'Z') || c == '.' || c == '-' || c == '_' ||
                             c == ':' || c == '%';
        if (!allowed) refuse("the host may hold letters, digits, '.', '-', '_' only");
    }
    if (!port.empty()) endpoint.port = decimal(port, 1, kMaxPort, "the port");
    return endpoint;
}

RedisEndpoint parse_unix(std::string_view rest) {
    RedisEndpoint endpoint;
    const std::size_t question = rest.find('?');
    endpoint.unix_path = rest.substr(0, question);
    if (endpoint.unix_path.empty() || endpoint.unix_path.front() != '/') {
        refuse("a Unix socket path must be absolute: unix:/run/redis/redis.sock");
    }
    if (question != std::string_view::npos) {
        const std::string_view query = rest.substr(question + 1);
        if (!query.starts_with(kDbParameter)) refuse("the only parameter is ?db=N");
        endpoint.db = decimal(query.substr(kDbParameter.size()), 0, kMaxDb, "the database");
    }
    return endpoint;
}

}  // namespace

std::string RedisEndpoint::describe() const {
    if (!unix_path.empty()) return "unix:" + unix_path + "?db=" + std::to_string(db);
    const bool v6 = host.find(':') != std::string::npos;
    return "redis://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" +
           std::to_string(db);
}

RedisEndpoint parse_redis_url(std::string_view url) {
    // Checked before anything else so that no message ever repeats a password.
    if (url.find('@') != std::string_view::npos) {
        refuse(
            "credentials do not belong in the URL; put the password in "
            "SHOPCAST_REDIS_PASSWORD_FILE");
    }
    for (char c : url) {
        if (static_cast<unsigned char>(c) <= ' ' || c == '#') {
            refuse("no spaces, control characters or '#'");
        }
    }
    if (url.starts_with("rediss://")) refuse("TLS (rediss://) is not supported");
    if (url.starts_with(kTcpScheme)) return parse_tcp(url.substr(kTcpScheme.size()));
    if (url.starts_with(kUnixScheme)) return parse_unix(url.substr(kUnixScheme.size()));
    refuse("unknown scheme in \"" + std::string(url) + "\"");
}

SettingSpec redis_url_spec() {
    return {"redis-url", "SHOPCAST_REDIS_URL", "",
            "Redis holding the shared event stream: redis://HOST[:PORT][/DB] or "
            "unix:/PATH[?db=N]; empty: one machine, no Redis"};
}

SettingSpec redis_password_spec() {
    return {"redis-password", "SHOPCAST_REDIS_PASSWORD", "",
            "password for Redis' AUTH (use --redis-password-file / "
            "SHOPCAST_REDIS_PASSWORD_FILE)",
            true};
}

std::optional<RedisEndpoint> redis_endpoint_setting(const Settings& settings) {
    const std::string url = settings.text("redis-url", "");
    SecretSetting password = settings.take_secret("redis-password");
    if (url.empty()) {
        if (!password.value.empty()) {
            throw ConfigError(
                "a Redis password is set (SHOPCAST_REDIS_PASSWORD_FILE) but SHOPCAST_REDIS_URL "
                "is not");
        }
        return std::nullopt;
    }
    RedisEndpoint endpoint = parse_redis_url(url);
    endpoint.password = password.value;
    return endpoint;
}

}  // namespace shopcast
