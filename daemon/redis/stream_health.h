// What the stream reader tells operators, without Redis types: the health query and /metrics
// read it.
#pragma once

#include <cstdint>

namespace shopcast {

// One per daemon in Redis mode, owned by the StreamReader, read on the service thread.
struct StreamHealth {
    bool connected = false;             // a connection has passed AUTH, SELECT and the epoch check
    bool caught_up = false;             // since then, a read has reached the end of the stream
    std::uint64_t connects = 0;         // connections established since the start
    std::uint64_t entries_read = 0;     // stream entries taken into the history
    std::uint64_t entries_skipped = 0;  // entries refused as malformed
    std::uint64_t resets = 0;           // new epochs or trimmed gaps: every browser resynced
    std::int64_t last_entry_ms = 0;     // the time part of the newest entry id read

    bool ready() const { return connected && caught_up; }
};

}  // namespace shopcast
