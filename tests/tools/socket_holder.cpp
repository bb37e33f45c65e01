// socket_holder: holds listening sockets the way systemd's socket units do and starts a daemon
// with them ($LISTEN_FDS, $LISTEN_PID, $LISTEN_FDNAMES), again and again, so a test can restart
// the daemon while the sockets stay open and connections wait in the backlog.
//
//   socket_holder unix:/run/x/ws.sock=0660 unix:/run/x/events.sock=0600 -- /usr/sbin/shopcastd
//
// "=MODE" (octal) is the socket file's mode, like a socket unit's SocketMode=; without it the
// umask decides.
// On standard output it prints "started <pid>" and "exited <status>" for each run of the daemon;
// a line "start" on standard input starts it again once it has exited. End of input (or SIGTERM)
// stops the daemon and the holder.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int listen_unix(const std::string& path, long mode) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (fd < 0 || path.size() >= sizeof(address.sun_path)) return -1;
    std::strcpy(address.sun_path, path.c_str());
    ::unlink(path.c_str());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        (mode >= 0 && ::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) ||
        ::listen(fd, SOMAXCONN) != 0) {
        return -1;
    }
    return fd;
}

pid_t start_daemon(const std::vector<int>& sockets, char** command) {
    const pid_t pid = ::fork();
    if (pid != 0) return pid;
    // The daemon's descriptors 3, 4, ... are the sockets, in the order given.
    std::vector<int> copies;
    for (int fd : sockets) copies.push_back(::dup(fd));
    for (std::size_t i = 0; i < copies.size(); ++i) {
        ::dup2(copies[i], static_cast<int>(3 + i));
    }
    for (int fd = static_cast<int>(3 + copies.size()); fd < 1024; ++fd) ::close(fd);
    ::setenv("LISTEN_FDS", std::to_string(sockets.size()).c_str(), 1);
    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    ::execv(command[0], command);
    std::perror(command[0]);
    std::_Exit(127);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<int> sockets;
    int arg = 1;
    for (; arg < argc && std::strcmp(argv[arg], "--") != 0; ++arg) {
        const std::string spec = argv[arg];
        if (spec.rfind("unix:", 0) != 0) {
            std::fprintf(stderr, "socket_holder: only unix:/path sockets, got %s\n", spec.c_str());
            return 2;
        }
        std::string path = spec.substr(5);
        long mode = -1;
        if (const auto equals = path.rfind('='); equals != std::string::npos) {
            char* end = nullptr;
            mode = std::strtol(path.c_str() + equals + 1, &end, 8);
            if (*end != '\0' || equals + 1 == path.size()) {
                std::fprintf(stderr, "socket_holder: bad mode in %s\n", spec.c_str());
                return 2;
            }
            path.resize(equals);
        }
        const int fd = listen_unix(path, mode);
        if (fd < 0) {
            std::perror(spec.c_str());
            return 1;
        }
        sockets.push_back(fd);
    }
    if (arg + 1 >= argc) {
        std::fprintf(stderr, "usage: socket_holder unix:/path... -- command [args]\n");
        return 2;
    }
    char** command = argv + arg + 1;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    ::signal(SIGPIPE, SIG_IGN);

    pid_t daemon = start_daemon(sockets, command);
    std::printf("started %d\n", daemon);
    std::string input;
    for (;;) {
        int status = 0;
        if (daemon > 0 && ::waitpid(daemon, &status, WNOHANG) == daemon) {
            std::printf("exited %d\n",
                        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
            daemon = 0;
        }
        pollfd in{0, POLLIN, 0};
        if (::poll(&in, 1, 50) > 0) {
            char buffer[256];
            const ssize_t got = ::read(0, buffer, sizeof(buffer));
            if (got <= 0) break;
            input.append(buffer, static_cast<std::size_t>(got));
            for (std::size_t end; (end = input.find('\n')) != std::string::npos;) {
                if (input.substr(0, end) == "start" && daemon == 0) {
                    daemon = start_daemon(sockets, command);
                    std::printf("started %d\n", daemon);
                }
                input.erase(0, end + 1);
            }
        }
    }
    if (daemon > 0) {
        ::kill(daemon, SIGTERM);
        ::waitpid(daemon, nullptr, 0);
    }
    return 0;
}
