#include "common/cursor.h"

#include <openssl/rand.h>

#include <stdexcept>

namespace shopcast {
namespace {

constexpr std::size_t kMaxEpochLength = 16;
constexpr std::size_t kNewEpochLength = 6;
constexpr std::size_t kBlockBytes = 16;
constexpr std::string_view kBase36 = "0123456789abcdefghijklmnopqrstuvwxyz";
constexpr std::string_view kHex = "0123456789abcdef";
// The last four bytes of every block: a garbled or forged cursor decrypts to something else
// (one chance in 2^32), and is then treated as malformed.
constexpr std::array<unsigned char, 4> kCheckWord = {'s', 'c', 'c', '1'};

using Block = std::array<unsigned char, kBlockBytes>;

void random_bytes(unsigned char* out, std::size_t size, const char* what) {
    if (RAND_bytes(out, static_cast<int>(size)) != 1) {
        throw std::runtime_error(std::string("cannot draw random bytes for ") + what);
    }
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// One AES block in ECB mode: the input is a single block, so no mode or padding is involved.
bool transform(EVP_CIPHER_CTX* context, const Block& in, Block& out) {
    int written = 0;
    return EVP_CipherUpdate(context, out.data(), &written, in.data(),
                            static_cast<int>(in.size())) == 1 &&
           written == static_cast<int>(out.size());
}

}  // namespace

bool is_epoch_name(std::string_view name) {
    if (name.empty() || name.size() > kMaxEpochLength) return false;
    for (char c : name) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) return false;
    }
    return true;
}

Epoch Epoch::generate() {
    Epoch epoch;
    std::array<unsigned char, kNewEpochLength> random{};
    random_bytes(random.data(), random.size(), "the epoch");
    for (unsigned char byte : random) epoch.name.push_back(kBase36[byte % kBase36.size()]);
    random_bytes(epoch.key.data(), epoch.key.size(), "the cursor key");
    return epoch;
}

std::string Epoch::record() const {
    std::string text = name;
    text.push_back(':');
    for (unsigned char byte : key) {
        text.push_back(kHex[byte >> 4]);
        text.push_back(kHex[byte & 0xf]);
    }
    return text;
}

std::optional<Epoch> Epoch::from_record(std::string_view text) {
    const auto colon = text.find(':');
    if (colon == std::string_view::npos || !is_epoch_name(text.substr(0, colon))) {
        return std::nullopt;
    }
    const std::string_view digits = text.substr(colon + 1);
    Epoch epoch;
    if (digits.size() != 2 * epoch.key.size()) return std::nullopt;
    for (std::size_t i = 0; i < epoch.key.size(); ++i) {
        const int high = hex_value(digits[2 * i]);
        const int low = hex_value(digits[2 * i + 1]);
        if (high < 0 || low < 0) return std::nullopt;
        epoch.key[i] = static_cast<unsigned char>(high << 4 | low);
    }
    epoch.name = text.substr(0, colon);
    return epoch;
}

CursorCodec::CursorCodec(const Epoch& epoch)
    : name_(epoch.name), encrypt_(EVP_CIPHER_CTX_new()), decrypt_(EVP_CIPHER_CTX_new()) {
    if (!is_epoch_name(name_)) throw std::invalid_argument("invalid epoch name");
    if (!encrypt_ || !decrypt_ ||
        EVP_CipherInit_ex(encrypt_.get(), EVP_aes_128_ecb(), nullptr, epoch.key.data(), nullptr,
                          1) != 1 ||
        EVP_CipherInit_ex(decrypt_.get(), EVP_aes_128_ecb(), nullptr, epoch.key.data(), nullptr,
                          0) != 1 ||
        EVP_CIPHER_CTX_set_padding(encrypt_.get(), 0) != 1 ||
        EVP_CIPHER_CTX_set_padding(decrypt_.get(), 0) != 1) {
        throw std::runtime_error("cannot set up the cursor cipher");
    }
}

std::string CursorCodec::encode(std::uint64_t seq, std::uint32_t nonce) const {
    Block plain{};
    for (int i = 0; i < 8; ++i) plain[i] = static_cast<unsigned char>(seq >> (56 - 8 * i));
    for (int i = 0; i < 4; ++i) plain[8 + i] = static_cast<unsigned char>(nonce >> (24 - 8 * i));
    std::copy(kCheckWord.begin(), kCheckWord.end(), plain.begin() + 12);
    Block sealed{};
    if (!transform(encrypt_.get(), plain, sealed)) {
        throw std::runtime_error("cannot encrypt a cursor");
    }
    std::string text;
    text.reserve(cursor_length());
    text.append(name_).push_back(':');
    for (unsigned char byte : sealed) {
        text.push_back(kHex[byte >> 4]);
        text.push_back(kHex[byte & 0xf]);
    }
    return text;
}

std::string CursorCodec::event_cursor(std::uint64_t seq) const {
    return encode(seq, 0);
}

std::string CursorCodec::hello_cursor(std::uint64_t seq) const {
    std::uint32_t nonce = 0;
    while (nonce == 0) {
        random_bytes(reinterpret_cast<unsigned char*>(&nonce), sizeof(nonce), "a hello cursor");
    }
    return encode(seq, nonce);
}

CursorPosition CursorCodec::read(std::string_view text) const {
    const auto colon = text.find(':');
    if (colon == std::string_view::npos || !is_epoch_name(text.substr(0, colon))) {
        return {CursorReading::malformed, 0};
    }
    const std::string_view digits = text.substr(colon + 1);
    if (digits.size() != 2 * kBlockBytes) return {CursorReading::malformed, 0};
    Block sealed{};
    for (std::size_t i = 0; i < kBlockBytes; ++i) {
        const int high = hex_value(digits[2 * i]);
        const int low = hex_value(digits[2 * i + 1]);
        if (high < 0 || low < 0) return {CursorReading::malformed, 0};
        sealed[i] = static_cast<unsigned char>(high << 4 | low);
    }
    if (text.substr(0, colon) != name_) return {CursorReading::other_epoch, 0};
    Block plain{};
    if (!transform(decrypt_.get(), sealed, plain) ||
        !std::equal(kCheckWord.begin(), kCheckWord.end(), plain.begin() + 12)) {
        return {CursorReading::malformed, 0};
    }
    std::uint64_t seq = 0;
    for (int i = 0; i < 8; ++i) seq = seq << 8 | plain[i];
    return {CursorReading::ok, seq};
}

}  // namespace shopcast
