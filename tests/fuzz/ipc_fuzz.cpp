// Fuzz target: IPC framing and payload decoding on arbitrary bytes.
// Properties beyond "no crash": a stream yields the same payloads however it is split; a
// decoded request or ack re-encodes to exactly the payload it came from; and any request
// built from the input survives an encode/decode round trip.
#include "common/ipc.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace ipc = shopcast::ipc;

void fail(const char* what) {
    std::fprintf(stderr, "ipc_fuzz: %s\n", what);
    std::abort();
}

#define FUZZ_CHECK(condition)               \
    do {                                    \
        if (!(condition)) fail(#condition); \
    } while (0)

bool same(const ipc::PublishRequest& a, const ipc::PublishRequest& b) {
    return a.idempotency_key == b.idempotency_key && a.type == b.type && a.shop_id == b.shop_id &&
           a.user_id == b.user_id && a.json == b.json;
}

bool same(const ipc::PublishAck& a, const ipc::PublishAck& b) {
    return a.status == b.status && a.id == b.id && a.recipients == b.recipients;
}

std::string_view payload_of(const std::string& frame) {
    return std::string_view(frame).substr(ipc::kFrameHeaderBytes);
}

void check_payload(std::string_view payload) {
    const auto request = ipc::decode_request(payload);
    const auto ack = ipc::decode_ack(payload);
    FUZZ_CHECK(!(request && ack));
    if (request) {
        const std::string frame = ipc::encode_request(*request);
        FUZZ_CHECK(payload_of(frame) == payload);
        const auto again = ipc::decode_request(payload_of(frame));
        FUZZ_CHECK(again && same(*again, *request));
    }
    if (ack) {
        const std::string frame = ipc::encode_ack(*ack);
        FUZZ_CHECK(payload_of(frame) == payload);
        const auto again = ipc::decode_ack(payload_of(frame));
        FUZZ_CHECK(again && same(*again, *ack));
    }
    // Operators' queries and their replies: never taken for a publish message either.
    const auto query = ipc::decode_query(payload);
    const auto reply = ipc::decode_query_reply(payload);
    FUZZ_CHECK(!(query && (request || ack || reply)));
    FUZZ_CHECK(!(reply && (request || ack)));
    if (query) FUZZ_CHECK(payload_of(ipc::encode_query(*query)) == payload);
    if (reply) FUZZ_CHECK(payload_of(ipc::encode_query_reply(*reply)) == payload);
}

struct Reading {
    bool intact = true;
    std::vector<std::string> payloads;
    std::size_t left_over = 0;
};

// Feeds `bytes` in pieces of 1, 2, ... `max_piece` bytes (cyclically), draining as it goes.
Reading read_stream(std::string_view bytes, std::size_t max_piece) {
    Reading reading;
    ipc::FrameReader reader;
    std::size_t piece = 1;
    for (std::size_t at = 0; at < bytes.size(); at += piece, piece = piece % max_piece + 1) {
        if (!reader.feed(bytes.substr(at, piece))) {
            reading.intact = false;
            return reading;
        }
        while (auto payload = reader.next_payload()) reading.payloads.push_back(*payload);
    }
    // A reader may notice an oversized header only once the frames before it are taken.
    reading.intact = reader.feed({});
    reading.left_over = reader.buffered_bytes();
    return reading;
}

// Cuts `bytes` into five fields at offsets taken from its first bytes.
ipc::PublishRequest request_from(std::string_view bytes) {
    std::string_view rest = bytes;
    const auto take = [&rest](std::size_t length) {
        const std::string_view part = rest.substr(0, length);
        rest.remove_prefix(part.size());
        return std::string(part);
    };
    std::size_t lengths[4] = {};
    for (std::size_t i = 0; i < 4 && i < bytes.size(); ++i) {
        lengths[i] = static_cast<unsigned char>(bytes[i]);
    }
    ipc::PublishRequest request;
    request.idempotency_key = take(lengths[0]);
    request.type = take(lengths[1]);
    request.shop_id = take(lengths[2]);
    request.user_id = take(lengths[3]);
    request.json = std::string(rest);
    return request;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);

    // The input as one payload.
    check_payload(bytes);

    // The input as a stream of frames, read whole and in small pieces.
    ipc::FrameReader whole;
    bool intact = whole.feed(bytes);
    std::vector<std::string> payloads;
    if (intact) {
        while (auto payload = whole.next_payload()) payloads.push_back(*payload);
        intact = whole.feed({});
    }
    const Reading pieces = read_stream(bytes, 7);
    FUZZ_CHECK(pieces.intact == intact);
    if (intact) {
        FUZZ_CHECK(pieces.payloads == payloads);
        FUZZ_CHECK(pieces.left_over == whole.buffered_bytes());
        for (const auto& payload : payloads) {
            FUZZ_CHECK(payload.size() <= ipc::kMaxPayloadBytes);
            check_payload(payload);
        }
    }

    // Any request round-trips, whatever bytes its fields hold.
    const ipc::PublishRequest request = request_from(bytes);
    const std::string frame = ipc::encode_request(request);
    ipc::FrameReader reader;
    FUZZ_CHECK(reader.feed(frame));
    const auto payload = reader.next_payload();
    FUZZ_CHECK(payload.has_value());
    const auto decoded = ipc::decode_request(*payload);
    FUZZ_CHECK(decoded && same(*decoded, request));
    return 0;
}
