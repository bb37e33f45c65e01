// What operators are shown: the engine's counters as the Hub moves them, label tables, the
// fcgi side's histogram buckets, the exposition text of both, the IPC query messages, and
// log levels with journald priorities.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/exposition.h"
#include "common/ipc.h"
#include "common/log.h"
#include "daemon/core/hub.h"
#include "daemon/engine_exposition.h"
#include "fcgi/fcgi_metrics.h"
#include "fcgi/ops_endpoints.h"
#include "tests/unit/test_epoch.h"

namespace shopcast {
namespace {

using namespace std::chrono_literals;

// Stands in for lws: takes every write, or answers with the value a test sets per session.
class CountingTransport : public SessionTransport {
  public:
    SendResult send(Session& session, std::span<const SharedFrame* const> frames) override {
        for (const SharedFrame* frame : frames) bytes += frame->wire().size();
        auto answer = answers.find(&session);
        return answer == answers.end() ? SendResult::sent : answer->second;
    }
    void wake(Session& session) override { woken[&session] = true; }

    std::uint64_t bytes = 0;
    std::map<const Session*, bool> woken;
    std::map<const Session*, SendResult> answers;
};

class EngineMetricsTest : public testing::Test {
  protected:
    void SetUp() override {
        HubLimits limits;
        limits.max_queue_bytes = 1000;
        hub_ = std::make_unique<Hub>(limits, History(test_epoch("mtrcs1"), 100, 1 << 20),
                                     IdempotencyCache(300, 100), authenticator_, transport_,
                                     Hub::Clocks{[this] { return now_ms_; }, [] { return 0; }});
    }

    Session& open_live() {
        Session& session = hub_->open_session("10.0.0.1");
        hub_->on_writeable(session);  // the hello
        hub_->release_hold(session);
        return session;
    }

    void publish(std::string type, std::string json, std::string key = "") {
        ipc::PublishRequest request;
        request.idempotency_key = std::move(key);
        request.type = std::move(type);
        request.json = std::move(json);
        hub_->publish(request);
        hub_->deliver_published();
    }

    void drain(Session& session) {
        for (int turn = 0; turn < 100 && transport_.woken[&session]; ++turn) {
            transport_.woken[&session] = false;
            hub_->on_writeable(session);
        }
    }

    const EngineMetrics& metrics() const { return hub_->metrics(); }

    TelegramAuthenticator authenticator_{TelegramAuthConfig{}};
    CountingTransport transport_;
    std::int64_t now_ms_ = 1'000'000;
    std::unique_ptr<Hub> hub_;
};

TEST_F(EngineMetricsTest, CountsConnectionsEventsDeliveriesAndBytes) {
    Session& first = open_live();
    Session& second = open_live();
    publish("product_added", R"({"type":"product_added","shopId":1,"productId":2})");
    publish("product_added", R"({"type":"product_added","shopId":1,"productId":3})");
    publish("order_status", R"({"type":"order_status","orderId":1,"status":"paid"})");
    publish("order_status", R"({"type":"order_status","orderId":1,"status":"paid"})", "key-1");
    publish("order_status", R"({"type":"order_status","orderId":1,"status":"paid"})", "key-1");
    publish("product_added", "not an object");
    drain(first);
    drain(second);

    EXPECT_EQ(metrics().connections_opened, 2u);
    EXPECT_EQ(metrics().events_published[EngineMetrics::event_type_index("product_added")], 2u);
    EXPECT_EQ(metrics().events_published[EngineMetrics::event_type_index("order_status")], 2u);
    EXPECT_EQ(metrics().events_duplicate, 1u);
    EXPECT_EQ(metrics().events_rejected, 1u);
    EXPECT_EQ(metrics().deliveries, 2u * 4u);
    EXPECT_EQ(metrics().bytes_sent, transport_.bytes);  // hellos and events alike
    EXPECT_GT(metrics().bytes_sent, 0u);

    const EngineGauges gauges = hub_->gauges();
    EXPECT_EQ(gauges.connections, 2u);
    EXPECT_EQ(gauges.history_events, 4u);
    EXPECT_EQ(gauges.history_bytes, hub_->history().bytes());
    now_ms_ += 2500;
    EXPECT_DOUBLE_EQ(hub_->gauges().oldest_event_age_seconds, 2.5);

    second.peer_close_code = 1001;  // the browser navigated away
    hub_->close_session(second);
    hub_->close_session(first);  // no close frame at all
    EXPECT_EQ(metrics().connections_closed[EngineMetrics::close_code_index(1001)], 1u);
    EXPECT_EQ(metrics().connections_closed[EngineMetrics::close_code_index(1006)], 1u);
    EXPECT_EQ(hub_->gauges().connections, 0u);
}

TEST_F(EngineMetricsTest, CountsTheCloseCodeThatWentOverTheWire) {
    Session& written = open_live();
    Session& unwritten = open_live();
    Session& lost = open_live();
    hub_->close_all(1001, "restarting");
    written.close_written = true;  // the transport sent our 1001
    written.peer_close_code = 1001;
    hub_->close_session(written);
    unwritten.peer_close_code = 1000;  // the browser closed before our frame went out
    hub_->close_session(unwritten);
    hub_->close_session(lost);  // gone before either side sent a close frame
    EXPECT_EQ(metrics().connections_closed[EngineMetrics::close_code_index(1001)], 1u);
    EXPECT_EQ(metrics().connections_closed[EngineMetrics::close_code_index(1000)], 1u);
    EXPECT_EQ(metrics().connections_closed[EngineMetrics::close_code_index(1006)], 1u);
}

TEST_F(EngineMetricsTest, CountsResumesResyncsAndAuth) {
    Session& fresh = hub_->open_session("10.0.0.1");
    hub_->on_text_message(fresh, R"({"action":"resume","since":"garbage"})");
    EXPECT_EQ(metrics().resumes[std::size_t(ResumeOutcome::resynced)], 1u);
    EXPECT_EQ(metrics().resyncs[EngineMetrics::resync_reason_index("malformed_cursor")], 1u);

    Session& other = hub_->open_session("10.0.0.2");
    hub_->on_text_message(
        other, R"({"action":"resume","since":")" + hub_->history().cursor_for(0) + "\"}");
    EXPECT_EQ(metrics().resumes[std::size_t(ResumeOutcome::replayed)], 1u);

    hub_->on_text_message(other, R"({"action":"auth","initData":"user=1&hash=00"})");
    EXPECT_EQ(metrics().auth_results[1], 1u);  // not configured
}

// One rewind per connection: the second is refused, and counted as such.
TEST_F(EngineMetricsTest, CountsARefusedSecondRewind) {
    publish("product_added", R"({"type":"product_added","shopId":1,"productId":2})");
    publish("product_added", R"({"type":"product_added","shopId":1,"productId":3})");
    Session& session = hub_->open_session("10.0.0.1");
    const std::string rewind =
        R"({"action":"resume","since":")" + hub_->history().cursor_for(0) + "\"}";
    hub_->on_text_message(session, rewind);
    drain(session);
    hub_->on_text_message(session, rewind);
    EXPECT_EQ(metrics().resumes[std::size_t(ResumeOutcome::replayed)], 1u);
    EXPECT_EQ(metrics().resumes[std::size_t(ResumeOutcome::refused)], 1u);
    EXPECT_EQ(kResumeOutcomeLabels[std::size_t(ResumeOutcome::refused)], "refused");
}

TEST_F(EngineMetricsTest, CountsSlowClosesOnce) {
    Session& slow = open_live();
    transport_.answers[&slow] = SendResult::backpressure;
    const std::string big =
        R"({"type":"shop_updated","shopId":1,"pad":")" + std::string(600, 'x') + "\"}";
    publish("shop_updated", big);  // the write that chokes it
    transport_.answers.erase(&slow);
    publish("shop_updated", big);  // 600 bytes waiting
    publish("shop_updated", big);  // 1200 > max_queue_bytes: closed as slow
    publish("shop_updated", big);
    EXPECT_EQ(metrics().slow_closes[std::size_t(SlowClose::stalled)], 1u);
    EXPECT_EQ(metrics().slow_closes[std::size_t(SlowClose::fell_behind)], 0u);
}

TEST(EngineLabels, EveryInputMapsIntoTheFixedTables) {
    EXPECT_EQ(kCloseCodeLabels[EngineMetrics::close_code_index(1000)], "1000");
    EXPECT_EQ(kCloseCodeLabels[EngineMetrics::close_code_index(1013)], "1013");
    EXPECT_EQ(kCloseCodeLabels[EngineMetrics::close_code_index(0)], "1006");
    EXPECT_EQ(kCloseCodeLabels[EngineMetrics::close_code_index(1005)], "1006");
    EXPECT_EQ(kCloseCodeLabels[EngineMetrics::close_code_index(4321)], "other");
    EXPECT_EQ(kEventTypeLabels[EngineMetrics::event_type_index("shop_updated")], "shop_updated");
    EXPECT_EQ(kEventTypeLabels[EngineMetrics::event_type_index("surprise")], "other");
    EXPECT_EQ(kResyncReasonLabels[EngineMetrics::resync_reason_index("epoch_changed")],
              "epoch_changed");
    EXPECT_EQ(kResyncReasonLabels[EngineMetrics::resync_reason_index("whatever")], "other");

    const auto result = [](bool ok, std::string error) {
        return kAuthResultLabels[EngineMetrics::auth_result_index(AuthOutcome{ok, "", error})];
    };
    EXPECT_EQ(result(true, ""), "ok");
    EXPECT_EQ(result(false, "auth not configured"), "not_configured");
    EXPECT_EQ(result(false, "auth_date too old"), "stale");
    EXPECT_EQ(result(false, "auth_date in the future"), "stale");
    EXPECT_EQ(result(false, "hash mismatch"), "bad_signature");
    EXPECT_EQ(result(false, "invalid signature"), "bad_signature");
    EXPECT_EQ(result(false, "malformed initData"), "malformed");
    EXPECT_EQ(result(false, "missing user"), "malformed");
    EXPECT_EQ(result(false, "internal error"), "other");
}

TEST(EngineExposition, NamesTypesAndValues) {
    EngineMetrics metrics;
    metrics.count_published("order_status");
    metrics.count_published("order_status");
    metrics.count_close(1000);
    metrics.count_refusal(Refusal::origin);
    metrics.deliveries = 7;
    EngineGauges gauges;
    gauges.connections = 3;
    gauges.oldest_event_age_seconds = 1.5;
    const std::string text = engine_exposition(metrics, gauges);
    for (const char* line : {
             "# TYPE shopcast_connections gauge\nshopcast_connections 3\n",
             "# TYPE shopcast_events_published_total counter\n",
             "shopcast_events_published_total{type=\"order_status\"} 2\n",
             "shopcast_events_published_total{type=\"product_added\"} 0\n",
             "shopcast_connections_closed_total{code=\"1000\"} 1\n",
             "shopcast_connections_refused_total{reason=\"origin\"} 1\n",
             "shopcast_deliveries_total 7\n",
             "shopcast_history_oldest_event_age_seconds 1.5\n",
         }) {
        EXPECT_NE(text.find(line), std::string::npos) << line << "\nin:\n" << text;
    }
}

TEST(EngineExposition, TheStreamReadersFamiliesOnlyInRedisMode) {
    EngineMetrics metrics;
    EngineGauges gauges;
    EXPECT_EQ(engine_exposition(metrics, gauges).find("shopcast_redis_"), std::string::npos);

    StreamHealth stream;
    stream.connected = true;
    stream.caught_up = true;
    stream.connects = 2;
    stream.entries_read = 5;
    stream.last_entry_ms = 1'700'000'000'250;
    const std::string text = engine_exposition(metrics, gauges, &stream);
    for (const char* line : {
             "# TYPE shopcast_connections gauge\nshopcast_connections 0\n",
             "# TYPE shopcast_redis_connected gauge\nshopcast_redis_connected 1\n",
             "shopcast_redis_caught_up 1\n",
             "# TYPE shopcast_redis_connects_total counter\nshopcast_redis_connects_total 2\n",
             "shopcast_redis_entries_read_total 5\n",
             "shopcast_redis_entries_skipped_total 0\n",
             "shopcast_redis_resets_total 0\n",
             "shopcast_redis_last_entry_timestamp_seconds 1700000000.25\n",
         }) {
        EXPECT_NE(text.find(line), std::string::npos) << line << "\nin:\n" << text;
    }
    stream.caught_up = false;
    EXPECT_NE(engine_exposition(metrics, gauges, &stream).find("shopcast_redis_caught_up 0\n"),
              std::string::npos);
}

TEST(FcgiMetrics, StatusesAndBuckets) {
    using fcgi::FcgiMetrics;
    using fcgi::kAckSecondsBounds;
    EXPECT_EQ(fcgi::kPublishStatusLabels[FcgiMetrics::status_index(200)], "200");
    EXPECT_EQ(fcgi::kPublishStatusLabels[FcgiMetrics::status_index(503)], "503");
    EXPECT_EQ(fcgi::kPublishStatusLabels[FcgiMetrics::status_index(422)], "422");
    EXPECT_EQ(fcgi::kPublishStatusLabels[FcgiMetrics::status_index(418)], "other");
    // A bound is inclusive (Prometheus' "le"), anything above the last goes to +Inf.
    EXPECT_EQ(FcgiMetrics::bucket_index(1ms), 1u);
    EXPECT_EQ(kAckSecondsBounds[FcgiMetrics::bucket_index(1ms)], 0.001);
    EXPECT_EQ(FcgiMetrics::bucket_index(1001us), 2u);
    EXPECT_EQ(FcgiMetrics::bucket_index(0ns), 0u);
    EXPECT_EQ(FcgiMetrics::bucket_index(10s), kAckSecondsBounds.size());
}

TEST(FcgiMetrics, ExpositionHasCumulativeBuckets) {
    fcgi::FcgiMetrics metrics;
    metrics.count_publish_reply(200);
    metrics.count_publish_reply(200);
    metrics.count_publish_reply(401);
    metrics.observe_ack_wait(300us);
    metrics.observe_ack_wait(2ms);
    metrics.observe_ack_wait(5s);
    const std::string text = metrics.exposition(true);
    for (const char* line : {
             "shopcast_publish_requests_total{status=\"200\"} 2\n",
             "shopcast_publish_requests_total{status=\"401\"} 1\n",
             "# TYPE shopcast_publish_ack_duration_seconds histogram\n",
             "shopcast_publish_ack_duration_seconds_bucket{le=\"0.0005\"} 1\n",
             "shopcast_publish_ack_duration_seconds_bucket{le=\"0.001\"} 1\n",
             "shopcast_publish_ack_duration_seconds_bucket{le=\"0.0025\"} 2\n",
             "shopcast_publish_ack_duration_seconds_bucket{le=\"2.5\"} 2\n",
             "shopcast_publish_ack_duration_seconds_bucket{le=\"+Inf\"} 3\n",
             "shopcast_publish_ack_duration_seconds_count 3\n",
             "shopcast_publish_ack_duration_seconds_sum 5.0023\n",
             "shopcast_daemon_reachable 1\n",
         }) {
        EXPECT_NE(text.find(line), std::string::npos) << line << "\nin:\n" << text;
    }
    EXPECT_NE(metrics.exposition(false).find("shopcast_daemon_reachable 0\n"), std::string::npos);
}

// Answers queries as a test tells it to; nullopt stands for a daemon that is away.
class FakeDaemon : public fcgi::DaemonQueries {
  public:
    std::optional<ipc::QueryReply> query(ipc::Query query) override {
        asked.push_back(query);
        return reply;
    }
    std::string last_failure() const override { return "connect /run/x.sock: refused"; }

    std::optional<ipc::QueryReply> reply;
    std::vector<ipc::Query> asked;
};

TEST(OpsEndpoints, RoutesOnlyTheirPaths) {
    EXPECT_EQ(fcgi::ops_endpoint("/metrics"), fcgi::OpsEndpoint::metrics);
    EXPECT_EQ(fcgi::ops_endpoint("/health/ready"), fcgi::OpsEndpoint::ready);
    EXPECT_FALSE(fcgi::ops_endpoint("/api/internal/broadcast"));
    EXPECT_FALSE(fcgi::ops_endpoint("/metrics/"));
}

TEST(OpsEndpoints, ReadySaysWhyNot) {
    fcgi::FcgiMetrics metrics;
    FakeDaemon daemon;
    daemon.reply = ipc::QueryReply{true, {}};
    fcgi::Reply ready = fcgi::answer_ops(fcgi::OpsEndpoint::ready, "GET", daemon, metrics);
    EXPECT_EQ(ready.status, 200);
    EXPECT_EQ(daemon.asked, std::vector<ipc::Query>{ipc::Query::health});

    daemon.reply = ipc::QueryReply{false, "shopcastd is stopping"};
    fcgi::Reply stopping = fcgi::answer_ops(fcgi::OpsEndpoint::ready, "GET", daemon, metrics);
    EXPECT_EQ(stopping.status, 503);
    EXPECT_NE(stopping.body.find(R"("reason":"shopcastd is not ready: shopcastd is stopping")"),
              std::string::npos)
        << stopping.body;

    daemon.reply.reset();
    fcgi::Reply away = fcgi::answer_ops(fcgi::OpsEndpoint::ready, "GET", daemon, metrics);
    EXPECT_EQ(away.status, 503);
    EXPECT_NE(away.body.find("unreachable: connect /run/x.sock: refused"), std::string::npos);
    EXPECT_EQ(fcgi::answer_ops(fcgi::OpsEndpoint::live, "GET", daemon, metrics).status, 200);
    EXPECT_EQ(fcgi::answer_ops(fcgi::OpsEndpoint::live, "POST", daemon, metrics).status, 405);
}

TEST(OpsEndpoints, MetricsJoinBothServices) {
    fcgi::FcgiMetrics metrics;
    FakeDaemon daemon;
    daemon.reply =
        ipc::QueryReply{true, "# TYPE shopcast_connections gauge\nshopcast_connections 2\n"};
    fcgi::Reply both = fcgi::answer_ops(fcgi::OpsEndpoint::metrics, "GET", daemon, metrics);
    EXPECT_EQ(both.status, 200);
    EXPECT_EQ(both.content_type, "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(both.body.rfind("# TYPE shopcast_connections gauge\nshopcast_connections 2\n", 0),
              0u);
    EXPECT_NE(both.body.find("shopcast_daemon_reachable 1\n"), std::string::npos);

    daemon.reply.reset();
    fcgi::Reply alone = fcgi::answer_ops(fcgi::OpsEndpoint::metrics, "GET", daemon, metrics);
    EXPECT_EQ(alone.body.find("shopcast_connections "), std::string::npos);
    EXPECT_NE(alone.body.find("shopcast_daemon_reachable 0\n"), std::string::npos);
}

TEST(IpcQuery, RoundTripsAndRefusesGarbage) {
    for (ipc::Query query : {ipc::Query::metrics, ipc::Query::health}) {
        const std::string frame = ipc::encode_query(query);
        EXPECT_EQ(ipc::decode_query(std::string_view(frame).substr(ipc::kFrameHeaderBytes)), query);
        // A query is not a publish request, nor the other way round.
        EXPECT_FALSE(ipc::decode_request(std::string_view(frame).substr(ipc::kFrameHeaderBytes)));
    }
    const std::string reply = ipc::encode_query_reply({false, "stopping"});
    const auto decoded = ipc::decode_query_reply(std::string_view(reply).substr(4));
    ASSERT_TRUE(decoded);
    EXPECT_FALSE(decoded->ok);
    EXPECT_EQ(decoded->text, "stopping");
    EXPECT_FALSE(ipc::decode_query(std::string_view("\x03\0\0\0\x09", 5)));  // unknown query
    EXPECT_FALSE(ipc::decode_query(std::string_view("\x03\0\0", 3)));        // short
    EXPECT_FALSE(ipc::decode_query_reply(std::string_view(reply).substr(4, 6)));
}

TEST(Log, LevelsParseAndFilter) {
    EXPECT_EQ(parse_log_level("warning"), LogLevel::warning);
    EXPECT_EQ(parse_log_level("debug"), LogLevel::debug);
    EXPECT_FALSE(parse_log_level("WARNING"));
    EXPECT_FALSE(parse_log_level("verbose"));
    set_log_level(LogLevel::warning);
    EXPECT_TRUE(log_enabled(LogLevel::error));
    EXPECT_TRUE(log_enabled(LogLevel::warning));
    EXPECT_FALSE(log_enabled(LogLevel::info));
    set_log_level(LogLevel::info);
    EXPECT_TRUE(log_enabled(LogLevel::info));
    EXPECT_FALSE(log_enabled(LogLevel::debug));
}

// stderr redirected into a pipe for the duration of one test.
class CapturedStderr {
  public:
    CapturedStderr() {
        EXPECT_EQ(::pipe(pipe_.data()), 0);
        saved_ = ::dup(STDERR_FILENO);
        ::dup2(pipe_[1], STDERR_FILENO);
        ::fcntl(pipe_[0], F_SETFL, O_NONBLOCK);
    }
    ~CapturedStderr() {
        ::dup2(saved_, STDERR_FILENO);
        ::close(saved_);
        ::close(pipe_[0]);
        ::close(pipe_[1]);
        ::unsetenv("JOURNAL_STREAM");
        detect_journal_stream();
    }
    // Names the pipe in JOURNAL_STREAM, as systemd names the journal's stream.
    void as_journal() {
        struct stat status {};
        ::fstat(STDERR_FILENO, &status);
        const std::string stream =
            std::to_string(status.st_dev) + ":" + std::to_string(status.st_ino);
        ::setenv("JOURNAL_STREAM", stream.c_str(), 1);
        detect_journal_stream();
    }
    std::string read() {
        std::string text;
        std::array<char, 4096> buffer;
        for (ssize_t n; (n = ::read(pipe_[0], buffer.data(), buffer.size())) > 0;) {
            text.append(buffer.data(), static_cast<std::size_t>(n));
        }
        return text;
    }

  private:
    std::array<int, 2> pipe_{};
    int saved_ = -1;
};

TEST(Log, JournalPrioritiesOnlyWhenStderrIsTheJournal) {
    set_log_program("metrics_test");
    CapturedStderr captured;
    log_pieces(LogLevel::info,
               {"Broadcast sent: ", "shop_updated", " id=", "e:1", " recipients=", LogNumber(12)});
    EXPECT_EQ(captured.read(),
              "metrics_test: info: Broadcast sent: shop_updated id=e:1 recipients=12\n");

    captured.as_journal();
    log_line(LogLevel::error, "e");
    log_line(LogLevel::warning, "w");
    log_line(LogLevel::info, "i");
    log_line(LogLevel::debug, "dropped at the default level");
    EXPECT_EQ(captured.read(),
              "<3>metrics_test: error: e\n<4>metrics_test: warning: w\n<6>metrics_test: info: i\n");

    ::setenv("JOURNAL_STREAM", "1:1", 1);  // another stream: a redirected child's stderr
    detect_journal_stream();
    log_line(LogLevel::warning, "w");
    EXPECT_EQ(captured.read(), "metrics_test: warning: w\n");
}

}  // namespace
}  // namespace shopcast
