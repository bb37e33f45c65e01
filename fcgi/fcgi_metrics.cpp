#include "fcgi/fcgi_metrics.h"

#include <algorithm>

#include "common/exposition.h"

namespace shopcast::fcgi {

std::size_t FcgiMetrics::status_index(int status) {
    // The numbers of kPublishStatusLabels, in its order.
    static constexpr std::array<int, kPublishStatusLabels.size() - 1> kStatuses{
        200, 400, 401, 405, 413, 415, 422, 429, 500, 503};
    const auto found = std::find(kStatuses.begin(), kStatuses.end(), status);
    return static_cast<std::size_t>(found - kStatuses.begin());  // the end: "other"
}

std::size_t FcgiMetrics::bucket_index(std::chrono::nanoseconds wait) {
    const double seconds = std::chrono::duration<double>(wait).count();
    const auto bound =
        std::lower_bound(kAckSecondsBounds.begin(), kAckSecondsBounds.end(), seconds);
    return static_cast<std::size_t>(bound - kAckSecondsBounds.begin());
}

void FcgiMetrics::count_publish_reply(int status) {
    publish_replies_[status_index(status)].fetch_add(1, std::memory_order_relaxed);
}

void FcgiMetrics::observe_ack_wait(std::chrono::nanoseconds wait) {
    ack_buckets_[bucket_index(wait)].fetch_add(1, std::memory_order_relaxed);
    ack_wait_ns_sum_.fetch_add(static_cast<std::uint64_t>(std::max<std::int64_t>(0, wait.count())),
                               std::memory_order_relaxed);
}

std::string FcgiMetrics::exposition(bool daemon_reachable) const {
    std::array<std::uint64_t, kPublishStatusLabels.size()> replies{};
    for (std::size_t i = 0; i < replies.size(); ++i) {
        replies[i] = publish_replies_[i].load(std::memory_order_relaxed);
    }
    std::array<std::uint64_t, kAckSecondsBounds.size() + 1> buckets{};
    for (std::size_t i = 0; i < buckets.size(); ++i) {
        buckets[i] = ack_buckets_[i].load(std::memory_order_relaxed);
    }
    const double sum_seconds =
        static_cast<double>(ack_wait_ns_sum_.load(std::memory_order_relaxed)) / 1e9;

    Exposition out;
    out.counter_by("shopcast_publish_requests_total",
                   "Replies of the publish endpoint (POST /api/internal/broadcast), by status.",
                   "status", kPublishStatusLabels, replies);
    out.histogram("shopcast_publish_ack_duration_seconds",
                  "Time from a publish request's arrival to shopcastd's acknowledgement "
                  "(accepted requests only).",
                  kAckSecondsBounds, buckets, sum_seconds);
    out.gauge("shopcast_daemon_reachable",
              "1 when shopcast-fcgi reached shopcastd over the events socket during this scrape.",
              daemon_reachable ? 1 : 0);
    return out.text();
}

}  // namespace shopcast::fcgi
