#include "daemon/lws/service_loop.h"

#include <atomic>
#include <csignal>

#include "common/log.h"

namespace shopcast {
namespace {

volatile std::sig_atomic_t stop_requested = 0;
volatile std::sig_atomic_t hangup_requested = 0;
// The poll() loop's context, for the signal handler: a signal that lands between the loop's
// check of stop_requested and its wait would otherwise sleep until the next socket event.
std::atomic<lws_context*> context_to_wake{nullptr};
static_assert(std::atomic<lws_context*>::is_always_lock_free);

void request_stop(int) {
    stop_requested = 1;
    // Only writes a byte to lws' wake-up pipe, which is async-signal-safe.
    if (lws_context* context = context_to_wake.load()) lws_cancel_service(context);
}

void request_hangup(int) {
    hangup_requested = 1;
    if (lws_context* context = context_to_wake.load()) lws_cancel_service(context);
}

void install_signal_handlers() {
    struct sigaction action {};
    action.sa_handler = request_stop;  // no SA_RESTART: poll() returns EINTR and the loop looks
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, nullptr);
    sigaction(SIGINT, &action, nullptr);
    action.sa_handler = request_hangup;
    action.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &action, nullptr);
}

void hangup_on_signal(uv_signal_t* handle, int) {
    static_cast<ServiceLoop*>(handle->data)->on_hangup_signal();
}

void stop_on_signal(uv_signal_t* handle, int) {
    stop_requested = 1;
    uv_stop(handle->loop);
}

void stop_at_deadline(uv_timer_t* timer) {
    uv_stop(timer->loop);
}

// Wakes lws' poll() at a deadline: lws_service() otherwise sleeps until the next socket event,
// which a stalled peer may never produce.
void wake_service_loop(lws_sorted_usec_list_t*) {}

}  // namespace

ServiceLoop::ServiceLoop() {
    install_signal_handlers();
}

ServiceLoop::~ServiceLoop() {
    if (context_ != nullptr) lws_context_destroy(context_);
    if (uv_running_) {
        close_uv_handles();
        uv_run(&loop_, UV_RUN_DEFAULT);  // lets lws' handles finish closing
        // On a foreign loop the first destroy only starts: lws frees the context once its
        // handles have closed, when destroyed again (pcontext is nulled when it is done).
        if (context_ != nullptr) lws_context_destroy(context_);
        uv_run(&loop_, UV_RUN_DEFAULT);
        uv_loop_close(&loop_);
    }
}

lws_context* ServiceLoop::create_context(lws_context_creation_info info) {
    if (uv_loop_init(&loop_) == 0) {
        void* foreign_loops[] = {&loop_};
        lws_context_creation_info uv_info = info;
        uv_info.options |= LWS_SERVER_OPTION_LIBUV;
        uv_info.foreign_loops = foreign_loops;
        uv_info.pcontext = &context_;  // nulled by lws once destruction has completed
        context_ = lws_create_context(&uv_info);
        if (context_ != nullptr) {
            uv_running_ = true;
            uv_signal_init(&loop_, &sigterm_);
            uv_signal_start(&sigterm_, stop_on_signal, SIGTERM);
            uv_signal_init(&loop_, &sigint_);
            uv_signal_start(&sigint_, stop_on_signal, SIGINT);
            uv_signal_init(&loop_, &sighup_);
            sighup_.data = this;
            uv_signal_start(&sighup_, hangup_on_signal, SIGHUP);
            uv_timer_init(&loop_, &deadline_);
            return context_;
        }
        uv_loop_close(&loop_);
        log_line(LogLevel::warning,
                 "lws' libuv event library is unavailable (libwebsockets-evlib-uv): using poll()");
    }
    context_ = lws_create_context(&info);
    return context_;
}

ServiceOutcome ServiceLoop::run() {
    if (uv_running_) {
        // uv_run returns once a signal handler stopped it; returning with nothing left to run
        // and no stop requested means lws' handles are gone: the loop broke.
        return serve_until_stopped(
            [this] { return uv_run(&loop_, UV_RUN_DEFAULT) == 0 && !stop_requested ? -1 : 0; },
            stop_requested);
    }
    context_to_wake.store(context_);
    const ServiceOutcome outcome = serve_until_stopped(
        [this] {
            const int result = lws_service(context_, 0);
            if (hangup_requested != 0) {
                hangup_requested = 0;
                on_hangup_signal();
            }
            return result;
        },
        stop_requested);
    context_to_wake.store(nullptr);
    return outcome;
}

void ServiceLoop::run_until(const std::function<bool()>& done,
                            std::chrono::steady_clock::duration limit) {
    using namespace std::chrono;
    const auto deadline = steady_clock::now() + limit;
    const auto limit_ms = duration_cast<milliseconds>(limit).count();
    lws_sorted_usec_list_t wake{};
    if (uv_running_) {
        uv_timer_start(&deadline_, stop_at_deadline, static_cast<std::uint64_t>(limit_ms), 0);
    } else {
        lws_sul_schedule(context_, 0, &wake, wake_service_loop, limit_ms * LWS_US_PER_MS);
    }
    while (!done() && steady_clock::now() < deadline) {
        if (uv_running_) {
            uv_run(&loop_, UV_RUN_ONCE);
        } else if (lws_service(context_, 0) < 0) {
            break;
        }
    }
    if (uv_running_) {
        uv_timer_stop(&deadline_);
    } else {
        lws_sul_cancel(&wake);
    }
}

void ServiceLoop::on_hangup_signal() {
    if (on_hangup_) on_hangup_();
}

void ServiceLoop::close_uv_handles() {
    for (uv_handle_t* handle :
         {reinterpret_cast<uv_handle_t*>(&sigterm_), reinterpret_cast<uv_handle_t*>(&sigint_),
          reinterpret_cast<uv_handle_t*>(&sighup_), reinterpret_cast<uv_handle_t*>(&deadline_)}) {
        if (!uv_is_closing(handle)) uv_close(handle, nullptr);
    }
}

}  // namespace shopcast
