// Event cursors "<epoch>:<32 hex digits>" (common/cursor.h): the round trip, opacity (the
// text says nothing about seqs), fresh hellos, strict reading of anything else, fresh epochs.
#include "common/cursor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tests/unit/test_epoch.h"

namespace shopcast {
namespace {

const Epoch kEpoch = test_epoch("k3f9");

TEST(Cursor, RoundTripOfEventAndHelloCursors) {
    const CursorCodec codec(kEpoch);
    const std::vector<std::uint64_t> seqs = {
        0, 1, 2, 17, 255, 256, 9007199254740991u, std::numeric_limits<std::uint64_t>::max()};
    for (const std::uint64_t seq : seqs) {
        for (const std::string& text : {codec.event_cursor(seq), codec.hello_cursor(seq)}) {
            EXPECT_EQ(text.size(), codec.cursor_length()) << text;
            EXPECT_EQ(text.substr(0, 5), "k3f9:") << text;
            const CursorPosition position = codec.read(text);
            EXPECT_EQ(position.reading, CursorReading::ok) << text;
            EXPECT_EQ(position.seq, seq) << text;
        }
    }
}

TEST(Cursor, AnEventHasOneIdAndEveryHelloIsNew) {
    const CursorCodec codec(kEpoch);
    EXPECT_EQ(codec.event_cursor(42), codec.event_cursor(42));
    // A hello for the same point differs each time, and from the event's own id: two
    // connections a while apart cannot tell whether anything was published in between.
    std::set<std::string> hellos;
    for (int i = 0; i < 100; ++i) hellos.insert(codec.hello_cursor(42));
    EXPECT_EQ(hellos.size(), 100u);
    EXPECT_FALSE(hellos.contains(codec.event_cursor(42)));
    // The same codec built again (a restart continuing the epoch) reads and writes the same.
    EXPECT_EQ(CursorCodec(kEpoch).event_cursor(42), codec.event_cursor(42));
    EXPECT_EQ(CursorCodec(kEpoch).read(*hellos.begin()).seq, 42u);
}

// Nothing of a seq or of the distance between two seqs shows in the text: consecutive and
// distant seqs look alike and the bits are spread evenly.
TEST(Cursor, TextRevealsNoSeq) {
    const CursorCodec codec(kEpoch);
    std::vector<std::string> bodies;
    for (std::uint64_t seq = 1; seq <= 512; ++seq) {
        const std::string body = codec.event_cursor(seq).substr(5);
        bodies.push_back(body);
    }
    // Between two neighbours about half the bits differ, wherever they are; a counter in any
    // encoding would change a few low bits only.
    auto differing_bits = [](const std::string& a, const std::string& b) {
        int bits = 0;
        for (std::size_t i = 0; i < a.size(); ++i) {
            const int x = (a[i] <= '9' ? a[i] - '0' : a[i] - 'a' + 10) ^
                          (b[i] <= '9' ? b[i] - '0' : b[i] - 'a' + 10);
            bits += __builtin_popcount(static_cast<unsigned>(x));
        }
        return bits;
    };
    int total = 0;
    for (std::size_t i = 1; i < bodies.size(); ++i) {
        const int bits = differing_bits(bodies[i - 1], bodies[i]);
        EXPECT_GT(bits, 30) << i;  // of 128; a counter flips 1-2 per step on average
        total += bits;
    }
    const double mean = static_cast<double>(total) / static_cast<double>(bodies.size() - 1);
    EXPECT_NEAR(mean, 64.0, 4.0);
    // Text order says nothing about seq order.
    int ascending = 0;
    for (std::size_t i = 1; i < bodies.size(); ++i) ascending += bodies[i - 1] < bodies[i];
    EXPECT_NEAR(ascending, 255, 60);
}

TEST(Cursor, AnythingElseIsMalformedOrAnotherEpoch) {
    const CursorCodec codec(kEpoch);
    const std::string valid = codec.event_cursor(17);
    const std::string body = valid.substr(5);
    const std::vector<std::string> malformed = {
        "",
        ":",
        "k3f9",
        "k3f9:",
        ":" + body,
        "k3f9:17",  // the old decimal form
        "K3F9:" + body,
        "k3f9:" + body.substr(1),
        "k3f9:" + body + "0",
        "k3f9:" + std::string(32, '0'),
        "k3f9:" + std::string(32, 'f'),
        "k3f9:" + body.substr(0, 31) + "g",
        "k3f9:" + body.substr(0, 31) + "A",
        "k3f9::" + body.substr(1),
        " k3f9:" + body,
        "k3f9:" + body + " ",
        "0123456789abcdefg:" + body,  // 17-character epoch
        std::string("k3f9:") + body.substr(0, 31) + std::string(1, '\0'),
        "\xD0\xB0:" + body,
    };
    for (const auto& text : malformed) {
        EXPECT_EQ(codec.read(text).reading, CursorReading::malformed)
            << testing::PrintToString(text);
    }
    // Every single-digit change breaks the check word: a garbled cursor never replays from a
    // wrong place.
    for (std::size_t i = 5; i < valid.size(); ++i) {
        std::string garbled = valid;
        garbled[i] = garbled[i] == '0' ? '1' : '0';
        EXPECT_EQ(codec.read(garbled).reading, CursorReading::malformed) << garbled;
    }
    // A well-formed cursor of another epoch, and one of a same-named epoch with another key.
    EXPECT_EQ(codec.read(foreign_cursor("zz9", 17)).reading, CursorReading::other_epoch);
    EXPECT_EQ(codec.read(CursorCodec(Epoch{"k3f9", {}}).event_cursor(17)).reading,
              CursorReading::malformed);
}

TEST(Cursor, GeneratedEpochsAreSixBase36CharactersWithFreshKeys) {
    std::set<std::string> names;
    std::set<std::string> keys;
    for (int i = 0; i < 50; ++i) {
        const Epoch epoch = Epoch::generate();
        ASSERT_EQ(epoch.name.size(), 6u) << epoch.name;
        EXPECT_TRUE(is_epoch_name(epoch.name)) << epoch.name;
        const CursorCodec codec(epoch);
        EXPECT_EQ(codec.read(codec.event_cursor(1)).seq, 1u);
        names.insert(epoch.name);
        keys.insert(std::string(epoch.key.begin(), epoch.key.end()));
    }
    // 36^6 names and 2^128 keys: fifty draws practically never collide, unless not random.
    EXPECT_GE(names.size(), 49u);
    EXPECT_EQ(keys.size(), 50u);
}

TEST(Cursor, EpochNames) {
    for (const std::string name : {"a", "z9", "0123456789abcdef"}) {
        EXPECT_TRUE(is_epoch_name(name)) << name;
    }
    for (const std::string name : {"", "ABC", "a-b", "a_b", "a b", "0123456789abcdefg"}) {
        EXPECT_FALSE(is_epoch_name(name)) << name;
    }
    EXPECT_THROW(CursorCodec(Epoch{"NOT", {}}), std::invalid_argument);
}

TEST(Cursor, EpochRecordsRoundTrip) {
    const Epoch epoch = Epoch::generate();
    const std::string record = epoch.record();
    EXPECT_EQ(record.size(), epoch.name.size() + 1 + 32) << record;
    const std::optional<Epoch> read = Epoch::from_record(record);
    ASSERT_TRUE(read);
    EXPECT_EQ(read->name, epoch.name);
    EXPECT_EQ(read->key, epoch.key);
    EXPECT_EQ(CursorCodec(*read).event_cursor(7), CursorCodec(epoch).event_cursor(7));
    EXPECT_EQ(test_epoch("k3f9").record().substr(0, 5), "k3f9:");
}

TEST(Cursor, EpochRecordGarbageIsRefused) {
    const std::string hex(32, 'a');
    for (const std::string& text : std::vector<std::string>{
             "", ":", "k3f9", "k3f9:", ":" + hex, "K3F9:" + hex, "k3f9:" + hex.substr(1),
             "k3f9:" + hex + "a", "k3f9:" + hex.substr(1) + "A", "k3f9:" + hex.substr(1) + "g",
             "k3f9::" + hex.substr(1), " k3f9:" + hex, "k3f9:" + hex + "\n",
             "0123456789abcdefg:" + hex, "k-3:" + hex}) {
        EXPECT_FALSE(Epoch::from_record(text).has_value()) << testing::PrintToString(text);
    }
}

}  // namespace
}  // namespace shopcast
