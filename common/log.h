// One-line log records on stderr (the journal under systemd).
#pragma once

#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string_view>

namespace shopcast {

// In order of severity; a line is written when its level is at or above the threshold.
enum class LogLevel { error, warning, info, debug };

// Writes "<program>: <level>: <message>\n" with a single write(2), so lines from several
// threads never interleave. Under systemd (JOURNAL_STREAM names our stderr) the line starts
// with its syslog priority ("<3>" error ... "<7>" debug), which journald turns into the
// record's PRIORITY. Never pass a secret or initData in `message`.
void log_line(LogLevel level, std::string_view message);
// The same line assembled from `pieces` without any allocation (a hot path's log line).
void log_pieces(LogLevel level, std::initializer_list<std::string_view> pieces);

// True when a line at `level` would be written: skip building an expensive message otherwise.
bool log_enabled(LogLevel level);

void set_log_program(std::string_view program);
// Lines below `threshold` are dropped (default: info).
void set_log_level(LogLevel threshold);
// "error", "warning", "info" or "debug" (SHOPCAST_LOG_LEVEL); nullopt for anything else.
std::optional<LogLevel> parse_log_level(std::string_view name);
// Re-reads JOURNAL_STREAM (done once at start-up; tests call it after changing stderr).
void detect_journal_stream();

// A number as log text, formatted on the stack: log_pieces(..., {"n=", LogNumber(n)}).
class LogNumber {
  public:
    explicit LogNumber(std::uint64_t value) {
        length_ = static_cast<std::size_t>(
            std::to_chars(digits_, digits_ + sizeof digits_, value).ptr - digits_);
    }
    operator std::string_view() const { return {digits_, length_}; }

  private:
    char digits_[20];
    std::size_t length_ = 0;
};

}  // namespace shopcast
