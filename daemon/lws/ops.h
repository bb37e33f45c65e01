// What shopcastd tells operators: answers to shopcast-fcgi's metrics and health queries, and
// the STATUS= line systemctl status shows.
#pragma once

#include <libwebsockets.h>

#include <cstdint>

#include "common/ipc.h"
#include "daemon/core/hub.h"
#include "daemon/redis/stream_health.h"

namespace shopcast {

// Answers operators' queries arriving on the events socket. One per daemon, on the service
// thread: a reply at all proves the loop is running.
class OpsResponder {
  public:
    explicit OpsResponder(const Hub& hub) : hub_(hub) {}

    ipc::QueryReply answer(ipc::Query query) const;
    // From now on health says "stopping": nginx and probes see the restart coming.
    void stopping() { stopping_ = true; }
    // Redis mode: health is only ready while the stream is read, and metrics say how it goes.
    // `health` must outlive every answer.
    void watch_stream(const StreamHealth& health) { stream_ = &health; }

  private:
    const Hub& hub_;
    bool stopping_ = false;
    const StreamHealth* stream_ = nullptr;
};

// Sends "STATUS=<n> connections, <r> events/s" to systemd every few seconds. Does nothing
// outside systemd. `timer` must be the first member (lws timers hand back only the node).
class StatusReporter {
  public:
    StatusReporter(lws_context* context, const Hub& hub);
    StatusReporter(const StatusReporter&) = delete;
    StatusReporter& operator=(const StatusReporter&) = delete;
    ~StatusReporter();  // before the context is destroyed

  private:
    static void report(lws_sorted_usec_list_t* timer);

    lws_sorted_usec_list_t timer_{};
    lws_context* context_;
    const Hub& hub_;
    bool enabled_ = false;
    std::uint64_t last_published_ = 0;
    lws_usec_t last_at_ = 0;
};

}  // namespace shopcast
