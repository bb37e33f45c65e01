// The server's own messages to a browser (everything that is not a published event).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace shopcast::control {

std::string hello(std::string_view cursor);
std::string resync(std::string_view reason);
std::string auth_ok(std::string_view user_id);
std::string error(std::string_view message);
// `shops` are ID texts; all-digit ones are written as JSON numbers, as bots send them.
std::string subscribed(const std::vector<std::string>& shops);

}  // namespace shopcast::control
