// The state of one browser connection, independent of the WebSocket library.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/core/audience.h"
#include "daemon/core/shared_frame.h"

namespace shopcast {

struct CloseRequest {
    int code = 1000;
    std::string reason;
};

// How an inbound fragment changed the message being assembled.
enum class InboundStatus { incomplete, complete, too_large };

// One per open WebSocket, owned by the Hub from ESTABLISHED until CLOSED. The transport glue
// keeps a pointer in its per-session data and never frees it itself.
struct Session {
    std::string client_ip;
    Audience audience;

    // Delivery walks the history: next_seq is the first event this connection has not been sent.
    std::uint64_t next_seq = 1;
    bool live = false;         // false during the hold that lets `resume` come first
    bool sent_events = false;  // an event has been written; rewinding would reorder
    bool rewound = false;      // its one `resume` that moved next_seq back has been taken
    // A resume from a cursor another daemon handed out past what this one has read: events up
    // to that position are not sent (the browser has them). 0: none.
    std::uint64_t skip_through_position = 0;
    // Parked: a resume from below the history's floor waits for this gap fill (0: none).
    // Nothing is sent to it meanwhile; what is published waits in the history as usual.
    std::uint64_t gap_fill = 0;
    // The filled events not yet written, sent after control messages and before the history's.
    std::vector<FramePtr> backfill;
    // The socket stopped draining (the last write was only partly taken). While choked nothing
    // more is written; what is published meanwhile counts towards the slow-client limits.
    bool choked = false;
    std::int64_t choked_since_ms = 0;
    std::uint64_t stalled_bytes = 0;  // bytes published for it since it last drained

    // Server messages, sent before any event. Rare and few, so a vector: an empty std::deque
    // would allocate ~600 bytes for every connection.
    std::vector<FramePtr> control;
    std::optional<CloseRequest> close;
    bool close_written = false;  // the transport has taken the close frame
    int peer_close_code = 0;     // the browser's close frame's code; 0: it sent none

    std::string inbound;  // the text message being assembled from fragments
    double action_tokens = 0;
    std::int64_t action_tokens_at_ms = 0;
    unsigned strikes = 0;        // refused messages; too many and the connection is closed (1008)
    unsigned auth_failures = 0;  // failed `auth` messages since auth_failures_since_ms
    std::int64_t auth_failures_since_ms = 0;

    std::size_t registry_index = 0;  // position in the Hub's list, for O(1) removal
    void* transport = nullptr;       // the glue's handle (an lws wsi), opaque here

    // Appends a received fragment; the whole message may be at most `limit` bytes.
    InboundStatus append_fragment(std::string_view fragment, bool final_fragment,
                                  std::size_t limit);
};

}  // namespace shopcast
