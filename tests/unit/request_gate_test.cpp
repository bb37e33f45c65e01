// The FastCGI request gate: what counts as a complete request, and a gate on a real Unix socket
// handing out complete requests while silent and trickling clients wait (and are closed).
#include "fcgi/request_gate.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace shopcast::fcgi {
namespace {

using Verdict = RequestScan::Verdict;

std::string record(unsigned type, std::string_view content, unsigned id = 1, unsigned padding = 0) {
    std::string r;
    r.push_back(1);
    r.push_back(static_cast<char>(type));
    r.push_back(static_cast<char>(id >> 8));
    r.push_back(static_cast<char>(id & 0xff));
    r.push_back(static_cast<char>(content.size() >> 8));
    r.push_back(static_cast<char>(content.size() & 0xff));
    r.push_back(static_cast<char>(padding));
    r.push_back(0);
    r.append(content);
    r.append(padding, '\0');
    return r;
}

std::string begin_request(unsigned role = 1, unsigned id = 1) {
    return record(1, std::string{'\0', static_cast<char>(role), 0, 0, 0, 0, 0, 0}, id);
}

// What nginx sends for a POST: begin, parameters, their terminator, the body, its terminator.
std::string nginx_request(std::string_view body) {
    return begin_request() + record(4, "\x0e\x04REQUEST_METHODPOST", 1, 3) + record(4, "") +
           record(5, body) + record(5, "");
}

TEST(ScanFastcgiRequest, AWholeRequestIsCompleteAndEveryPrefixIsNot) {
    const std::string whole = nginx_request(R"({"type":"shop_updated","shopId":1})");
    EXPECT_EQ(scan_fastcgi_request(whole, 1024).verdict, Verdict::whole);
    for (std::size_t cut = 0; cut < whole.size(); ++cut) {
        const RequestScan scan = scan_fastcgi_request(std::string_view(whole).substr(0, cut), 1024);
        ASSERT_EQ(scan.verdict, Verdict::incomplete) << cut;
        EXPECT_GT(scan.need, cut) << cut;
        EXPECT_LE(scan.need, whole.size()) << cut;
    }
}

TEST(ScanFastcgiRequest, ABodyBeyondTheLimitNeedsNoTerminator) {
    const std::string request = begin_request() + record(4, "") + record(5, std::string(600, 'x')) +
                                record(5, std::string(600, 'x'));
    EXPECT_EQ(scan_fastcgi_request(request, 1000).verdict, Verdict::body_beyond_limit);
}

TEST(ScanFastcgiRequest, RefusesWhatNginxNeverSendsAResponder) {
    const std::vector<std::pair<const char*, std::string>> cases = {
        {"version 2", std::string("\x02") + begin_request().substr(1)},
        {"params before begin", record(4, "") + begin_request()},
        {"two begins", begin_request() + begin_request()},
        {"authorizer role", begin_request(2)},
        {"management record id 0", begin_request(1, 0)},
        {"stdin before params end", begin_request() + record(5, "x")},
        {"another request id", begin_request() + record(4, "", 2)},
        {"get values", record(9, "")},
        {"abort", begin_request() + record(2, "")},
        {"begin of wrong length", record(1, "\x00\x01")},
        {"endless parameters",
         [] {
             std::string many = begin_request();
             for (int i = 0; i < 100; ++i) many += record(4, "ab");
             return many;
         }()},
        {"HTTP instead", "POST / HTTP/1.1\r\nHost: x\r\n\r\n"},
    };
    for (const auto& [name, bytes] : cases) {
        EXPECT_EQ(scan_fastcgi_request(bytes, 1024).verdict, Verdict::malformed) << name;
    }
}

// A listening Unix socket in a fresh directory, and a gate on it running on its own thread.
class GateOnSocket : public testing::Test {
  protected:
    void SetUp() override {
        char dir_template[] = "/tmp/shopcast-gate-XXXXXX";
        ASSERT_NE(::mkdtemp(dir_template), nullptr);
        dir_ = dir_template;
        path_ = dir_ + "/fcgi.sock";
        listener_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        const sockaddr_un address = address_of(path_);
        ASSERT_EQ(
            ::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address),
            0);
        ASSERT_EQ(::listen(listener_.get(), 64), 0);
        RequestGate::Settings settings;
        settings.request_deadline = std::chrono::milliseconds(500);  // short: the test waits for it
        settings.body_limit = 1024;
        gate_ = std::make_unique<RequestGate>(listener_.get(), settings);
        thread_ = std::thread([this] { gate_->run(); });
    }
    void TearDown() override {
        if (gate_) gate_->stop();
        if (thread_.joinable()) thread_.join();
        ::unlink(path_.c_str());
        ::rmdir(dir_.c_str());
    }

    static sockaddr_un address_of(const std::string& path) {
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::memcpy(address.sun_path, path.data(), path.size());
        return address;
    }

    UniqueFd connect_client() {
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        const sockaddr_un address = address_of(path_);
        EXPECT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address),
                  0);
        return fd;
    }

    // True once the gate has closed the client's connection, within `timeout_ms`: EOF, or a
    // reset when the client's bytes were left unread.
    static bool closed_by_gate(int fd, int timeout_ms) {
        pollfd entry{fd, POLLIN, 0};
        if (::poll(&entry, 1, timeout_ms) != 1) return false;
        char byte = 0;
        const ssize_t received = ::recv(fd, &byte, 1, MSG_DONTWAIT);
        return received == 0 || (received < 0 && errno == ECONNRESET);
    }

    std::string dir_;
    std::string path_;
    UniqueFd listener_;
    std::unique_ptr<RequestGate> gate_;
    std::thread thread_;
};

TEST_F(GateOnSocket, HandsOutACompleteRequestWhileSilentAndTricklingClientsWait) {
    std::vector<UniqueFd> stallers;
    for (int i = 0; i < 8; ++i) stallers.push_back(connect_client());
    for (int i = 0; i < 8; ++i) {
        UniqueFd trickler = connect_client();
        const std::string partial = begin_request() + record(4, "abc").substr(0, 5);
        ASSERT_EQ(::send(trickler.get(), partial.data(), partial.size(), 0),
                  static_cast<ssize_t>(partial.size()));
        stallers.push_back(std::move(trickler));
    }
    UniqueFd client = connect_client();
    const std::string request = nginx_request("{}");
    ASSERT_EQ(::send(client.get(), request.data(), request.size(), 0),
              static_cast<ssize_t>(request.size()));

    std::optional<ReadyConnection> ready = gate_->take();
    ASSERT_TRUE(ready);
    EXPECT_TRUE(ready->whole_request);
    // The connection handed out is the complete one, its bytes still unread.
    std::string received(request.size(), '\0');
    ASSERT_EQ(::recv(ready->fd.get(), received.data(), received.size(), MSG_DONTWAIT),
              static_cast<ssize_t>(request.size()));
    EXPECT_EQ(received, request);

    // Past the deadline every staller is closed, never handed out.
    for (const UniqueFd& staller : stallers) EXPECT_TRUE(closed_by_gate(staller.get(), 5000));
    gate_->stop();
    EXPECT_FALSE(gate_->take());
}

TEST_F(GateOnSocket, ClosesWhatIsNotAFastcgiRequest) {
    UniqueFd client = connect_client();
    const std::string http = "GET / HTTP/1.1\r\n\r\n";
    ASSERT_EQ(::send(client.get(), http.data(), http.size(), 0), static_cast<ssize_t>(http.size()));
    EXPECT_TRUE(closed_by_gate(client.get(), 5000));
}

}  // namespace
}  // namespace shopcast::fcgi
