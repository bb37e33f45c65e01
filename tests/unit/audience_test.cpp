// Routing rules (daemon/audience.h, DESIGN.md "Delivery rules" and "Precise rules").
#include "daemon/core/audience.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace shopcast {
namespace {

struct Row {
    std::string name;
    std::string user;                // the connection's authenticated user; "" = anonymous
    std::vector<std::string> shops;  // its subscriptions (sorted, unique)
    std::string event_shop;          // "" = names no shop
    std::string event_user;          // "" = public
    bool receives;
};

TEST(Audience, RoutingTable) {
    const std::vector<Row> table = {
        // Public events of a shop.
        {"public_shop_to_unsubscribed", "", {}, "5", "", true},
        {"public_shop_to_subscriber", "", {"5"}, "5", "", true},
        {"public_shop_to_other_subscriber", "", {"6"}, "5", "", false},
        {"public_shop_to_multi_subscriber", "", {"4", "5", "6"}, "5", "", true},
        {"public_shop_to_authenticated", "42", {}, "5", "", true},
        {"public_shop_to_authenticated_other_shop", "42", {"6"}, "5", "", false},
        {"public_shop_id_is_text", "", {"shop-5"}, "shop-5", "", true},
        {"public_shop_prefix_is_not_a_match", "", {"55"}, "5", "", false},
        {"public_shop_longer_is_not_a_match", "", {"5"}, "55", "", false},
        // Public events naming no shop reach every connection.
        {"public_no_shop_to_unsubscribed", "", {}, "", "", true},
        {"public_no_shop_to_subscriber", "", {"5"}, "", "", true},
        {"public_no_shop_to_authenticated", "42", {"5"}, "", "", true},
        // Private events reach only their user.
        {"private_to_anonymous", "", {}, "", "42", false},
        {"private_to_other_user", "43", {}, "", "42", false},
        {"private_to_its_user", "42", {}, "", "42", true},
        {"private_user_prefix", "4", {}, "", "42", false},
        {"private_user_longer", "421", {}, "", "42", false},
        {"private_shop_to_anonymous_subscriber", "", {"5"}, "5", "42", false},
        {"private_shop_to_its_user_subscribed", "42", {"5"}, "5", "42", true},
        {"private_shop_to_its_user_unsubscribed", "42", {}, "5", "42", true},
        // audience.h: a private event reaches its user whatever the shop subscriptions.
        {"private_shop_to_its_user_other_shop", "42", {"6"}, "5", "42", true},
    };
    for (const auto& row : table) {
        Audience audience;
        audience.user_id = row.user;
        audience.shops = row.shops;
        EXPECT_EQ(may_receive(audience, row.event_shop, row.event_user), row.receives) << row.name;
    }
}

}  // namespace
}  // namespace shopcast
