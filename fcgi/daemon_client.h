// The FastCGI side of the IPC: one Unix stream connection to shopcastd's events socket.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/fd.h"
#include "common/ipc.h"
#include "fcgi/event_forwarder.h"
#include "fcgi/ops_endpoints.h"

namespace shopcast::fcgi {

// One per worker thread; not thread-safe. Connects lazily and reconnects by itself after a
// daemon restart. Every failure (daemon away, timeout, garbled ack) drops the connection, so a
// late ack can never be taken for the answer to the next request.
class DaemonClient final : public EventForwarder, public DaemonQueries {
  public:
    using Clock = std::chrono::steady_clock;

    // Throws ConfigError when `socket_path` does not fit a sockaddr_un.
    DaemonClient(std::string socket_path, std::chrono::milliseconds ack_timeout);

    // Waits at most `ack_timeout` in total (connect, send and receive).
    std::optional<ipc::PublishAck> forward(const ipc::PublishRequest& request) override;
    // Also waits at most `ack_timeout`: a daemon that cannot answer within it cannot take a
    // publish either.
    std::optional<ipc::QueryReply> query(ipc::Query query) override;
    std::string last_failure() const override { return last_failure_; }

    bool connected() const { return connection_.valid(); }

  private:
    enum class SendResult { sent, peer_gone, failed };

    bool connect_to_daemon(Clock::time_point deadline);
    SendResult send_frame(std::string_view frame, Clock::time_point deadline);
    // Sends one request frame and returns the one reply payload.
    std::optional<std::string> exchange(std::string_view frame);
    std::optional<std::string> receive_reply(Clock::time_point deadline);
    void drop_if_closed_by_peer();
    void drop_connection();
    // Logs the first failure after a success only, so an outage is one line per worker.
    void report_failure(std::string_view what);

    std::string socket_path_;
    std::chrono::milliseconds ack_timeout_;
    UniqueFd connection_;
    ipc::FrameReader reader_;
    bool failing_ = false;
    std::string last_failure_;
};

}  // namespace shopcast::fcgi
