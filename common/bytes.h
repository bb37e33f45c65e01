// Big-endian fields for the binary formats we own (IPC frames, the daemon's state file).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace shopcast {

class ByteWriter {
  public:
    void put_u8(std::uint8_t value) { out_.push_back(static_cast<char>(value)); }
    void put_u32(std::uint32_t value) { put_be(value, 4); }
    void put_u64(std::uint64_t value) { put_be(value, 8); }
    // A 4-byte length, then the bytes.
    void put_field(std::string_view bytes) {
        put_u32(static_cast<std::uint32_t>(bytes.size()));
        out_.append(bytes);
    }
    void put_raw(std::string_view bytes) { out_.append(bytes); }
    const std::string& bytes() const { return out_; }
    std::string take() { return std::move(out_); }

  private:
    void put_be(std::uint64_t value, int width) {
        for (int shift = (width - 1) * 8; shift >= 0; shift -= 8) {
            out_.push_back(static_cast<char>((value >> shift) & 0xff));
        }
    }
    std::string out_;
};

// Reads fields in order; the first overrun makes every later read fail too, so a caller may
// check ok() once at the end.
class ByteReader {
  public:
    explicit ByteReader(std::string_view bytes) : rest_(bytes) {}

    bool take_u8(std::uint8_t& value) {
        std::uint64_t wide = 0;
        if (!take_be(wide, 1)) return false;
        value = static_cast<std::uint8_t>(wide);
        return true;
    }
    bool take_u32(std::uint32_t& value) {
        std::uint64_t wide = 0;
        if (!take_be(wide, 4)) return false;
        value = static_cast<std::uint32_t>(wide);
        return true;
    }
    bool take_u64(std::uint64_t& value) { return take_be(value, 8); }
    bool take_field(std::string& value, std::size_t max_length) {
        std::uint32_t length = 0;
        if (!take_u32(length) || length > max_length || rest_.size() < length) return fail();
        value.assign(rest_.substr(0, length));
        rest_.remove_prefix(length);
        return true;
    }
    bool take_raw(std::string_view& value, std::size_t length) {
        if (!ok_ || rest_.size() < length) return fail();
        value = rest_.substr(0, length);
        rest_.remove_prefix(length);
        return true;
    }
    bool ok() const { return ok_; }
    bool at_end() const { return ok_ && rest_.empty(); }

  private:
    bool take_be(std::uint64_t& value, std::size_t width) {
        if (!ok_ || rest_.size() < width) return fail();
        value = 0;
        for (std::size_t i = 0; i < width; ++i) {
            value = (value << 8) | static_cast<unsigned char>(rest_[i]);
        }
        rest_.remove_prefix(width);
        return true;
    }
    bool fail() {
        ok_ = false;
        return false;
    }
    std::string_view rest_;
    bool ok_ = true;
};

}  // namespace shopcast
