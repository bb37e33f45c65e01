// GET /metrics, /health/live and /health/ready: what nginx routes to shopcast-fcgi for
// operators (its allow-list decides who may ask). Knows nothing of FastCGI.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/ipc.h"
#include "fcgi/fcgi_metrics.h"
#include "fcgi/publish_handler.h"

namespace shopcast::fcgi {

enum class OpsEndpoint { metrics, live, ready };

// The endpoint `uri` (nginx's $document_uri) names; nullopt for the publish endpoint.
std::optional<OpsEndpoint> ops_endpoint(std::string_view uri);

// The seam to shopcastd for operators' questions; production code asks over the events socket
// (DaemonClient), tests substitute a fake.
class DaemonQueries {
  public:
    virtual ~DaemonQueries() = default;
    // The daemon's answer, or nullopt when it could not be reached in time.
    virtual std::optional<ipc::QueryReply> query(ipc::Query query) = 0;
    // Why the latest exchange failed (for a not-ready reply); never holds a secret.
    virtual std::string last_failure() const = 0;
};

// What Redis mode's readiness rests on: Redis itself, and the daemons reading its stream.
struct StreamStatus {
    bool reachable = false;          // Redis answered PING and the live-nodes script
    std::string failure;             // without reachable: why (never a secret)
    std::uint64_t live_daemons = 0;  // heartbeats in shopcast:nodes within 5 s of Redis' clock
    std::uint64_t connections = 0;   // their browsers
};

// The seam to Redis for /health/ready in Redis mode (RedisForwarder; tests substitute a fake).
class StreamHealth {
  public:
    virtual ~StreamHealth() = default;
    virtual StreamStatus stream_status() = 0;
};

// /metrics: the daemon's families then this process's, in one scrape (the daemon's missing
// when it cannot be reached: shopcast_daemon_reachable says so). /health/live: this process
// answers. /health/ready: the daemon answered a health query within the ack timeout and says
// it is ready, i.e. an event published now would be accepted and delivered. With `stream`
// (Redis mode) /health/ready asks Redis instead: ready when it answers and at least one daemon
// reported a heartbeat lately.
Reply answer_ops(OpsEndpoint endpoint, std::string_view method, DaemonQueries& daemon,
                 const FcgiMetrics& metrics, StreamHealth* stream = nullptr);

}  // namespace shopcast::fcgi
