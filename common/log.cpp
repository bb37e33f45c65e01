#include "common/log.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace shopcast {
namespace {

// More pieces than any caller passes; the rest of a longer list is dropped, never overrun.
constexpr std::size_t kMaxPieces = 32;

std::string& program_name() {
    static std::string name = "shopcast";
    return name;
}

std::atomic<LogLevel> threshold{LogLevel::info};

// Whether stderr is the stream JOURNAL_STREAM describes ("<device>:<inode>"): systemd sets it
// for a service whose output goes to the journal, and a child whose stderr was redirected
// elsewhere inherits the variable without the stream, so the two are compared.
bool stderr_is_journal() {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr || stream[0] == '\0') return false;
    struct stat status {};
    if (::fstat(STDERR_FILENO, &status) != 0) return false;
    unsigned long long device = 0, inode = 0;
    if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) return false;
    return device == static_cast<unsigned long long>(status.st_dev) &&
           inode == static_cast<unsigned long long>(status.st_ino);
}

std::atomic<bool>& journal_prefix() {
    static std::atomic<bool> enabled{stderr_is_journal()};
    return enabled;
}

std::string_view level_name(LogLevel level) {
    switch (level) {
        case LogLevel::error:
            return "error";
        case LogLevel::warning:
            return "warning";
        case LogLevel::info:
            return "info";
        case LogLevel::debug:
            return "debug";
    }
    return "info";
}

// syslog(3) priorities, as journald reads them from a "<N>" line prefix.
std::string_view syslog_prefix(LogLevel level) {
    switch (level) {
        case LogLevel::error:
            return "<3>";
        case LogLevel::warning:
            return "<4>";
        case LogLevel::info:
            return "<6>";
        case LogLevel::debug:
            return "<7>";
    }
    return "<6>";
}

iovec piece(std::string_view text) {
    return iovec{const_cast<char*>(text.data()), text.size()};
}

void write_all(std::array<iovec, kMaxPieces + 6>& parts, std::size_t count) {
    iovec* next = parts.data();
    while (count > 0) {
        const ssize_t n = ::writev(STDERR_FILENO, next, static_cast<int>(count));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // nowhere left to report a logging failure
        // A pipe takes a line up to PIPE_BUF whole; longer ones may be taken in parts.
        auto left = static_cast<std::size_t>(n);
        while (count > 0 && left >= next->iov_len) {
            left -= next->iov_len;
            ++next;
            --count;
        }
        if (count > 0) {
            next->iov_base = static_cast<char*>(next->iov_base) + left;
            next->iov_len -= left;
        }
    }
}

}  // namespace

void set_log_program(std::string_view program) {
    program_name() = program;
}

void set_log_level(LogLevel level) {
    threshold.store(level, std::memory_order_relaxed);
}

bool log_enabled(LogLevel level) {
    return level <= threshold.load(std::memory_order_relaxed);
}

std::optional<LogLevel> parse_log_level(std::string_view name) {
    for (LogLevel level : {LogLevel::error, LogLevel::warning, LogLevel::info, LogLevel::debug}) {
        if (name == level_name(level)) return level;
    }
    return std::nullopt;
}

void detect_journal_stream() {
    journal_prefix().store(stderr_is_journal(), std::memory_order_relaxed);
}

void log_pieces(LogLevel level, std::initializer_list<std::string_view> pieces) {
    if (!log_enabled(level)) return;
    std::array<iovec, kMaxPieces + 6> parts;
    std::size_t count = 0;
    if (journal_prefix().load(std::memory_order_relaxed))
        parts[count++] = piece(syslog_prefix(level));
    parts[count++] = piece(program_name());
    parts[count++] = piece(": ");
    parts[count++] = piece(level_name(level));
    parts[count++] = piece(": ");
    for (std::string_view text : pieces) {
        if (count == parts.size() - 1) break;
        if (!text.empty()) parts[count++] = piece(text);
    }
    parts[count++] = piece("\n");
    write_all(parts, count);
}

void log_line(LogLevel level, std::string_view message) {
    log_pieces(level, {message});
}

}  // namespace shopcast
