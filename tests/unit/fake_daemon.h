// A scripted stand-in for shopcastd's events socket, for testing the FastCGI side's IPC client
// against a real Unix socket.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/fd.h"
#include "common/ipc.h"

namespace shopcast::test {

// What the fake daemon does with the n-th request it receives (counted from 1).
// `ack_then_stop_reading` acks, then shuts the connection's read side while keeping it open:
// the client's next send fails with EPIPE although nothing told it the connection was dead.
enum class Answer { ack, silence, close, garbage, late_ack, ack_then_stop_reading };

// One per test: listens on a socket in a fresh directory and serves one connection at a time
// on its own thread, answering each request as the script says.
class FakeDaemon {
  public:
    explicit FakeDaemon(std::function<Answer(int request_number)> script)
        : script_(std::move(script)) {
        char pattern[] = "/tmp/shopcast-fcgi-test-XXXXXX";
        directory_ = ::mkdtemp(pattern);
        path_ = directory_ + "/events.sock";
        start();
    }
    FakeDaemon(const FakeDaemon&) = delete;
    FakeDaemon& operator=(const FakeDaemon&) = delete;
    ~FakeDaemon() {
        stop();
        std::filesystem::remove_all(directory_);
    }

    const std::string& path() const { return path_; }
    int connections() const { return connections_; }

    // A daemon restart: every connection is cut and the socket file is recreated.
    void restart() {
        stop();
        start();
    }
    // The daemon is gone but its socket file is left behind (ECONNREFUSED).
    void stop() {
        if (!thread_.joinable()) return;
        const char byte = 0;
        (void)::write(stop_write_.get(), &byte, 1);
        thread_.join();
        listener_.reset();
    }

  private:
    void start() {
        int pipe_fds[2];
        ASSERT_EQ(::pipe(pipe_fds), 0);
        stop_read_.reset(pipe_fds[0]);
        stop_write_.reset(pipe_fds[1]);
        ::unlink(path_.c_str());
        listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        path_.copy(address.sun_path, path_.size());
        ASSERT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address),
                  0);
        ASSERT_EQ(::listen(listener_.get(), 8), 0);
        thread_ = std::thread([this] { serve(); });
    }

    // True when `fd` became readable, false when the test asked the daemon to stop.
    bool wait_readable(int fd) const {
        pollfd entries[2] = {{fd, POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
        while (::poll(entries, 2, -1) < 0) {
        }
        return (entries[1].revents & POLLIN) == 0;
    }

    void serve() {
        while (wait_readable(listener_.get())) {
            UniqueFd connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (!connection.valid()) continue;
            ++connections_;
            if (!serve_connection(connection)) return;
        }
    }

    // False when the daemon was asked to stop.
    bool serve_connection(UniqueFd& connection) {
        const int fd = connection.get();
        ipc::FrameReader reader;
        char buffer[4096];
        for (;;) {
            if (!wait_readable(fd)) return false;
            const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
            if (n <= 0) return true;  // the client hung up
            reader.feed(std::string_view(buffer, static_cast<std::size_t>(n)));
            while (std::optional<std::string> payload = reader.next_payload()) {
                const std::optional<ipc::PublishRequest> request = ipc::decode_request(*payload);
                if (!request) return true;
                const int number = ++requests_;
                const std::string ack =
                    ipc::encode_ack({ipc::AckStatus::accepted, "e:" + std::to_string(number),
                                     static_cast<std::uint32_t>(request->type.size())});
                switch (script_(number)) {
                    case Answer::ack:
                        send_all(fd, ack);
                        break;
                    case Answer::silence:
                        break;
                    case Answer::close:
                        return true;
                    case Answer::garbage:
                        send_all(fd, std::string("\0\0\0\3abc", 7));
                        break;
                    case Answer::late_ack:
                        std::this_thread::sleep_for(std::chrono::milliseconds(300));
                        send_all(fd, ack);
                        break;
                    case Answer::ack_then_stop_reading:
                        ::shutdown(fd, SHUT_RD);  // first, or the next request could slip in
                        send_all(fd, ack);
                        held_.push_back(std::move(connection));
                        return true;
                }
            }
        }
    }

    static void send_all(int fd, std::string_view bytes) {
        while (!bytes.empty()) {
            const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0) return;
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
    }

    std::function<Answer(int)> script_;
    std::string directory_;
    std::string path_;
    UniqueFd listener_;
    UniqueFd stop_read_;
    UniqueFd stop_write_;
    std::thread thread_;
    std::vector<UniqueFd> held_;  // half-shut connections, see Answer::ack_then_stop_reading
    std::atomic<int> connections_{0};
    std::atomic<int> requests_{0};
};

}  // namespace shopcast::test
