#include "daemon/lws/ops.h"

#include <cstdio>
#include <cstdlib>
#include <numeric>

#include "daemon/engine_exposition.h"
#include "daemon/lws/sd_notify.h"

namespace shopcast {
namespace {

constexpr lws_usec_t kStatusInterval = 5 * LWS_US_PER_SEC;

std::uint64_t events_published(const Hub& hub) {
    const auto& by_type = hub.metrics().events_published;
    return std::accumulate(by_type.begin(), by_type.end(), std::uint64_t{0});
}

}  // namespace

ipc::QueryReply OpsResponder::answer(ipc::Query query) const {
    switch (query) {
        case ipc::Query::metrics:
            return {true, engine_exposition(hub_.metrics(), hub_.gauges(), stream_)};
        case ipc::Query::health:
            // Answering at all means the loop runs, so the events socket accepts and browsers
            // get what is published. In Redis mode they get it only while the stream is read.
            if (stopping_) return {false, "shopcastd is stopping"};
            if (stream_ != nullptr && !stream_->connected) return {false, "redis unavailable"};
            if (stream_ != nullptr && !stream_->caught_up) {
                return {false, "redis unavailable: still reading the stream"};
            }
            return {true, {}};
    }
    return {false, "unknown query"};
}

StatusReporter::StatusReporter(lws_context* context, const Hub& hub)
    : context_(context), hub_(hub) {
    const char* socket = std::getenv("NOTIFY_SOCKET");
    enabled_ = socket != nullptr && socket[0] != '\0';
    if (!enabled_) return;
    last_published_ = events_published(hub_);
    last_at_ = lws_now_usecs();
    lws_sul_schedule(context_, 0, &timer_, report, kStatusInterval);
}

StatusReporter::~StatusReporter() {
    if (enabled_) lws_sul_cancel(&timer_);
}

void StatusReporter::report(lws_sorted_usec_list_t* timer) {
    auto& self = *reinterpret_cast<StatusReporter*>(timer);
    const std::uint64_t published = events_published(self.hub_);
    const lws_usec_t now = lws_now_usecs();
    const double seconds = static_cast<double>(now - self.last_at_) / LWS_US_PER_SEC;
    const double rate =
        seconds > 0 ? static_cast<double>(published - self.last_published_) / seconds : 0;
    self.last_published_ = published;
    self.last_at_ = now;
    char status[96];
    std::snprintf(status, sizeof status, "STATUS=%zu connections, %.1f events/s",
                  self.hub_.session_count(), rate);
    notify_systemd(status);
    lws_sul_schedule(self.context_, 0, &self.timer_, report, kStatusInterval);
}

}  // namespace shopcast
