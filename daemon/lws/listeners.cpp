#include "daemon/lws/listeners.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

namespace shopcast {
namespace {

using Kind = ListenAddress::Kind;

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
    info.retry_and_idle_policy = settings.keepalive;
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

}  // namespace

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
        const bool listen = !socket.valid();
        lws_vhost* vhost = create_vhost(context, config, address, settings, user, listen);
        if (vhost == nullptr) {
            std::string why = "cannot listen for WebSockets on " + address.describe();
            if (address.kind == Kind::tls) why += " (is the certificate and key readable?)";
            throw ConfigError(why);
        }
        if (!listen) {
            pumps.push_back(AcceptPump{std::move(socket), vhost});
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
