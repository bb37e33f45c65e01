// shopcastd: the WebSocket fan-out daemon.
#include <cstdio>

#include "common/log.h"
#include "daemon/daemon_config.h"
#include "daemon/lws/server.h"

int main(int argc, char** argv) {
    shopcast::set_log_program("shopcastd");
    try {
        shopcast::Settings settings(argc, argv, shopcast::daemon_setting_specs());
        if (settings.help_requested()) {
            std::fputs(
                settings
                    .usage("shopcastd", "Pushes published shop events to browsers over WebSockets.")
                    .c_str(),
                stdout);
            return 0;
        }
        const shopcast::DaemonConfig config = shopcast::load_daemon_config(settings);
        shopcast::set_log_level(config.log_level);
        return shopcast::run_daemon(config);
    } catch (const shopcast::ConfigError& error) {
        shopcast::log_line(shopcast::LogLevel::error, error.what());
        return 2;
    } catch (const std::exception& error) {
        shopcast::log_line(shopcast::LogLevel::error, error.what());
        return 1;
    }
}
