#include "fcgi/fcgi_server.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/event.h"
#include "common/log.h"
#include "fcgi/daemon_client.h"
#include "fcgi/fcgi_metrics.h"
#include "fcgi/ops_endpoints.h"
#include "fcgi/redis_forwarder.h"
#include "fcgi/request_gate.h"

namespace shopcast::fcgi {
namespace {

constexpr int kListenBacklog = 1024;  // the kernel caps it at net.core.somaxconn

std::system_error system_failure(const std::string& what) {
    return std::system_error(errno, std::generic_category(), what);
}

sockaddr_un unix_address(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.data(), path.size());  // length checked by the config
    return address;
}

// A socket file left by a crashed instance is replaced; anything else is not ours to delete.
void remove_stale_socket(const std::string& path) {
    struct stat status {};
    if (::lstat(path.c_str(), &status) != 0) {
        if (errno == ENOENT) return;
        throw system_failure("stat " + path);
    }
    if (!S_ISSOCK(status.st_mode)) {
        throw ConfigError(path + " exists and is not a socket; refusing to replace it");
    }
    const UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const sockaddr_un address = unix_address(path);
    if (probe.valid() &&
        ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
        throw ConfigError("another process is already listening on " + path);
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw system_failure("unlink " + path);
}

std::string_view reason_phrase(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 405:
            return "Method Not Allowed";
        case 413:
            return "Payload Too Large";
        case 404:
            return "Not Found";
        case 415:
            return "Unsupported Media Type";
        case 422:
            return "Unprocessable Content";
        case 429:
            return "Too Many Requests";
        case 503:
            return "Service Unavailable";
        default:
            return "Internal Server Error";
    }
}

std::optional<std::string_view> param(const FCGX_Request& request, const char* name) {
    const char* value = FCGX_GetParam(name, request.envp);
    if (value == nullptr) return std::nullopt;
    return std::string_view(value);
}

// Reads the FastCGI stdin stream; the handler asks only for what CONTENT_LENGTH announced.
class FcgiBody final : public BodySource {
  public:
    explicit FcgiBody(FCGX_Stream* in) : in_(in) {}

    std::optional<std::string> read(std::size_t length) override {
        std::string bytes(length, '\0');
        std::size_t received = 0;
        while (received < length) {
            const int n =
                FCGX_GetStr(bytes.data() + received, static_cast<int>(length - received), in_);
            if (n <= 0) return std::nullopt;
            received += static_cast<std::size_t>(n);
        }
        return bytes;
    }

  private:
    FCGX_Stream* in_;
};

// What one worker serves requests with.
struct WorkerTools {
    PublishHandler& publish;
    DaemonQueries& daemon;
    FcgiMetrics& metrics;
    StreamHealth* stream;  // Redis mode only
};

Reply publish(const FCGX_Request& request, WorkerTools& tools) {
    const auto arrived = std::chrono::steady_clock::now();
    RequestFacts facts;
    facts.method = param(request, "REQUEST_METHOD").value_or("");
    facts.content_type = param(request, "CONTENT_TYPE");
    facts.content_length = param(request, "CONTENT_LENGTH").value_or("");
    facts.secret = param(request, "HTTP_X_INTERNAL_SECRET");
    facts.idempotency_key = param(request, "HTTP_IDEMPOTENCY_KEY");
    facts.remote_address = param(request, "REMOTE_ADDR").value_or("");
    FcgiBody body(request.in);
    Reply reply = tools.publish.handle(facts, body);
    tools.metrics.count_publish_reply(reply.status);
    // 200 is the daemon's ack (accepted or duplicate): the wait the bot saw, parsing included.
    if (reply.status == 200)
        tools.metrics.observe_ack_wait(std::chrono::steady_clock::now() - arrived);
    return reply;
}

// Exceptions stop here: libfcgi is C, and a worker must survive any one request.
void serve_request(FCGX_Request& request, WorkerTools& tools) noexcept {
    try {
        // nginx routes the operators' endpoints here too (snippets/shopcast-ops.conf).
        if (const auto endpoint = ops_endpoint(param(request, "DOCUMENT_URI").value_or(""))) {
            write_reply(request.out,
                        answer_ops(*endpoint, param(request, "REQUEST_METHOD").value_or(""),
                                   tools.daemon, tools.metrics, tools.stream));
            return;
        }
        write_reply(request.out, publish(request, tools));
        return;
    } catch (const std::exception& error) {
        log_line(LogLevel::error, std::string("publish request failed: ") + error.what());
    } catch (...) {
        log_line(LogLevel::error, "publish request failed");
    }
    try {
        write_reply(request.out, error_reply(500, "internal_error", "Internal error"));
    } catch (...) {
        // Out of memory even for the error reply: FCGX_Finish_r still ends the request.
    }
}

// How long a connection may take to deliver its whole request. nginx writes a request at once
// (it buffers the body first), so only a client that stalls on purpose comes near this.
constexpr std::chrono::seconds kRequestDeadline{10};
// Workers' requests never accept by themselves: the gate hands them their connections.
constexpr int kNoListeningSocket = -1;

// One for the whole server; lives in run_server's frame until every thread has been joined.
struct ServerState {
    ServerState(const FcgiConfig& settings, const PublishRulesSource& publish_rules, int socket_fd)
        : config(settings),
          rules(publish_rules),
          throttle(settings.throttle),
          gate(socket_fd, RequestGate::Settings{kRequestDeadline, kMaxEventBytes}) {
        if (settings.redis) {
            redis.emplace(RedisPublishSettings{*settings.redis, settings.history,
                                               settings.idempotency_ttl_seconds});
            redis_outage.emplace(redis->retry_pause);
        }
    }

    const FcgiConfig& config;
    const PublishRulesSource& rules;
    SecretThrottle throttle;
    RequestGate gate;
    FcgiMetrics metrics;
    std::optional<RedisPublishSettings> redis;
    std::optional<RedisOutage> redis_outage;
};

// Serves the one request `connection` holds, all of which has already arrived.
//
// libfcgi has no call for "serve this connection", so two of the fields fcgiapp.h calls its own
// are set (libfcgi 2.4.2; tests/integration/local-boundaries.test.mjs fails if that changes): an
// open `ipcFd` makes FCGX_Accept_r read that connection instead of accepting one, and
// `keepConnection` stops the FCGX_Finish_r calls (the one FCGX_Accept_r starts with, and ours)
// from closing it, so it is closed here at once instead of in libfcgi's lingering close, which
// waits on the client for up to 2 s per read.
void serve_connection(FcgiRequest& request, ReadyConnection connection, WorkerTools& tools) {
    FCGX_Request& r = *request.get();
    r.ipcFd = connection.fd.release();
    r.keepConnection = 1;
    if (FCGX_Accept_r(&r) < 0) return;  // not a request after all; libfcgi has closed it
    serve_request(r, tools);
    if (connection.whole_request) {
        // Reading what is left of a body the handler refused: it is all queued, and a TCP peer
        // whose data is left unread gets a reset that could cut the reply.
        std::array<char, 4096> rest{};
        while (FCGX_GetStr(rest.data(), static_cast<int>(rest.size()), r.in) > 0) {
        }
    }
    r.keepConnection = 1;
    FCGX_Finish_r(&r);  // flushes the reply and ends the request; closes only after an error
    const UniqueFd finished(std::exchange(r.ipcFd, -1));
}

void run_worker(ServerState& server) noexcept {
    try {
        FcgiRequest request(kNoListeningSocket);
        // The daemon still answers /metrics in Redis mode; events go to the stream.
        DaemonClient daemon(server.config.events_socket, server.config.ack_timeout);
        std::optional<RedisForwarder> stream;
        if (server.redis) stream.emplace(*server.redis, *server.redis_outage);
        EventForwarder& forwarder = stream ? static_cast<EventForwarder&>(*stream) : daemon;
        PublishHandler handler(server.rules, server.throttle, forwarder);
        WorkerTools tools{handler, daemon, server.metrics, stream ? &*stream : nullptr};
        while (std::optional<ReadyConnection> connection = server.gate.take()) {
            serve_connection(request, std::move(*connection), tools);
        }
    } catch (const std::exception& error) {
        log_line(LogLevel::error, std::string("worker stopped: ") + error.what());
    } catch (...) {
        log_line(LogLevel::error, "worker stopped");
    }
}

void run_gate(ServerState& server) noexcept {
    try {
        server.gate.run();
    } catch (const std::exception& error) {
        log_line(LogLevel::error, std::string("FastCGI gate stopped: ") + error.what());
        server.gate.stop();
    } catch (...) {
        log_line(LogLevel::error, "FastCGI gate stopped");
        server.gate.stop();
    }
}

// Every thread started so far, joined in the destructor after the gate has been stopped: the
// workers serve what is complete, then see the gate closed.
class ServerThreads {
  public:
    explicit ServerThreads(ServerState& server) : server_(server) {}
    ServerThreads(const ServerThreads&) = delete;
    ServerThreads& operator=(const ServerThreads&) = delete;
    ~ServerThreads() {
        server_.gate.stop();
        for (std::thread& thread : threads_) thread.join();
    }

    template <typename Function>
    void start(Function function) {
        threads_.emplace_back(function, std::ref(server_));
    }

  private:
    ServerState& server_;
    std::vector<std::thread> threads_;
};

}  // namespace

ListeningSocket ListeningSocket::create(const std::string& path) {
    remove_stale_socket(path);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) throw system_failure("socket");
    const sockaddr_un address = unix_address(path);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        throw system_failure("bind " + path);
    }
    ListeningSocket socket(std::move(fd), path);
    socket.created_path_ = path;  // from here on the destructor removes the file
    struct stat status {};
    // nginx (another user, same group) must connect: 0660 whatever the umask left.
    if (::chmod(path.c_str(), 0660) != 0 || ::stat(path.c_str(), &status) != 0) {
        throw system_failure("chmod " + path);
    }
    socket.created_inode_ = status.st_ino;
    if (::listen(socket.fd(), kListenBacklog) != 0) throw system_failure("listen " + path);
    return socket;
}

ListeningSocket ListeningSocket::inherit() {
    int fd = 0;
    std::string description = "inherited fd 0";
    // systemd passes sockets from fd 3 on, to the process LISTEN_PID names.
    const char* listen_pid = std::getenv("LISTEN_PID");
    if (listen_pid != nullptr && std::to_string(::getpid()) == listen_pid) {
        const char* count = std::getenv("LISTEN_FDS");
        if (count != nullptr && std::atoi(count) >= 1) {
            fd = 3;
            description = "systemd socket (fd 3)";
        }
        ::unsetenv("LISTEN_PID");
        ::unsetenv("LISTEN_FDS");
        ::unsetenv("LISTEN_FDNAMES");
    }
    struct stat status {};
    int listening = 0;
    socklen_t length = sizeof listening;
    if (::fstat(fd, &status) != 0 || !S_ISSOCK(status.st_mode) ||
        ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || !listening) {
        throw ConfigError("no --listen given and fd " + std::to_string(fd) +
                          " is not a listening socket (pass --listen PATH, or start under "
                          "spawn-fcgi or a systemd socket unit)");
    }
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    return ListeningSocket(UniqueFd(fd), description);
}

ListeningSocket::ListeningSocket(ListeningSocket&& other) noexcept
    : fd_(std::move(other.fd_)),
      description_(std::move(other.description_)),
      created_path_(std::exchange(other.created_path_, {})),
      created_inode_(other.created_inode_) {}

ListeningSocket::~ListeningSocket() {
    if (created_path_.empty()) return;
    // A newer instance may have replaced the file meanwhile; its socket is not ours to remove.
    struct stat status {};
    if (::lstat(created_path_.c_str(), &status) == 0 && status.st_ino == created_inode_) {
        ::unlink(created_path_.c_str());
    }
}

void write_reply(FCGX_Stream* out, const Reply& reply) {
    std::string head = "Status: " + std::to_string(reply.status) + " ";
    head.append(reason_phrase(reply.status)).append("\r\nContent-Type: ");
    head.append(reply.content_type).append("\r\n");
    for (const auto& [name, value] : reply.headers) head.append(name + ": " + value + "\r\n");
    head.append("Content-Length: " + std::to_string(reply.body.size()) + "\r\n\r\n");
    FCGX_PutStr(head.data(), static_cast<int>(head.size()), out);
    FCGX_PutStr(reply.body.data(), static_cast<int>(reply.body.size()), out);
}

int run_server(const FcgiConfig& config, const PublishRulesSource& rules, ListeningSocket listener,
               const std::function<void()>& reload) {
    if (FCGX_Init() != 0) throw std::runtime_error("FCGX_Init failed");
    // Blocked before any thread starts, so every thread inherits the mask and only sigwait()
    // below ever sees SIGTERM/SIGINT.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGHUP);
    if (const int error = ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr); error != 0) {
        throw std::system_error(error, std::generic_category(), "pthread_sigmask");
    }

    ServerState server(config, rules, listener.fd());
    ServerThreads threads(server);
    threads.start(run_gate);
    for (unsigned i = 0; i < config.threads; ++i) threads.start(run_worker);
    log_line(LogLevel::info,
             "shopcast-fcgi ready: " + std::to_string(config.threads) + " workers on " +
                 listener.description() +
                 (config.redis ? ", events into the Redis stream at " + config.redis->describe()
                               : ", events socket " + config.events_socket));

    int signal_number = 0;
    while (::sigwait(&stop_signals, &signal_number) != 0 || signal_number == SIGHUP) {
        if (signal_number == SIGHUP) reload();
        signal_number = 0;
    }
    log_line(LogLevel::info,
             signal_number == SIGINT ? "stopping on SIGINT" : "stopping on SIGTERM");
    return 0;  // ~ServerThreads lets the requests that have arrived finish
}

}  // namespace shopcast::fcgi
