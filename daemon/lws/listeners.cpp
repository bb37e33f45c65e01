#include "daemon/lws/listeners.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace shopcast {
namespace {

using Kind = ListenAddress::Kind;

// secs_since_valid_hangup 0: lws 4.1.6 arms no per-connection validity timer at all.
constexpr lws_retry_bo_t kNoValidityTimer{};

lws_vhost* create_vhost(lws_context* context, const DaemonConfig& config,
                        const ListenAddress& address, const ListenerSettings& settings,
                        WebSocketContext& user, bool listen) {
    // Browsers send no subprotocol: the per-vhost option "default" binds them to ours.
    static const lws_protocol_vhost_options default_option{nullptr, nullptr, "default", "1"};
    static const lws_protocol_vhost_options protocol_options{nullptr, &default_option, "shopcast",
                                                             ""};
    lws_context_creation_info info{};
    info.vhost_name = user.listener_name.c_str();
    info.protocols = settings.protocols;
    info.pvo = &protocol_options;
    info.user = &user;
    // No validity timer of lws' own (it would fall back to 300 s): KeepaliveTimer pings instead.
    info.retry_and_idle_policy = &kNoValidityTimer;
    // Without FAIL_UPON_UNABLE_TO_BIND a failed bind still returns a vhost listening on nothing.
    info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    if (!listen) {
        // systemd holds the listening socket; an accept pump hands its connections over.
        info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    } else if (address.kind == Kind::unix_socket) {
        info.options |= LWS_SERVER_OPTION_UNIX_SOCK;
        info.iface = address.unix_path.c_str();
        info.port = 0;
        return lws_create_vhost(context, &info);
    }
    if (listen) {
        info.iface = address.host.c_str();
        info.port = address.port;
    }
    if (address.ipv6) {
        // IPv6 only: an IPv4 address is its own entry, so [::]:P and 0.0.0.0:P can coexist.
        info.options |= LWS_SERVER_OPTION_IPV6_V6ONLY_MODIFY | LWS_SERVER_OPTION_IPV6_V6ONLY_VALUE;
    } else {
        // Without DISABLE_IPV6 lws binds every interface, whatever iface says.
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    }
    if (address.kind == Kind::tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = config.tls_cert_file.c_str();
        info.ssl_private_key_filepath = config.tls_key_file.c_str();
    }
    return lws_create_vhost(context, &info);
}

// A TCP listener of our own that other daemons may bind too (SO_REUSEPORT): the kernel spreads
// new connections over every socket in the port's group.
UniqueFd open_shared_listener(const ListenAddress& address) {
    const auto fail = [&](const char* step) {
        return ConfigError("cannot listen for WebSockets on " + address.describe() + " (" + step +
                           ": " + std::strerror(errno) + ")");
    };
    sockaddr_storage bound{};
    socklen_t length = 0;
    if (address.ipv6) {
        auto& ipv6 = reinterpret_cast<sockaddr_in6&>(bound);
        ipv6.sin6_family = AF_INET6;
        ipv6.sin6_port = htons(static_cast<std::uint16_t>(address.port));
        if (inet_pton(AF_INET6, address.host.c_str(), &ipv6.sin6_addr) != 1) {
            throw ConfigError("cannot listen for WebSockets on " + address.describe());
        }
        length = sizeof(ipv6);
    } else {
        auto& ipv4 = reinterpret_cast<sockaddr_in&>(bound);
        ipv4.sin_family = AF_INET;
        ipv4.sin_port = htons(static_cast<std::uint16_t>(address.port));
        if (inet_pton(AF_INET, address.host.c_str(), &ipv4.sin_addr) != 1) {
            throw ConfigError("cannot listen for WebSockets on " + address.describe());
        }
        length = sizeof(ipv4);
    }
    UniqueFd socket(
        ::socket(bound.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
    if (!socket.valid()) throw fail("socket");
    const int on = 1;
    if (::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        ::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) {
        throw fail("setsockopt");
    }
    // As lws does for our IPv6 listeners: an IPv4 address is its own entry.
    if (address.ipv6 &&
        ::setsockopt(socket.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) {
        throw fail("setsockopt");
    }
    if (::bind(socket.get(), reinterpret_cast<const sockaddr*>(&bound), length) != 0) {
        throw fail("bind");
    }
    if (::listen(socket.get(), SOMAXCONN) != 0) throw fail("listen");
    return socket;
}

}  // namespace

bool shares_tcp_ports(const DaemonConfig& config) {
    return config.redis.has_value();
}

bool needs_tls(const DaemonConfig& config) {
    return std::any_of(config.ws_listeners.begin(), config.ws_listeners.end(),
                       [](const ListenAddress& address) { return address.kind == Kind::tls; });
}

void create_websocket_listeners(lws_context* context, const DaemonConfig& config,
                                const ListenerSettings& settings,
                                std::deque<WebSocketContext>& contexts,
                                HandedOverSockets& handed_over, std::deque<AcceptPump>& pumps,
                                std::vector<std::string>& own_socket_paths) {
    for (const ListenAddress& address : config.ws_listeners) {
        WebSocketContext& user = contexts.emplace_back(settings.shared);
        user.unix_listener = address.kind == Kind::unix_socket;
        user.listener_name = address.describe();
        UniqueFd socket = address.kind == Kind::unix_socket
                              ? handed_over.take_unix(address.unix_path)
                              : handed_over.take_tcp(address.host, address.port);
        const bool port_shared =
            !socket.valid() && address.kind != Kind::unix_socket && shares_tcp_ports(config);
        if (port_shared) {
            socket = open_shared_listener(address);
            log_line(LogLevel::info, address.describe() +
                                         ": listening with SO_REUSEPORT, the port shared with "
                                         "the other daemons on this Redis");
        }
        const bool listen = !socket.valid();
        lws_vhost* vhost = create_vhost(context, config, address, settings, user, listen);
        if (vhost == nullptr) {
            std::string why = "cannot listen for WebSockets on " + address.describe();
            if (address.kind == Kind::tls) why += " (is the certificate and key readable?)";
            throw ConfigError(why);
        }
        if (!listen) {
            AcceptPump& pump = pumps.emplace_back(AcceptPump{std::move(socket), vhost});
            pump.port_shared = port_shared;
        } else if (address.kind == Kind::unix_socket) {
            own_socket_paths.push_back(address.unix_path);
        }
    }
}

std::string describe_listeners(const DaemonConfig& config) {
    std::string text;
    for (const ListenAddress& address : config.ws_listeners) {
        if (!text.empty()) text += ", ";
        text += address.describe();
    }
    return text;
}

}  // namespace shopcast
