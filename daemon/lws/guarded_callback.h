// lws protocol callbacks that never let an exception escape into libwebsockets.
#pragma once

#include <libwebsockets.h>

#include "daemon/core/call_guarded.h"

namespace shopcast {

template <lws_callback_function* Callback>
int guarded_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in,
                     std::size_t len) noexcept {
    const lws_protocols* protocol = wsi != nullptr ? lws_get_protocol(wsi) : nullptr;
    return call_guarded(protocol != nullptr && protocol->name != nullptr ? protocol->name : "lws",
                        [&] { return Callback(wsi, reason, user, in, len); });
}

}  // namespace shopcast
