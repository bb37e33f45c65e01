// The publish secret check (DESIGN.md "The secret"): exact match only, rotation through a
// previous secret, and a minimum length enforced at start-up.
#include "common/secret.h"

#include "common/config.h"

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace shopcast {
namespace {

const std::string kCurrent = "current-secret-0123456789abcdefXY";   // 33 characters
const std::string kPrevious = "previous-secret-0123456789abcdefZ";  // 33 characters
const std::string kExactly32 = "0123456789abcdef0123456789ABCDEF";  // 32 characters

struct MatchCase {
    std::string name;
    std::string presented;
    bool matches;
};

TEST(SecretVerifier, MatchesOnlyTheExactSecret) {
    ASSERT_GT(kCurrent.size(), kMinSecretLength);
    const SecretVerifier verifier(kCurrent, "");
    std::string changed_case = kCurrent;
    changed_case[0] = 'C';
    const std::vector<MatchCase> table = {
        {"equal", kCurrent, true},
        {"wrong_same_length", std::string(kCurrent.size(), 'x'), false},
        {"prefix", kCurrent.substr(0, kCurrent.size() - 1), false},
        {"first_half", kCurrent.substr(0, kCurrent.size() / 2), false},
        {"plus_one_char", kCurrent + "x", false},
        {"plus_newline", kCurrent + "\n", false},
        {"plus_nul", kCurrent + std::string(1, '\0'), false},
        {"leading_space", " " + kCurrent, false},
        {"changed_case", changed_case, false},
        {"empty", "", false},
        {"previous_not_configured", kPrevious, false},
        {"twice", kCurrent + kCurrent, false},
    };
    for (const auto& c : table) {
        EXPECT_EQ(verifier.matches(c.presented), c.matches) << c.name;
    }
}

TEST(SecretVerifier, EveryOneCharacterChangeIsRefused) {
    const SecretVerifier verifier(kCurrent, "");
    for (std::size_t i = 0; i < kCurrent.size(); ++i) {
        std::string presented = kCurrent;
        presented[i] = static_cast<char>(presented[i] ^ 1);
        EXPECT_FALSE(verifier.matches(presented)) << "changed at " << i;
    }
}

TEST(SecretVerifier, PreviousSecretAcceptedDuringRotation) {
    const SecretVerifier verifier(kCurrent, kPrevious);
    const std::vector<MatchCase> table = {
        {"current", kCurrent, true},
        {"previous", kPrevious, true},
        {"previous_prefix", kPrevious.substr(0, kPrevious.size() - 1), false},
        {"previous_plus_one", kPrevious + "x", false},
        {"both_joined", kCurrent + kPrevious, false},
        {"empty", "", false},
        {"other", std::string(40, 'o'), false},
    };
    for (const auto& c : table) {
        EXPECT_EQ(verifier.matches(c.presented), c.matches) << c.name;
    }
}

// An empty `previous` means no rotation, so an empty header can never match it.
TEST(SecretVerifier, EmptyPreviousMeansNone) {
    const SecretVerifier verifier(kCurrent, "");
    EXPECT_FALSE(verifier.matches(""));
    EXPECT_FALSE(verifier.matches(std::string_view()));
    EXPECT_TRUE(verifier.matches(kCurrent));
}

TEST(SecretVerifier, MinimumLength) {
    EXPECT_EQ(kMinSecretLength, 32u);
    EXPECT_NO_THROW((SecretVerifier{kExactly32, ""}));
    EXPECT_NO_THROW((SecretVerifier{kExactly32, kExactly32}));
    EXPECT_NO_THROW((SecretVerifier{std::string(4096, 's'), ""}));
    const std::vector<std::pair<std::string, std::string>> too_short = {
        {"", ""},
        {"x", ""},
        {kExactly32.substr(0, 31), ""},
        {kExactly32.substr(0, 31), kPrevious},
        {kCurrent, kExactly32.substr(0, 31)},
        {kCurrent, "p"},
    };
    for (const auto& [current, previous] : too_short) {
        EXPECT_THROW((SecretVerifier{current, previous}), ConfigError)
            << "current " << current.size() << " chars, previous " << previous.size();
    }
}

TEST(SecretVerifier, ExactlyMinimumLengthMatches) {
    const SecretVerifier verifier(kExactly32, "");
    EXPECT_TRUE(verifier.matches(kExactly32));
    EXPECT_FALSE(verifier.matches(kExactly32.substr(0, 31)));
}

TEST(SecretVerifier, ErrorDoesNotRevealTheSecret) {
    const std::string short_secret = "hunter2-short";
    try {
        SecretVerifier verifier(short_secret, "");
        FAIL() << "a short secret was accepted";
    } catch (const ConfigError& error) {
        EXPECT_EQ(std::string(error.what()).find(short_secret), std::string::npos) << error.what();
        EXPECT_FALSE(std::string(error.what()).empty());
    }
}

// Bytes after an embedded NUL still count: the secret is a byte string, not a C string.
TEST(SecretVerifier, EmbeddedNulIsPartOfTheSecret) {
    const std::string with_nul = std::string("abc") + '\0' + std::string(40, 'z');
    const SecretVerifier verifier(with_nul, "");
    EXPECT_TRUE(verifier.matches(with_nul));
    EXPECT_FALSE(verifier.matches("abc"));
    EXPECT_FALSE(verifier.matches(std::string("abc") + '\0'));
    EXPECT_FALSE(verifier.matches(std::string("abc") + '\0' + std::string(40, 'y')));
}

// Each verifier draws its own key; two of them agree on what matches.
TEST(SecretVerifier, IndependentVerifiersAgree) {
    const SecretVerifier a(kCurrent, kPrevious);
    const SecretVerifier b(kCurrent, "");
    EXPECT_TRUE(a.matches(kCurrent));
    EXPECT_TRUE(b.matches(kCurrent));
    EXPECT_TRUE(a.matches(kPrevious));
    EXPECT_FALSE(b.matches(kPrevious));
}

// In a child, so the test binary itself keeps its core limit: afterwards the process can
// neither dump core nor be dumped.
TEST(ForbidCoreDumps, LeavesNoCoreLimitAndNotDumpable) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        forbid_core_dumps();
        rlimit limit{};
        const bool no_core =
            ::getrlimit(RLIMIT_CORE, &limit) == 0 && limit.rlim_cur == 0 && limit.rlim_max == 0;
        const bool not_dumpable = ::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0;
        ::_exit(no_core && not_dumpable ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace shopcast
