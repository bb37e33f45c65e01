#include "daemon/core/frame_rules.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

namespace shopcast {
namespace {

TEST(FrameRules, Utf8AcceptsWellFormedText) {
    const std::string cases[] = {
        "",
        "plain ascii",
        "Чай",
        "€",
        "𝄞 (U+1D11E)",
        "\xf4\x8f\xbf\xbf",  // U+10FFFF, the last code point
        "\xed\x9f\xbf",      // U+D7FF, just below the surrogates
        "\xee\x80\x80",      // U+E000, just above them
        std::string("nul\0inside", 10),
    };
    for (const std::string& text : cases) EXPECT_TRUE(is_valid_utf8(text)) << text;
}

TEST(FrameRules, Utf8RefusesMalformedSequences) {
    const char* const cases[] = {
        "\x80",              // a lone continuation byte
        "\xc0\xaf",          // overlong '/'
        "\xc1\xbf",          // overlong
        "\xe0\x80\xaf",      // overlong, three bytes
        "\xf0\x80\x80\xaf",  // overlong, four bytes
        "\xed\xa0\x80",      // a surrogate (U+D800)
        "\xed\xbf\xbf",      // a surrogate (U+DFFF)
        "\xf4\x90\x80\x80",  // above U+10FFFF
        "\xf5\x80\x80\x80",  // never a lead byte
        "\xff",              // never in UTF-8
        "\xce",              // cut short at the end
        "\xe2\x82",          // cut short at the end
        "\xe2\x28\xa1",      // a bad second byte
        "\xf0\x9f\x98",      // cut short at the end
        "ok \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80 then more",
    };
    for (const char* text : cases) EXPECT_FALSE(is_valid_utf8(text)) << text;
}

TEST(FrameRules, CloseCodesAPeerMaySend) {
    for (unsigned code : {1000u, 1001u, 1002u, 1003u, 1007u, 1008u, 1009u, 1010u, 1011u, 3000u,
                          3999u, 4000u, 4999u}) {
        EXPECT_TRUE(is_valid_close_code(code)) << code;
    }
    for (unsigned code : {0u, 999u, 1004u, 1005u, 1006u, 1012u, 1013u, 1014u, 1015u, 1016u, 1100u,
                          2000u, 2999u, 5000u, 65535u}) {
        EXPECT_FALSE(is_valid_close_code(code)) << code;
    }
}

TEST(FrameRules, PeerCloseIsEchoedOrFailed) {
    struct Case {
        std::string payload;
        bool echo;
        int code;
    };
    const Case cases[] = {
        {"", true, 0},
        {std::string("\x03\xe8", 2), true, 0},            // 1000
        {std::string("\x03\xe8") + "bye", true, 0},       // 1000 with a reason
        {std::string("\x0f\xa0") + "Чай", true, 0},       // 4000, UTF-8 reason
        {std::string("\x03", 1), false, 1002},            // one byte: half a code
        {std::string("\x13\x88", 2), false, 1002},        // 5000
        {std::string("\x03\xed", 2), false, 1002},        // 1005
        {std::string("\x03\xee", 2), false, 1002},        // 1006
        {std::string("\x03\xe7", 2), false, 1002},        // 999
        {std::string("\x03\xe8") + "\xff", false, 1007},  // 1000, reason not UTF-8
    };
    for (const Case& c : cases) {
        const PeerCloseVerdict verdict = judge_peer_close(c.payload);
        EXPECT_EQ(verdict.echo, c.echo) << c.payload.size();
        if (!c.echo) {
            EXPECT_EQ(verdict.code, c.code) << c.payload.size();
        }
    }
}

// A client frame: FIN + opcode, the length in its 7-bit, 16-bit or 64-bit form, a key when
// masked, then the payload (its bytes are irrelevant to the scanner).
std::vector<unsigned char> frame(std::uint64_t length, bool masked, unsigned char opcode = 0x1) {
    std::vector<unsigned char> out{static_cast<unsigned char>(0x80 | opcode)};
    const unsigned char mask_bit = masked ? 0x80 : 0x00;
    if (length < 126) {
        out.push_back(static_cast<unsigned char>(mask_bit | length));
    } else if (length < 65536) {
        out.push_back(mask_bit | 126);
        out.push_back(static_cast<unsigned char>(length >> 8));
        out.push_back(static_cast<unsigned char>(length));
    } else {
        out.push_back(mask_bit | 127);
        for (int shift = 56; shift >= 0; shift -= 8) {
            out.push_back(static_cast<unsigned char>(length >> shift));
        }
    }
    if (masked) out.insert(out.end(), {0x37, 0xfa, 0x21, 0x3d});
    // A payload that looks like frame headers without a mask, to show it is skipped.
    out.insert(out.end(), static_cast<std::size_t>(length), 0x01);
    return out;
}

std::vector<unsigned char> concat(std::initializer_list<std::vector<unsigned char>> parts) {
    std::vector<unsigned char> out;
    for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
    return out;
}

TEST(FrameHeaderScanner, MaskedFramesOfEveryLengthFormPass) {
    const auto stream = concat({frame(0, true), frame(5, true), frame(125, true), frame(126, true),
                                frame(70000, true), frame(3, true, 0x9), frame(2, true, 0x8)});
    FrameHeaderScanner scanner;
    EXPECT_EQ(scanner.feed(stream), stream.size());
    EXPECT_FALSE(scanner.unmasked_frame_seen());
}

TEST(FrameHeaderScanner, WhatComesBeforeAnUnmaskedFramePassesNothingAfter) {
    const auto before = concat({frame(200, true), frame(1, true)});
    for (const auto& unmasked : {frame(0, false), frame(10, false), frame(300, false),
                                 frame(4, false, 0x9), frame(2, false, 0x8)}) {
        FrameHeaderScanner scanner;
        EXPECT_EQ(scanner.feed(concat({before, unmasked, frame(3, true)})), before.size());
        EXPECT_TRUE(scanner.unmasked_frame_seen());
        EXPECT_EQ(scanner.feed(frame(3, true)), 0u);
    }
}

TEST(FrameHeaderScanner, BytesMayArriveOneAtATime) {
    const auto before = concat({frame(126, true), frame(70000, true)});
    const auto stream = concat({before, frame(7, false)});
    FrameHeaderScanner scanner;
    std::size_t passed = 0;
    for (std::size_t at = 0; at < stream.size(); ++at) {
        passed += scanner.feed(std::span(stream).subspan(at, 1));
    }
    EXPECT_TRUE(scanner.unmasked_frame_seen());
    // The unmasked frame's first byte says nothing yet; its second one tells.
    EXPECT_EQ(passed, before.size() + 1);
}

// lws answers PINGs without telling the protocol: the scanner's count is what the action
// budget charges, so every PING header must count once, split anywhere, and nothing else.
TEST(FrameHeaderScanner, CountsEveryPingOnce) {
    const auto stream = concat({frame(3, true, 0x9), frame(125, true, 0x9), frame(2, true, 0xa),
                                frame(9, true), frame(0, true, 0x9), frame(200, true, 0x2)});
    FrameHeaderScanner whole;
    whole.feed(stream);
    EXPECT_EQ(whole.take_pings(), 3u);
    EXPECT_EQ(whole.take_pings(), 0u);

    FrameHeaderScanner split;
    std::uint64_t pings = 0;
    for (std::size_t at = 0; at < stream.size(); ++at) {
        split.feed(std::span(stream).subspan(at, 1));
        pings += split.take_pings();
    }
    EXPECT_EQ(pings, 3u);
}

}  // namespace
}  // namespace shopcast
