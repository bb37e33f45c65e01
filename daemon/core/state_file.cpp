#include "daemon/core/state_file.h"

#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "common/bytes.h"
#include "common/fd.h"
#include "common/cursor.h"

namespace shopcast {
namespace {

constexpr std::string_view kMagic = "SHOPCAST-STATE\n";
// 2: the epoch's cursor key follows its name, and each Idempotency-Key
// carries the digest of its first request.
constexpr std::uint32_t kFormatVersion = 2;
constexpr std::size_t kDigestBytes = SHA256_DIGEST_LENGTH;
constexpr std::size_t kMaxIdBytes = 256;
constexpr std::size_t kMaxPayloadBytes = 1u << 20;
constexpr std::size_t kMaxStateBytes = std::size_t{2} << 30;

std::string digest_of(std::string_view bytes) {
    std::array<unsigned char, kDigestBytes> digest{};
    SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest.data());
    return std::string(reinterpret_cast<const char*>(digest.data()), digest.size());
}

// The payload must be the one History made for this seq: an object ending in this cursor.
bool payload_matches(const SavedEvent& event, const CursorCodec& codec) {
    const std::string tail = ",\"id\":\"" + codec.event_cursor(event.seq) + "\"}";
    const std::string_view payload = event.payload;
    return payload.size() > tail.size() && payload.front() == '{' &&
           payload.substr(payload.size() - tail.size()) == tail;
}

std::string check_consistency(const SavedState& state) {
    if (!is_epoch_name(state.epoch)) return "invalid epoch";
    Epoch epoch;
    if (state.epoch_key.size() != epoch.key.size()) return "invalid cursor key";
    epoch.name = state.epoch;
    std::copy(state.epoch_key.begin(), state.epoch_key.end(), epoch.key.begin());
    const CursorCodec codec(epoch);
    if (state.events.size() > state.last_seq) return "more events than seqs";
    std::uint64_t expected = state.last_seq - state.events.size() + 1;
    for (const SavedEvent& event : state.events) {
        if (event.seq != expected++) return "events are not consecutive";
        if (!payload_matches(event, codec)) return "an event does not match its cursor";
    }
    return {};
}

bool write_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        const ssize_t written = ::write(fd, bytes.data(), bytes.size());
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return false;
        bytes.remove_prefix(static_cast<std::size_t>(written));
    }
    return true;
}

std::string directory_of(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::string encode_state(const SavedState& state) {
    ByteWriter out;
    out.put_raw(kMagic);
    out.put_u32(kFormatVersion);
    out.put_field(state.epoch);
    out.put_field(state.epoch_key);
    out.put_u64(state.last_seq);
    out.put_u64(static_cast<std::uint64_t>(state.saved_at_unix));
    out.put_u64(state.events.size());
    for (const SavedEvent& event : state.events) {
        out.put_u64(event.seq);
        out.put_field(event.shop_id);
        out.put_field(event.user_id);
        out.put_field(event.payload);
    }
    out.put_u64(state.keys.size());
    for (const SavedKey& key : state.keys) {
        out.put_field(key.key);
        out.put_u8(static_cast<std::uint8_t>(key.ack.status));
        out.put_field(key.ack.id);
        out.put_u32(key.ack.recipients);
        out.put_field(
            {reinterpret_cast<const char*>(key.request_digest.data()), key.request_digest.size()});
        out.put_u64(static_cast<std::uint64_t>(key.age_seconds));
    }
    std::string bytes = out.take();
    bytes.append(digest_of(bytes));
    return bytes;
}

StateLoad decode_state(std::string_view bytes) {
    if (bytes.size() < kMagic.size() + kDigestBytes || bytes.substr(0, kMagic.size()) != kMagic) {
        return {std::nullopt, "not a state file"};
    }
    const std::string_view body = bytes.substr(0, bytes.size() - kDigestBytes);
    if (digest_of(body) != bytes.substr(body.size())) return {std::nullopt, "checksum mismatch"};

    ByteReader in(body.substr(kMagic.size()));
    std::uint32_t version = 0;
    if (!in.take_u32(version) || version != kFormatVersion) {
        return {std::nullopt, "unknown format version"};
    }
    SavedState state;
    std::uint64_t saved_at = 0, event_count = 0, key_count = 0;
    in.take_field(state.epoch, kMaxIdBytes);
    in.take_field(state.epoch_key, kMaxIdBytes);
    in.take_u64(state.last_seq);
    in.take_u64(saved_at);
    in.take_u64(event_count);
    state.saved_at_unix = static_cast<std::int64_t>(saved_at);
    for (std::uint64_t i = 0; in.ok() && i < event_count; ++i) {
        SavedEvent& event = state.events.emplace_back();
        in.take_u64(event.seq);
        in.take_field(event.shop_id, kMaxIdBytes);
        in.take_field(event.user_id, kMaxIdBytes);
        in.take_field(event.payload, kMaxPayloadBytes);
    }
    in.take_u64(key_count);
    for (std::uint64_t i = 0; in.ok() && i < key_count; ++i) {
        SavedKey& key = state.keys.emplace_back();
        std::uint8_t status = 0;
        std::uint64_t age = 0;
        in.take_field(key.key, kMaxIdBytes);
        in.take_u8(status);
        in.take_field(key.ack.id, kMaxIdBytes);
        in.take_u32(key.ack.recipients);
        std::string digest;
        in.take_field(digest, key.request_digest.size());
        in.take_u64(age);
        if (in.ok() && digest.size() != key.request_digest.size()) {
            return {std::nullopt, "invalid request digest"};
        }
        std::copy(digest.begin(), digest.end(), key.request_digest.begin());
        key.ack.status = static_cast<ipc::AckStatus>(status);
        key.age_seconds = static_cast<std::int64_t>(age);
        if (status > static_cast<std::uint8_t>(ipc::kLastAckStatus)) {
            return {std::nullopt, "invalid acknowledgement status"};
        }
    }
    if (!in.at_end()) return {std::nullopt, "truncated or trailing bytes"};
    if (std::string problem = check_consistency(state); !problem.empty()) {
        return {std::nullopt, problem};
    }
    return {std::move(state), {}};
}

bool write_state_file(const std::string& path, const SavedState& state, std::string& error) {
    const std::string temporary = path + ".tmp";
    const std::string bytes = encode_state(state);
    UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid() || !write_all(fd.get(), bytes) || ::fsync(fd.get()) != 0) {
        error = "cannot write " + temporary + ": " + std::strerror(errno);
        ::unlink(temporary.c_str());
        return false;
    }
    fd.reset();
    if (::rename(temporary.c_str(), path.c_str()) != 0) {
        error = "cannot rename " + temporary + ": " + std::strerror(errno);
        ::unlink(temporary.c_str());
        return false;
    }
    // The rename is durable only once the directory entry is.
    UniqueFd directory(::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (directory.valid()) ::fsync(directory.get());
    return true;
}

StateLoad take_state_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
        if (errno == ENOENT) return {std::nullopt, "none"};
        return {std::nullopt, std::string("cannot open: ") + std::strerror(errno)};
    }
    struct stat info {};
    if (::fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode) ||
        static_cast<std::size_t>(info.st_size) > kMaxStateBytes) {
        ::unlink(path.c_str());
        return {std::nullopt, "not a regular file of a plausible size"};
    }
    std::string bytes(static_cast<std::size_t>(info.st_size), '\0');
    std::size_t filled = 0;
    while (filled < bytes.size()) {
        const ssize_t got = ::read(fd.get(), bytes.data() + filled, bytes.size() - filled);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        filled += static_cast<std::size_t>(got);
    }
    bytes.resize(filled);
    if (::unlink(path.c_str()) != 0) {
        return {std::nullopt,
                std::string("cannot remove it after reading: ") + std::strerror(errno)};
    }
    return decode_state(bytes);
}

}  // namespace shopcast
