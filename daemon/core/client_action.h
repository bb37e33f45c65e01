// Parsing of the small JSON messages a browser may send.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace shopcast {

inline constexpr std::size_t kMaxClientMessageBytes = 4096;

enum class ClientActionKind { auth, subscribe, unsubscribe, resume };

struct ClientAction {
    ClientActionKind kind = ClientActionKind::resume;
    std::string init_data;           // auth
    std::vector<std::string> shops;  // subscribe / unsubscribe: ID texts, sorted and unique
    std::string since;               // resume
};

struct ClientActionResult {
    bool ok = false;
    ClientAction action;
    std::string error;  // for the browser's `error` message
};

ClientActionResult parse_client_action(std::string_view text);

}  // namespace shopcast
