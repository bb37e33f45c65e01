// libwebsockets reads a connection's bytes through recv() (plain sockets: the Unix socket nginx
// uses, ws:// direct mode) and SSL_read() (wss:// direct mode), both called through its PLT. The
// daemon defines both: each call goes on to the real function, and what it returns for a watched
// connection is followed frame header by frame header (FrameHeaderScanner). Masked frames pass
// unchanged; from a frame without a mask on, lws is shown nothing more of that connection, which
// ws_protocol.cpp then fails with 1002. A connection nobody watches costs one lookup.
//
// A client that sends frames before the handshake's reply (no browser does) can make the scanner
// lose its place: it then misjudges its own connection only.

// This file defines recv(); with _FORTIFY_SOURCE glibc's headers define an inline one that would
// clash with it.
#undef _FORTIFY_SOURCE

#include "daemon/lws/frame_guard.h"

#include <dlfcn.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>
#include <span>
#include <unordered_map>

#include "daemon/core/frame_rules.h"

namespace shopcast {
namespace {

struct WatchedConnection {
    lws* wsi;
    PingsRead on_pings;
    FrameHeaderScanner scanner;
};

// One per service thread, keyed by socket; recv() on any other thread finds none. An entry lives
// from ESTABLISHED to CLOSED, which lws raises before it closes the socket: `wsi` is alive
// whenever its socket is looked up.
thread_local std::unordered_map<int, WatchedConnection>* watched = nullptr;

std::unordered_map<int, WatchedConnection>& table() {
    thread_local std::unordered_map<int, WatchedConnection> connections;
    watched = &connections;
    return connections;
}

// How many of the `length` bytes just read for `fd` lws may see: those before a frame without a
// mask. From that frame on it sees nothing more (so it answers no unmasked ping, and a pong
// payload cannot overwrite the close reason), and the connection is woken to be failed.
long admit(int fd, const void* bytes, long length) {
    if (watched == nullptr || length <= 0 || fd < 0) return length;
    const auto found = watched->find(fd);
    if (found == watched->end()) return length;
    WatchedConnection& connection = found->second;
    const bool seen_before = connection.scanner.unmasked_frame_seen();
    const std::span data(static_cast<const unsigned char*>(bytes),
                         static_cast<std::size_t>(length));
    const auto admitted = static_cast<long>(connection.scanner.feed(data));
    if (!seen_before && connection.scanner.unmasked_frame_seen()) {
        lws_callback_on_writable(connection.wsi);
    }
    if (const std::uint64_t pings = connection.scanner.take_pings(); pings > 0) {
        connection.on_pings(connection.wsi, pings);
    }
    return admitted;
}

// Reads hidden from lws are read past, so that lws gets what a read with nothing to hide would
// give it (bytes, or "would block" from the real function). Bounded, so that a client that keeps
// sending cannot hold the loop: recv() then says "would block" (the connection is failed on its
// writeable turn), SSL_read() fails (lws drops the connection).
constexpr int kHiddenReadsMax = 8;

template <typename Function>
Function real(const char* name) {
    return reinterpret_cast<Function>(::dlsym(RTLD_NEXT, name));
}

}  // namespace

void watch_frames(lws* wsi, PingsRead on_pings) {
    const int fd = lws_get_socket_fd(wsi);
    if (fd >= 0) table().insert_or_assign(fd, WatchedConnection{wsi, on_pings, {}});
}

void stop_watching_frames(lws* wsi) {
    const int fd = lws_get_socket_fd(wsi);
    auto& connections = table();
    const auto found = connections.find(fd);
    if (found != connections.end() && found->second.wsi == wsi) connections.erase(found);
}

bool sent_unmasked_frame(lws* wsi) {
    auto& connections = table();
    const auto found = connections.find(lws_get_socket_fd(wsi));
    return found != connections.end() && found->second.wsi == wsi &&
           found->second.scanner.unmasked_frame_seen();
}

}  // namespace shopcast

extern "C" ssize_t recv(int fd, void* buffer, std::size_t length, int flags) {
    using Recv = ssize_t (*)(int, void*, std::size_t, int);
    static const Recv next = shopcast::real<Recv>("recv");
    if ((flags & MSG_PEEK) != 0) return next(fd, buffer, length, flags);
    for (int read = 0; read < shopcast::kHiddenReadsMax; ++read) {
        const ssize_t got = next(fd, buffer, length, flags);
        if (got <= 0) return got;
        const int saved_errno = errno;
        const long admitted = shopcast::admit(fd, buffer, got);
        errno = saved_errno;
        if (admitted > 0) return admitted;
    }
    errno = EAGAIN;
    return -1;
}

extern "C" int SSL_read(SSL* ssl, void* buffer, int length) {
    using SslRead = int (*)(SSL*, void*, int);
    static const SslRead next = shopcast::real<SslRead>("SSL_read");
    int got = -1;
    for (int read = 0; read < shopcast::kHiddenReadsMax; ++read) {
        got = next(ssl, buffer, length);
        if (got <= 0) return got;
        const int saved_errno = errno;
        const long admitted = shopcast::admit(SSL_get_fd(ssl), buffer, got);
        errno = saved_errno;
        if (admitted > 0) return static_cast<int>(admitted);
    }
    return -1;  // lws sees a failed read and drops the connection
}
