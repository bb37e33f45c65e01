// Configuration from the environment (systemd EnvironmentFile=) overridden by flags.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"

namespace shopcast {

// A start-up error; main() prints its message as one line and exits non-zero.
struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// One recognised setting: its flag (without "--"), its environment name, and help text.
struct SettingSpec {
    std::string flag;
    std::string env;
    std::string default_text;
    std::string help;
    // A secret may also come from a file: `--<flag>-file PATH` or `<ENV>_FILE`.
    bool from_file = false;
};

// Where a secret came from. `consumed`: it was given inline in the environment when the
// process started, has since been wiped from it, and so cannot be read again (a reload keeps
// what was derived from it).
enum class SecretOrigin { unset, inline_value, file, consumed };

// A secret's plaintext, wiped when this goes away. Not copyable, so no stray copy outlives it.
struct SecretSetting {
    SecretSetting() = default;
    SecretSetting(std::string plaintext, SecretOrigin from)
        : value(std::move(plaintext)), origin(from) {}
    SecretSetting(const SecretSetting&) = delete;
    SecretSetting& operator=(const SecretSetting&) = delete;
    ~SecretSetting();

    std::string value;
    SecretOrigin origin = SecretOrigin::unset;
};

// Overwrites `text`'s bytes (OPENSSL_cleanse), then empties it.
void wipe(std::string& text);

// The environment variable naming the settings file (`--config-file` as a flag).
inline constexpr std::string_view kConfigFileEnv = "SHOPCAST_CONFIG_FILE";

class Settings {
  public:
    // Parses `--flag value` and `--flag=value`. Throws ConfigError for an unknown flag or a
    // flag without value. `--help` sets help_requested(). When `--config-file` or
    // SHOPCAST_CONFIG_FILE names a file, reads its `NAME=value` lines (see
    // parse_settings_file); a value there overrides the environment, a flag overrides both.
    Settings(int argc, char** argv, std::vector<SettingSpec> specs);
    Settings(const Settings&) = delete;
    Settings& operator=(const Settings&) = delete;
    ~Settings();  // wipes what the settings file said (it may hold a secret)

    bool help_requested() const { return help_requested_; }
    std::string usage(std::string_view program, std::string_view summary) const;

    // The flag's value, else the environment variable's, else nullopt.
    std::optional<std::string> raw(std::string_view flag) const;

    std::string text(std::string_view flag, std::string_view fallback) const;
    // An integer within [min, max]; ConfigError naming the setting otherwise.
    std::uint64_t number(std::string_view flag, std::uint64_t fallback, std::uint64_t min,
                         std::uint64_t max) const;
    // A value given inline or, via the `<ENV>_FILE` variable / `--<flag>-file` flag, read from
    // a file with the trailing newline stripped. Empty when neither is set.
    std::string secret(std::string_view flag) const;
    // As secret(), and a value found inline in the environment is then wiped from it
    // (overwritten, unset) so it stays in memory no longer than the caller keeps it.
    SecretSetting take_secret(std::string_view flag) const;

    // The settings file in use, empty when there is none.
    const std::string& config_file() const { return config_file_; }

  private:
    const SettingSpec& spec(std::string_view flag) const;
    // The settings file's value for `name`, else the environment's.
    std::optional<std::string> lookup(const std::string& name) const;
    std::optional<std::string> file_path(const SettingSpec& s) const;

    std::vector<SettingSpec> specs_;
    std::map<std::string, std::string, std::less<>> flags_;
    std::map<std::string, std::string, std::less<>> file_values_;
    std::string config_file_;
    bool help_requested_ = false;
};

// SHOPCAST_LOG_LEVEL (--log-level), the same setting in both programs.
SettingSpec log_level_spec();
// Throws ConfigError for a value other than error, warning, info or debug.
LogLevel log_level_setting(const Settings& settings);
// `NAME=value` lines as systemd's EnvironmentFile= reads them: blank lines and lines starting
// with `#` or `;` are skipped, `export ` before a name is allowed, a value may be wrapped in
// single or double quotes. Throws ConfigError naming the line of anything else. Names the
// caller does not know are kept (both binaries share one file) and simply never asked for.
std::map<std::string, std::string, std::less<>> parse_settings_file(std::string_view text,
                                                                    std::string_view path);

// Splits "a, b,c" into {"a","b","c"}, dropping empty items.
std::vector<std::string> split_list(std::string_view text);

}  // namespace shopcast
