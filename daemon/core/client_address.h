// Which address a browser connection counts against: parsing, proxy trust and grouping.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shopcast {

// An IPv4 or IPv6 address in network byte order; IPv4 is kept in its IPv4-mapped IPv6 form
// (::ffff:a.b.c.d) so one comparison covers both families.
struct IpAddress {
    std::array<std::uint8_t, 16> bytes{};
    bool is_ipv4() const;
};

std::optional<IpAddress> parse_ip_address(std::string_view text);

// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address (all bits significant).
struct AddressRange {
    IpAddress network;
    unsigned prefix_bits = 128;  // over the 128-bit mapped form
    bool contains(const IpAddress& address) const;
};

// Throws ConfigError naming `setting` for anything that is not an address or a CIDR block.
std::vector<AddressRange> parse_address_ranges(std::string_view list, std::string_view setting);

// The key the per-address limit counts: an IPv4 address as is, an IPv6 address by its /64 (one
// subscriber's network, since a single host can hold any number of addresses within it).
// Text that is no address (a proxy that sent none) is its own group.
std::string address_group(std::string_view client_ip);

// The address a connection is attributed to. Over a Unix socket only nginx can connect, so its
// X-Real-IP is the client; over TCP the peer is, unless it is a trusted proxy that sent X-Real-IP.
std::string resolve_client_address(bool unix_listener, std::string_view peer,
                                   std::string_view real_ip_header,
                                   const std::vector<AddressRange>& trusted_proxies);

}  // namespace shopcast
