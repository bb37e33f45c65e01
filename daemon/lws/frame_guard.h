// Whether a browser's frames were masked, which libwebsockets 4.1.6 does not say: it unmasks a
// frame without a key as if its key were zero, and the protocol callback cannot tell the two
// apart. RFC 6455 5.1 says a server must fail such a connection (ws_protocol.cpp: 1002).
#pragma once

#include <libwebsockets.h>

#include <cstdint>

namespace shopcast {

// Told of the PINGs in bytes just read for `wsi`, before lws parses them. lws answers PINGs
// itself and never tells the protocol, and it writes a PONG ahead of the protocol's writeable
// turn, so a flood can keep that turn from ever coming: the read is the one place a PING is
// sure to be seen. Called inside recv()/SSL_read(), outside any lws callback, so an rx flow
// change made here applies to the very next read.
using PingsRead = void (*)(lws* wsi, std::uint64_t pings) noexcept;

// From ESTABLISHED to CLOSED, on the service thread: follow the frames `wsi`'s client sends.
// An unmasked frame makes lws call `wsi` back as writeable, however idle it is otherwise.
void watch_frames(lws* wsi, PingsRead on_pings);
void stop_watching_frames(lws* wsi);

// Whether the client of a watched `wsi` has sent a frame without a mask.
bool sent_unmasked_frame(lws* wsi);

}  // namespace shopcast
