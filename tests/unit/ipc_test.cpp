// IPC framing between shopcast-fcgi and shopcastd: encode/decode round trips, malformed
// payloads, and frame reassembly from a stream split or coalesced at any boundary.
#include "common/ipc.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shopcast::ipc {
namespace {

bool same(const PublishRequest& a, const PublishRequest& b) {
    return a.idempotency_key == b.idempotency_key && a.type == b.type && a.shop_id == b.shop_id &&
           a.user_id == b.user_id && a.json == b.json;
}

bool same(const PublishAck& a, const PublishAck& b) {
    return a.status == b.status && a.id == b.id && a.recipients == b.recipients;
}

std::string describe(const PublishRequest& r) {
    return "{key=" + testing::PrintToString(r.idempotency_key) +
           " type=" + testing::PrintToString(r.type) +
           " shop=" + testing::PrintToString(r.shop_id) +
           " user=" + testing::PrintToString(r.user_id) + " json=" + std::to_string(r.json.size()) +
           " bytes}";
}

std::uint32_t read_be32(std::string_view bytes, std::size_t at) {
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        value = (value << 8) | static_cast<unsigned char>(bytes[at + i]);
    }
    return value;
}

std::string be32(std::uint32_t value) {
    std::string out(4, '\0');
    for (int i = 3; i >= 0; --i) {
        out[static_cast<std::size_t>(i)] = static_cast<char>(value & 0xFF);
        value >>= 8;
    }
    return out;
}

// The payload of a frame, after checking its header states the payload's length.
std::string payload_of(const std::string& frame) {
    EXPECT_GE(frame.size(), kFrameHeaderBytes);
    if (frame.size() < kFrameHeaderBytes) return {};
    EXPECT_EQ(read_be32(frame, 0), frame.size() - kFrameHeaderBytes) << "header of the frame";
    return frame.substr(kFrameHeaderBytes);
}

std::string all_bytes() {
    std::string bytes;
    for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
    return bytes;
}

PublishRequest request(std::string key, std::string type, std::string shop, std::string user,
                       std::string json) {
    PublishRequest r;
    r.idempotency_key = std::move(key);
    r.type = std::move(type);
    r.shop_id = std::move(shop);
    r.user_id = std::move(user);
    r.json = std::move(json);
    return r;
}

PublishAck ack(AckStatus status, std::string id, std::uint32_t recipients) {
    PublishAck a;
    a.status = status;
    a.id = std::move(id);
    a.recipients = recipients;
    return a;
}

const PublishRequest& typical_request() {
    static const PublishRequest r =
        request("retry-1", "product_added", "123", "",
                R"({"type":"product_added","shopId":123,"productId":456})");
    return r;
}

std::vector<std::pair<std::string, PublishRequest>> request_table() {
    const std::string max_event(64 * 1024, 'j');
    return {
        {"typical", typical_request()},
        {"all_empty", request("", "", "", "", "")},
        {"private",
         request("", "order_status", "", "987654321",
                 R"({"type":"order_status","orderId":1,"status":"paid","userId":987654321})")},
        {"binary_in_every_field", request(all_bytes(), all_bytes(), std::string("a\0b", 3),
                                          std::string(3, '\0'), all_bytes() + all_bytes())},
        {"utf8",
         request("k", "shop_updated", "shop-\xD0\xB0", "u", "{\"name\":\"\xF0\x9F\x98\x80\"}")},
        {"max_sizes", request(std::string(128, '~'), std::string(32, 't'), std::string(64, 's'),
                              std::string(64, 'u'), max_event)},
    };
}

TEST(IpcRequest, RoundTrips) {
    for (const auto& [name, original] : request_table()) {
        SCOPED_TRACE(name);
        const std::string frame = encode_request(original);
        const auto decoded = decode_request(payload_of(frame));
        ASSERT_TRUE(decoded.has_value());
        EXPECT_TRUE(same(*decoded, original)) << describe(*decoded) << " != " << describe(original);
    }
}

// The payload layout documented in ipc.h: a kind byte, then length-prefixed strings.
TEST(IpcRequest, PayloadIsKindByteThenLengthPrefixedFields) {
    const PublishRequest r = request("key", "type", "shop", "user", "{}");
    const std::string payload = payload_of(encode_request(r));
    std::vector<std::string> fields;
    std::size_t at = 1;
    while (at + 4 <= payload.size()) {
        const std::uint32_t length = read_be32(payload, at);
        at += 4;
        ASSERT_LE(at + length, payload.size());
        fields.push_back(payload.substr(at, length));
        at += length;
    }
    EXPECT_EQ(at, payload.size());
    EXPECT_EQ(fields, (std::vector<std::string>{"key", "type", "shop", "user", "{}"}));
}

// A request whose payload is exactly kMaxPayloadBytes is a legal frame.
TEST(IpcRequest, PayloadOfExactlyMaxBytesRoundTrips) {
    PublishRequest r = typical_request();
    r.json.clear();
    const std::size_t overhead = encode_request(r).size() - kFrameHeaderBytes;
    r.json.assign(kMaxPayloadBytes - overhead, 'x');
    const std::string frame = encode_request(r);
    ASSERT_EQ(frame.size(), kFrameHeaderBytes + kMaxPayloadBytes);
    FrameReader reader;
    ASSERT_TRUE(reader.feed(frame));
    const auto payload = reader.next_payload();
    ASSERT_TRUE(payload.has_value());
    const auto decoded = decode_request(*payload);
    ASSERT_TRUE(decoded.has_value());
    EXPECT_TRUE(same(*decoded, r));
}

TEST(IpcAck, RoundTrips) {
    const std::vector<std::pair<std::string, PublishAck>> table = {
        {"accepted", ack(AckStatus::accepted, "k3f9:17", 3)},
        {"duplicate", ack(AckStatus::duplicate, "k3f9:2", 0)},
        {"rejected_empty", ack(AckStatus::rejected, "", 0)},
        {"conflict", ack(AckStatus::conflict, "", 0)},
        {"max_recipients", ack(AckStatus::accepted, "e:18446744073709551615", 0xFFFFFFFFu)},
        {"one_recipient", ack(AckStatus::accepted, "z:1", 1)},
        {"binary_id", ack(AckStatus::accepted, all_bytes(), 256)},
        {"long_id", ack(AckStatus::accepted, std::string(4096, 'i'), 65536)},
    };
    for (const auto& [name, original] : table) {
        SCOPED_TRACE(name);
        const auto decoded = decode_ack(payload_of(encode_ack(original)));
        ASSERT_TRUE(decoded.has_value());
        EXPECT_TRUE(same(*decoded, original))
            << "status " << static_cast<int>(decoded->status) << " id "
            << testing::PrintToString(decoded->id) << " recipients " << decoded->recipients;
    }
}

// The kind byte keeps a request from being read as an acknowledgement and vice versa.
TEST(IpcDecode, KindsAreNotConfused) {
    const std::string request_payload = payload_of(encode_request(typical_request()));
    const std::string ack_payload = payload_of(encode_ack(ack(AckStatus::accepted, "a:1", 2)));
    EXPECT_NE(request_payload[0], ack_payload[0]);
    EXPECT_FALSE(decode_ack(request_payload).has_value());
    EXPECT_FALSE(decode_request(ack_payload).has_value());
}

TEST(IpcDecode, EveryTruncationIsRefused) {
    const std::vector<std::pair<std::string, std::string>> payloads = {
        {"request", payload_of(encode_request(typical_request()))},
        {"empty_request", payload_of(encode_request(request("", "", "", "", "")))},
        {"ack", payload_of(encode_ack(ack(AckStatus::accepted, "k3f9:17", 3)))},
        {"empty_ack", payload_of(encode_ack(ack(AckStatus::rejected, "", 0)))},
    };
    for (const auto& [name, payload] : payloads) {
        for (std::size_t length = 0; length < payload.size(); ++length) {
            // A copy of exactly `length` bytes, so reading past the end is visible to ASan.
            const std::string truncated = payload.substr(0, length);
            EXPECT_FALSE(decode_request(truncated).has_value()) << name << " cut to " << length;
            EXPECT_FALSE(decode_ack(truncated).has_value()) << name << " cut to " << length;
        }
    }
}

TEST(IpcDecode, TrailingBytesAreRefused) {
    const std::string request_payload = payload_of(encode_request(typical_request()));
    const std::string ack_payload = payload_of(encode_ack(ack(AckStatus::accepted, "a:1", 2)));
    for (const std::string& extra : {std::string(1, '\0'), std::string("x"), be32(0)}) {
        EXPECT_FALSE(decode_request(request_payload + extra).has_value());
        EXPECT_FALSE(decode_ack(ack_payload + extra).has_value());
    }
}

TEST(IpcDecode, UnknownKindRefused) {
    std::string request_payload = payload_of(encode_request(typical_request()));
    std::string ack_payload = payload_of(encode_ack(ack(AckStatus::accepted, "a:1", 2)));
    const char request_kind = request_payload[0];
    const char ack_kind = ack_payload[0];
    for (int kind = 0; kind < 256; ++kind) {
        const char k = static_cast<char>(kind);
        request_payload[0] = k;
        ack_payload[0] = k;
        if (k != request_kind) {
            EXPECT_FALSE(decode_request(request_payload)) << kind;
        }
        if (k != ack_kind) {
            EXPECT_FALSE(decode_ack(ack_payload)) << kind;
        }
    }
}

// Each length field of a request, set beyond the bytes that follow it, is refused; a huge
// length must not overflow an offset computation.
TEST(IpcDecode, LengthFieldsBeyondPayloadRefused) {
    const std::string payload = payload_of(encode_request(typical_request()));
    std::vector<std::size_t> length_offsets;
    for (std::size_t at = 1; at + 4 <= payload.size(); at += 4 + read_be32(payload, at)) {
        length_offsets.push_back(at);
    }
    ASSERT_EQ(length_offsets.size(), 5u);
    for (const std::size_t at : length_offsets) {
        const std::uint32_t remaining = static_cast<std::uint32_t>(payload.size() - at - 4);
        for (const std::uint32_t bad : {remaining + 1, 0x7FFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFCu}) {
            std::string garbled = payload;
            garbled.replace(at, 4, be32(bad));
            EXPECT_FALSE(decode_request(garbled).has_value()) << "length at " << at << " = " << bad;
        }
    }
}

// The ack status byte is found by comparing encodings; values beyond AckStatus are refused.
TEST(IpcDecode, UnknownAckStatusRefused) {
    const std::string accepted = payload_of(encode_ack(ack(AckStatus::accepted, "a:1", 2)));
    const std::string rejected = payload_of(encode_ack(ack(AckStatus::rejected, "a:1", 2)));
    ASSERT_EQ(accepted.size(), rejected.size());
    std::vector<std::size_t> differing;
    for (std::size_t i = 0; i < accepted.size(); ++i) {
        if (accepted[i] != rejected[i]) differing.push_back(i);
    }
    ASSERT_EQ(differing.size(), 1u) << "status should be one byte (or one number's low byte)";
    for (const int value : {4, 5, 0x7F, 0xFF}) {
        std::string garbled = accepted;
        garbled[differing[0]] = static_cast<char>(value);
        EXPECT_FALSE(decode_ack(garbled).has_value()) << "status " << value;
    }
}

TEST(IpcDecode, GarbageNeverCrashes) {
    // Overwrite each 4-byte window with extreme values: any result is fine but a crash.
    const std::string payload = payload_of(encode_request(typical_request()));
    const std::string ack_payload = payload_of(encode_ack(ack(AckStatus::duplicate, "x:9", 9)));
    for (const std::string& base : {payload, ack_payload}) {
        for (std::size_t at = 0; at + 4 <= base.size(); ++at) {
            for (const std::uint32_t value : {0u, 1u, 0x80000000u, 0xFFFFFFFFu}) {
                std::string garbled = base;
                garbled.replace(at, 4, be32(value));
                (void)decode_request(garbled);
                (void)decode_ack(garbled);
            }
        }
    }
    EXPECT_FALSE(decode_request("").has_value());
    EXPECT_FALSE(decode_ack("").has_value());
}

// ---- FrameReader ----

// A stream of assorted frames and the payloads it carries, in order.
struct Stream {
    std::string bytes;
    std::vector<std::string> payloads;
};

Stream sample_stream() {
    Stream s;
    const auto add = [&s](const std::string& frame) {
        s.bytes += frame;
        s.payloads.push_back(frame.substr(kFrameHeaderBytes));
    };
    for (const auto& [name, r] : request_table()) {
        if (name != "max_sizes") add(encode_request(r));
    }
    add(encode_ack(ack(AckStatus::accepted, "k:1", 1)));
    add(be32(0));  // an empty payload is still a frame
    add(encode_ack(ack(AckStatus::duplicate, "", 0)));
    add(be32(3) + std::string("\0\0\0", 3));
    return s;
}

std::vector<std::string> drain(FrameReader& reader) {
    std::vector<std::string> out;
    while (auto payload = reader.next_payload()) out.push_back(std::move(*payload));
    return out;
}

TEST(FrameReader, NothingBeforeAFrameIsComplete) {
    FrameReader reader;
    EXPECT_FALSE(reader.next_payload().has_value());
    EXPECT_EQ(reader.buffered_bytes(), 0u);
    const std::string frame = encode_ack(ack(AckStatus::accepted, "k:1", 1));
    ASSERT_TRUE(reader.feed(std::string_view(frame).substr(0, frame.size() - 1)));
    EXPECT_FALSE(reader.next_payload().has_value());
    EXPECT_EQ(reader.buffered_bytes(), frame.size() - 1);
    ASSERT_TRUE(reader.feed(std::string_view(frame).substr(frame.size() - 1)));
    EXPECT_EQ(reader.next_payload(), frame.substr(kFrameHeaderBytes));
    EXPECT_FALSE(reader.next_payload().has_value());
    EXPECT_EQ(reader.buffered_bytes(), 0u);
}

TEST(FrameReader, AllFramesCoalescedInOneFeed) {
    const Stream s = sample_stream();
    FrameReader reader;
    ASSERT_TRUE(reader.feed(s.bytes));
    EXPECT_EQ(drain(reader), s.payloads);
    EXPECT_EQ(reader.buffered_bytes(), 0u);
}

TEST(FrameReader, FedByteByByte) {
    const Stream s = sample_stream();
    FrameReader reader;
    std::vector<std::string> received;
    for (const char byte : s.bytes) {
        ASSERT_TRUE(reader.feed(std::string_view(&byte, 1)));
        for (auto& payload : drain(reader)) received.push_back(std::move(payload));
    }
    EXPECT_EQ(received, s.payloads);
    EXPECT_EQ(reader.buffered_bytes(), 0u);
}

TEST(FrameReader, FedByteByByteDrainedAtEnd) {
    const Stream s = sample_stream();
    FrameReader reader;
    for (const char byte : s.bytes) ASSERT_TRUE(reader.feed(std::string_view(&byte, 1)));
    EXPECT_EQ(reader.buffered_bytes(), s.bytes.size());
    EXPECT_EQ(drain(reader), s.payloads);
}

TEST(FrameReader, SplitAtEveryPosition) {
    const Stream s = sample_stream();
    for (std::size_t split = 0; split <= s.bytes.size(); ++split) {
        FrameReader reader;
        ASSERT_TRUE(reader.feed(std::string_view(s.bytes).substr(0, split)));
        std::vector<std::string> received = drain(reader);
        ASSERT_TRUE(reader.feed(std::string_view(s.bytes).substr(split)));
        for (auto& payload : drain(reader)) received.push_back(std::move(payload));
        ASSERT_EQ(received, s.payloads) << "split at " << split;
        EXPECT_EQ(reader.buffered_bytes(), 0u);
    }
}

// Many small frames read in the ~4 KB pieces lws' RAW_RX delivers.
TEST(FrameReader, ManyFramesInSocketSizedPieces) {
    std::string bytes;
    std::vector<std::string> expected;
    for (std::uint32_t i = 0; i < 20000; ++i) {
        const std::string frame = encode_ack(ack(AckStatus::accepted, "e:" + std::to_string(i), i));
        bytes += frame;
        expected.push_back(frame.substr(kFrameHeaderBytes));
    }
    FrameReader reader;
    std::vector<std::string> received;
    for (std::size_t at = 0; at < bytes.size(); at += 4093) {
        ASSERT_TRUE(reader.feed(std::string_view(bytes).substr(at, 4093)));
        for (auto& payload : drain(reader)) received.push_back(std::move(payload));
    }
    EXPECT_EQ(received, expected);
    EXPECT_EQ(reader.buffered_bytes(), 0u);
}

TEST(FrameReader, HeaderAnnouncingMaxIsAccepted) {
    FrameReader reader;
    EXPECT_TRUE(reader.feed(be32(static_cast<std::uint32_t>(kMaxPayloadBytes))));
    EXPECT_FALSE(reader.next_payload().has_value());
    EXPECT_TRUE(reader.feed(std::string(kMaxPayloadBytes, 'm')));
    const auto payload = reader.next_payload();
    ASSERT_TRUE(payload.has_value());
    EXPECT_EQ(payload->size(), kMaxPayloadBytes);
}

TEST(FrameReader, HeaderAnnouncingMoreThanMaxBreaksTheStream) {
    const std::vector<std::pair<std::string, std::uint32_t>> table = {
        {"max_plus_1", static_cast<std::uint32_t>(kMaxPayloadBytes + 1)},
        {"2x_max", static_cast<std::uint32_t>(2 * kMaxPayloadBytes)},
        {"2p31", 0x80000000u},
        {"all_ones", 0xFFFFFFFFu},
    };
    for (const auto& [name, length] : table) {
        SCOPED_TRACE(name);
        {
            FrameReader reader;
            EXPECT_FALSE(reader.feed(be32(length)));
            EXPECT_FALSE(reader.next_payload().has_value());
            // Once broken, the stream stays broken.
            EXPECT_FALSE(reader.feed(encode_ack(ack(AckStatus::accepted, "k:1", 1))));
            EXPECT_FALSE(reader.next_payload().has_value());
        }
        {
            // The header split over two reads.
            FrameReader reader;
            const std::string header = be32(length);
            EXPECT_TRUE(reader.feed(header.substr(0, 2)));
            EXPECT_FALSE(reader.feed(header.substr(2)));
        }
        {
            // After a good frame in the same read: reported by that feed, or at the latest
            // by the next one once the good frame has been taken.
            FrameReader reader;
            const std::string good = encode_ack(ack(AckStatus::accepted, "k:1", 1));
            (void)reader.feed(good + be32(length) + "xyz");
            (void)drain(reader);
            EXPECT_FALSE(reader.feed("z"));
        }
    }
}

TEST(FrameReader, EmptyFeedIsHarmless) {
    FrameReader reader;
    EXPECT_TRUE(reader.feed({}));
    EXPECT_FALSE(reader.next_payload().has_value());
    EXPECT_EQ(reader.buffered_bytes(), 0u);
}

}  // namespace
}  // namespace shopcast::ipc
