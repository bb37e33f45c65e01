#include "daemon/core/metrics.h"

#include <algorithm>

namespace shopcast {
namespace {

template <std::size_t N>
std::size_t index_in(const std::array<std::string_view, N>& labels, std::string_view value) {
    const auto found = std::find(labels.begin(), labels.end() - 1, value);
    return static_cast<std::size_t>(found - labels.begin());  // the last one: "other"
}

bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

}  // namespace

std::size_t EngineMetrics::close_code_index(int code) {
    switch (code) {
        case 1000:
            return 0;
        case 1001:
            return 1;
        case 0:
        case 1005:  // a close frame without a code: as good as none
        case 1006:
            return 2;
        case 1008:
            return 3;
        case 1009:
            return 4;
        case 1011:
            return 5;
        case 1013:
            return 6;
        default:
            return kCloseCodeLabels.size() - 1;
    }
}

std::size_t EngineMetrics::event_type_index(std::string_view type) {
    return index_in(kEventTypeLabels, type);
}

std::size_t EngineMetrics::resync_reason_index(std::string_view reason) {
    return index_in(kResyncReasonLabels, reason);
}

std::size_t EngineMetrics::auth_result_index(const AuthOutcome& outcome) {
    if (outcome.ok) return 0;
    const std::string_view error = outcome.error;
    if (contains(error, "not configured")) return 1;
    if (contains(error, "too old") || contains(error, "in the future")) return 2;
    if (contains(error, "mismatch") || contains(error, "invalid hash") ||
        contains(error, "invalid signature")) {
        return 4;
    }
    if (contains(error, "initData") || contains(error, "missing") || contains(error, "invalid")) {
        return 3;
    }
    return kAuthResultLabels.size() - 1;
}

}  // namespace shopcast
