// Shared-secret check for the publish endpoint.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace shopcast {

inline constexpr std::size_t kMinSecretLength = 32;

// One per process. Holds only HMAC digests of the configured secrets under a random
// per-process key, so the comparison takes the same time whatever the presented length.
class SecretVerifier {
  public:
    // `previous` may be empty (no rotation in progress). Throws ConfigError when
    // `current` is shorter than kMinSecretLength or `previous` is set and too short.
    SecretVerifier(std::string_view current, std::string_view previous);

    bool matches(std::string_view presented) const;

  private:
    using Digest = std::array<unsigned char, 32>;
    Digest digest(std::string_view value) const;

    std::array<unsigned char, 32> key_{};
    Digest current_{};
    Digest previous_{};
    bool has_previous_ = false;
};

}  // namespace shopcast
