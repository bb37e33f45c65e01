// A libuv timer whose handle outlives its owner until libuv has closed it: a handle freed
// before its close callback runs would be used after free by the loop.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

namespace shopcast {

class UvTimer {
  public:
    explicit UvTimer(uv_loop_t* loop) : handle_(std::make_unique<Handle>()) {
        uv_timer_init(loop, &handle_->timer);
        handle_->timer.data = handle_.get();
    }
    UvTimer(const UvTimer&) = delete;
    UvTimer& operator=(const UvTimer&) = delete;
    ~UvTimer() {
        // libuv frees it: the close callback takes ownership back.
        Handle* handle = handle_.release();
        handle->callback = nullptr;
        uv_close(reinterpret_cast<uv_handle_t*>(&handle->timer), [](uv_handle_t* closed) {
            std::unique_ptr<Handle> owned(static_cast<Handle*>(closed->data));
        });
    }

    // Calls `callback` once after `delay_ms`, replacing whatever was scheduled.
    void start(std::uint64_t delay_ms, std::function<void()> callback) {
        handle_->callback = std::move(callback);
        uv_timer_start(&handle_->timer, fire, delay_ms, 0);
    }
    void stop() { uv_timer_stop(&handle_->timer); }

  private:
    struct Handle {
        uv_timer_t timer{};
        std::function<void()> callback;
    };
    static void fire(uv_timer_t* timer) {
        auto* handle = static_cast<Handle*>(timer->data);
        if (handle->callback) {
            // The callback may start the timer again, replacing itself.
            std::function<void()> callback = std::move(handle->callback);
            callback();
        }
    }

    std::unique_ptr<Handle> handle_;
};

}  // namespace shopcast
