// Whether a browser's frames were masked, which libwebsockets 4.1.6 does not say: it unmasks a
// frame without a key as if its key were zero, and the protocol callback cannot tell the two
// apart. RFC 6455 5.1 says a server must fail such a connection (ws_protocol.cpp: 1002).
#pragma once

#include <libwebsockets.h>

#include <cstdint>

namespace shopcast {

// From ESTABLISHED to CLOSED, on the service thread: follow the frames `wsi`'s client sends.
// An unmasked frame makes lws call `wsi` back as writeable, however idle it is otherwise.
void watch_frames(lws* wsi);
void stop_watching_frames(lws* wsi);

// Whether the client of a watched `wsi` has sent a frame without a mask.
bool sent_unmasked_frame(lws* wsi);

// The PINGs the client of a watched `wsi` sent since the last call. lws answers PINGs itself
// and never tells the protocol, so this is the only exact count of them.
std::uint64_t take_pings(lws* wsi);

}  // namespace shopcast
