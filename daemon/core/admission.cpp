#include "daemon/core/admission.h"

#include "daemon/core/client_address.h"

namespace shopcast {

Admission AdmissionControl::admit(std::string_view client_ip) const {
    if (open_ >= max_connections_) return Admission::server_full;
    if (per_address_limit_ > 0 && open_from(client_ip) >= per_address_limit_) {
        return Admission::address_full;
    }
    return Admission::accepted;
}

void AdmissionControl::opened(std::string_view client_ip) {
    ++open_;
    if (per_address_limit_ > 0) ++open_per_group_[address_group(client_ip)];
}

void AdmissionControl::closed(std::string_view client_ip) {
    if (open_ > 0) --open_;
    if (per_address_limit_ == 0) return;
    auto it = open_per_group_.find(address_group(client_ip));
    if (it != open_per_group_.end() && --it->second == 0) open_per_group_.erase(it);
}

std::size_t AdmissionControl::open_from(std::string_view client_ip) const {
    auto it = open_per_group_.find(address_group(client_ip));
    return it == open_per_group_.end() ? 0 : it->second;
}

}  // namespace shopcast
