// shopcastd: the WebSocket fan-out daemon.
#include <csignal>
#include <cstdio>

#include "common/log.h"
#include "common/secret.h"
#include "daemon/daemon_config.h"
#include "daemon/lws/server.h"

int main(int argc, char** argv) {
    shopcast::set_log_program("shopcastd");
    // Until the event loop takes SIGHUP over (before READY=1), a reload must not end the
    // process, which is SIGHUP's default action; there is nothing to reload yet.
    std::signal(SIGHUP, SIG_IGN);
    try {
        shopcast::forbid_core_dumps();
        shopcast::Settings settings(argc, argv, shopcast::daemon_setting_specs());
        if (settings.help_requested()) {
            std::fputs(
                settings
                    .usage("shopcastd", "Pushes published shop events to browsers over WebSockets.")
                    .c_str(),
                stdout);
            return 0;
        }
        // SIGHUP reads the same command line again, with the settings file and secret files
        // as they are now.
        const shopcast::ConfigReloader reload = [argc,
                                                 argv](const shopcast::DaemonConfig& running) {
            const shopcast::Settings now(argc, argv, shopcast::daemon_setting_specs());
            return shopcast::reload_daemon_config(now, running);
        };
        shopcast::DaemonConfig config = shopcast::load_daemon_config(settings);
        shopcast::set_log_level(config.log_level);
        return shopcast::run_daemon(std::move(config), reload);
    } catch (const shopcast::ConfigError& error) {
        shopcast::log_line(shopcast::LogLevel::error, error.what());
        return 2;
    } catch (const std::exception& error) {
        shopcast::log_line(shopcast::LogLevel::error, error.what());
        return 1;
    }
}
