#include "common/secret.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>

#include "common/config.h"

namespace shopcast {

void forbid_core_dumps() {
    const rlimit none{0, 0};
    if (::setrlimit(RLIMIT_CORE, &none) != 0) {
        // A seccomp filter may refuse the call; what matters is that the limit is 0 (the
        // units also set LimitCORE=0).
        const int error = errno;
        rlimit current{};
        if (::getrlimit(RLIMIT_CORE, &current) != 0 || current.rlim_cur != 0 ||
            current.rlim_max != 0) {
            throw ConfigError(std::string("cannot set RLIMIT_CORE to 0: ") + std::strerror(error));
        }
    }
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        throw ConfigError(std::string("cannot clear the dumpable flag: ") + std::strerror(errno));
    }
}

void SecretVerifier::check_lengths(std::optional<std::string_view> current,
                                   std::optional<std::string_view> previous) {
    if (current && current->size() < kMinSecretLength) {
        throw ConfigError("INTERNAL_SECRET must be at least " + std::to_string(kMinSecretLength) +
                          " characters");
    }
    if (previous && !previous->empty() && previous->size() < kMinSecretLength) {
        throw ConfigError("INTERNAL_SECRET_PREVIOUS must be at least " +
                          std::to_string(kMinSecretLength) + " characters");
    }
}

SecretVerifier SecretVerifier::with_secrets(std::optional<std::string_view> current,
                                            std::optional<std::string_view> previous) const {
    check_lengths(current, previous);
    SecretVerifier next = *this;  // the same per-process key, so kept digests stay valid
    if (current) next.current_ = next.digest(*current);
    if (previous) {
        next.has_previous_ = !previous->empty();
        next.previous_ = next.has_previous_ ? next.digest(*previous) : Digest{};
    }
    return next;
}

SecretVerifier::SecretVerifier(std::string_view current, std::string_view previous) {
    check_lengths(current, previous);
    if (RAND_bytes(key_.data(), static_cast<int>(key_.size())) != 1) {
        throw ConfigError("cannot draw random bytes for the secret check");
    }
    current_ = digest(current);
    if (!previous.empty()) {
        previous_ = digest(previous);
        has_previous_ = true;
    }
}

SecretVerifier::Digest SecretVerifier::digest(std::string_view value) const {
    Digest out{};
    unsigned int length = 0;
    HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
         reinterpret_cast<const unsigned char*>(value.data()), value.size(), out.data(), &length);
    return out;
}

bool SecretVerifier::matches(std::string_view presented) const {
    // Both digests are always compared so the time does not reveal which secret matched.
    const Digest candidate = digest(presented);
    const bool current = CRYPTO_memcmp(candidate.data(), current_.data(), candidate.size()) == 0;
    const bool previous =
        CRYPTO_memcmp(candidate.data(), previous_.data(), candidate.size()) == 0 && has_previous_;
    return current || previous;
}

}  // namespace shopcast
