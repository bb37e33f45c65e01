// One-line log records on stderr (the journal under systemd).
#pragma once

#include <string_view>

namespace shopcast {

enum class LogLevel { error, warning, info };

// Writes "<program>: <level>: <message>\n" with a single write(2), so lines from
// several threads never interleave. Never pass a secret in `message`.
void log_line(LogLevel level, std::string_view message);
void set_log_program(std::string_view program);

}  // namespace shopcast
