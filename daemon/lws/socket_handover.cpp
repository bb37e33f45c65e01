#include "daemon/lws/socket_handover.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "daemon/lws/guarded_callback.h"

namespace shopcast {
namespace {

constexpr char kAcceptPumpProtocol[] = "shopcast-accept";

bool is_listening_stream(int fd) {
    return sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0;
}

bool bound_to_unix_path(int fd, const std::string& path) {
    sockaddr_un address{};
    socklen_t length = sizeof(address);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
        address.sun_family != AF_UNIX) {
        return false;
    }
    return std::strncmp(address.sun_path, path.c_str(), sizeof(address.sun_path)) == 0;
}

bool bound_to_tcp_address(int fd, const std::string& host, int port) {
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return false;
    if (address.ss_family == AF_INET) {
        const auto& ipv4 = reinterpret_cast<const sockaddr_in&>(address);
        in_addr wanted{};
        return ntohs(ipv4.sin_port) == port && inet_pton(AF_INET, host.c_str(), &wanted) == 1 &&
               wanted.s_addr == ipv4.sin_addr.s_addr;
    }
    if (address.ss_family == AF_INET6) {
        const auto& ipv6 = reinterpret_cast<const sockaddr_in6&>(address);
        in6_addr wanted{};
        return ntohs(ipv6.sin6_port) == port && inet_pton(AF_INET6, host.c_str(), &wanted) == 1 &&
               std::memcmp(&wanted, &ipv6.sin6_addr, sizeof(wanted)) == 0;
    }
    return false;
}

template <typename Matches>
UniqueFd take_matching(std::vector<UniqueFd>& fds, Matches&& matches) {
    for (auto it = fds.begin(); it != fds.end(); ++it) {
        if (matches(it->get())) {
            UniqueFd taken = std::move(*it);
            fds.erase(it);
            return taken;
        }
    }
    return {};
}

// Accepts everything waiting (the socket is non-blocking) and hands it to the pump's target.
void accept_waiting(AcceptPump& pump) {
    for (;;) {
        const int connection =
            ::accept4(pump.listening.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (connection < 0) {
            if (errno == EINTR) continue;
            // EINVAL: a shared port's listener shut down by stop_accept_pump.
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED &&
                !(errno == EINVAL && pump.port_shared)) {
                log_line(LogLevel::warning,
                         std::string("accept on a listening socket: ") + std::strerror(errno));
            }
            return;
        }
        lws_adopt_desc_t adoption{};
        adoption.vh = pump.target;
        adoption.fd.sockfd = connection;
        if (pump.raw_protocol != nullptr) {
            adoption.type = LWS_ADOPT_SOCKET;
            adoption.vh_prot_name = pump.raw_protocol;
        } else {
            adoption.type = static_cast<lws_adoption_type>(LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP |
                                                           LWS_ADOPT_ALLOW_SSL);
        }
        // On failure lws closes the descriptor itself.
        if (lws_adopt_descriptor_vhost_via_info(&adoption) == nullptr) {
            log_line(LogLevel::warning, "could not take over an accepted connection");
        }
    }
}

int accept_pump_callback(lws* wsi, lws_callback_reasons reason, void*, void*, std::size_t) {
    auto* pump = static_cast<AcceptPump*>(lws_get_opaque_user_data(wsi));
    switch (reason) {
        case LWS_CALLBACK_RAW_RX_FILE:
            if (pump != nullptr) accept_waiting(*pump);
            return 0;
        case LWS_CALLBACK_RAW_CLOSE_FILE:
            // lws closes the descriptor with the wsi: the pump must not close it again.
            if (pump != nullptr) {
                pump->listening.release();
                pump->watcher = nullptr;
            }
            return 0;
        default:
            return 0;
    }
}

}  // namespace

HandedOverSockets HandedOverSockets::from_systemd() {
    HandedOverSockets sockets;
    const int count = sd_listen_fds(1);  // 1: unset $LISTEN_*, children must not inherit them
    if (count < 0) {
        log_line(LogLevel::warning, std::string("ignoring $LISTEN_FDS: ") + std::strerror(-count));
        return sockets;
    }
    for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + count; ++fd) {
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        sockets.fds_.emplace_back(fd);
    }
    return sockets;
}

UniqueFd HandedOverSockets::take_unix(const std::string& path) {
    return take_matching(
        fds_, [&](int fd) { return is_listening_stream(fd) && bound_to_unix_path(fd, path); });
}

UniqueFd HandedOverSockets::take_tcp(const std::string& host, int port) {
    return take_matching(fds_, [&](int fd) {
        return is_listening_stream(fd) && bound_to_tcp_address(fd, host, port);
    });
}

void HandedOverSockets::close_unclaimed() {
    if (!fds_.empty()) {
        log_line(LogLevel::warning, std::to_string(fds_.size()) +
                                        " socket(s) from systemd match no configured listener; "
                                        "closing them");
    }
    fds_.clear();
}

lws_protocols accept_pump_protocol() {
    lws_protocols protocol{};
    protocol.name = kAcceptPumpProtocol;
    protocol.callback = guarded_callback<accept_pump_callback>;
    return protocol;
}

bool start_accept_pump(lws_vhost* pump_vhost, AcceptPump& pump) {
    const int flags = ::fcntl(pump.listening.get(), F_GETFL);
    if (flags < 0 || ::fcntl(pump.listening.get(), F_SETFL, flags | O_NONBLOCK) != 0) return false;
    lws_adopt_desc_t adoption{};
    adoption.vh = pump_vhost;
    adoption.type = LWS_ADOPT_RAW_FILE_DESC;
    adoption.fd.filefd = pump.listening.get();
    adoption.vh_prot_name = kAcceptPumpProtocol;
    adoption.opaque = &pump;
    pump.watcher = lws_adopt_descriptor_vhost_via_info(&adoption);
    if (pump.watcher == nullptr) {
        pump.listening.release();  // lws closed it
        return false;
    }
    return true;
}

void stop_accept_pump(AcceptPump& pump) {
    if (pump.watcher == nullptr) return;
    // Linux: shutting a listening socket down closes it for the port's SO_REUSEPORT group at
    // once; what waited in its backlog is reset, and those clients reconnect to another daemon.
    if (pump.port_shared) ::shutdown(pump.listening.get(), SHUT_RD);
    lws_rx_flow_control(pump.watcher, 0);
}

}  // namespace shopcast
