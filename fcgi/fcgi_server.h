// The FastCGI side of shopcast-fcgi: the listening socket, the worker threads and shutdown.
#pragma once

#include <fcgiapp.h>
#include <sys/types.h>

#include <functional>
#include <string>

#include "common/fd.h"
#include "common/secret.h"
#include "fcgi/fcgi_config.h"
#include "fcgi/publish_handler.h"

namespace shopcast::fcgi {

// One per worker thread. FCGX_Free in the destructor releases the buffers and closes a
// connection still open; the listening socket is not the request's to close.
class FcgiRequest {
  public:
    explicit FcgiRequest(int listen_fd) { FCGX_InitRequest(&request_, listen_fd, 0); }
    FcgiRequest(const FcgiRequest&) = delete;
    FcgiRequest& operator=(const FcgiRequest&) = delete;
    ~FcgiRequest() { FCGX_Free(&request_, 1); }

    FCGX_Request* get() { return &request_; }

  private:
    FCGX_Request request_{};
};

// The socket nginx connects to. When this process created it (--listen), the destructor
// removes the file again, unless another instance has replaced it meanwhile.
class ListeningSocket {
  public:
    // Creates `path` with mode 0660; a stale socket file is replaced, a live one (another
    // instance answering) or a file that is not a socket is refused.
    static ListeningSocket create(const std::string& path);
    // The socket systemd (LISTEN_FDS, fd 3) or spawn-fcgi (fd 0) handed over.
    static ListeningSocket inherit();

    ListeningSocket(ListeningSocket&& other) noexcept;
    ListeningSocket& operator=(ListeningSocket&&) = delete;
    ~ListeningSocket();

    int fd() const { return fd_.get(); }
    const std::string& description() const { return description_; }

  private:
    ListeningSocket(UniqueFd fd, std::string description) noexcept
        : fd_(std::move(fd)), description_(std::move(description)) {}

    UniqueFd fd_;
    std::string description_;
    std::string created_path_;  // empty when inherited
    ino_t created_inode_ = 0;
};

// Writes `reply` as a FastCGI response (Status, Content-Type, extra headers, body).
void write_reply(FCGX_Stream* out, const Reply& reply);

// Serves until SIGTERM or SIGINT, then lets requests in flight finish. Returns the exit code.
// On SIGHUP calls `reload` on this (the signal-waiting) thread while the workers serve on.
int run_server(const FcgiConfig& config, const PublishRulesSource& rules, ListeningSocket listener,
               const std::function<void()>& reload);

}  // namespace shopcast::fcgi
