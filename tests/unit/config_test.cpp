// Settings: environment overridden by flags, --help, numbers, secrets from files, lists.
#include "common/config.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shopcast {
namespace {

const char* const kHistoryEnv = "SHOPCAST_QA_HISTORY";
const char* const kListenEnv = "SHOPCAST_QA_LISTEN";
const char* const kSecretEnv = "SHOPCAST_QA_SECRET";
const char* const kSecretFileEnv = "SHOPCAST_QA_SECRET_FILE";
const char* const kOriginsEnv = "SHOPCAST_QA_ORIGINS";

std::vector<SettingSpec> specs() {
    return {
        {"history", kHistoryEnv, "10000", "events kept for resume"},
        {"listen", kListenEnv, "unix:/run/qa.sock", "where to listen"},
        {"secret", kSecretEnv, "", "shared publish secret", true},
        {"allowed-origins", kOriginsEnv, "", "comma-separated origins"},
    };
}

// Command-line arguments after the program name; argv() points into this object, so it
// must outlive the Settings built from it (and not be moved meanwhile).
class Args {
  public:
    Args(std::initializer_list<std::string> args) : Args(std::vector<std::string>(args)) {}
    explicit Args(const std::vector<std::string>& args) : storage_{"shopcast-qa"} {
        storage_.insert(storage_.end(), args.begin(), args.end());
    }
    int argc() const { return static_cast<int>(storage_.size()); }
    char** argv() {
        pointers_.clear();
        for (auto& arg : storage_) pointers_.push_back(arg.data());
        pointers_.push_back(nullptr);
        return pointers_.data();
    }

  private:
    std::vector<std::string> storage_;
    std::vector<char*> pointers_;
};

// A file that is removed when the test ends.
class TempFile {
  public:
    explicit TempFile(std::string_view content) {
        std::string pattern = testing::TempDir() + "shopcast-qa-XXXXXX";
        const int fd = ::mkstemp(pattern.data());
        EXPECT_GE(fd, 0);
        if (fd >= 0) ::close(fd);
        path_ = pattern;
        std::ofstream(path_, std::ios::binary) << content;
    }
    ~TempFile() { std::remove(path_.c_str()); }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

class SettingsTest : public testing::Test {
  protected:
    void SetUp() override { clear_env(); }
    void TearDown() override { clear_env(); }

    static void clear_env() {
        for (const char* name :
             {kHistoryEnv, kListenEnv, kSecretEnv, kSecretFileEnv, kOriginsEnv}) {
            ::unsetenv(name);
        }
    }

    // Builds Settings from `args`; the Args must outlive the result.
    static std::unique_ptr<Settings> parse(Args& args) {
        return std::make_unique<Settings>(args.argc(), args.argv(), specs());
    }
};

TEST_F(SettingsTest, NothingSetGivesNothing) {
    Args args{};
    const auto settings = parse(args);
    EXPECT_FALSE(settings->help_requested());
    EXPECT_EQ(settings->raw("listen"), std::nullopt);
    EXPECT_EQ(settings->text("listen", "fallback"), "fallback");
    EXPECT_EQ(settings->number("history", 10000, 1, 1000000), 10000u);
    EXPECT_EQ(settings->secret("secret"), "");
}

TEST_F(SettingsTest, FlagOverridesEnvironment) {
    struct Row {
        std::string name;
        std::optional<std::string> env;
        std::vector<std::string> argv;
        std::optional<std::string> expected;
    };
    const std::vector<Row> table = {
        {"env_only", "unix:/env.sock", {}, "unix:/env.sock"},
        {"flag_only", std::nullopt, {"--listen", "127.0.0.1:9000"}, "127.0.0.1:9000"},
        {"flag_equals", std::nullopt, {"--listen=127.0.0.1:9001"}, "127.0.0.1:9001"},
        {"flag_beats_env", "unix:/env.sock", {"--listen", "unix:/flag.sock"}, "unix:/flag.sock"},
        {"flag_equals_beats_env", "unix:/env.sock", {"--listen=unix:/f.sock"}, "unix:/f.sock"},
        {"value_with_equals", std::nullopt, {"--listen=a=b"}, "a=b"},
        {"value_with_space", std::nullopt, {"--listen", "a b"}, "a b"},
        {"other_flag_leaves_env", "unix:/env.sock", {"--history", "5"}, "unix:/env.sock"},
    };
    for (const auto& row : table) {
        SCOPED_TRACE(row.name);
        clear_env();
        if (row.env) ::setenv(kListenEnv, row.env->c_str(), 1);
        Args args(row.argv);
        const auto settings = parse(args);
        EXPECT_EQ(settings->raw("listen"), row.expected);
        EXPECT_EQ(settings->text("listen", "fallback"), row.expected.value_or("fallback"));
    }
}

TEST_F(SettingsTest, SeveralFlagsInBothForms) {
    Args args{"--history=42", "--listen", "unix:/x.sock", "--allowed-origins=https://a.example"};
    const auto settings = parse(args);
    EXPECT_EQ(settings->number("history", 1, 1, 100), 42u);
    EXPECT_EQ(settings->text("listen", ""), "unix:/x.sock");
    EXPECT_EQ(settings->text("allowed-origins", ""), "https://a.example");
}

TEST_F(SettingsTest, HelpIsRequested) {
    for (Args args : {Args{"--help"}, Args{"--listen", "unix:/x", "--help"}}) {
        EXPECT_TRUE(parse(args)->help_requested());
    }
}

TEST_F(SettingsTest, UsageListsEverySetting) {
    Args args{"--help"};
    const auto settings = parse(args);
    const std::string usage = settings->usage("shopcast-qa", "Does QA things.");
    for (std::string_view expected :
         {"shopcast-qa", "Does QA things.", "--history", "SHOPCAST_QA_HISTORY", "10000",
          "events kept for resume", "--listen", "SHOPCAST_QA_LISTEN", "unix:/run/qa.sock",
          "--secret", "SHOPCAST_QA_SECRET", "--allowed-origins"}) {
        EXPECT_NE(usage.find(expected), std::string::npos) << expected << " missing from\n"
                                                           << usage;
    }
}

TEST_F(SettingsTest, BadCommandLinesThrow) {
    struct Row {
        std::string name;
        Args args;
        std::string mention;  // text the error must contain
    };
    std::vector<Row> table;
    table.push_back({"unknown_flag", Args{"--bogus", "1"}, "bogus"});
    table.push_back({"unknown_flag_equals", Args{"--bogus=1"}, "bogus"});
    table.push_back({"unknown_after_known", Args{"--listen", "x", "--nope"}, "nope"});
    table.push_back({"missing_value_at_end", Args{"--listen"}, "listen"});
    table.push_back({"missing_value_after_known", Args{"--history", "1", "--listen"}, "listen"});
    table.push_back({"env_name_is_not_a_flag", Args{"--SHOPCAST_QA_LISTEN=x"}, ""});
    table.push_back({"positional_argument", Args{"stray"}, "stray"});
    for (auto& row : table) {
        SCOPED_TRACE(row.name);
        try {
            parse(row.args);
            ADD_FAILURE() << "no ConfigError";
        } catch (const ConfigError& error) {
            EXPECT_NE(std::string(error.what()).find(row.mention), std::string::npos)
                << error.what();
        }
    }
}

// Both a flag value and an environment value go through the same number rules.
TEST_F(SettingsTest, NumbersWithinRange) {
    struct Row {
        std::string value;
        std::uint64_t min;
        std::uint64_t max;
        std::optional<std::uint64_t> expected;  // nullopt: ConfigError
    };
    constexpr auto kMax64 = std::numeric_limits<std::uint64_t>::max();
    const std::vector<Row> table = {
        {"5", 1, 10, 5},
        {"1", 1, 10, 1},
        {"10", 1, 10, 10},
        {"0", 0, 10, 0},
        {"67108864", 1, kMax64, 67108864},
        {"18446744073709551615", 0, kMax64, kMax64},
        {"0", 1, 10, std::nullopt},
        {"11", 1, 10, std::nullopt},
        {"-1", 0, kMax64, std::nullopt},
        {"18446744073709551616", 0, kMax64, std::nullopt},
        {"99999999999999999999999", 0, kMax64, std::nullopt},
        {"abc", 0, 100, std::nullopt},
        {"10x", 0, 100, std::nullopt},
        {"10 ", 0, 100, std::nullopt},
        {"1.5", 0, 100, std::nullopt},
        {"1e3", 0, 10000, std::nullopt},
        {"0x10", 0, 100, std::nullopt},
        {"", 0, 100, std::nullopt},
        {"+-5", 0, 100, std::nullopt},
    };
    for (const auto& row : table) {
        for (const bool from_env : {false, true}) {
            SCOPED_TRACE("value \"" + row.value + (from_env ? "\" from env" : "\" from flag"));
            clear_env();
            if (from_env) ::setenv(kHistoryEnv, row.value.c_str(), 1);
            Args env_args{};
            Args flag_args{"--history", row.value};
            const auto settings = parse(from_env ? env_args : flag_args);
            if (row.expected) {
                EXPECT_EQ(settings->number("history", 7, row.min, row.max), *row.expected);
                continue;
            }
            try {
                const auto value = settings->number("history", 7, row.min, row.max);
                ADD_FAILURE() << "accepted as " << value;
            } catch (const ConfigError& error) {
                const std::string message = error.what();
                EXPECT_TRUE(message.find("history") != std::string::npos ||
                            message.find(kHistoryEnv) != std::string::npos)
                    << "message does not name the setting: " << message;
            }
        }
    }
}

TEST_F(SettingsTest, SecretInline) {
    ::setenv(kSecretEnv, "inline-secret-value", 1);
    Args none{};
    EXPECT_EQ(parse(none)->secret("secret"), "inline-secret-value");
    Args flag{"--secret", "flag-secret-value"};
    EXPECT_EQ(parse(flag)->secret("secret"), "flag-secret-value");
}

TEST_F(SettingsTest, SecretFromFile) {
    struct Row {
        std::string name;
        std::string content;
        std::string expected;
    };
    const std::vector<Row> table = {
        {"trailing_newline", "file-secret-value\n", "file-secret-value"},
        {"no_newline", "file-secret-value", "file-secret-value"},
        {"inner_space_kept", "a b c\n", "a b c"},
    };
    for (const auto& row : table) {
        SCOPED_TRACE(row.name);
        const TempFile file(row.content);
        clear_env();
        ::setenv(kSecretFileEnv, file.path().c_str(), 1);
        Args from_env{};
        EXPECT_EQ(parse(from_env)->secret("secret"), row.expected);
        clear_env();
        Args from_flag{"--secret-file", file.path()};
        EXPECT_EQ(parse(from_flag)->secret("secret"), row.expected);
    }
}

TEST_F(SettingsTest, SecretFileMissingThrows) {
    const std::string path = testing::TempDir() + "shopcast-qa-does-not-exist";
    ::setenv(kSecretFileEnv, path.c_str(), 1);
    Args args{};
    const auto settings = parse(args);
    try {
        (void)settings->secret("secret");
        ADD_FAILURE() << "no ConfigError for a missing file";
    } catch (const ConfigError& error) {
        const std::string message = error.what();
        EXPECT_TRUE(message.find(path) != std::string::npos ||
                    message.find(kSecretFileEnv) != std::string::npos)
            << message;
    }
}

// Two sources for one secret in the same place is a configuration mistake: say so.
TEST_F(SettingsTest, SecretAndSecretFileBothSetThrows) {
    const TempFile file("from-the-file\n");
    ::setenv(kSecretEnv, "from-the-environment", 1);
    ::setenv(kSecretFileEnv, file.path().c_str(), 1);
    Args args{};
    const auto settings = parse(args);
    try {
        (void)settings->secret("secret");
        ADD_FAILURE() << "no ConfigError with both " << kSecretEnv << " and " << kSecretFileEnv;
    } catch (const ConfigError& error) {
        const std::string message = error.what();
        EXPECT_EQ(message.find("from-the-environment"), std::string::npos) << message;
        EXPECT_EQ(message.find("from-the-file"), std::string::npos) << message;
    }

    clear_env();
    Args both_flags{"--secret", "from-the-flag", "--secret-file", file.path()};
    EXPECT_THROW((void)parse(both_flags)->secret("secret"), ConfigError);
}

TEST(SplitList, Table) {
    const std::vector<std::pair<std::string, std::vector<std::string>>> table = {
        {"", {}},
        {"a", {"a"}},
        {"a, b,c", {"a", "b", "c"}},
        {" a ", {"a"}},
        {"a,,b", {"a", "b"}},
        {" , ,,", {}},
        {",a,", {"a"}},
        {"order_status,product_added", {"order_status", "product_added"}},
        {"https://a.example:8443, http://127.0.0.1:8080",
         {"https://a.example:8443", "http://127.0.0.1:8080"}},
    };
    for (const auto& [text, expected] : table) {
        EXPECT_EQ(split_list(text), expected) << '"' << text << '"';
    }
}

}  // namespace
}  // namespace shopcast
