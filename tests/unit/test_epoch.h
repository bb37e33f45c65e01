// A fixed epoch for tests that compare cursors across histories: its key is derived from the
// name, so two histories built from the same name read each other's cursors.
#pragma once

#include <string>

#include "common/cursor.h"

namespace shopcast {

inline Epoch test_epoch(const std::string& name) {
    Epoch epoch;
    epoch.name = name;
    for (std::size_t i = 0; i < epoch.key.size(); ++i) {
        epoch.key[i] = static_cast<unsigned char>(name[i % name.size()] + i * 37);
    }
    return epoch;
}

// The cursor another epoch would have given for `seq`.
inline std::string foreign_cursor(const std::string& name, std::uint64_t seq) {
    return CursorCodec(test_epoch(name)).event_cursor(seq);
}

}  // namespace shopcast
