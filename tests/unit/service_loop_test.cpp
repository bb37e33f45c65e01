// What keeps shopcastd from dying silently: a failing event loop is reported (the daemon then
// exits non-zero, so systemd restarts it), and an exception inside a callback closes one
// connection instead of unwinding through C.
#include "daemon/core/serve_until.h"
#include "daemon/core/call_guarded.h"

#include <gtest/gtest.h>

#include <new>
#include <stdexcept>

namespace shopcast {
namespace {

TEST(ServiceLoop, RunsUntilStopIsRequested) {
    volatile std::sig_atomic_t stop = 0;
    int passes = 0;
    const auto outcome = serve_until_stopped(
        [&] {
            if (++passes == 3) stop = 1;
            return 0;
        },
        stop);
    EXPECT_EQ(outcome, ServiceOutcome::stop_requested);
    EXPECT_EQ(passes, 3);
}

TEST(ServiceLoop, AFailedPassIsReportedAsFailure) {
    volatile std::sig_atomic_t stop = 0;
    int passes = 0;
    const auto outcome = serve_until_stopped([&] { return ++passes == 2 ? -1 : 0; }, stop);
    EXPECT_EQ(outcome, ServiceOutcome::failed);
    EXPECT_EQ(passes, 2);
}

TEST(ServiceLoop, AStopRequestedBeforehandRunsNoPass) {
    volatile std::sig_atomic_t stop = 1;
    int passes = 0;
    serve_until_stopped([&] { return ++passes; }, stop);
    EXPECT_EQ(passes, 0);
}

TEST(CallGuarded, PassesTheResultThrough) {
    EXPECT_EQ(call_guarded("test", [] { return 0; }), 0);
    EXPECT_EQ(call_guarded("test", [] { return 7; }), 7);
}

TEST(CallGuarded, AnyExceptionBecomesACloseOfThatConnection) {
    EXPECT_EQ(call_guarded("test", []() -> int { throw std::bad_alloc(); }), -1);
    EXPECT_EQ(call_guarded("test", []() -> int { throw std::runtime_error("boom"); }), -1);
    EXPECT_EQ(call_guarded("test", []() -> int { throw 42; }), -1);
}

TEST(CallGuarded, LeavesLaterCallsUnaffected) {
    int calls = 0;
    call_guarded("test", [&]() -> int {
        ++calls;
        throw std::runtime_error("first connection fails");
    });
    EXPECT_EQ(call_guarded("test", [&] { return ++calls; }), 2);
}

}  // namespace
}  // namespace shopcast
