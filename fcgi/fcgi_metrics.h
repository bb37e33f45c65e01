// shopcast-fcgi's own counters. Every worker thread bumps them with relaxed atomic adds (no
// lock, no allocation); a scrape reads them into the exposition. prometheus-cpp's Histogram
// takes a mutex per observation, so the histogram's buckets are kept here and only the
// exposition uses the library.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace shopcast::fcgi {

// The statuses the publish endpoint answers with; anything else counts as "other".
inline constexpr std::array<std::string_view, 11> kPublishStatusLabels{
    "200", "400", "401", "405", "413", "415", "422", "429", "500", "503", "other"};
// Upper bounds of the POST-to-ack histogram, in seconds: sub-millisecond on an idle host, up
// to the 1 s default ack timeout.
inline constexpr std::array<double, 12> kAckSecondsBounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                          0.05,   0.1,   0.25,   0.5,   1,    2.5};

// One per process, shared by every worker.
class FcgiMetrics {
  public:
    // One reply of the publish endpoint.
    void count_publish_reply(int status);
    // How long an accepted publish took from the request's arrival to the daemon's ack.
    void observe_ack_wait(std::chrono::nanoseconds wait);

    // The families of this process; `daemon_reachable` is what the scrape's own query found.
    std::string exposition(bool daemon_reachable) const;

    static std::size_t status_index(int status);
    static std::size_t bucket_index(std::chrono::nanoseconds wait);

  private:
    std::array<std::atomic<std::uint64_t>, kPublishStatusLabels.size()> publish_replies_{};
    std::array<std::atomic<std::uint64_t>, kAckSecondsBounds.size() + 1> ack_buckets_{};
    std::atomic<std::uint64_t> ack_wait_ns_sum_{0};
};

}  // namespace shopcast::fcgi
