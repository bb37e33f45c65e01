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
    std::uint64_t pending_bytes = 0;  // bytes of visible events between next_seq and the head
    std::uint64_t lag_limit = 0;      // pending_bytes above this closes the connection (1013)
    bool live = false;                // false during the hold that lets `resume` come first
    bool sent_events = false;         // an event has been written; rewinding would reorder

    // Server messages, sent before any event. Rare and few, so a vector: an empty std::deque
    // would allocate ~600 bytes for every connection.
    std::vector<FramePtr> control;
    std::optional<CloseRequest> close;

    std::string inbound;  // the text message being assembled from fragments
    double action_tokens = 0;
    std::int64_t action_tokens_at_ms = 0;
    unsigned strikes = 0;  // refused messages; too many and the connection is closed (1008)

    std::size_t registry_index = 0;  // position in the Hub's list, for O(1) removal
    void* transport = nullptr;       // the glue's handle (an lws wsi), opaque here

    // Appends a received fragment; the whole message may be at most `limit` bytes.
    InboundStatus append_fragment(std::string_view fragment, bool final_fragment,
                                  std::size_t limit);
    bool wants_write(std::uint64_t last_seq) const {
        return !control.empty() || close.has_value() || (live && next_seq <= last_seq);
    }
};

}  // namespace shopcast
