// Bounds how many lines one kind of complaint may log, so a peer that floods the daemon with
// refusals cannot fill the journal. One per kind of complaint; not thread-safe (each user keeps
// its own, on one thread or under its own lock).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace shopcast {

class LogThrottle {
  public:
    // At most `burst` lines in any `window_ms` (a window starts with the first line let through).
    LogThrottle(int burst, std::int64_t window_ms) : burst_(burst), window_ms_(window_ms) {}

    // The line to log now (noting how many were held back since the last one), or nullopt when
    // this window's lines are spent: the line is then only counted.
    std::optional<std::string> admit(std::string line, std::int64_t now_ms) {
        if (now_ms - window_start_ms_ >= window_ms_ || lines_in_window_ == 0) {
            window_start_ms_ = now_ms;
            lines_in_window_ = 0;
        }
        if (lines_in_window_ >= burst_) {
            ++suppressed_;
            return std::nullopt;
        }
        ++lines_in_window_;
        if (suppressed_ > 0) {
            line += " (" + std::to_string(suppressed_) + " similar lines suppressed)";
            suppressed_ = 0;
        }
        return line;
    }

  private:
    int burst_;
    std::int64_t window_ms_;
    std::int64_t window_start_ms_ = 0;
    int lines_in_window_ = 0;
    std::uint64_t suppressed_ = 0;
};

}  // namespace shopcast
