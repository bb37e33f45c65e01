#include "fcgi/ops_endpoints.h"

namespace shopcast::fcgi {
namespace {

constexpr std::string_view kExpositionType = "text/plain; version=0.0.4; charset=utf-8";

Reply json_reply(int status, std::string body) {
    Reply reply;
    reply.status = status;
    reply.body = std::move(body);
    reply.headers.emplace_back("Cache-Control", "no-store");
    return reply;
}

Reply metrics_reply(DaemonQueries& daemon, const FcgiMetrics& metrics) {
    std::optional<ipc::QueryReply> engine = daemon.query(ipc::Query::metrics);
    const bool reachable = engine && engine->ok;
    Reply reply = json_reply(200, reachable ? std::move(engine->text) : std::string());
    reply.content_type = kExpositionType;
    reply.body += metrics.exposition(reachable);
    return reply;
}

Reply ready_reply(DaemonQueries& daemon) {
    std::optional<ipc::QueryReply> health = daemon.query(ipc::Query::health);
    if (health && health->ok) {
        return json_reply(200,
                          R"({"status":"ready","checks":{"shopcast-fcgi":"ok","shopcastd":"ok"}})");
    }
    std::string body = R"({"status":"not_ready","reason":)";
    if (health) {
        append_json_string(body, "shopcastd is not ready: " + health->text);
        body += R"(,"checks":{"shopcast-fcgi":"ok","shopcastd":"not_ready"}})";
    } else {
        append_json_string(body, "shopcastd is unreachable: " + daemon.last_failure());
        body += R"(,"checks":{"shopcast-fcgi":"ok","shopcastd":"unreachable"}})";
    }
    Reply reply = json_reply(503, std::move(body));
    reply.headers.emplace_back("Retry-After", "1");
    return reply;
}

Reply stream_ready_reply(StreamHealth& stream) {
    const StreamStatus status = stream.stream_status();
    const std::string daemons = std::to_string(status.live_daemons);
    if (status.reachable && status.live_daemons > 0) {
        return json_reply(200, R"({"status":"ready","checks":{"shopcast-fcgi":"ok","redis":"ok",)"
                               R"("shopcastd":"ok"},"live_daemons":)" +
                                   daemons + "}");
    }
    std::string body = R"({"status":"not_ready","reason":)";
    if (status.reachable) {
        append_json_string(body, "no shopcastd reported a heartbeat to Redis within 5 s");
        body += R"(,"checks":{"shopcast-fcgi":"ok","redis":"ok","shopcastd":"none_live"})";
    } else {
        append_json_string(body, "redis is unreachable: " + status.failure);
        body += R"(,"checks":{"shopcast-fcgi":"ok","redis":"unreachable","shopcastd":"unknown"})";
    }
    body += R"(,"live_daemons":)" + daemons + "}";
    Reply reply = json_reply(503, std::move(body));
    reply.headers.emplace_back("Retry-After", "1");
    return reply;
}

}  // namespace

std::optional<OpsEndpoint> ops_endpoint(std::string_view uri) {
    if (uri == "/metrics") return OpsEndpoint::metrics;
    if (uri == "/health/live") return OpsEndpoint::live;
    if (uri == "/health/ready") return OpsEndpoint::ready;
    return std::nullopt;
}

Reply answer_ops(OpsEndpoint endpoint, std::string_view method, DaemonQueries& daemon,
                 const FcgiMetrics& metrics, StreamHealth* stream) {
    if (method != "GET" && method != "HEAD") {
        Reply reply = error_reply(405, "method_not_allowed", "Only GET is allowed");
        reply.headers.emplace_back("Allow", "GET, HEAD");
        return reply;
    }
    switch (endpoint) {
        case OpsEndpoint::metrics:
            return metrics_reply(daemon, metrics);
        case OpsEndpoint::live:
            return json_reply(200, R"({"status":"live","service":"shopcast-fcgi"})");
        case OpsEndpoint::ready:
            return stream != nullptr ? stream_ready_reply(*stream) : ready_reply(daemon);
    }
    return error_reply(404, "not_found", "No such endpoint");
}

}  // namespace shopcast::fcgi
