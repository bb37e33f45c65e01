// shopcast-fcgi: the FastCGI publish endpoint behind nginx's /api/internal/broadcast.
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <exception>
#include <memory>

#include "common/config.h"
#include "common/log.h"
#include "common/secret.h"
#include "fcgi/fcgi_config.h"
#include "fcgi/fcgi_server.h"

namespace {

using namespace shopcast;

std::shared_ptr<const fcgi::PublishRules> rules_of(const fcgi::FcgiConfig& config) {
    return std::make_shared<const fcgi::PublishRules>(
        fcgi::PublishRules{*config.secret, config.policy});
}

// SIGHUP: re-reads the settings file and the secret files; the rules change for requests that
// start from now on. A bad value keeps everything as it was, with one line saying why.
void reload(int argc, char** argv, fcgi::FcgiConfig& running, fcgi::PublishRulesSource& rules) {
    try {
        fcgi::FcgiConfig loaded = fcgi::reload_config(argc, argv, running);
        rules.replace(rules_of(loaded));
        const std::string restart = fcgi::settings_needing_restart(running, loaded);
        running.secret = std::move(loaded.secret);
        running.policy = std::move(loaded.policy);
        running.log_level = loaded.log_level;
        set_log_level(running.log_level);
        log_line(LogLevel::info,
                 "reloaded: secrets, SHOPCAST_REQUIRE_USER_FOR and SHOPCAST_LOG_LEVEL" +
                     (restart.empty() ? std::string()
                                      : "; changed but kept until a restart: " + restart));
    } catch (const ConfigError& error) {
        log_line(LogLevel::error,
                 std::string("reload refused, the running configuration stays: ") + error.what());
    } catch (const std::exception& error) {
        log_line(LogLevel::error,
                 std::string("reload failed, the running configuration stays: ") + error.what());
    }
}

}  // namespace

int main(int argc, char** argv) {
    set_log_program("shopcast-fcgi");
    // The socket this process creates is for its group (nginx), never for everyone.
    ::umask(0007);
    // A reload that comes while starting waits for run_server's signal loop instead of
    // ending the process (SIGHUP's default action).
    sigset_t hangup;
    sigemptyset(&hangup);
    sigaddset(&hangup, SIGHUP);
    ::pthread_sigmask(SIG_BLOCK, &hangup, nullptr);
    // hiredis writes with write(2): a Redis that went away must be an error to report, not
    // the end of the process.
    ::signal(SIGPIPE, SIG_IGN);
    try {
        forbid_core_dumps();
        fcgi::CommandLine command = fcgi::parse_command_line(argc, argv);
        if (command.help_requested) {
            std::fputs(command.usage.c_str(), stdout);
            return 0;
        }
        fcgi::FcgiConfig& config = command.config;
        set_log_level(config.log_level);
        fcgi::PublishRulesSource rules(rules_of(config));
        fcgi::ListeningSocket listener = config.listen_path
                                             ? fcgi::ListeningSocket::create(*config.listen_path)
                                             : fcgi::ListeningSocket::inherit();
        // run_server reads only what a reload leaves alone; the reload updates `config`'s
        // secret and policy on the signal thread, which is the one that called run_server.
        const fcgi::FcgiConfig& serving = config;
        return fcgi::run_server(serving, rules, std::move(listener),
                                [&] { reload(argc, argv, config, rules); });
    } catch (const ConfigError& error) {
        log_line(LogLevel::error, error.what());
        return 2;
    } catch (const std::exception& error) {
        log_line(LogLevel::error, error.what());
        return 1;
    }
}
