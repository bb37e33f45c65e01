#include "common/log.h"

#include <unistd.h>

#include <cerrno>
#include <string>

namespace shopcast {
namespace {

std::string& program_name() {
    static std::string name = "shopcast";
    return name;
}

std::string_view level_name(LogLevel level) {
    switch (level) {
        case LogLevel::error:
            return "error";
        case LogLevel::warning:
            return "warning";
        case LogLevel::info:
            return "info";
    }
    return "info";
}

}  // namespace

void set_log_program(std::string_view program) {
    program_name() = program;
}

void log_line(LogLevel level, std::string_view message) {
    std::string line;
    line.reserve(program_name().size() + message.size() + 16);
    line.append(program_name()).append(": ").append(level_name(level)).append(": ");
    line.append(message).push_back('\n');
    std::size_t written = 0;
    while (written < line.size()) {
        ssize_t n = ::write(STDERR_FILENO, line.data() + written, line.size() - written);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // nowhere left to report a logging failure
        written += static_cast<std::size_t>(n);
    }
}

}  // namespace shopcast
