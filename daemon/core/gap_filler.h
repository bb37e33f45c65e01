// Redis mode's way back past the history's floor: the Hub asks for the stream entries a
// resuming browser missed that the cache no longer holds, and gets them (or a refusal) later.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace shopcast {

// One entry as the stream holds it (see common/redis_stream.h for the fields).
struct FilledEntry {
    std::uint64_t position = 0;
    std::string epoch;
    std::string shop_id;
    std::string user_id;
    std::string json;  // the validated object without "id"
};

struct GapFill {
    // True only when `entries` are every entry the stream ever had strictly after the asked
    // position up to the asked one, of the epoch in force: nothing trimmed after the cursor,
    // no new epoch, not cut short by the filler's count limit.
    bool exact = false;
    std::vector<FilledEntry> entries;  // in stream order; malformed entries left out
};

class GapFiller {
  public:
    using Done = std::function<void(GapFill)>;
    virtual ~GapFiller() = default;
    // Asks for the entries after `after` up to and including `through`. False when it cannot
    // ask now (`done` is then never called); else `done` is called exactly once, on the
    // service thread, within a bounded time (a refusal, exact = false, when time runs out).
    virtual bool fill(std::uint64_t after, std::uint64_t through, Done done) = 0;
};

}  // namespace shopcast
