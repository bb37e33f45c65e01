// Shared-secret check for the publish endpoint.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace shopcast {

inline constexpr std::size_t kMinSecretLength = 32;

// No core dumps, no ptrace attach by other processes of the same user, /proc/<pid> owned by
// root: a crash or a neighbour must not be able to read the secrets out of memory. Called
// first thing in main(). Throws ConfigError when the kernel refuses.
void forbid_core_dumps();

// One per process. Holds only HMAC digests of the configured secrets under a random
// per-process key, so the comparison takes the same time whatever the presented length.
class SecretVerifier {
  public:
    // `previous` may be empty (no rotation in progress). Throws ConfigError when
    // `current` is shorter than kMinSecretLength or `previous` is set and too short.
    SecretVerifier(std::string_view current, std::string_view previous);

    bool matches(std::string_view presented) const;
    bool has_previous() const { return has_previous_; }

    // The verifier a reload makes: `current` / `previous` replace this one's when given
    // (an empty `previous` ends a rotation), nullopt keeps what this one checks. Same rules
    // as the constructor.
    SecretVerifier with_secrets(std::optional<std::string_view> current,
                                std::optional<std::string_view> previous) const;

  private:
    SecretVerifier() = default;
    static void check_lengths(std::optional<std::string_view> current,
                              std::optional<std::string_view> previous);

    using Digest = std::array<unsigned char, 32>;
    Digest digest(std::string_view value) const;

    std::array<unsigned char, 32> key_{};
    Digest current_{};
    Digest previous_{};
    bool has_previous_ = false;
};

}  // namespace shopcast
