#include "daemon/core/audience.h"

#include <algorithm>

namespace shopcast {

bool may_receive(const Audience& audience, std::string_view event_shop_id,
                 std::string_view event_user_id) {
    if (!event_user_id.empty()) return audience.user_id == event_user_id;
    if (audience.shops.empty() || event_shop_id.empty()) return true;
    return std::binary_search(audience.shops.begin(), audience.shops.end(), event_shop_id);
}

}  // namespace shopcast
