// Keeps clients that send nothing, or trickle, away from the worker threads.
//
// libfcgi's FCGX_Accept_r both accepts and then reads the request's first records with a
// blocking read(), so one client that connects and stays silent holds a worker (and, with the
// accept mutex libfcgi needs, every other worker) for as long as it likes. The gate does the
// accepting instead: one thread watches every new connection (epoll, edge-triggered, so a
// trickle costs one wakeup per arrival) and peeks at what has arrived, without consuming it,
// until the whole FastCGI request is in the socket's receive queue. Only then does a worker
// get the connection, and libfcgi reads it without ever waiting. A connection whose request is
// not complete within the deadline, or is not a FastCGI request at all, is closed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "common/fd.h"
#include "common/log_throttle.h"

namespace shopcast::fcgi {

// What the bytes received so far amount to. `whole` when the request ends in its STDIN
// terminator; `body_beyond_limit` when more STDIN than anyone reads has arrived (the handler
// refuses such a body without reading it). `need` is how many bytes must be queued before
// another scan can tell more.
struct RequestScan {
    enum class Verdict { incomplete, whole, body_beyond_limit, malformed } verdict;
    std::size_t need = 0;
};

// Scans FastCGI records (BEGIN_REQUEST for a responder, PARAMS up to their terminator, then
// STDIN) at the start of `bytes`.
RequestScan scan_fastcgi_request(std::string_view bytes, std::size_t body_limit);

// A connection whose request has fully arrived.
struct ReadyConnection {
    UniqueFd fd;
    bool whole_request = false;  // its STDIN can be read to the end without waiting
};

// One per server, shared by the gate thread (run) and the workers (take).
class RequestGate {
  public:
    struct Settings {
        std::chrono::milliseconds request_deadline{10'000};
        std::size_t body_limit = 0;
        std::size_t max_waiting = 1024;  // connections not yet complete; the oldest goes first
    };

    // Takes over `listen_fd` (made non-blocking; it stays the caller's to close).
    RequestGate(int listen_fd, Settings settings);
    RequestGate(const RequestGate&) = delete;
    RequestGate& operator=(const RequestGate&) = delete;

    // The gate thread's loop: returns once stop() was called.
    void run();

    // Stops accepting; connections already complete are still handed out, the others closed.
    // Safe from any thread.
    void stop();

    // Blocks until a complete connection is ready; nullopt once stopped and none is left.
    std::optional<ReadyConnection> take();

  private:
    struct Waiting {
        UniqueFd fd;
        std::chrono::steady_clock::time_point deadline;
        std::size_t need = 0;
    };

    void accept_all();
    void examine(int fd, std::uint32_t events);
    void expire(std::chrono::steady_clock::time_point now);
    void forget(int fd);
    void hand_over(ReadyConnection connection);

    const int listen_fd_;
    const Settings settings_;
    UniqueFd epoll_;
    UniqueFd wakeup_;                     // eventfd: stop() rings it
    std::map<int, Waiting> waiting_;      // by descriptor; gate thread only
    std::vector<char> peek_buffer_;       // gate thread only
    LogThrottle expired_log_{1, 60'000};  // gate thread only

    std::mutex mutex_;
    std::condition_variable ready_changed_;
    std::deque<ReadyConnection> ready_;  // guarded by mutex_
    bool stopping_ = false;              // guarded by mutex_
    bool stopped_ = false;               // guarded by mutex_: run() has returned
};

}  // namespace shopcast::fcgi
