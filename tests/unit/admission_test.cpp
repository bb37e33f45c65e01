// Admission: connection and per-address limits, address parsing, proxy trust, /64 grouping.
#include "daemon/core/admission.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/config.h"
#include "daemon/core/client_address.h"

namespace shopcast {
namespace {

TEST(AdmissionControl, RefusesBeyondTheConnectionLimit) {
    AdmissionControl admission(2, 0);
    admission.opened("10.0.0.1");
    EXPECT_EQ(admission.admit("10.0.0.2"), Admission::accepted);
    admission.opened("10.0.0.2");
    EXPECT_EQ(admission.admit("10.0.0.3"), Admission::server_full);
    admission.closed("10.0.0.1");
    EXPECT_EQ(admission.admit("10.0.0.3"), Admission::accepted);
    EXPECT_EQ(admission.open_count(), 1u);
}

TEST(AdmissionControl, ZeroPerAddressLimitAdmitsACrowdBehindOneAddress) {
    AdmissionControl admission(10000, 0);
    for (int i = 0; i < 9999; ++i) admission.opened("100.64.0.1");
    EXPECT_EQ(admission.admit("100.64.0.1"), Admission::accepted);
    admission.opened("100.64.0.1");
    EXPECT_EQ(admission.admit("100.64.0.1"), Admission::server_full);
}

TEST(AdmissionControl, PerAddressLimitCountsEachAddressAndFreesOnClose) {
    AdmissionControl admission(100, 2);
    admission.opened("10.0.0.1");
    admission.opened("10.0.0.1");
    EXPECT_EQ(admission.admit("10.0.0.1"), Admission::address_full);
    EXPECT_EQ(admission.admit("10.0.0.2"), Admission::accepted);
    EXPECT_EQ(admission.open_from("10.0.0.1"), 2u);
    admission.closed("10.0.0.1");
    EXPECT_EQ(admission.admit("10.0.0.1"), Admission::accepted);
    admission.closed("10.0.0.1");
    EXPECT_EQ(admission.open_from("10.0.0.1"), 0u);
}

TEST(AdmissionControl, ServerFullWinsOverAddressFull) {
    AdmissionControl admission(1, 1);
    admission.opened("10.0.0.1");
    EXPECT_EQ(admission.admit("10.0.0.1"), Admission::server_full);
}

TEST(AdmissionControl, Ipv6AddressesInOneSlash64ShareTheLimit) {
    AdmissionControl admission(100, 2);
    admission.opened("2001:db8:1:2::1");
    admission.opened("2001:db8:1:2:ffff:ffff:ffff:ffff");
    EXPECT_EQ(admission.admit("2001:db8:1:2::abcd"), Admission::address_full);
    EXPECT_EQ(admission.admit("2001:db8:1:3::1"), Admission::accepted);
}

TEST(AddressGroup, Ipv4IsItselfIpv6IsItsSlash64) {
    EXPECT_EQ(address_group("192.0.2.7"), "192.0.2.7");
    EXPECT_EQ(address_group("::ffff:192.0.2.7"), "192.0.2.7");  // a v4 peer on a dual-stack socket
    EXPECT_EQ(address_group("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    EXPECT_EQ(address_group("2001:DB8:1:2::9"), "2001:db8:1:2::/64");
    EXPECT_EQ(address_group("::1"), "::/64");
    EXPECT_EQ(address_group("local"), "local");
    EXPECT_EQ(address_group(""), "");
}

TEST(ParseIpAddress, AcceptsBothFamiliesAndNothingElse) {
    EXPECT_TRUE(parse_ip_address("127.0.0.1").has_value());
    EXPECT_TRUE(parse_ip_address("127.0.0.1")->is_ipv4());
    EXPECT_TRUE(parse_ip_address("::1").has_value());
    EXPECT_FALSE(parse_ip_address("::1")->is_ipv4());
    for (const char* bad : {"", "localhost", "1.2.3", "1.2.3.4.5", "256.0.0.1", "[::1]",
                            "1.2.3.4/8", " 1.2.3.4", "::g"}) {
        EXPECT_FALSE(parse_ip_address(bad).has_value()) << bad;
    }
}

bool trusted(std::string_view ranges, std::string_view address) {
    const auto parsed = parse_address_ranges(ranges, "SHOPCAST_TRUSTED_PROXIES");
    const auto ip = parse_ip_address(address);
    if (!ip) return false;
    for (const auto& range : parsed) {
        if (range.contains(*ip)) return true;
    }
    return false;
}

TEST(AddressRanges, MatchSingleAddressesAndCidrBlocks) {
    EXPECT_TRUE(trusted("10.0.0.5", "10.0.0.5"));
    EXPECT_FALSE(trusted("10.0.0.5", "10.0.0.6"));
    EXPECT_TRUE(trusted("10.0.0.0/8", "10.255.1.2"));
    EXPECT_FALSE(trusted("10.0.0.0/8", "11.0.0.1"));
    EXPECT_TRUE(trusted("192.168.4.0/22", "192.168.7.255"));
    EXPECT_FALSE(trusted("192.168.4.0/22", "192.168.8.0"));
    EXPECT_TRUE(trusted("0.0.0.0/0", "203.0.113.9"));
    EXPECT_FALSE(trusted("0.0.0.0/0", "2001:db8::1"));  // an IPv4 block holds no IPv6 address
    EXPECT_TRUE(trusted("2001:db8::/32", "2001:db8:ffff::1"));
    EXPECT_FALSE(trusted("2001:db8::/32", "2001:db9::1"));
    EXPECT_TRUE(trusted("127.0.0.1, ::1", "::1"));
    EXPECT_FALSE(trusted("", "127.0.0.1"));
}

TEST(AddressRanges, RefuseWhatIsNotAnAddressOrPrefix) {
    for (const char* bad :
         {"localhost", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/8/8"}) {
        EXPECT_THROW(parse_address_ranges(bad, "SHOPCAST_TRUSTED_PROXIES"), ConfigError) << bad;
    }
    try {
        parse_address_ranges("10.0.0.1,nginx", "SHOPCAST_TRUSTED_PROXIES");
        FAIL() << "no error";
    } catch (const ConfigError& error) {
        EXPECT_NE(std::string(error.what()).find("SHOPCAST_TRUSTED_PROXIES: \"nginx\""),
                  std::string::npos)
            << error.what();
    }
}

TEST(ResolveClientAddress, UnixListenerBelievesNginx) {
    EXPECT_EQ(resolve_client_address(true, "", "198.51.100.4", {}), "198.51.100.4");
    EXPECT_EQ(resolve_client_address(true, "", "", {}), "local");
}

TEST(ResolveClientAddress, TcpListenerBelievesOnlyTrustedProxies) {
    const auto proxies = parse_address_ranges("10.1.0.0/16", "SHOPCAST_TRUSTED_PROXIES");
    EXPECT_EQ(resolve_client_address(false, "203.0.113.9", "198.51.100.4", proxies), "203.0.113.9");
    EXPECT_EQ(resolve_client_address(false, "10.1.2.3", "198.51.100.4", proxies), "198.51.100.4");
    EXPECT_EQ(resolve_client_address(false, "10.1.2.3", "", proxies), "10.1.2.3");
    EXPECT_EQ(resolve_client_address(false, "127.0.0.1", "198.51.100.4", {}), "127.0.0.1");
}

}  // namespace
}  // namespace shopcast
