// Client addresses as nginx reports them (REMOTE_ADDR), and the operator's list of addresses
// and networks (SHOPCAST_PUBLISHER_ADDRESSES).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace shopcast::fcgi {

// An IPv6 address; IPv4 addresses are held in their IPv4-mapped form (::ffff:a.b.c.d), so one
// type and one comparison serve both families.
using IpAddress = std::array<std::uint8_t, 16>;

// "192.0.2.1", "2001:db8::1" or "::ffff:192.0.2.1" (the same as 192.0.2.1); nullopt for
// anything else, e.g. "unix:" when nginx itself was reached over a Unix socket.
std::optional<IpAddress> parse_ip_address(std::string_view text);

bool is_ipv4_mapped(const IpAddress& address);

// A set of networks parsed once at start-up; immutable afterwards, so any thread may ask.
class AddressSet {
  public:
    AddressSet() = default;

    // A comma-separated list of addresses and CIDR networks ("127.0.0.1, ::1, 10.0.0.0/8,
    // 2001:db8::/32"). Throws ConfigError naming `setting` and the bad item.
    static AddressSet parse(std::string_view list, std::string_view setting);

    bool contains(const IpAddress& address) const;
    bool empty() const { return networks_.empty(); }

  private:
    struct Network {
        IpAddress base;       // host bits cleared
        unsigned prefix = 0;  // in bits of the 128-bit form
    };
    std::vector<Network> networks_;
};

}  // namespace shopcast::fcgi
