// What a clean shutdown hands to the next start, so a planned restart is invisible to browsers:
// the epoch (name and cursor key), the retained history and the remembered Idempotency-Keys.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ipc.h"
#include "common/request_digest.h"

namespace shopcast {

struct SavedEvent {
    std::uint64_t seq = 0;
    std::string shop_id;
    std::string user_id;
    std::string payload;  // exactly what browsers were sent, "id" included
};

struct SavedKey {
    std::string key;
    ipc::PublishAck ack;
    RequestDigest request_digest{};  // of the request the key was first used with
    std::int64_t age_seconds = 0;    // how long it had been remembered when the state was saved
};

struct SavedState {
    std::string epoch;
    std::string epoch_key;           // the cursor key (Epoch::kKeyBytes bytes): old ids stay valid
    std::uint64_t last_seq = 0;      // the newest seq ever assigned (events may be empty)
    std::int64_t saved_at_unix = 0;  // wall clock, to age the keys across the downtime
    std::vector<SavedEvent> events;  // oldest first, consecutive seqs ending at last_seq
    std::vector<SavedKey> keys;
};

struct StateLoad {
    std::optional<SavedState> state;
    std::string problem;  // why there is no state: "none" when there was no file at all
};

std::string encode_state(const SavedState& state);
// Refuses torn, altered or inconsistent bytes: any doubt means a new epoch, never a wrong replay.
StateLoad decode_state(std::string_view bytes);

// Writes atomically: a temporary file, fsync, rename over `path`, fsync of the directory.
bool write_state_file(const std::string& path, const SavedState& state, std::string& error);
// Reads `path` and removes it before returning, so a run that later crashes cannot hand the
// same state to the next start (its events after this point would be missing from it).
// A file that cannot be removed is not used.
StateLoad take_state_file(const std::string& path);

}  // namespace shopcast
