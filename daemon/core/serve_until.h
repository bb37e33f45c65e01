// How the daemon's main loop ends, apart from the event library so that its exits can be tested.
#pragma once

#include <csignal>

namespace shopcast {

enum class ServiceOutcome { stop_requested, failed };

// Runs `service_once` (one pass of the event loop; negative means it broke) until `stop` is set.
template <typename ServiceOnce>
ServiceOutcome serve_until_stopped(ServiceOnce&& service_once,
                                   const volatile std::sig_atomic_t& stop) {
    while (!stop) {
        if (service_once() < 0) return ServiceOutcome::failed;
    }
    return ServiceOutcome::stop_requested;
}

}  // namespace shopcast
