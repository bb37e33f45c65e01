#include "common/ipc.h"

namespace shopcast::ipc {
namespace {

enum class MessageKind : std::uint8_t {
    publish_request = 1,
    publish_ack = 2,
    query = 3,
    query_reply = 4,
};

void put_u32(std::string& out, std::uint32_t value) {
    out.push_back(static_cast<char>((value >> 24) & 0xff));
    out.push_back(static_cast<char>((value >> 16) & 0xff));
    out.push_back(static_cast<char>((value >> 8) & 0xff));
    out.push_back(static_cast<char>(value & 0xff));
}

void put_field(std::string& out, std::string_view bytes) {
    put_u32(out, static_cast<std::uint32_t>(bytes.size()));
    out.append(bytes);
}

// Prepends the frame header once the payload is complete.
std::string finish_frame(std::string payload) {
    std::string frame;
    frame.reserve(kFrameHeaderBytes + payload.size());
    put_u32(frame, static_cast<std::uint32_t>(payload.size()));
    frame.append(payload);
    return frame;
}

std::uint32_t read_u32(std::string_view bytes) {
    return (std::uint32_t{static_cast<unsigned char>(bytes[0])} << 24) |
           (std::uint32_t{static_cast<unsigned char>(bytes[1])} << 16) |
           (std::uint32_t{static_cast<unsigned char>(bytes[2])} << 8) |
           std::uint32_t{static_cast<unsigned char>(bytes[3])};
}

// Reads fields in order; any overrun marks the whole payload malformed.
class FieldCursor {
  public:
    explicit FieldCursor(std::string_view payload) : rest_(payload) {}

    bool take_kind(MessageKind expected) {
        if (rest_.empty() || static_cast<std::uint8_t>(rest_[0]) != std::uint8_t(expected)) {
            return fail();
        }
        rest_.remove_prefix(1);
        return true;
    }
    bool take_u32(std::uint32_t& value) {
        if (rest_.size() < 4) return fail();
        value = read_u32(rest_);
        rest_.remove_prefix(4);
        return true;
    }
    bool take_field(std::string& value) {
        std::uint32_t length = 0;
        if (!take_u32(length) || rest_.size() < length) return fail();
        value.assign(rest_.substr(0, length));
        rest_.remove_prefix(length);
        return true;
    }
    bool at_end() const { return rest_.empty() && ok_; }

  private:
    bool fail() {
        ok_ = false;
        return false;
    }
    std::string_view rest_;
    bool ok_ = true;
};

}  // namespace

std::string encode_request(const PublishRequest& request) {
    std::string payload;
    payload.push_back(static_cast<char>(MessageKind::publish_request));
    put_field(payload, request.idempotency_key);
    put_field(payload, request.type);
    put_field(payload, request.shop_id);
    put_field(payload, request.user_id);
    put_field(payload, request.json);
    return finish_frame(std::move(payload));
}

std::string encode_ack(const PublishAck& ack) {
    std::string payload;
    payload.push_back(static_cast<char>(MessageKind::publish_ack));
    put_u32(payload, static_cast<std::uint32_t>(ack.status));
    put_field(payload, ack.id);
    put_u32(payload, ack.recipients);
    return finish_frame(std::move(payload));
}

std::optional<PublishRequest> decode_request(std::string_view payload) {
    PublishRequest request;
    FieldCursor cursor(payload);
    bool ok = cursor.take_kind(MessageKind::publish_request) &&
              cursor.take_field(request.idempotency_key) && cursor.take_field(request.type) &&
              cursor.take_field(request.shop_id) && cursor.take_field(request.user_id) &&
              cursor.take_field(request.json);
    if (!ok || !cursor.at_end()) return std::nullopt;
    return request;
}

std::optional<PublishAck> decode_ack(std::string_view payload) {
    PublishAck ack;
    FieldCursor cursor(payload);
    std::uint32_t status = 0;
    bool ok = cursor.take_kind(MessageKind::publish_ack) && cursor.take_u32(status) &&
              cursor.take_field(ack.id) && cursor.take_u32(ack.recipients);
    if (!ok || !cursor.at_end() || status > std::uint32_t(kLastAckStatus)) return std::nullopt;
    ack.status = static_cast<AckStatus>(status);
    return ack;
}

std::string encode_query(Query query) {
    std::string payload;
    payload.push_back(static_cast<char>(MessageKind::query));
    put_u32(payload, static_cast<std::uint32_t>(query));
    return finish_frame(std::move(payload));
}

std::string encode_query_reply(const QueryReply& reply) {
    std::string payload;
    payload.push_back(static_cast<char>(MessageKind::query_reply));
    put_u32(payload, reply.ok ? 1 : 0);
    put_field(payload, reply.text);
    return finish_frame(std::move(payload));
}

std::optional<Query> decode_query(std::string_view payload) {
    FieldCursor cursor(payload);
    std::uint32_t query = 0;
    if (!cursor.take_kind(MessageKind::query) || !cursor.take_u32(query) || !cursor.at_end()) {
        return std::nullopt;
    }
    if (query != std::uint32_t(Query::metrics) && query != std::uint32_t(Query::health)) {
        return std::nullopt;
    }
    return static_cast<Query>(query);
}

std::optional<QueryReply> decode_query_reply(std::string_view payload) {
    QueryReply reply;
    FieldCursor cursor(payload);
    std::uint32_t ok = 0;
    if (!cursor.take_kind(MessageKind::query_reply) || !cursor.take_u32(ok) ||
        !cursor.take_field(reply.text) || !cursor.at_end() || ok > 1) {
        return std::nullopt;
    }
    reply.ok = ok == 1;
    return reply;
}

bool FrameReader::feed(std::string_view bytes) {
    if (broken_) return false;
    if (consumed_ > 0 && consumed_ == buffer_.size()) {
        buffer_.clear();
        consumed_ = 0;
    }
    buffer_.append(bytes);
    if (buffer_.size() - consumed_ >= kFrameHeaderBytes &&
        read_u32(std::string_view(buffer_).substr(consumed_)) > kMaxPayloadBytes) {
        broken_ = true;
    }
    return !broken_;
}

std::optional<std::string> FrameReader::next_payload() {
    if (broken_) return std::nullopt;
    std::string_view pending = std::string_view(buffer_).substr(consumed_);
    if (pending.size() < kFrameHeaderBytes) return std::nullopt;
    std::uint32_t length = read_u32(pending);
    if (length > kMaxPayloadBytes) {
        broken_ = true;
        return std::nullopt;
    }
    if (pending.size() < kFrameHeaderBytes + length) return std::nullopt;
    std::string payload(pending.substr(kFrameHeaderBytes, length));
    consumed_ += kFrameHeaderBytes + length;
    // Compact once the consumed prefix dominates, so a long-lived stream does not grow.
    if (consumed_ > 64 * 1024 && consumed_ * 2 > buffer_.size()) {
        buffer_.erase(0, consumed_);
        consumed_ = 0;
    }
    if (buffered_bytes() >= kFrameHeaderBytes &&
        read_u32(std::string_view(buffer_).substr(consumed_)) > kMaxPayloadBytes) {
        broken_ = true;
    }
    return payload;
}

}  // namespace shopcast::ipc
