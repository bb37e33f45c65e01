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

class Settings {
  public:
    // Parses `--flag value` and `--flag=value`. Throws ConfigError for an unknown flag or a
    // flag without value. `--help` sets help_requested().
    Settings(int argc, char** argv, std::vector<SettingSpec> specs);

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

  private:
    const SettingSpec& spec(std::string_view flag) const;

    std::vector<SettingSpec> specs_;
    std::map<std::string, std::string, std::less<>> flags_;
    bool help_requested_ = false;
};

// SHOPCAST_LOG_LEVEL (--log-level), the same setting in both programs.
SettingSpec log_level_spec();
// Throws ConfigError for a value other than error, warning, info or debug.
LogLevel log_level_setting(const Settings& settings);

// Splits "a, b,c" into {"a","b","c"}, dropping empty items.
std::vector<std::string> split_list(std::string_view text);

}  // namespace shopcast
