#include "fcgi/request_gate.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <system_error>

#include "common/log.h"

namespace shopcast::fcgi {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// FastCGI 1.0 record layout and the record types a responder request uses.
constexpr std::size_t kRecordHeaderBytes = 8;
constexpr unsigned kVersion = 1;
constexpr unsigned kBeginRequest = 1, kParams = 4, kStdin = 5;
constexpr unsigned kResponderRole = 1;
// nginx sends a handful of records per request; many more is not a web server talking.
constexpr int kMaxRecords = 64;
// Room for the parameters (nginx's request headers are at most 32 KB) beside the body.
constexpr std::size_t kParamsAllowance = 96 * 1024;
// A worker that still waits on a socket (it never should) gives up after this long.
constexpr timeval kWorkerSocketTimeout{10, 0};
constexpr auto kExpiryTick = 250ms;

std::system_error system_failure(const std::string& what) {
    return std::system_error(errno, std::generic_category(), what);
}

std::string describe(std::chrono::milliseconds duration) {
    const auto ms = duration.count();
    return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
}

unsigned byte_at(std::string_view bytes, std::size_t at) {
    return static_cast<unsigned char>(bytes[at]);
}

}  // namespace

RequestScan scan_fastcgi_request(std::string_view bytes, std::size_t body_limit) {
    using Verdict = RequestScan::Verdict;
    bool begun = false;
    bool params_done = false;
    unsigned request_id = 0;
    std::size_t body_bytes = 0;
    std::size_t at = 0;
    for (int records = 0; records < kMaxRecords; ++records) {
        if (bytes.size() - at < kRecordHeaderBytes)
            return {Verdict::incomplete, at + kRecordHeaderBytes};
        const unsigned version = byte_at(bytes, at);
        const unsigned type = byte_at(bytes, at + 1);
        const unsigned id = byte_at(bytes, at + 2) << 8 | byte_at(bytes, at + 3);
        const std::size_t length = byte_at(bytes, at + 4) << 8 | byte_at(bytes, at + 5);
        const std::size_t padding = byte_at(bytes, at + 6);
        const std::size_t end = at + kRecordHeaderBytes + length + padding;
        if (version != kVersion) return {Verdict::malformed};
        if (begun && id != request_id) return {Verdict::malformed};
        if (bytes.size() < end) return {Verdict::incomplete, end};
        const std::string_view content = bytes.substr(at + kRecordHeaderBytes, length);
        at = end;
        switch (type) {
            case kBeginRequest:
                if (begun || length != 8 || id == 0) return {Verdict::malformed};
                if ((byte_at(content, 0) << 8 | byte_at(content, 1)) != kResponderRole) {
                    return {Verdict::malformed};
                }
                begun = true;
                request_id = id;
                break;
            case kParams:
                if (!begun || params_done) return {Verdict::malformed};
                params_done = length == 0;
                break;
            case kStdin:
                if (!params_done) return {Verdict::malformed};
                if (length == 0) return {Verdict::whole};
                body_bytes += length;
                if (body_bytes > body_limit) return {Verdict::body_beyond_limit};
                break;
            default:  // management records, FILTER data, aborts: nothing nginx sends a responder
                return {Verdict::malformed};
        }
    }
    return {Verdict::malformed};
}

RequestGate::RequestGate(int listen_fd, Settings settings)
    : listen_fd_(listen_fd),
      settings_(settings),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      wakeup_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      peek_buffer_(settings.body_limit + kParamsAllowance) {
    if (!epoll_.valid()) throw system_failure("epoll_create1");
    if (!wakeup_.valid()) throw system_failure("eventfd");
    const int flags = ::fcntl(listen_fd_, F_GETFL);
    if (flags < 0 || ::fcntl(listen_fd_, F_SETFL, flags | O_NONBLOCK) != 0) {
        throw system_failure("fcntl O_NONBLOCK on the listening socket");
    }
    for (const int fd : {listen_fd_, wakeup_.get()}) {
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.fd = fd;
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
            throw system_failure("epoll_ctl");
        }
    }
}

void RequestGate::run() {
    std::vector<epoll_event> events(64);
    auto next_expiry = Clock::now() + kExpiryTick;
    for (;;) {
        {
            const std::lock_guard lock(mutex_);
            if (stopping_) break;
        }
        const int timeout_ms = waiting_.empty() ? -1 : static_cast<int>(kExpiryTick.count());
        const int count =
            ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout_ms);
        if (count < 0 && errno != EINTR) {
            log_line(LogLevel::error, std::string("epoll_wait failed: ") + std::strerror(errno));
            break;
        }
        for (int i = 0; i < count; ++i) {
            const int fd = events[static_cast<std::size_t>(i)].data.fd;
            if (fd == listen_fd_) {
                accept_all();
            } else if (fd != wakeup_.get()) {
                examine(fd, events[static_cast<std::size_t>(i)].events);
            }
        }
        const auto now = Clock::now();
        if (now >= next_expiry) {
            expire(now);
            next_expiry = now + kExpiryTick;
        }
    }
    // Whatever is complete by now is still served; the rest is closed.
    std::vector<int> descriptors;
    for (const auto& [fd, waiting] : waiting_) descriptors.push_back(fd);
    for (const int fd : descriptors) examine(fd, EPOLLHUP);
    waiting_.clear();
    {
        const std::lock_guard lock(mutex_);
        stopped_ = true;
    }
    ready_changed_.notify_all();
}

void RequestGate::stop() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    const std::uint64_t one = 1;
    (void)!::write(wakeup_.get(), &one, sizeof one);
}

std::optional<ReadyConnection> RequestGate::take() {
    std::unique_lock lock(mutex_);
    ready_changed_.wait(lock, [this] { return !ready_.empty() || stopped_; });
    if (ready_.empty()) return std::nullopt;
    ReadyConnection connection = std::move(ready_.front());
    ready_.pop_front();
    return connection;
}

void RequestGate::accept_all() {
    for (;;) {
        UniqueFd connection(::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC));
        if (!connection.valid()) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if ((errno == EMFILE || errno == ENFILE) && !waiting_.empty()) {
                // The connections that hold descriptors longest are the least likely to matter.
                forget(std::min_element(waiting_.begin(), waiting_.end(), [](auto& a, auto& b) {
                           return a.second.deadline < b.second.deadline;
                       })->first);
                continue;
            }
            return;  // EAGAIN: all taken; anything else is retried on the next wakeup
        }
        if (waiting_.size() >= settings_.max_waiting) {
            forget(std::min_element(waiting_.begin(), waiting_.end(), [](auto& a, auto& b) {
                       return a.second.deadline < b.second.deadline;
                   })->first);
        }
        const int fd = connection.get();
        epoll_event event{};
        event.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
        event.data.fd = fd;
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) continue;
        waiting_.emplace(fd,
                         Waiting{std::move(connection), Clock::now() + settings_.request_deadline,
                                 kRecordHeaderBytes});
        examine(fd, 0);
    }
}

// Edge-triggered: everything queued now is looked at now, for there is no second notice.
void RequestGate::examine(int fd, std::uint32_t events) {
    const auto it = waiting_.find(fd);
    if (it == waiting_.end()) return;
    Waiting& waiting = it->second;
    const bool hung_up = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    int queued = 0;
    if (::ioctl(fd, FIONREAD, &queued) != 0) return forget(fd);
    if (static_cast<std::size_t>(queued) < waiting.need) {
        if (hung_up) forget(fd);
        return;
    }
    const std::size_t wanted = std::min(static_cast<std::size_t>(queued), peek_buffer_.size());
    const ssize_t peeked = ::recv(fd, peek_buffer_.data(), wanted, MSG_PEEK | MSG_DONTWAIT);
    if (peeked <= 0) {
        if (peeked < 0 && (errno == EAGAIN || errno == EINTR) && !hung_up) return;
        return forget(fd);
    }
    const RequestScan scan = scan_fastcgi_request(
        {peek_buffer_.data(), static_cast<std::size_t>(peeked)}, settings_.body_limit);
    switch (scan.verdict) {
        case RequestScan::Verdict::whole:
        case RequestScan::Verdict::body_beyond_limit: {
            ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
            ReadyConnection ready{std::move(waiting.fd),
                                  scan.verdict == RequestScan::Verdict::whole};
            waiting_.erase(it);
            hand_over(std::move(ready));
            return;
        }
        case RequestScan::Verdict::malformed:
            return forget(fd);
        case RequestScan::Verdict::incomplete:
            if (hung_up || scan.need > peek_buffer_.size()) return forget(fd);
            waiting.need = scan.need;
            return;
    }
}

void RequestGate::expire(Clock::time_point now) {
    std::size_t expired = 0;
    for (auto it = waiting_.begin(); it != waiting_.end();) {
        if (it->second.deadline > now) {
            ++it;
            continue;
        }
        it = waiting_.erase(it);  // closing the descriptor also takes it out of the epoll set
        ++expired;
    }
    if (expired == 0) return;
    const auto now_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    std::string line = "closed " + std::to_string(expired) +
                       " FastCGI connection(s) that sent no complete request within " +
                       describe(settings_.request_deadline);
    if (auto admitted = expired_log_.admit(std::move(line), now_ms)) {
        log_line(LogLevel::warning, *admitted);
    }
}

void RequestGate::forget(int fd) {
    waiting_.erase(fd);
}

void RequestGate::hand_over(ReadyConnection connection) {
    // Blocking from here on, as libfcgi expects, with a bound as a last resort.
    const int fd = connection.fd.get();
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &kWorkerSocketTimeout, sizeof kWorkerSocketTimeout);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &kWorkerSocketTimeout, sizeof kWorkerSocketTimeout);
    {
        const std::lock_guard lock(mutex_);
        ready_.push_back(std::move(connection));
    }
    ready_changed_.notify_one();
}

}  // namespace shopcast::fcgi
