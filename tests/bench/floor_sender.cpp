// floor_sender: the benchmark's floor. The least a WebSocket broadcast server can do per
// delivery on this machine: one epoll loop, one send() of one pre-framed text frame per client
// per event, nothing else (no protocol, no history, no per-client state but a backlog for a
// socket that is full). scripts/bench measures what it costs and reports every system as a
// multiple of it.
//
//   floor_sender --listen tcp:127.0.0.1:PORT [--listen unix:/path/to.sock ...]
//
// Every listener answers two kinds of HTTP/1.1 request:
//   GET with Upgrade: websocket   -> 101, and the connection receives every event from then on
//   POST (any path) with a body   -> the body, framed once, is sent to every client; the reply is
//                                    200 {"recipients":N} once every send() has been made
// Prints "floor ready" on stderr once listening; SIGTERM or SIGINT ends it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

// Owns one file descriptor.
class Fd {
  public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = other.release();
        }
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }

    int get() const { return fd_; }
    int release() { return std::exchange(fd_, -1); }
    void reset() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

  private:
    int fd_ = -1;
};

struct Connection {
    Fd fd;
    bool websocket = false;
    std::size_t slot = 0;  // index in Server::clients_ while websocket
    std::string input;     // the HTTP request(s) read so far
    std::string backlog;   // bytes a full socket did not take yet
    bool waiting_writable = false;
};

std::string websocket_accept(std::string_view key) {
    static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    std::string text(key);
    text += kGuid;
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int digest_len = 0;
    EVP_Digest(text.data(), text.size(), digest.data(), &digest_len, EVP_sha1(), nullptr);
    std::array<unsigned char, 4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1> encoded{};
    const int encoded_len = EVP_EncodeBlock(encoded.data(), digest.data(), digest_len);
    return {reinterpret_cast<const char*>(encoded.data()), static_cast<std::size_t>(encoded_len)};
}

// The value of header `name` (case-insensitive) in `head`, or empty.
std::string_view header_value(std::string_view head, std::string_view name) {
    std::size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos && pos + 2 < head.size()) {
        const std::size_t start = pos + 2;
        const std::size_t end = head.find("\r\n", start);
        const std::string_view line = head.substr(start, end - start);
        const std::size_t colon = line.find(':');
        if (colon == name.size() && strncasecmp(line.data(), name.data(), name.size()) == 0) {
            std::string_view value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
            return value;
        }
        pos = end;
    }
    return {};
}

std::string text_frame(std::string_view payload) {
    std::string frame;
    frame.reserve(payload.size() + 10);
    frame.push_back(static_cast<char>(0x81));  // FIN, text
    const std::size_t n = payload.size();
    if (n < 126) {
        frame.push_back(static_cast<char>(n));
    } else if (n < 65536) {
        frame.push_back(static_cast<char>(126));
        frame.push_back(static_cast<char>(n >> 8));
        frame.push_back(static_cast<char>(n & 0xff));
    } else {
        frame.push_back(static_cast<char>(127));
        for (int shift = 56; shift >= 0; shift -= 8) frame.push_back(static_cast<char>(n >> shift));
    }
    frame.append(payload);
    return frame;
}

class Server {
  public:
    explicit Server(Fd epoll) : epoll_(std::move(epoll)) {}

    bool listen_on(const std::string& spec) {
        Fd fd;
        if (spec.starts_with("tcp:")) {
            const std::string address = spec.substr(4);
            const std::size_t colon = address.rfind(':');
            if (colon == std::string::npos) return false;
            sockaddr_in sin{};
            sin.sin_family = AF_INET;
            uint16_t port = 0;
            const std::string port_text = address.substr(colon + 1);
            const auto parsed =
                std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
            if (parsed.ec != std::errc() || parsed.ptr != port_text.data() + port_text.size())
                return false;
            sin.sin_port = htons(port);
            if (inet_pton(AF_INET, address.substr(0, colon).c_str(), &sin.sin_addr) != 1)
                return false;
            fd = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
            const int one = 1;
            ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) return false;
        } else if (spec.starts_with("unix:")) {
            const std::string path = spec.substr(5);
            sockaddr_un sun{};
            sun.sun_family = AF_UNIX;
            if (path.size() >= sizeof sun.sun_path) return false;
            std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
            ::unlink(path.c_str());
            fd = Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
            if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) return false;
        } else {
            return false;
        }
        if (fd.get() < 0 || ::listen(fd.get(), 4096) != 0) return false;
        if (!watch(fd.get(), EPOLLIN)) return false;
        listeners_.push_back(std::move(fd));
        return true;
    }

    void run() {
        std::array<epoll_event, 256> events{};
        for (;;) {
            const int n = ::epoll_wait(epoll_.get(), events.data(), events.size(), -1);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return;
            for (int i = 0; i < n; ++i) handle(events[i].data.fd, events[i].events);
        }
    }

  private:
    bool watch(int fd, uint32_t events, int op = EPOLL_CTL_ADD) {
        epoll_event ev{};
        ev.events = events;
        ev.data.fd = fd;
        return ::epoll_ctl(epoll_.get(), op, fd, &ev) == 0;
    }

    bool is_listener(int fd) const {
        for (const Fd& l : listeners_)
            if (l.get() == fd) return true;
        return false;
    }

    void handle(int fd, uint32_t events) {
        if (is_listener(fd)) {
            accept_all(fd);
            return;
        }
        const auto it = connections_.find(fd);
        if (it == connections_.end()) return;
        Connection& conn = *it->second;
        if ((events & EPOLLOUT) && !flush(conn)) return;
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_from(conn);
    }

    void accept_all(int listener) {
        for (;;) {
            Fd fd(::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
            if (fd.get() < 0) return;  // EAGAIN, or out of descriptors: the client sees a reset
            const int one = 1;
            ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails on Unix
            if (!watch(fd.get(), EPOLLIN)) continue;
            auto conn = std::make_unique<Connection>();
            const int key = fd.get();
            conn->fd = std::move(fd);
            connections_.emplace(key, std::move(conn));
        }
    }

    void read_from(Connection& conn) {
        std::array<char, 16384> buffer{};
        for (;;) {
            const ssize_t n = ::recv(conn.fd.get(), buffer.data(), buffer.size(), 0);
            if (n > 0) {
                // A WebSocket client's frames (a close at the end) need no answer here.
                if (!conn.websocket) conn.input.append(buffer.data(), static_cast<std::size_t>(n));
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
            close(conn);  // EOF or error
            return;
        }
        while (!conn.websocket && serve_request(conn)) {
        }
    }

    // Serves one complete request from conn.input; false when none is complete yet (or the
    // connection was closed).
    bool serve_request(Connection& conn) {
        const std::size_t head_end = conn.input.find("\r\n\r\n");
        if (head_end == std::string::npos) return false;
        const std::string_view head(conn.input.data(), head_end + 2);
        if (head.starts_with("GET ")) {
            const std::string_view key = header_value(head, "Sec-WebSocket-Key");
            if (key.empty()) {
                if (reply(conn, "400 Bad Request", "{\"error\":\"not a WebSocket upgrade\"}"))
                    close(conn);
                return false;
            }
            const std::string answer =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: " +
                websocket_accept(key) + "\r\n\r\n";
            conn.input.clear();
            conn.websocket = true;
            conn.slot = clients_.size();
            clients_.push_back(&conn);
            send_bytes(conn, answer);
            return false;
        }
        if (head.starts_with("POST ")) {
            const std::string_view length_text = header_value(head, "Content-Length");
            std::size_t length = 0;
            std::from_chars(length_text.data(), length_text.data() + length_text.size(), length);
            const std::size_t body_start = head_end + 4;
            if (conn.input.size() < body_start + length) return false;
            const std::string frame =
                text_frame(std::string_view(conn.input).substr(body_start, length));
            conn.input.erase(0, body_start + length);
            const std::size_t recipients = clients_.size();
            // Index loop: a failed send removes that client from the vector (swap with the last).
            for (std::size_t i = 0; i < clients_.size();) {
                Connection* client = clients_[i];
                if (send_bytes(*client, frame)) ++i;
            }
            return reply(conn, "200 OK", "{\"recipients\":" + std::to_string(recipients) + "}");
        }
        if (reply(conn, "405 Method Not Allowed", "{\"error\":\"GET (upgrade) or POST\"}"))
            close(conn);
        return false;
    }

    // False when the connection was closed.
    bool reply(Connection& conn, std::string_view status, const std::string& body) {
        std::string text = "HTTP/1.1 ";
        text += status;
        text +=
            "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\n\r\n" + body;
        return send_bytes(conn, text);
    }

    // One send(); what the socket does not take waits in the backlog, and later bytes queue
    // behind it. False when the connection was closed.
    bool send_bytes(Connection& conn, std::string_view bytes) {
        if (!conn.backlog.empty()) {
            conn.backlog.append(bytes);
            return true;
        }
        const ssize_t n = ::send(conn.fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            close(conn);
            return false;
        }
        const std::size_t sent = n < 0 ? 0 : static_cast<std::size_t>(n);
        if (sent < bytes.size()) {
            conn.backlog.assign(bytes.substr(sent));
            conn.waiting_writable = watch(conn.fd.get(), EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
        }
        return true;
    }

    // Writes the backlog once the socket has room; false when the connection was closed.
    bool flush(Connection& conn) {
        while (!conn.backlog.empty()) {
            const ssize_t n =
                ::send(conn.fd.get(), conn.backlog.data(), conn.backlog.size(), MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
            if (n < 0) {
                close(conn);
                return false;
            }
            conn.backlog.erase(0, static_cast<std::size_t>(n));
        }
        if (conn.waiting_writable)
            conn.waiting_writable = !watch(conn.fd.get(), EPOLLIN, EPOLL_CTL_MOD);
        return true;
    }

    void close(Connection& conn) {
        if (conn.websocket) {
            Connection* last = clients_.back();
            clients_[conn.slot] = last;
            last->slot = conn.slot;
            clients_.pop_back();
        }
        connections_.erase(conn.fd.get());  // closes the fd; epoll forgets it
    }

    Fd epoll_;
    std::vector<Fd> listeners_;
    std::unordered_map<int, std::unique_ptr<Connection>> connections_;
    std::vector<Connection*> clients_;
};

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> specs;
    for (int i = 1; i < argc; ++i) {
        if (std::string_view(argv[i]) == "--listen" && i + 1 < argc) {
            specs.emplace_back(argv[++i]);
        } else {
            std::fprintf(stderr, "usage: floor_sender --listen tcp:127.0.0.1:PORT|unix:PATH ...\n");
            return 2;
        }
    }
    if (specs.empty()) {
        std::fprintf(stderr, "floor_sender: give at least one --listen\n");
        return 2;
    }
    ::signal(SIGPIPE, SIG_IGN);
    Server server(Fd(::epoll_create1(EPOLL_CLOEXEC)));
    for (const std::string& spec : specs) {
        if (!server.listen_on(spec)) {
            std::fprintf(stderr, "floor_sender: cannot listen on %s: %s\n", spec.c_str(),
                         std::strerror(errno));
            return 1;
        }
    }
    std::fprintf(stderr, "floor ready\n");
    server.run();
    return 1;
}
