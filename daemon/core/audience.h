// Who may receive an event: the routing rules of DESIGN.md in one place.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace shopcast {

// What a connection has told us about itself.
struct Audience {
    std::string user_id;             // authenticated Telegram user; empty when anonymous
    std::vector<std::string> shops;  // sorted, unique; empty = every public event
};

// A private event (user_id set) reaches only that user. A public event reaches a connection
// without shop subscriptions, or one subscribed to its shop; a public event that names no shop
// reaches every connection.
bool may_receive(const Audience& audience, std::string_view event_shop_id,
                 std::string_view event_user_id);

}  // namespace shopcast
