// shopcastd's listener settings: listener lists, TLS files, trusted proxies and the admission defaults.
#include "daemon/daemon_config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace shopcast {
namespace {

using Kind = ListenAddress::Kind;

DaemonConfig load(std::vector<std::string> args) {
    args.insert(args.begin(), "shopcastd");
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    Settings settings(static_cast<int>(args.size()), argv.data(), daemon_setting_specs());
    return load_daemon_config(settings);
}

std::string error_of(const std::vector<std::string>& args) {
    try {
        load(args);
    } catch (const ConfigError& error) {
        return error.what();
    }
    return "";
}

class DaemonConfigTest : public ::testing::Test {
  protected:
    void SetUp() override {
        // The test reads its flags only; a developer's environment must not change the outcome.
        for (const char* name : {"SHOPCAST_WS_LISTEN", "SHOPCAST_TLS_CERT_FILE",
                                 "SHOPCAST_TLS_KEY_FILE", "SHOPCAST_TRUSTED_PROXIES",
                                 "SHOPCAST_MAX_CONNECTIONS", "SHOPCAST_MAX_CONNECTIONS_PER_IP"}) {
            ::unsetenv(name);
        }
    }
};

TEST_F(DaemonConfigTest, Defaults) {
    const DaemonConfig config = load({});
    ASSERT_EQ(config.ws_listeners.size(), 1u);
    EXPECT_EQ(config.ws_listeners[0].kind, Kind::unix_socket);
    EXPECT_EQ(config.ws_listeners[0].unix_path, "/run/shopcast/ws.sock");
    EXPECT_EQ(config.limits.max_connections, 10000u);
    // Off: thousands of mobile users share one carrier-grade NAT address.
    EXPECT_EQ(config.limits.max_connections_per_ip, 0u);
    EXPECT_EQ(HubLimits{}.max_connections_per_ip, 0u);
    EXPECT_TRUE(config.trusted_proxies.empty());
    EXPECT_TRUE(config.tls_cert_file.empty());
}

TEST(ParseListenList, AcceptsEveryKindInOrder) {
    const auto listeners = parse_listen_list(
        "unix:/run/shopcast/ws.sock, 127.0.0.1:8090,tls:0.0.0.0:443,[::1]:9000,"
        "tls:[2001:db8::5]:8443");
    ASSERT_EQ(listeners.size(), 5u);
    EXPECT_EQ(listeners[0].kind, Kind::unix_socket);
    EXPECT_EQ(listeners[1].kind, Kind::tcp);
    EXPECT_EQ(listeners[1].host, "127.0.0.1");
    EXPECT_EQ(listeners[1].port, 8090);
    EXPECT_FALSE(listeners[1].ipv6);
    EXPECT_EQ(listeners[2].kind, Kind::tls);
    EXPECT_EQ(listeners[2].host, "0.0.0.0");
    EXPECT_EQ(listeners[2].port, 443);
    EXPECT_EQ(listeners[3].kind, Kind::tcp);
    EXPECT_EQ(listeners[3].host, "::1");
    EXPECT_TRUE(listeners[3].ipv6);
    EXPECT_EQ(listeners[4].kind, Kind::tls);
    EXPECT_EQ(listeners[4].host, "2001:db8::5");
    EXPECT_EQ(listeners[4].port, 8443);
    EXPECT_EQ(listeners[4].describe(), "tls:[2001:db8::5]:8443");
    EXPECT_EQ(listeners[1].describe(), "127.0.0.1:8090");
}

TEST(ParseListenList, RefusesBadEntries) {
    for (const char* bad : {"",
                            ",",
                            "unix:",
                            "unix:relative.sock",
                            "127.0.0.1",
                            "127.0.0.1:",
                            "127.0.0.1:0",
                            "127.0.0.1:65536",
                            "127.0.0.1:80x",
                            "localhost:80",
                            "::1:80",
                            "[::1]80",
                            "[nope]:80",
                            "[127.0.0.1]:80",
                            "tls:",
                            "tls:80",
                            "ssl:127.0.0.1:443",
                            "ws://127.0.0.1:80",
                            "127.0.0.1:80,127.0.0.1:80",
                            "127.0.0.1:80,tls:127.0.0.1:80"}) {
        EXPECT_THROW(parse_listen_list(bad), ConfigError) << bad;
    }
}

TEST_F(DaemonConfigTest, TlsListenerNeedsBothFilesAndFilesNeedATlsListener) {
    EXPECT_NE(error_of({"--ws-listen", "tls:127.0.0.1:8443"}).find("SHOPCAST_TLS_CERT_FILE"),
              std::string::npos);
    EXPECT_NE(error_of({"--ws-listen", "tls:127.0.0.1:8443", "--tls-cert-file", "/c.pem"})
                  .find("SHOPCAST_TLS_KEY_FILE"),
              std::string::npos);
    EXPECT_NE(error_of({"--ws-listen", "127.0.0.1:8080", "--tls-cert-file", "/c.pem",
                        "--tls-key-file", "/k.pem"})
                  .find("no tls: listener"),
              std::string::npos);
    const DaemonConfig config = load({"--ws-listen", "unix:/tmp/ws.sock,tls:127.0.0.1:8443",
                                      "--tls-cert-file", "/c.pem", "--tls-key-file", "/k.pem"});
    EXPECT_EQ(config.ws_listeners.size(), 2u);
    EXPECT_EQ(config.tls_cert_file, "/c.pem");
    EXPECT_EQ(config.tls_key_file, "/k.pem");
}

TEST_F(DaemonConfigTest, TrustedProxiesAndPerAddressLimitAreRead) {
    const DaemonConfig config =
        load({"--trusted-proxies", "10.0.0.0/8,::1", "--max-connections-per-ip", "500"});
    EXPECT_EQ(config.trusted_proxies.size(), 2u);
    EXPECT_EQ(config.limits.max_connections_per_ip, 500u);
    EXPECT_NE(error_of({"--trusted-proxies", "proxy.local"}).find("SHOPCAST_TRUSTED_PROXIES"),
              std::string::npos);
}

}  // namespace
}  // namespace shopcast
