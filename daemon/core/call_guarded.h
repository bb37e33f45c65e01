// Keeps C++ exceptions from unwinding through C frames (libwebsockets' callbacks).
#pragma once

#include <exception>
#include <new>
#include <string>
#include <string_view>

#include "common/log.h"

namespace shopcast {

// Calls `handler` and turns any exception into -1, which makes lws close the one connection the
// callback was for; every other connection carries on. `where` names the caller in the log.
template <typename Handler>
int call_guarded(std::string_view where, Handler&& handler) noexcept {
    std::string what;
    try {
        return handler();
    } catch (const std::bad_alloc&) {
        what = "out of memory";
    } catch (const std::exception& error) {
        what = error.what();
    } catch (...) {
        what = "unknown exception";
    }
    log_line(LogLevel::error, std::string(where) + ": " + what + "; closing that connection");
    return -1;
}

}  // namespace shopcast
