#include "common/config.h"

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>

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

std::string read_secret_file(const std::string& path, const std::string& setting) {
    std::ifstream file(path, std::ios::binary);
    if (!file) throw ConfigError(setting + ": cannot read file " + path);
    std::ostringstream content;
    content << file.rdbuf();
    std::string value = content.str();
    if (!value.empty() && value.back() == '\n') value.pop_back();
    if (!value.empty() && value.back() == '\r') value.pop_back();
    return value;
}

}  // namespace

Settings::Settings(int argc, char** argv, std::vector<SettingSpec> specs)
    : specs_(std::move(specs)) {
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
    return env_value(spec(flag).env);
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
    std::optional<std::string> path;
    if (auto it = flags_.find(s.flag + std::string(kFileSuffix)); it != flags_.end()) {
        path = it->second;
    } else if (!s.env.empty()) {
        path = env_value(s.env + "_FILE");
    }
    if (inline_value && path) {
        throw ConfigError(name + " and " + name + "_FILE are both set; keep one");
    }
    if (path) return read_secret_file(*path, name + "_FILE");
    return inline_value.value_or(std::string());
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
