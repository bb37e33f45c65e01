// POST /api/internal/broadcast: turns one request into its reply, following DESIGN.md's check
// order (method, failed-secret lockout, secret, Content-Type, size, JSON syntax, event rules,
// Idempotency-Key). Knows nothing of FastCGI, so every rule is testable with plain values.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/event.h"
#include "common/secret.h"
#include "fcgi/event_forwarder.h"
#include "fcgi/secret_throttle.h"

namespace shopcast::fcgi {

inline constexpr std::size_t kMaxIdempotencyKeyLength = 128;

// What the web server told us about one request. An absent header is nullopt.
struct RequestFacts {
    std::string_view method;
    std::optional<std::string_view> content_type;
    std::string_view content_length;  // nginx passes "" when the request has no body
    std::optional<std::string_view> secret;
    std::optional<std::string_view> idempotency_key;
    std::string_view remote_address;  // REMOTE_ADDR: the address nginx got the request from
};

// Supplies the request body on demand, so a request refused before the size check (or by it)
// is never read at all.
class BodySource {
  public:
    virtual ~BodySource() = default;
    // Exactly `length` bytes (never more than kMaxEventBytes are asked for); nullopt when the
    // stream ends early or fails.
    virtual std::optional<std::string> read(std::size_t length) = 0;
};

struct Reply {
    int status = 500;
    std::string content_type = "application/json";  // only /metrics answers otherwise
    // Headers besides Content-Type.
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;  // a JSON object (the exposition text for /metrics)
};

// {"success":false,"error":<code>,"message":<message>} with proper JSON escaping.
Reply error_reply(int status, std::string_view code, std::string_view message);

// What a reload may change while requests are served.
struct PublishRules {
    SecretVerifier secret;
    ValidationPolicy policy;
};

// The rules in force, shared by every worker. A request takes one snapshot and keeps it to
// the end, so a reload never changes the rules halfway through a request.
class PublishRulesSource {
  public:
    explicit PublishRulesSource(std::shared_ptr<const PublishRules> rules)
        : rules_(std::move(rules)) {}

    std::shared_ptr<const PublishRules> current() const {
        const std::lock_guard lock(mutex_);
        return rules_;
    }
    void replace(std::shared_ptr<const PublishRules> rules) {
        const std::lock_guard lock(mutex_);
        rules_.swap(rules);
    }  // the old rules go when the last request using them ends

  private:
    mutable std::mutex mutex_;
    std::shared_ptr<const PublishRules> rules_;
};

// One per worker thread: the forwarder is that worker's own daemon connection; the throttle and
// the rules are shared by all of them.
class PublishHandler {
  public:
    PublishHandler(const PublishRulesSource& rules, SecretThrottle& throttle,
                   EventForwarder& forwarder)
        : rules_(rules), throttle_(throttle), forwarder_(forwarder) {}

    Reply handle(const RequestFacts& request, BodySource& body);

  private:
    Reply forward_event(const ValidatedEvent& event, std::string_view idempotency_key);

    const PublishRulesSource& rules_;
    SecretThrottle& throttle_;
    EventForwarder& forwarder_;
};

// The individual rules, exposed for tests.

enum class ContentTypeVerdict { json, not_json, wrong_charset };
// Media type application/json (any case), parameters allowed; a charset must be utf-8.
ContentTypeVerdict classify_content_type(std::string_view content_type);

// 1-128 visible ASCII characters (0x21-0x7E).
bool is_valid_idempotency_key(std::string_view key);

// Appends `text` as a JSON string literal; bytes that are not UTF-8 become U+FFFD.
void append_json_string(std::string& out, std::string_view text);

}  // namespace shopcast::fcgi
