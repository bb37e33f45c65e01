// Admission: whether one more browser may connect, by the total and by its address group.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

namespace shopcast {

enum class Admission { accepted, server_full, address_full };

// Counts open connections. `per_address_limit` 0 means no per-address limit; addresses are
// grouped by address_group() (IPv6 per /64). Used on the service thread only.
class AdmissionControl {
  public:
    AdmissionControl(std::size_t max_connections, std::size_t per_address_limit)
        : max_connections_(max_connections), per_address_limit_(per_address_limit) {}

    Admission admit(std::string_view client_ip) const;
    void opened(std::string_view client_ip);
    void closed(std::string_view client_ip);

    std::size_t open_count() const { return open_; }
    std::size_t open_from(std::string_view client_ip) const;

  private:
    std::size_t max_connections_;
    std::size_t per_address_limit_;
    std::size_t open_ = 0;
    std::unordered_map<std::string, std::size_t> open_per_group_;  // only when limited
};

}  // namespace shopcast
