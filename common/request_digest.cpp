#include "common/request_digest.h"

#include <openssl/evp.h>

#include <memory>
#include <string_view>

namespace shopcast {

RequestDigest request_digest(const ipc::PublishRequest& request) {
    struct DigestFree {
        void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
    };
    const std::unique_ptr<EVP_MD_CTX, DigestFree> context(EVP_MD_CTX_new());
    RequestDigest digest{};
    unsigned int length = 0;
    // The type and the JSON are separated by a NUL, which neither can contain, so no two
    // different pairs hash the same input.
    const bool ok =
        context && EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) == 1 &&
        EVP_DigestUpdate(context.get(), request.type.data(), request.type.size()) == 1 &&
        EVP_DigestUpdate(context.get(), "", 1) == 1 &&
        EVP_DigestUpdate(context.get(), request.json.data(), request.json.size()) == 1 &&
        EVP_DigestFinal_ex(context.get(), digest.data(), &length) == 1;
    if (!ok) digest.fill(0);  // never equal to a real digest in practice: compares as "other"
    return digest;
}

std::string request_digest_hex(const ipc::PublishRequest& request) {
    constexpr std::string_view kHex = "0123456789abcdef";
    std::string text;
    for (unsigned char byte : request_digest(request)) {
        text.push_back(kHex[byte >> 4]);
        text.push_back(kHex[byte & 0xf]);
    }
    return text;
}

}  // namespace shopcast
