// shopcast-fcgi: the FastCGI publish endpoint behind nginx's /api/internal/broadcast.
#include <sys/stat.h>

#include <cstdio>
#include <exception>

#include "common/config.h"
#include "common/log.h"
#include "common/secret.h"
#include "fcgi/fcgi_config.h"
#include "fcgi/fcgi_server.h"

int main(int argc, char** argv) {
    using namespace shopcast;
    set_log_program("shopcast-fcgi");
    // The socket this process creates is for its group (nginx), never for everyone.
    ::umask(0007);
    try {
        const fcgi::CommandLine command = fcgi::parse_command_line(argc, argv);
        if (command.help_requested) {
            std::fputs(command.usage.c_str(), stdout);
            return 0;
        }
        const fcgi::FcgiConfig& config = command.config;
        set_log_level(config.log_level);
        const SecretVerifier secret(config.secret, config.previous_secret);
        fcgi::ListeningSocket listener = config.listen_path
                                             ? fcgi::ListeningSocket::create(*config.listen_path)
                                             : fcgi::ListeningSocket::inherit();
        return fcgi::run_server(config, secret, std::move(listener));
    } catch (const ConfigError& error) {
        log_line(LogLevel::error, error.what());
        return 2;
    } catch (const std::exception& error) {
        log_line(LogLevel::error, error.what());
        return 1;
    }
}
