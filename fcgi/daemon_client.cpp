#include "fcgi/daemon_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "common/config.h"
#include "common/log.h"

namespace shopcast::fcgi {
namespace {

// Waits until `fd` is ready for `events` or the deadline passes; false on timeout or error.
// A signal interrupts poll; it is resumed with the time that is left.
bool wait_for(int fd, short events, DaemonClient::Clock::time_point deadline) {
    for (;;) {
        const auto left =
            std::chrono::ceil<std::chrono::milliseconds>(deadline - DaemonClient::Clock::now());
        if (left.count() <= 0) return false;
        pollfd entry{fd, events, 0};
        const int ready = ::poll(&entry, 1, static_cast<int>(left.count()));
        if (ready > 0) return true;  // POLLHUP/POLLERR too: the next call reports them
        if (ready == 0) return false;
        if (errno != EINTR) return false;
    }
}

std::string errno_text(std::string_view what, int error) {
    return std::string(what) + ": " + std::strerror(error);
}

}  // namespace

DaemonClient::DaemonClient(std::string socket_path, std::chrono::milliseconds ack_timeout)
    : socket_path_(std::move(socket_path)), ack_timeout_(ack_timeout) {
    if (socket_path_.empty() || socket_path_.size() >= sizeof(sockaddr_un::sun_path)) {
        throw ConfigError("SHOPCAST_EVENTS_SOCKET must be a path of 1-" +
                          std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
    }
}

std::optional<ipc::PublishAck> DaemonClient::forward(const ipc::PublishRequest& request) {
    const std::optional<std::string> payload = exchange(ipc::encode_request(request));
    if (!payload) return std::nullopt;
    std::optional<ipc::PublishAck> ack = ipc::decode_ack(*payload);
    if (!ack) {
        report_failure("garbled acknowledgement from shopcastd");
        drop_connection();
    }
    return ack;
}

std::optional<ipc::QueryReply> DaemonClient::query(ipc::Query query) {
    const std::optional<std::string> payload = exchange(ipc::encode_query(query));
    if (!payload) return std::nullopt;
    std::optional<ipc::QueryReply> reply = ipc::decode_query_reply(*payload);
    if (!reply) {
        report_failure("garbled reply from shopcastd");
        drop_connection();
    }
    return reply;
}

std::optional<std::string> DaemonClient::exchange(std::string_view frame) {
    const auto deadline = Clock::now() + ack_timeout_;
    drop_if_closed_by_peer();
    // A kept connection may have died with a daemon restart just now. A send that fails on it
    // never delivered a whole frame, so one more try on a fresh connection cannot duplicate.
    for (int attempt = 0; attempt < 2; ++attempt) {
        const bool reused = connection_.valid();
        if (!reused && !connect_to_daemon(deadline)) return std::nullopt;
        const SendResult sent = send_frame(frame, deadline);
        if (sent == SendResult::peer_gone && reused) {
            drop_connection();
            continue;
        }
        if (sent == SendResult::peer_gone) {
            report_failure("shopcastd closed the connection at " + socket_path_);
        }
        if (sent != SendResult::sent) {
            drop_connection();
            return std::nullopt;
        }
        std::optional<std::string> reply = receive_reply(deadline);
        if (!reply) {
            drop_connection();
            return std::nullopt;
        }
        if (failing_) log_line(LogLevel::info, "shopcastd reachable again at " + socket_path_);
        failing_ = false;
        return reply;
    }
    return std::nullopt;
}

bool DaemonClient::connect_to_daemon(Clock::time_point deadline) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) {
        report_failure(errno_text("socket", errno));
        return false;
    }
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, socket_path_.data(), socket_path_.size());
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        // Unix sockets connect at once or fail (EAGAIN: the daemon's backlog is full). EINTR
        // and EINPROGRESS leave the connect running: wait for it and read its outcome.
        int error = errno;
        if (error == EINTR || error == EINPROGRESS) {
            socklen_t length = sizeof error;
            error = ETIMEDOUT;
            if (wait_for(fd.get(), POLLOUT, deadline)) {
                ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length);
            }
        }
        if (error != 0) {
            report_failure(errno_text("connect " + socket_path_, error));
            return false;
        }
    }
    connection_ = std::move(fd);
    reader_ = ipc::FrameReader{};
    return true;
}

DaemonClient::SendResult DaemonClient::send_frame(std::string_view frame,
                                                  Clock::time_point deadline) {
    while (!frame.empty()) {
        const ssize_t sent = ::send(connection_.get(), frame.data(), frame.size(), MSG_NOSIGNAL);
        if (sent > 0) {
            frame.remove_prefix(static_cast<std::size_t>(sent));
            continue;
        }
        if (sent < 0 && errno == EINTR) continue;
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_for(connection_.get(), POLLOUT, deadline)) continue;
            report_failure("shopcastd did not take the request within " +
                           std::to_string(ack_timeout_.count()) + " ms");
            return SendResult::failed;
        }
        if (errno == EPIPE || errno == ECONNRESET) return SendResult::peer_gone;  // caller reports
        report_failure(errno_text("send to " + socket_path_, errno));
        return SendResult::failed;
    }
    return SendResult::sent;
}

std::optional<std::string> DaemonClient::receive_reply(Clock::time_point deadline) {
    std::array<char, 4096> buffer;
    for (;;) {
        if (std::optional<std::string> payload = reader_.next_payload()) {
            // One request, one reply: anything more means the stream is out of step.
            if (reader_.buffered_bytes() != 0) {
                report_failure("unexpected bytes after a reply from shopcastd");
                drop_connection();
            }
            return payload;
        }
        if (!wait_for(connection_.get(), POLLIN, deadline)) {
            report_failure("no acknowledgement from shopcastd within " +
                           std::to_string(ack_timeout_.count()) + " ms");
            return std::nullopt;
        }
        const ssize_t received = ::recv(connection_.get(), buffer.data(), buffer.size(), 0);
        if (received < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (received <= 0) {
            report_failure(received == 0 ? "shopcastd closed the connection before acknowledging"
                                         : errno_text("receive from " + socket_path_, errno));
            return std::nullopt;
        }
        if (!reader_.feed(std::string_view(buffer.data(), static_cast<std::size_t>(received)))) {
            report_failure("garbled acknowledgement from shopcastd");
            return std::nullopt;
        }
    }
}

// An idle connection has nothing to read; readable means the daemon closed it (restart) or
// sent something unasked, and either way it must not carry the next request.
void DaemonClient::drop_if_closed_by_peer() {
    if (!connection_.valid()) return;
    pollfd entry{connection_.get(), POLLIN, 0};
    int ready = 0;
    do {
        ready = ::poll(&entry, 1, 0);
    } while (ready < 0 && errno == EINTR);
    if (ready != 0) drop_connection();
}

void DaemonClient::drop_connection() {
    connection_.reset();
    reader_ = ipc::FrameReader{};
}

void DaemonClient::report_failure(std::string_view what) {
    last_failure_ = what;
    if (failing_) return;
    failing_ = true;
    log_line(LogLevel::warning, std::string(what) + "; answering 503 until shopcastd is back");
}

}  // namespace shopcast::fcgi
