// A private redis-server for one test: a Unix socket in a fresh directory, no persistence,
// stopped by its PID when this goes away. Never the machine's own Redis.
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/redis_endpoint.h"
#include "fcgi/redis_connection.h"

extern char** environ;

namespace shopcast {

inline std::optional<std::string> find_redis_server() {
    for (const char* path : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"}) {
        if (::access(path, X_OK) == 0) return path;
    }
    return std::nullopt;
}

class RedisServer {
  public:
    // Starts it and waits (bounded) until it answers PING; started() tells whether it did.
    // `password`: started with --requirepass, and connect() authenticates.
    explicit RedisServer(const std::string& program, const std::string& password = "") {
        std::string pattern = (std::filesystem::temp_directory_path() / "shopcast-redis-XXXXXX");
        if (::mkdtemp(pattern.data()) == nullptr) return;
        dir_ = pattern;
        endpoint_.unix_path = dir_ + "/redis.sock";
        endpoint_.password = password;
        std::vector<std::string> arguments = {program,
                                              "--port",
                                              "0",
                                              "--unixsocket",
                                              endpoint_.unix_path,
                                              "--save",
                                              "",
                                              "--appendonly",
                                              "no",
                                              "--dir",
                                              dir_,
                                              "--logfile",
                                              dir_ + "/redis.log"};
        if (!password.empty()) {
            arguments.push_back("--requirepass");
            arguments.push_back(password);
        }
        std::vector<char*> argv;
        for (std::string& argument : arguments) argv.push_back(argument.data());
        argv.push_back(nullptr);
        if (::posix_spawn(&pid_, program.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
            pid_ = -1;
            return;
        }
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < deadline) {
            fcgi::RedisConnection probe = connect();
            if (probe.is_open()) {
                const fcgi::RedisReply pong = probe.command({"PING"});
                if (pong) {
                    started_ = true;
                    return;
                }
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;
    ~RedisServer() {
        stop();
        if (!dir_.empty()) {
            std::error_code ignored;
            std::filesystem::remove_all(dir_, ignored);
        }
    }

    bool started() const { return started_; }
    const RedisEndpoint& endpoint() const { return endpoint_; }
    pid_t pid() const { return pid_; }

    fcgi::RedisConnection connect() const {
        return fcgi::RedisConnection::open(
            endpoint_, {std::chrono::milliseconds(250), std::chrono::milliseconds(1000)});
    }

    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }

  private:
    std::string dir_;
    RedisEndpoint endpoint_;
    pid_t pid_ = -1;
    bool started_ = false;
};

}  // namespace shopcast
