#include "fcgi/client_address.h"

#include <arpa/inet.h>

#include <charconv>
#include <string>

#include "common/config.h"

namespace shopcast::fcgi {
namespace {

constexpr unsigned kMappedPrefixBits = 96;  // ::ffff:0:0/96 holds the IPv4 addresses

IpAddress mapped_ipv4(const in_addr& v4) {
    IpAddress address{};
    address[10] = 0xFF;
    address[11] = 0xFF;
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(&v4.s_addr);  // network order
    for (int i = 0; i < 4; ++i) address[12 + i] = bytes[i];
    return address;
}

void clear_host_bits(IpAddress& address, unsigned prefix) {
    for (unsigned bit = prefix; bit < 128; ++bit) {
        address[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    }
}

bool same_prefix(const IpAddress& a, const IpAddress& b, unsigned prefix) {
    const unsigned whole = prefix / 8;
    for (unsigned i = 0; i < whole; ++i) {
        if (a[i] != b[i]) return false;
    }
    const unsigned rest = prefix % 8;
    if (rest == 0) return true;
    const auto mask = static_cast<std::uint8_t>(0xFFu << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

std::optional<IpAddress> parse_ip_address(std::string_view text) {
    if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
    const std::string terminated(text);
    in_addr v4{};
    if (::inet_pton(AF_INET, terminated.c_str(), &v4) == 1) return mapped_ipv4(v4);
    IpAddress v6{};
    if (::inet_pton(AF_INET6, terminated.c_str(), v6.data()) == 1) return v6;
    return std::nullopt;
}

bool is_ipv4_mapped(const IpAddress& address) {
    for (int i = 0; i < 10; ++i) {
        if (address[i] != 0) return false;
    }
    return address[10] == 0xFF && address[11] == 0xFF;
}

AddressSet AddressSet::parse(std::string_view list, std::string_view setting) {
    AddressSet set;
    for (const std::string& raw : split_list(list)) {
        const std::string_view item = raw;
        const auto fail = [&](std::string_view why) {
            return ConfigError(std::string(setting) + ": \"" + std::string(item) + "\" " +
                               std::string(why));
        };
        const std::size_t slash = item.find('/');
        const std::optional<IpAddress> address = parse_ip_address(item.substr(0, slash));
        if (!address) throw fail("is not an IPv4 or IPv6 address");
        const bool v4 = item.substr(0, slash).find(':') == std::string_view::npos;
        unsigned prefix = 128;
        if (slash != std::string_view::npos) {
            const std::string_view digits = item.substr(slash + 1);
            unsigned bits = 0;
            const auto [end, error] =
                std::from_chars(digits.data(), digits.data() + digits.size(), bits);
            if (digits.empty() || error != std::errc{} || end != digits.data() + digits.size() ||
                bits > (v4 ? 32u : 128u)) {
                throw fail(v4 ? "needs a prefix length of 0-32" : "needs a prefix length of 0-128");
            }
            prefix = v4 ? kMappedPrefixBits + bits : bits;
        }
        Network network{*address, prefix};
        clear_host_bits(network.base, prefix);
        set.networks_.push_back(network);
    }
    return set;
}

bool AddressSet::contains(const IpAddress& address) const {
    for (const Network& network : networks_) {
        if (same_prefix(address, network.base, network.prefix)) return true;
    }
    return false;
}

}  // namespace shopcast::fcgi
