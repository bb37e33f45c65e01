#include "daemon/core/client_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "common/config.h"

namespace shopcast {
namespace {

constexpr std::array<std::uint8_t, 12> kMappedPrefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
constexpr unsigned kMappedPrefixBits = 96;
constexpr unsigned kSubscriberPrefixBits = 64;

std::string format_ipv6(const std::array<std::uint8_t, 16>& bytes) {
    std::array<char, INET6_ADDRSTRLEN> text{};
    ::inet_ntop(AF_INET6, bytes.data(), text.data(), text.size());
    return text.data();
}

}  // namespace

bool IpAddress::is_ipv4() const {
    return std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), bytes.begin());
}

std::optional<IpAddress> parse_ip_address(std::string_view text) {
    if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
    const std::string copy(text);
    IpAddress address;
    in_addr ipv4{};
    if (::inet_pton(AF_INET, copy.c_str(), &ipv4) == 1) {
        std::copy(kMappedPrefix.begin(), kMappedPrefix.end(), address.bytes.begin());
        std::memcpy(address.bytes.data() + 12, &ipv4, 4);
        return address;
    }
    if (::inet_pton(AF_INET6, copy.c_str(), address.bytes.data()) == 1) return address;
    return std::nullopt;
}

bool AddressRange::contains(const IpAddress& address) const {
    const unsigned whole_bytes = prefix_bits / 8;
    if (!std::equal(network.bytes.begin(), network.bytes.begin() + whole_bytes,
                    address.bytes.begin())) {
        return false;
    }
    const unsigned rest = prefix_bits % 8;
    if (rest == 0) return true;
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (network.bytes[whole_bytes] & mask) == (address.bytes[whole_bytes] & mask);
}

std::vector<AddressRange> parse_address_ranges(std::string_view list, std::string_view setting) {
    std::vector<AddressRange> ranges;
    for (const std::string& item : split_list(list)) {
        const auto slash = item.find('/');
        const auto address = parse_ip_address(std::string_view(item).substr(0, slash));
        if (!address) {
            throw ConfigError(std::string(setting) + ": \"" + item +
                              "\" is not an IP address or address/prefix");
        }
        AddressRange range{*address, 128};
        if (slash != std::string::npos) {
            const std::string_view bits = std::string_view(item).substr(slash + 1);
            unsigned prefix = 0;
            const unsigned family_bits = address->is_ipv4() ? 32 : 128;
            auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
            if (bits.empty() || ec != std::errc() || end != bits.data() + bits.size() ||
                prefix > family_bits) {
                throw ConfigError(std::string(setting) + ": \"" + item + "\" needs a prefix of 0-" +
                                  std::to_string(family_bits) + " bits");
            }
            range.prefix_bits = address->is_ipv4() ? kMappedPrefixBits + prefix : prefix;
        }
        ranges.push_back(range);
    }
    return ranges;
}

std::string address_group(std::string_view client_ip) {
    const auto address = parse_ip_address(client_ip);
    if (!address) return std::string(client_ip);
    if (address->is_ipv4()) {
        std::array<char, INET_ADDRSTRLEN> text{};
        ::inet_ntop(AF_INET, address->bytes.data() + 12, text.data(), text.size());
        return text.data();
    }
    std::array<std::uint8_t, 16> network = address->bytes;
    std::fill(network.begin() + kSubscriberPrefixBits / 8, network.end(), 0);
    return format_ipv6(network) + "/64";
}

std::string resolve_client_address(bool unix_listener, std::string_view peer,
                                   std::string_view real_ip_header,
                                   const std::vector<AddressRange>& trusted_proxies) {
    if (unix_listener) return real_ip_header.empty() ? "local" : std::string(real_ip_header);
    const auto peer_address = parse_ip_address(peer);
    if (peer_address && !real_ip_header.empty() &&
        std::any_of(trusted_proxies.begin(), trusted_proxies.end(),
                    [&](const AddressRange& range) { return range.contains(*peer_address); })) {
        return std::string(real_ip_header);
    }
    return std::string(peer);
}

}  // namespace shopcast
