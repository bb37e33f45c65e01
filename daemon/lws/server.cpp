#include "daemon/lws/server.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <memory>
#include <optional>

#include "common/cursor.h"
#include "common/fd.h"
#include "common/log.h"
#include "daemon/lws/ipc_listener.h"
#include "daemon/lws/listeners.h"
#include "daemon/lws/ops.h"
#include "daemon/lws/restart_state.h"
#include "daemon/lws/sd_notify.h"
#include "daemon/lws/service_loop.h"
#include "daemon/lws/ws_protocol.h"
#include "daemon/redis/stream_reader.h"

namespace shopcast {
namespace {

constexpr auto kShutdownGrace = std::chrono::seconds(3);

// lws unlinks a socket path before binding, so a second daemon would silently steal the
// sockets of the first; an exclusive lock next to the events socket prevents that. The file is
// the daemon user's alone (0600, also when an older version left it 0660): whoever can open it
// can hold the lock and keep the daemon from starting.
UniqueFd lock_instance(const std::string& events_socket) {
    const std::string path = events_socket + ".lock";
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.valid()) throw ConfigError("cannot open " + path + ": " + std::strerror(errno));
    if (::fchmod(fd.get(), 0600) != 0) {
        throw ConfigError("cannot make " + path + " private: " + std::strerror(errno));
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        throw ConfigError("another shopcastd is running (" + path + " is locked)");
    }
    return fd;
}

unsigned raise_fd_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    return static_cast<unsigned>(std::min<rlim_t>(limit.rlim_cur, 1u << 20));
}

// lws' own lines at our levels. Its info and debug levels stay off whatever
// SHOPCAST_LOG_LEVEL says: they print request details (URLs, headers) a line must not carry.
void emit_lws_log(int level, const char* line) {
    std::string_view text(line);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
    const LogLevel ours = level == LLL_ERR    ? LogLevel::error
                          : level == LLL_WARN ? LogLevel::warning
                                              : LogLevel::debug;
    log_pieces(ours, {"lws: ", text});
}

int lws_log_mask() {
    int mask = LLL_ERR;
    if (log_enabled(LogLevel::warning)) mask |= LLL_WARN;
    if (log_enabled(LogLevel::debug)) mask |= LLL_NOTICE;
    return mask;
}

// Re-arms itself every half watchdog period. `timer` must be the first member.
struct WatchdogTimer {
    lws_sorted_usec_list_t timer;
    lws_context* context;
    lws_usec_t interval;
};

void ping_watchdog(lws_sorted_usec_list_t* timer) {
    auto* watchdog = reinterpret_cast<WatchdogTimer*>(timer);
    notify_systemd("WATCHDOG=1");
    lws_sul_schedule(watchdog->context, 0, &watchdog->timer, ping_watchdog, watchdog->interval);
}

std::int64_t steady_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

std::int64_t wall_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// `listen` false: systemd holds the socket and an accept pump hands its connections over.
lws_vhost* create_ipc_vhost(lws_context* context, const DaemonConfig& config,
                            const lws_protocols* protocols, IpcListener& user, bool listen) {
    lws_context_creation_info info{};
    info.vhost_name = "events";
    info.protocols = protocols;
    info.user = &user;
    if (!listen) {
        info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
        return lws_create_vhost(context, &info);
    }
    info.options = LWS_SERVER_OPTION_UNIX_SOCK |
                   LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG |
                   LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    info.iface = config.events_socket.c_str();
    info.port = 0;
    info.listen_accept_role = "raw-skt";
    info.listen_accept_protocol = kIpcProtocolName;
    return lws_create_vhost(context, &info);
}

// The vhost that watches listening sockets the daemon accepts from itself (handed over by
// systemd, or on a shared port), and one pump per socket.
void start_accept_pumps(lws_context* context, const lws_protocols* protocols,
                        std::deque<AcceptPump>& pumps) {
    if (pumps.empty()) return;
    lws_context_creation_info info{};
    info.vhost_name = "handed-over";
    info.protocols = protocols;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    lws_vhost* vhost = lws_create_vhost(context, &info);
    if (vhost == nullptr) throw ConfigError("cannot serve the sockets systemd handed over");
    for (AcceptPump& pump : pumps) {
        if (!start_accept_pump(vhost, pump)) {
            throw ConfigError(pump.port_shared ? "cannot serve a shared listening socket"
                                               : "cannot serve a socket systemd handed over");
        }
    }
    const auto from_systemd = std::count_if(
        pumps.begin(), pumps.end(), [](const AcceptPump& pump) { return !pump.port_shared; });
    if (from_systemd > 0) {
        log_line(LogLevel::info,
                 std::to_string(from_systemd) + " listening socket(s) handed over by systemd");
    }
}

// SIGHUP, on the service thread: the new origins, limits, auth and log level apply to what comes
// next; open connections stay as they are.
void apply_reload(DaemonConfig& running, const ConfigReloader& reload, Hub& hub,
                  std::unique_ptr<TelegramAuthenticator>& authenticator) {
    try {
        DaemonConfig loaded = reload(running);
        auto next_authenticator = std::make_unique<TelegramAuthenticator>(loaded.auth);
        const std::string restart = daemon_settings_needing_restart(running, loaded);
        running.allowed_origins = std::move(loaded.allowed_origins);  // the listeners point here
        running.limits = loaded.limits;
        running.auth = loaded.auth;
        running.log_level = loaded.log_level;
        set_log_level(running.log_level);
        lws_set_log_level(lws_log_mask(), emit_lws_log);
        hub.apply_limits(running.limits);
        hub.set_authenticator(*next_authenticator);
        authenticator = std::move(next_authenticator);
        log_line(LogLevel::info,
                 "reloaded: " + std::to_string(running.allowed_origins.size()) +
                     " allowed origins, limits, Telegram auth and log level" +
                     (restart.empty() ? std::string()
                                      : "; changed but kept until a restart: " + restart));
    } catch (const ConfigError& error) {
        log_line(LogLevel::error,
                 std::string("reload refused, the running configuration stays: ") + error.what());
    } catch (const std::exception& error) {
        log_line(LogLevel::error,
                 std::string("reload failed, the running configuration stays: ") + error.what());
    }
}

}  // namespace

int run_daemon(DaemonConfig config, const ConfigReloader& reload) {
    ::umask(0007);  // nothing we create is for other users
    UniqueFd instance_lock = lock_instance(config.events_socket);
    lws_set_log_level(lws_log_mask(), emit_lws_log);

    if (config.allowed_origins.empty()) {
        log_line(LogLevel::warning,
                 "SHOPCAST_ALLOWED_ORIGINS is empty: browsers (which send Origin) are refused");
    }
    auto authenticator = std::make_unique<TelegramAuthenticator>(config.auth);
    LwsSessionTransport transport;
    RestoredEngine restored = restore_engine(config, steady_ms() / 1000, wall_ms() / 1000);
    Hub hub(config.limits, std::move(restored.history), std::move(restored.idempotency),
            *authenticator, transport, Hub::Clocks{steady_ms, wall_ms});
    OpsResponder ops(hub);
    IpcListener ipc_listener(hub, ops);

    const std::array<lws_protocols, 2> websocket_protocols{websocket_protocol(), lws_protocols{}};
    const std::array<lws_protocols, 2> ipc_protocols{ipc_protocol(), lws_protocols{}};
    // Outlives the context: lws reports every connection's close while the context is torn down.
    KeepaliveSchedule keepalive(config.ping_interval_seconds * std::int64_t{1000},
                                config.hangup_timeout_seconds * std::int64_t{1000});

    lws_context_creation_info info{};
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    if (needs_tls(config)) info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    // fd_limit_per_thread stays 0 (the process limit): below it, lws 4.1 finds a connection by
    // linear search instead of indexing by fd, which BENCHMARKS.md measured at 3x the CPU per
    // delivery with 5,000 clients. The Hub enforces SHOPCAST_MAX_CONNECTIONS itself.
    const unsigned fd_limit = raise_fd_limit();
    if (config.limits.max_connections + 64 > fd_limit) {
        log_line(LogLevel::warning, "SHOPCAST_MAX_CONNECTIONS exceeds what the open-files limit (" +
                                        std::to_string(fd_limit) + ") allows");
    }
    // An upgrade whose headers do not fit is dropped by lws 4.1.6 without a reply. Through nginx
    // that never happens: /ws passes only the handshake's headers and answers 431 itself above
    // 6 KB (nginx/snippets/shopcast-http.conf).
    info.max_http_header_data = 8192;
    HandedOverSockets handed_over = HandedOverSockets::from_systemd();
    std::deque<AcceptPump> accept_pumps;  // outlives the context: its wsis point at them
    std::vector<std::string> own_socket_paths;
    const std::array<lws_protocols, 2> pump_protocols{accept_pump_protocol(), lws_protocols{}};
    // Declared before the loop, which owns the context: lws calls back into a vhost's user data
    // while the context is torn down.
    std::deque<WebSocketContext> listener_contexts;
    ServiceLoop loop;  // destroyed after everything the context's callbacks use
    lws_context* context = loop.create_context(info);
    if (context == nullptr) throw ConfigError("cannot create the libwebsockets context");
    std::optional<StreamReader> stream_reader;  // before the loop's end: its handles are on it
    if (config.redis) {
        if (!loop.uses_libuv()) {
            throw ConfigError(
                "SHOPCAST_REDIS_URL needs the libuv event loop, which is unavailable (install "
                "libwebsockets-evlib-uv)");
        }
        stream_reader.emplace(loop.uv_loop(), *config.redis, hub, config.history_events);
        ops.watch_stream(stream_reader->health());
        hub.set_gap_filler(&*stream_reader);
        ipc_listener.refuse_publishes();
    }

    ListenerSettings listener_settings;
    listener_settings.protocols = websocket_protocols.data();
    listener_settings.shared.keepalive = &keepalive;
    listener_settings.shared.hub = &hub;
    listener_settings.shared.allowed_origins = &config.allowed_origins;
    listener_settings.shared.trusted_proxies = &config.trusted_proxies;
    listener_settings.shared.live_hold_ms = config.live_hold_ms;
    create_websocket_listeners(context, config, listener_settings, listener_contexts, handed_over,
                               accept_pumps, own_socket_paths);
    UniqueFd events_socket = handed_over.take_unix(config.events_socket);
    // Created owner-only from the start, so no one else can connect before the chmod below.
    const mode_t shared_umask = ::umask(0077);
    lws_vhost* events_vhost = create_ipc_vhost(context, config, ipc_protocols.data(), ipc_listener,
                                               !events_socket.valid());
    ::umask(shared_umask);
    if (events_vhost == nullptr) {
        throw ConfigError("cannot listen for events on " + config.events_socket);
    }
    if (events_socket.valid()) {
        accept_pumps.push_back(
            AcceptPump{std::move(events_socket), events_vhost, kIpcProtocolName});
    } else {
        own_socket_paths.push_back(config.events_socket);
    }
    handed_over.close_unclaimed();
    start_accept_pumps(context, pump_protocols.data(), accept_pumps);

    // The WebSocket sockets: read-write for the owner and the group shared with nginx. The events
    // socket: the owner only (shopcast-fcgi runs as the same user); nginx's user must not
    // publish. (Sockets systemd made keep the mode their unit gives them.)
    for (const std::string& path : own_socket_paths) {
        ::chmod(path.c_str(), path == config.events_socket ? 0600 : 0660);
    }

    loop.on_hangup([&] { apply_reload(config, reload, hub, authenticator); });

    KeepaliveTimer keepalive_timer(context, keepalive);  // goes before the loop's context
    WatchdogTimer watchdog{{}, context, watchdog_ping_interval_usec()};
    if (watchdog.interval > 0) ping_watchdog(&watchdog.timer);
    StatusReporter status_reporter(context, hub);
    if (stream_reader) stream_reader->start();
    notify_systemd("READY=1");
    log_line(LogLevel::info,
             "shopcastd ready: websockets on " + describe_listeners(config) + ", events on " +
                 config.events_socket +
                 (config.redis ? ", events from Redis " + config.redis->describe()
                               : ", epoch " + hub.history().epoch()) +
                 (loop.uses_libuv() ? ", libuv event loop" : ", poll() event loop"));

    if (loop.run() == ServiceOutcome::failed) {
        // Exit non-zero so that systemd's Restart=on-failure starts a fresh daemon.
        log_line(LogLevel::error, "the event loop failed; exiting so that the service restarts");
        return 1;
    }

    notify_systemd("STOPPING=1");
    ops.stopping();
    // From here on new connections wait in the backlog for the next daemon.
    for (AcceptPump& pump : accept_pumps) stop_accept_pump(pump);
    log_line(LogLevel::info,
             "stopping: closing " + std::to_string(hub.session_count()) + " connections with 1001");
    hub.close_all(1001, "server restarting; reconnect and resume");
    loop.run_until([&hub] { return hub.session_count() == 0; }, kShutdownGrace);
    save_engine(config, hub);
    if (watchdog.interval > 0) lws_sul_cancel(&watchdog.timer);
    for (const std::string& path : own_socket_paths) ::unlink(path.c_str());
    log_line(LogLevel::info, "stopped");
    return 0;
}

}  // namespace shopcast
