// Event cursors: the opaque `id` strings browsers hold. Only the history code looks inside one.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace shopcast {

// One per daemon life: its name appears in every cursor, its key never leaves the daemon (and
// its state file). A planned restart continues the same epoch, name and key.
struct Epoch {
    static constexpr std::size_t kKeyBytes = 16;
    std::string name;  // 1-16 characters [0-9a-z]
    std::array<unsigned char, kKeyBytes> key{};

    // A fresh random name of 6 base-36 characters and a fresh random key.
    static Epoch generate();

    // "<name>:<32 hex digits of the key>": how an epoch shared by several processes is stored
    // (the Redis key shopcast:epoch). Anything else read back is nullopt.
    std::string record() const;
    static std::optional<Epoch> from_record(std::string_view text);
};

bool is_epoch_name(std::string_view name);

enum class CursorReading { ok, malformed, other_epoch };

struct CursorPosition {
    CursorReading reading = CursorReading::malformed;
    std::uint64_t seq = 0;  // with ok: the last event before this point (0: before the first)
};

// "<epoch name>:<32 hex digits>": the digits are one AES-128 block under the epoch's key,
// holding the seq, a nonce and a fixed check word. Without the key the text says nothing about
// the seq, so neither the gap between two ids nor a hello reveals how many events (someone
// else's private ones included) were published; with it the daemon reads the seq back in O(1).
// An event's cursor has nonce 0, so the id of an event is one string everywhere (its frame,
// the publish reply, a state file); a hello's cursor has a random nonce, so two hellos never
// show whether anything was published between them.
class CursorCodec {
  public:
    explicit CursorCodec(const Epoch& epoch);

    std::string event_cursor(std::uint64_t seq) const;
    std::string hello_cursor(std::uint64_t seq) const;
    // Any text a browser sends: a cursor of this epoch, of another one, or neither.
    CursorPosition read(std::string_view text) const;
    // The length of every cursor this codec writes.
    std::size_t cursor_length() const { return name_.size() + 1 + 32; }

  private:
    struct CipherFree {
        void operator()(EVP_CIPHER_CTX* context) const { EVP_CIPHER_CTX_free(context); }
    };
    using Cipher = std::unique_ptr<EVP_CIPHER_CTX, CipherFree>;

    std::string encode(std::uint64_t seq, std::uint32_t nonce) const;

    std::string name_;
    Cipher encrypt_;
    Cipher decrypt_;
};

}  // namespace shopcast
