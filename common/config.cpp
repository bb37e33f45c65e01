#include "common/config.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <set>

#include "common/fd.h"

namespace shopcast {
namespace {

constexpr std::string_view kFileSuffix = "-file";

bool ends_with(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::optional<std::string> env_value(const std::string& name) {
    if (name.empty()) return std::nullopt;
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
}

// Names of secrets wiped from the environment at start, so a later read can tell "given and
// consumed" from "never given". Touched at start and on reloads, never concurrently.
std::set<std::string, std::less<>>& consumed_secrets() {
    static std::set<std::string, std::less<>> names;
    return names;
}

// The whole file in one buffer (no stream buffers left holding copies); `what` names the
// setting in errors.
std::string read_whole_file(const std::string& path, const std::string& what) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid())
        throw ConfigError(what + ": cannot read file " + path + ": " + std::strerror(errno));
    struct stat info {};
    if (::fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode)) {
        throw ConfigError(what + ": " + path + " is not a regular file");
    }
    constexpr off_t kMaxBytes = 1 << 20;
    if (info.st_size > kMaxBytes) throw ConfigError(what + ": " + path + " is larger than 1 MiB");
    std::string content;
    content.reserve(static_cast<std::size_t>(info.st_size) + 1);
    char chunk[4096];
    for (;;) {
        const ssize_t got = ::read(fd.get(), chunk, sizeof(chunk));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            OPENSSL_cleanse(chunk, sizeof(chunk));
            wipe(content);
            throw ConfigError(what + ": cannot read file " + path);
        }
        if (got == 0) break;
        if (content.size() + static_cast<std::size_t>(got) > static_cast<std::size_t>(kMaxBytes)) {
            OPENSSL_cleanse(chunk, sizeof(chunk));
            wipe(content);
            throw ConfigError(what + ": " + path + " is larger than 1 MiB");
        }
        content.append(chunk, static_cast<std::size_t>(got));  // fits the reservation
    }
    OPENSSL_cleanse(chunk, sizeof(chunk));
    return content;
}

std::string read_secret_file(const std::string& path, const std::string& setting) {
    std::string value = read_whole_file(path, setting);
    if (!value.empty() && value.back() == '\n') value.pop_back();
    if (!value.empty() && value.back() == '\r') value.pop_back();
    return value;
}

bool is_setting_name(std::string_view name) {
    if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
    for (const char c : name) {
        const bool ok =
            (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        if (!ok) return false;
    }
    return true;
}

std::string_view trim_blanks(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
        text.remove_suffix(1);
    }
    return text;
}

}  // namespace

SecretSetting::~SecretSetting() {
    wipe(value);
}

void wipe(std::string& text) {
    if (!text.empty()) OPENSSL_cleanse(text.data(), text.size());
    text.clear();
}

std::map<std::string, std::string, std::less<>> parse_settings_file(std::string_view text,
                                                                    std::string_view path) {
    std::map<std::string, std::string, std::less<>> values;
    std::size_t line_number = 0;
    while (!text.empty()) {
        ++line_number;
        const std::size_t end = text.find('\n');
        std::string_view line = trim_blanks(text.substr(0, end));
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        if (line.empty() || line.front() == '#' || line.front() == ';') continue;
        const std::string where = std::string(path) + " line " + std::to_string(line_number);
        if (line.rfind("export ", 0) == 0) line = trim_blanks(line.substr(7));
        const std::size_t equals = line.find('=');
        if (equals == std::string_view::npos) {
            throw ConfigError(where + ": expected NAME=value");
        }
        const std::string_view name = trim_blanks(line.substr(0, equals));
        std::string_view value = trim_blanks(line.substr(equals + 1));
        if (!is_setting_name(name))
            throw ConfigError(where + ": \"" + std::string(name) + "\" is not a setting name");
        if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
            value.back() == value.front()) {
            value = value.substr(1, value.size() - 2);
        } else if (!value.empty() && (value.front() == '"' || value.front() == '\'')) {
            throw ConfigError(where + ": unterminated quote");
        }
        values[std::string(name)] = std::string(value);
    }
    return values;
}

Settings::~Settings() {
    for (auto& [name, value] : file_values_) wipe(value);
}

Settings::Settings(int argc, char** argv, std::vector<SettingSpec> specs)
    : specs_(std::move(specs)) {
    specs_.push_back({"config-file", std::string(kConfigFileEnv), "",
                      "file of NAME=value settings (the environment's names), re-read on "
                      "SIGHUP; its values override the environment"});
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            help_requested_ = true;
            continue;
        }
        if (arg.substr(0, 2) != "--") throw ConfigError("unexpected argument: " + std::string(arg));
        arg.remove_prefix(2);
        std::string name;
        std::string value;
        if (auto eq = arg.find('='); eq != std::string_view::npos) {
            name = arg.substr(0, eq);
            value = arg.substr(eq + 1);
        } else {
            name = arg;
            if (i + 1 >= argc) throw ConfigError("--" + name + " needs a value");
            value = argv[++i];
        }
        std::string_view base = name;
        if (ends_with(base, kFileSuffix)) base.remove_suffix(kFileSuffix.size());
        bool known = false;
        for (const auto& s : specs_) {
            known = known || s.flag == name || (s.from_file && s.flag == base);
        }
        if (!known) throw ConfigError("unknown option --" + name + " (see --help)");
        flags_[name] = value;
    }
    if (auto it = flags_.find("config-file"); it != flags_.end()) {
        config_file_ = it->second;
    } else if (auto path = env_value(std::string(kConfigFileEnv))) {
        config_file_ = *path;
    }
    if (!config_file_.empty()) {
        std::string text = read_whole_file(config_file_, std::string(kConfigFileEnv));
        try {
            file_values_ = parse_settings_file(text, config_file_);
        } catch (...) {
            wipe(text);
            throw;
        }
        wipe(text);
    }
}

std::optional<std::string> Settings::lookup(const std::string& name) const {
    if (name.empty()) return std::nullopt;
    if (auto it = file_values_.find(name); it != file_values_.end()) return it->second;
    return env_value(name);
}

std::optional<std::string> Settings::file_path(const SettingSpec& s) const {
    if (auto it = flags_.find(s.flag + std::string(kFileSuffix)); it != flags_.end()) {
        return it->second;
    }
    if (!s.env.empty()) return lookup(s.env + "_FILE");
    return std::nullopt;
}

const SettingSpec& Settings::spec(std::string_view flag) const {
    for (const auto& s : specs_) {
        if (s.flag == flag) return s;
    }
    throw std::logic_error("setting not declared: " + std::string(flag));
}

std::string Settings::usage(std::string_view program, std::string_view summary) const {
    std::string out;
    out.append("Usage: ").append(program).append(" [--option value]...\n");
    out.append(summary).append("\n\nEach option may also be set by its environment variable; ");
    out.append("the option wins.\n\n");
    for (const auto& s : specs_) {
        std::string left = "  --" + s.flag;
        if (!s.env.empty()) left += " (" + s.env + ")";
        out.append(left);
        out.append(left.size() < 48 ? 48 - left.size() : 1, ' ');
        out.append(s.help);
        if (!s.default_text.empty()) out.append(" [default: ").append(s.default_text).append("]");
        out.push_back('\n');
    }
    return out;
}

std::optional<std::string> Settings::raw(std::string_view flag) const {
    if (auto it = flags_.find(flag); it != flags_.end()) return it->second;
    return lookup(spec(flag).env);
}

std::string Settings::text(std::string_view flag, std::string_view fallback) const {
    auto value = raw(flag);
    return value ? *value : std::string(fallback);
}

std::uint64_t Settings::number(std::string_view flag, std::uint64_t fallback, std::uint64_t min,
                               std::uint64_t max) const {
    auto value = raw(flag);
    if (!value) return fallback;
    const SettingSpec& s = spec(flag);
    std::string name = s.env.empty() ? "--" + s.flag : s.env;
    std::uint64_t parsed = 0;
    const char* first = value->data();
    const char* last = first + value->size();
    auto [end, ec] = std::from_chars(first, last, parsed);
    if (value->empty() || ec != std::errc() || end != last) {
        throw ConfigError(name + " must be a whole number, got \"" + *value + "\"");
    }
    if (parsed < min || parsed > max) {
        throw ConfigError(name + " must be between " + std::to_string(min) + " and " +
                          std::to_string(max) + ", got " + *value);
    }
    return parsed;
}

std::string Settings::secret(std::string_view flag) const {
    const SettingSpec& s = spec(flag);
    std::string name = s.env.empty() ? "--" + s.flag : s.env;
    std::optional<std::string> inline_value = raw(flag);
    std::optional<std::string> path = file_path(s);
    if (inline_value && path) {
        throw ConfigError(name + " and " + name + "_FILE are both set; keep one");
    }
    if (path) return read_secret_file(*path, name + "_FILE");
    // Moved, not copied: a copy would leave the plaintext behind in a freed buffer.
    return inline_value ? std::move(*inline_value) : std::string();
}

SecretSetting Settings::take_secret(std::string_view flag) const {
    const SettingSpec& s = spec(flag);
    const bool in_flags = flags_.find(flag) != flags_.end();
    const bool in_file = !s.env.empty() && file_values_.find(s.env) != file_values_.end();
    char* from_environment = s.env.empty() ? nullptr : std::getenv(s.env.c_str());
    std::string value = secret(flag);  // throws when both the value and a file are given
    SecretOrigin origin = SecretOrigin::unset;
    if (file_path(s)) {
        origin = SecretOrigin::file;
    } else if (in_flags || in_file) {
        origin = SecretOrigin::inline_value;
    } else if (from_environment != nullptr) {
        origin = SecretOrigin::inline_value;
        // The environment block stays readable (/proc/<pid>/environ, a core) for the
        // process's life unless overwritten; unsetenv alone only drops the pointer.
        OPENSSL_cleanse(from_environment, std::strlen(from_environment));
        ::unsetenv(s.env.c_str());
        consumed_secrets().insert(s.env);
    } else if (!s.env.empty() && consumed_secrets().count(s.env) != 0) {
        origin = SecretOrigin::consumed;
    }
    return SecretSetting(std::move(value), origin);
}

std::vector<std::string> split_list(std::string_view text) {
    std::vector<std::string> items;
    std::size_t start = 0;
    while (start <= text.size()) {
        std::size_t end = text.find_first_of(", ", start);
        if (end == std::string_view::npos) end = text.size();
        if (end > start) items.emplace_back(text.substr(start, end - start));
        start = end + 1;
    }
    return items;
}

SettingSpec log_level_spec() {
    return {"log-level", "SHOPCAST_LOG_LEVEL", "info",
            "least severe lines logged: error, warning, info or debug"};
}

LogLevel log_level_setting(const Settings& settings) {
    const std::string name = settings.text("log-level", "info");
    if (std::optional<LogLevel> level = parse_log_level(name)) return *level;
    throw ConfigError("SHOPCAST_LOG_LEVEL must be error, warning, info or debug");
}

}  // namespace shopcast
