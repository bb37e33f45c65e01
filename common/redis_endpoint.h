// Where the Redis of the multi-node mode is: SHOPCAST_REDIS_URL and its password file, the same
// settings in both programs. Unset, both run alone on one machine as they always did.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/config.h"

namespace shopcast {

// One per program, read at start. Exactly one of host and unix_path is set.
struct RedisEndpoint {
    std::string host;  // TCP: a name or an address (IPv6 without brackets)
    int port = 6379;
    std::string unix_path;  // a Unix socket: an absolute path
    int db = 0;
    std::string password;  // empty: no AUTH

    // "redis://host:port/db" or "unix:/path?db=N", for log lines: never the password.
    std::string describe() const;
};

// `redis://HOST[:PORT][/DB]` or `unix:/PATH[?db=N]`. Throws ConfigError saying what is wrong; a
// URL carrying credentials (`user:pass@`) is refused without repeating it, since the password
// belongs in SHOPCAST_REDIS_PASSWORD_FILE.
RedisEndpoint parse_redis_url(std::string_view url);

// SHOPCAST_REDIS_URL (--redis-url) and SHOPCAST_REDIS_PASSWORD[_FILE] (--redis-password[-file]).
SettingSpec redis_url_spec();
SettingSpec redis_password_spec();

// nullopt when SHOPCAST_REDIS_URL is unset or empty; else the parsed endpoint with its
// password. Throws ConfigError for a bad URL, or a password without a URL.
std::optional<RedisEndpoint> redis_endpoint_setting(const Settings& settings);

}  // namespace shopcast
