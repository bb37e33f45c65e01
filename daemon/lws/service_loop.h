// The event loop the lws context runs on: libuv (epoll) when lws' libuv plugin loads, else
// lws' own poll() loop, which scans every descriptor on each pass.
#pragma once

#include <libwebsockets.h>
#include <uv.h>

#include <chrono>
#include <functional>
#include <utility>

#include "daemon/core/serve_until.h"

namespace shopcast {

// One per daemon, on the service thread. Also owns SIGTERM/SIGINT handling (both end run())
// and SIGHUP's (on_hangup, called on the service thread, never in a signal handler).
class ServiceLoop {
  public:
    ServiceLoop();
    ~ServiceLoop();  // destroys the context, then the loop
    ServiceLoop(const ServiceLoop&) = delete;
    ServiceLoop& operator=(const ServiceLoop&) = delete;

    // Creates the context, on libuv when possible. nullptr when neither loop works.
    lws_context* create_context(lws_context_creation_info info);
    bool uses_libuv() const { return uv_running_; }
    // The libuv loop the context runs on, for other libraries' handles; nullptr on poll().
    uv_loop_t* uv_loop() { return uv_running_ ? &loop_ : nullptr; }
    // Called on the service thread after each SIGHUP run() sees (a burst may come as one).
    void on_hangup(std::function<void()> callback) { on_hangup_ = std::move(callback); }

    // Services until SIGTERM or SIGINT (stop_requested), or until the loop breaks (failed).
    ServiceOutcome run();
    // Services until done() or the deadline, whichever comes first.
    void run_until(const std::function<bool()>& done, std::chrono::steady_clock::duration limit);

    // What SIGHUP's uv handler (or the poll loop, after its signal handler) calls.
    void on_hangup_signal();

  private:
    void close_uv_handles();

    lws_context* context_ = nullptr;
    uv_loop_t loop_{};
    uv_signal_t sigterm_{};
    uv_signal_t sigint_{};
    uv_signal_t sighup_{};
    std::function<void()> on_hangup_;
    uv_timer_t deadline_{};
    bool uv_running_ = false;
};

}  // namespace shopcast
