// The Hub fed from the shared stream, without sockets: a transport that records what each
// session is sent, and the steps the stream-mode tests repeat (a hub on a stream, an entry
// appended and delivered, a session drained, a resume).
#pragma once

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/cursor.h"
#include "daemon/core/hub.h"
#include "tests/unit/test_epoch.h"

namespace shopcast::test {

// The position of stream entry id "<ms>-<n>".
constexpr std::uint64_t position_of(std::uint64_t ms, std::uint64_t n = 0) {
    return ms << 20 | n;
}

// What a session was sent, as the browser would read it.
struct Sent {
    std::string type;
    std::string id;
    std::string reason;
};

// Stands in for lws: every frame a session is sent, parsed; sockets always drain.
class RecordingTransport : public SessionTransport {
  public:
    SendResult send(Session& session, std::span<const SharedFrame* const> frames) override {
        for (const SharedFrame* frame : frames) {
            rapidjson::Document doc;
            const std::string_view text = frame->payload();
            doc.Parse(text.data(), text.size());
            const auto member = [&doc](const char* name) -> std::string {
                if (!doc.IsObject() || !doc.HasMember(name) || !doc[name].IsString()) return {};
                return doc[name].GetString();
            };
            sent[&session].push_back(Sent{member("type"), member("id"), member("reason")});
        }
        return SendResult::sent;
    }
    void wake(Session& session) override { woken[&session] = true; }
    std::map<const Session*, std::vector<Sent>> sent;
    std::map<const Session*, bool> woken;
};

// One Hub per test, reading the stream of epoch `epoch_name`; its own history's epoch
// ("local0") is replaced by the stream's at start.
class StreamHubTest : public testing::Test {
  protected:
    explicit StreamHubTest(const std::string& epoch_name)
        : epoch_(test_epoch(epoch_name)), codec_(epoch_) {}

    // A history of `capacity` events, in the stream since `floor`.
    void start_hub(std::size_t capacity, std::uint64_t floor, HubLimits limits = {}) {
        hub_ = std::make_unique<Hub>(limits, History(test_epoch("local0"), capacity, 1 << 24),
                                     IdempotencyCache(300, 100), authenticator_, transport_,
                                     Hub::Clocks{[] { return 1000; }, [] { return 1000; }});
        hub_->reset_stream(epoch_, floor, "epoch_changed");
    }

    // The stream's entry at `position`, read and delivered.
    void append(std::uint64_t position, const StreamedEvent& event) {
        ASSERT_TRUE(hub_->append_from_stream(position, event));
        hub_->deliver_published();
    }

    // Everything the session is sent until it has nothing more to write.
    std::vector<Sent> drain(Session& session) {
        for (int guard = 0; guard < 100; ++guard) {
            transport_.woken.erase(&session);
            hub_->on_writeable(session);
            if (!transport_.woken[&session]) break;
        }
        std::vector<Sent> messages = std::move(transport_.sent[&session]);
        transport_.sent.erase(&session);
        return messages;
    }

    // A new session that has read its hello and asked to resume after `since`.
    Session& open_resumed(const std::string& since) {
        Session& session = hub_->open_session("10.0.0.1");
        drain(session);  // hello
        hub_->on_text_message(session, R"({"action":"resume","since":")" + since + "\"}");
        return session;
    }

    static std::vector<std::string> ids_of(const std::vector<Sent>& messages) {
        std::vector<std::string> ids;
        for (const Sent& message : messages) ids.push_back(message.id);
        return ids;
    }

    const Epoch epoch_;
    CursorCodec codec_;
    TelegramAuthenticator authenticator_{TelegramAuthConfig{}};
    RecordingTransport transport_;
    std::unique_ptr<Hub> hub_;
};

}  // namespace shopcast::test
