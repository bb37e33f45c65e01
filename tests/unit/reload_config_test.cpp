// What a reload (SIGHUP) reads: the settings file, secrets wiped from the environment, and the
// daemon's and shopcast-fcgi's reloaded configurations (a bad value refused, the old one kept).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/secret.h"
#include "daemon/daemon_config.h"
#include "fcgi/fcgi_config.h"

namespace shopcast {
namespace {

const std::string kSecretA(40, 'a');
const std::string kSecretB(40, 'b');

// A file under the test's temporary directory, removed at the end.
class TempFile {
  public:
    explicit TempFile(const std::string& content) {
        path_ = ::testing::TempDir() + "shopcast-reload-XXXXXX";
        const int fd = ::mkstemp(path_.data());
        ::close(fd);
        write(content);
    }
    ~TempFile() { ::unlink(path_.c_str()); }
    void write(const std::string& content) const { std::ofstream(path_) << content; }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

// argv for a Settings, kept alive with it.
struct Argv {
    explicit Argv(std::vector<std::string> args) : storage(std::move(args)) {
        storage.insert(storage.begin(), "shopcast-qa");
        for (std::string& arg : storage) pointers.push_back(arg.data());
        pointers.push_back(nullptr);
    }
    int argc() const { return static_cast<int>(storage.size()); }
    char** argv() { return pointers.data(); }
    std::vector<std::string> storage;
    std::vector<char*> pointers;
};

class ReloadTest : public testing::Test {
  protected:
    void SetUp() override { clear_env(); }
    void TearDown() override { clear_env(); }
    static void clear_env() {
        for (const char* name :
             {"SHOPCAST_CONFIG_FILE", "SHOPCAST_ALLOWED_ORIGINS", "SHOPCAST_MAX_CONNECTIONS",
              "SHOPCAST_HISTORY", "BOT_TOKEN", "BOT_TOKEN_FILE", "INTERNAL_SECRET",
              "INTERNAL_SECRET_FILE", "INTERNAL_SECRET_PREVIOUS", "INTERNAL_SECRET_PREVIOUS_FILE",
              "SHOPCAST_REQUIRE_USER_FOR", "SHOPCAST_AUTH_MAX_AGE", "STATE_DIRECTORY"}) {
            ::unsetenv(name);
        }
    }
    static DaemonConfig load_daemon(Argv& args) {
        const Settings settings(args.argc(), args.argv(), daemon_setting_specs());
        return load_daemon_config(settings);
    }
    static DaemonConfig reload_daemon(Argv& args, const DaemonConfig& running) {
        const Settings settings(args.argc(), args.argv(), daemon_setting_specs());
        return reload_daemon_config(settings, running);
    }
};

TEST(SettingsFile, ReadsEnvironmentFileLines) {
    const auto values = parse_settings_file(
        "# comment\n"
        "; also a comment\n"
        "\n"
        "SHOPCAST_HISTORY=500\n"
        "  export SHOPCAST_ALLOWED_ORIGINS = \"https://a.example, https://b.example\"  \n"
        "SHOPCAST_BOT_ID='42'\r\n"
        "SHOPCAST_EMPTY=\n"
        "SHOPCAST_OTHER_BINARY=kept=as-is\n",
        "test.env");
    EXPECT_EQ(values.at("SHOPCAST_HISTORY"), "500");
    EXPECT_EQ(values.at("SHOPCAST_ALLOWED_ORIGINS"), "https://a.example, https://b.example");
    EXPECT_EQ(values.at("SHOPCAST_BOT_ID"), "42");
    EXPECT_EQ(values.at("SHOPCAST_EMPTY"), "");
    EXPECT_EQ(values.at("SHOPCAST_OTHER_BINARY"), "kept=as-is");
    EXPECT_EQ(values.size(), 5u);
}

TEST(SettingsFile, NamesTheLineOfAMistake) {
    for (const auto& [text, message] : std::vector<std::pair<std::string, std::string>>{
             {"A=1\nno equals sign\n", "test.env line 2: expected NAME=value"},
             {"\n\nBAD NAME=1\n", "test.env line 3: \"BAD NAME\" is not a setting name"},
             {"A=\"unterminated\n", "test.env line 1: unterminated quote"},
             {"=value\n", "test.env line 1: \"\" is not a setting name"},
         }) {
        try {
            parse_settings_file(text, "test.env");
            ADD_FAILURE() << "accepted: " << text;
        } catch (const ConfigError& error) {
            EXPECT_EQ(std::string(error.what()), message);
        }
    }
}

// The file beats the environment, a flag beats both; each Settings reads the file anew.
TEST_F(ReloadTest, SettingsFileOverridesTheEnvironment) {
    TempFile file("SHOPCAST_HISTORY=500\n");
    ::setenv("SHOPCAST_HISTORY", "700", 1);
    ::setenv("SHOPCAST_MAX_CONNECTIONS", "33", 1);
    ::setenv("SHOPCAST_CONFIG_FILE", file.path().c_str(), 1);
    Argv none({});
    DaemonConfig config = load_daemon(none);
    EXPECT_EQ(config.history_events, 500u);
    EXPECT_EQ(config.limits.max_connections, 33u) << "not in the file: the environment's";
    Argv flag({"--history", "900"});
    EXPECT_EQ(load_daemon(flag).history_events, 900u);

    file.write("SHOPCAST_HISTORY=600\n");
    EXPECT_EQ(load_daemon(none).history_events, 600u);
    ::unsetenv("SHOPCAST_CONFIG_FILE");
    Argv by_flag({"--config-file", file.path()});
    EXPECT_EQ(load_daemon(by_flag).history_events, 600u);
}

TEST_F(ReloadTest, MissingSettingsFileIsAnError) {
    ::setenv("SHOPCAST_CONFIG_FILE", "/nonexistent/shopcast.env", 1);
    Argv none({});
    EXPECT_THROW(load_daemon(none), ConfigError);
}

// A secret given inline in the environment is wiped from it once read.
TEST_F(ReloadTest, InlineSecretIsWipedFromTheEnvironment) {
    ::setenv("INTERNAL_SECRET", kSecretA.c_str(), 1);
    char* block = std::getenv("INTERNAL_SECRET");
    ASSERT_NE(block, nullptr);
    const std::vector<SettingSpec> specs = {{"secret", "INTERNAL_SECRET", "", "the secret", true}};
    Argv none({});
    {
        const Settings settings(none.argc(), none.argv(), specs);
        const SecretSetting taken = settings.take_secret("secret");
        EXPECT_EQ(taken.value, kSecretA);
        EXPECT_EQ(taken.origin, SecretOrigin::inline_value);
    }
    EXPECT_EQ(std::getenv("INTERNAL_SECRET"), nullptr);
    EXPECT_EQ(std::string(block, kSecretA.size()).find('a'), std::string::npos)
        << "the environment's copy is overwritten, not just unset";
    const Settings again(none.argc(), none.argv(), specs);
    const SecretSetting later = again.take_secret("secret");
    EXPECT_EQ(later.value, "");
    EXPECT_EQ(later.origin, SecretOrigin::consumed);
}

TEST_F(ReloadTest, BadValueIsRefusedAndTheRunningConfigurationStays) {
    TempFile file("SHOPCAST_ALLOWED_ORIGINS=https://a.example\nSHOPCAST_MAX_CONNECTIONS=50\n");
    ::setenv("SHOPCAST_CONFIG_FILE", file.path().c_str(), 1);
    Argv none({});
    const DaemonConfig running = load_daemon(none);

    file.write("SHOPCAST_ALLOWED_ORIGINS=https://a.example/path\nSHOPCAST_MAX_CONNECTIONS=60\n");
    EXPECT_THROW(reload_daemon(none, running), ConfigError);
    file.write("SHOPCAST_ALLOWED_ORIGINS=https://b.example\nSHOPCAST_MAX_CONNECTIONS=lots\n");
    EXPECT_THROW(reload_daemon(none, running), ConfigError);
    EXPECT_EQ(running.allowed_origins, std::vector<std::string>{"https://a.example"});
    EXPECT_EQ(running.limits.max_connections, 50u);

    file.write(
        "SHOPCAST_ALLOWED_ORIGINS=https://b.example,https://c.example\n"
        "SHOPCAST_MAX_CONNECTIONS=60\nSHOPCAST_HISTORY=20\n");
    const DaemonConfig loaded = reload_daemon(none, running);
    EXPECT_EQ(loaded.allowed_origins,
              (std::vector<std::string>{"https://b.example", "https://c.example"}));
    EXPECT_EQ(loaded.limits.max_connections, 60u);
    EXPECT_EQ(daemon_settings_needing_restart(running, loaded), "SHOPCAST_HISTORY");
}

TEST_F(ReloadTest, BotTokenFileIsReReadAndAnInlineTokenKept) {
    TempFile token("111:first-token\n");
    ::setenv("BOT_TOKEN_FILE", token.path().c_str(), 1);
    Argv none({});
    const DaemonConfig running = load_daemon(none);
    ASSERT_TRUE(running.auth.webapp_key.has_value());
    EXPECT_EQ(*running.auth.webapp_key, derive_webapp_key("111:first-token"));

    token.write("222:second-token\n");
    const DaemonConfig rotated = reload_daemon(none, running);
    EXPECT_EQ(*rotated.auth.webapp_key, derive_webapp_key("222:second-token"));

    ::unsetenv("BOT_TOKEN_FILE");
    ::setenv("BOT_TOKEN", "333:inline-token", 1);
    const DaemonConfig inline_start = load_daemon(none);
    EXPECT_EQ(std::getenv("BOT_TOKEN"), nullptr);
    const DaemonConfig reloaded = reload_daemon(none, inline_start);
    ASSERT_TRUE(reloaded.auth.webapp_key.has_value()) << "the key derived at start stays";
    EXPECT_EQ(*reloaded.auth.webapp_key, derive_webapp_key("333:inline-token"));
}

TEST_F(ReloadTest, FcgiSecretRotationThroughFiles) {
    TempFile current(kSecretA + "\n");
    TempFile previous("");
    ::setenv("INTERNAL_SECRET_FILE", current.path().c_str(), 1);
    Argv none({});
    fcgi::FcgiConfig running = fcgi::parse_command_line(none.argc(), none.argv()).config;
    EXPECT_TRUE(running.secret->matches(kSecretA));

    // The new secret in the file, the old one as previous: both pass during the rotation.
    current.write(kSecretB + "\n");
    previous.write(kSecretA + "\n");
    ::setenv("INTERNAL_SECRET_PREVIOUS_FILE", previous.path().c_str(), 1);
    fcgi::FcgiConfig rotating = fcgi::reload_config(none.argc(), none.argv(), running);
    EXPECT_TRUE(rotating.secret->matches(kSecretB));
    EXPECT_TRUE(rotating.secret->matches(kSecretA));

    // The previous one dropped: only the new one passes.
    ::unsetenv("INTERNAL_SECRET_PREVIOUS_FILE");
    fcgi::FcgiConfig rotated = fcgi::reload_config(none.argc(), none.argv(), rotating);
    EXPECT_TRUE(rotated.secret->matches(kSecretB));
    EXPECT_FALSE(rotated.secret->matches(kSecretA));

    // Too short: refused, and what runs is untouched.
    current.write("short\n");
    EXPECT_THROW(fcgi::reload_config(none.argc(), none.argv(), rotated), ConfigError);
    EXPECT_TRUE(rotated.secret->matches(kSecretB));
}

TEST_F(ReloadTest, FcgiKeepsAnInlineSecretAndReloadsTheRules) {
    TempFile file("SHOPCAST_REQUIRE_USER_FOR=order_status\nSHOPCAST_FCGI_THREADS=4\n");
    ::setenv("SHOPCAST_CONFIG_FILE", file.path().c_str(), 1);
    ::setenv("INTERNAL_SECRET", kSecretA.c_str(), 1);
    Argv none({});
    const fcgi::FcgiConfig running = fcgi::parse_command_line(none.argc(), none.argv()).config;
    EXPECT_EQ(std::getenv("INTERNAL_SECRET"), nullptr);
    EXPECT_EQ(running.policy.require_user_for, std::vector<std::string>{"order_status"});

    file.write("SHOPCAST_REQUIRE_USER_FOR=order_status,no_such_type\n");
    EXPECT_THROW(fcgi::reload_config(none.argc(), none.argv(), running), ConfigError);

    file.write("SHOPCAST_REQUIRE_USER_FOR=\nSHOPCAST_FCGI_THREADS=8\n");
    const fcgi::FcgiConfig loaded = fcgi::reload_config(none.argc(), none.argv(), running);
    EXPECT_TRUE(loaded.policy.require_user_for.empty());
    EXPECT_TRUE(loaded.secret->matches(kSecretA)) << "the secret read at start stays";
    EXPECT_EQ(fcgi::settings_needing_restart(running, loaded), "SHOPCAST_FCGI_THREADS");
}

TEST(SecretVerifier, WithSecretsReplacesOnlyWhatIsGiven) {
    const SecretVerifier start(kSecretA, "");
    const SecretVerifier kept = start.with_secrets(std::nullopt, std::nullopt);
    EXPECT_TRUE(kept.matches(kSecretA));
    const SecretVerifier rotating = start.with_secrets(kSecretB, kSecretA);
    EXPECT_TRUE(rotating.matches(kSecretA));
    EXPECT_TRUE(rotating.matches(kSecretB));
    EXPECT_FALSE(rotating.matches(std::string(40, 'c')));
    const SecretVerifier done = rotating.with_secrets(std::nullopt, "");
    EXPECT_FALSE(done.matches(kSecretA));
    EXPECT_TRUE(done.matches(kSecretB));
    EXPECT_THROW(start.with_secrets("short", std::nullopt), ConfigError);
}

}  // namespace
}  // namespace shopcast
