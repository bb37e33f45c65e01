// Framed request/acknowledgement protocol between shopcast-fcgi and shopcastd.
//
// Every message is a frame: a 4-byte big-endian payload length, then the payload.
// A payload starts with one kind byte; its fields are 4-byte big-endian lengths
// followed by bytes (strings) or 4-byte big-endian numbers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shopcast::ipc {

inline constexpr std::size_t kFrameHeaderBytes = 4;
inline constexpr std::size_t kMaxPayloadBytes = 256 * 1024;

struct PublishRequest {
    std::string idempotency_key;  // empty when the bot sent none
    std::string type;
    std::string shop_id;
    std::string user_id;
    std::string json;  // validated event object, without "id"
};

enum class AckStatus : std::uint8_t {
    accepted = 0,   // queued now; `id` and `recipients` describe it
    duplicate = 1,  // idempotency key seen before; `id`/`recipients` are the first attempt's
    rejected = 2,   // the daemon refused the request (malformed); nothing was broadcast
    conflict = 3,   // idempotency key seen before with another event; nothing was broadcast
};
inline constexpr AckStatus kLastAckStatus = AckStatus::conflict;

struct PublishAck {
    AckStatus status = AckStatus::rejected;
    std::string id;
    std::uint32_t recipients = 0;
};

// Operators' questions to the daemon (GET /metrics, GET /health/ready through shopcast-fcgi),
// on the same connection as publishing, one request and one reply at a time.
enum class Query : std::uint8_t {
    metrics = 1,  // the daemon's families in Prometheus' text format
    health = 2,   // whether the daemon can accept and deliver events now
};

struct QueryReply {
    bool ok = false;   // health: ready; metrics: always true
    std::string text;  // metrics: the exposition text; health: why not ready (empty when ready)
};

// Each returns a complete frame, header included.
std::string encode_request(const PublishRequest& request);
std::string encode_ack(const PublishAck& ack);
std::string encode_query(Query query);
std::string encode_query_reply(const QueryReply& reply);

// Each takes one payload (without header); nullopt when it is malformed.
std::optional<PublishRequest> decode_request(std::string_view payload);
std::optional<PublishAck> decode_ack(std::string_view payload);
std::optional<Query> decode_query(std::string_view payload);
std::optional<QueryReply> decode_query_reply(std::string_view payload);

// Reassembles frames from a byte stream that arrives split or coalesced at any boundary.
class FrameReader {
  public:
    // Appends received bytes. Returns false once a frame header announces more than
    // kMaxPayloadBytes: the stream is then unusable and the peer should be dropped.
    bool feed(std::string_view bytes);

    // The next complete payload, if one has fully arrived.
    std::optional<std::string> next_payload();

    std::size_t buffered_bytes() const { return buffer_.size() - consumed_; }

  private:
    std::string buffer_;
    std::size_t consumed_ = 0;
    bool broken_ = false;
};

}  // namespace shopcast::ipc
