#include "fcgi/publish_handler.h"

#include <charconv>
#include <cstdint>
#include <limits>

#include "common/log.h"

namespace shopcast::fcgi {
namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

bool is_http_whitespace(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && is_http_whitespace(text.front())) text.remove_prefix(1);
    while (!text.empty() && is_http_whitespace(text.back())) text.remove_suffix(1);
    return text;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

// A quoted-string parameter value loses its quotes and backslash escapes.
std::string unquote(std::string_view value) {
    if (value.size() < 2 || value.front() != '"' || value.back() != '"') return std::string(value);
    std::string plain;
    for (std::size_t i = 1; i + 1 < value.size(); ++i) {
        if (value[i] == '\\' && i + 2 < value.size()) ++i;
        plain += value[i];
    }
    return plain;
}

// Length of the well-formed UTF-8 sequence starting at text[at], or 0 when it is malformed
// (overlong forms, surrogates and code points above U+10FFFF included).
std::size_t utf8_sequence_length(std::string_view text, std::size_t at) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char lead = byte(at);
    std::size_t length = 0;
    unsigned char min_second = 0x80, max_second = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0) min_second = 0xA0;  // overlong
        if (lead == 0xED) max_second = 0x9F;  // surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0) min_second = 0x90;  // overlong
        if (lead == 0xF4) max_second = 0x8F;  // above U+10FFFF
    } else {
        return 0;
    }
    if (at + length > text.size()) return 0;
    if (byte(at + 1) < min_second || byte(at + 1) > max_second) return 0;
    for (std::size_t i = at + 2; i < at + length; ++i) {
        if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
    }
    return length;
}

// CONTENT_LENGTH as a byte count; "" (nginx, no body) is 0. nullopt when it is not a number.
// A number too large for uint64 still counts as "too large" rather than malformed.
std::optional<std::uint64_t> parse_content_length(std::string_view text) {
    if (text.empty()) return 0;
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (end != text.data() + text.size()) return std::nullopt;
    if (error == std::errc::result_out_of_range) return std::numeric_limits<std::uint64_t>::max();
    if (error != std::errc{}) return std::nullopt;
    return value;
}

Reply accepted_reply(std::string_view type, const ipc::PublishAck& ack) {
    Reply reply;
    reply.status = 200;
    reply.body = R"({"success":true,"message":"Broadcast sent","type":)";
    append_json_string(reply.body, type);
    reply.body += R"(,"id":)";
    append_json_string(reply.body, ack.id);
    reply.body += R"(,"recipients":)";
    reply.body += std::to_string(ack.recipients);
    reply.body += '}';
    return reply;
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += '"';
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x80) {
            const std::size_t length = utf8_sequence_length(text, i);
            if (length == 0) {
                out += kReplacementCharacter;
                ++i;
            } else {
                out.append(text.substr(i, length));
                i += length;
            }
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20 || c == 0x7F) {
                    out += "\\u00";
                    out += kHex[c >> 4];
                    out += kHex[c & 0xF];
                } else {
                    out += static_cast<char>(c);
                }
        }
        ++i;
    }
    out += '"';
}

Reply error_reply(int status, std::string_view code, std::string_view message) {
    Reply reply;
    reply.status = status;
    reply.body = R"({"success":false,"error":)";
    append_json_string(reply.body, code);
    reply.body += R"(,"message":)";
    append_json_string(reply.body, message);
    reply.body += '}';
    return reply;
}

ContentTypeVerdict classify_content_type(std::string_view content_type) {
    std::size_t separator = content_type.find(';');
    if (!equals_ignoring_case(trim(content_type.substr(0, separator)), "application/json")) {
        return ContentTypeVerdict::not_json;
    }
    while (separator != std::string_view::npos) {
        content_type.remove_prefix(separator + 1);
        separator = content_type.find(';');
        const std::string_view parameter = trim(content_type.substr(0, separator));
        if (parameter.empty()) continue;  // "application/json;" is harmless
        const std::size_t equals = parameter.find('=');
        if (equals == std::string_view::npos) return ContentTypeVerdict::not_json;
        if (!equals_ignoring_case(trim(parameter.substr(0, equals)), "charset")) continue;
        if (!equals_ignoring_case(unquote(trim(parameter.substr(equals + 1))), "utf-8")) {
            return ContentTypeVerdict::wrong_charset;
        }
    }
    return ContentTypeVerdict::json;
}

bool is_valid_idempotency_key(std::string_view key) {
    if (key.empty() || key.size() > kMaxIdempotencyKeyLength) return false;
    for (const char c : key) {
        if (c < 0x21 || c > 0x7E) return false;
    }
    return true;
}

Reply PublishHandler::handle(const RequestFacts& request, BodySource& body) {
    if (request.method != "POST") {
        Reply reply = error_reply(405, "method_not_allowed", "Only POST is allowed");
        reply.headers.emplace_back("Allow", "POST");
        return reply;
    }
    // Refused before the secret is even looked at, so a right guess during a lockout looks
    // exactly like a wrong one.
    const std::shared_ptr<const PublishRules> rules = rules_.current();
    const SecretThrottle::Clock::time_point now = SecretThrottle::Clock::now();
    if (const std::optional<std::chrono::seconds> wait =
            throttle_.refusal(request.remote_address, now)) {
        Reply reply = error_reply(429, "rate_limited",
                                  "Too many wrong secrets from this address; retry later");
        reply.headers.emplace_back("Retry-After", std::to_string(wait->count()));
        return reply;
    }
    if (!request.secret || !rules->secret.matches(*request.secret)) {
        if (throttle_.record_failure(request.remote_address, now)) {
            const ThrottleSettings& limits = throttle_.settings();
            log_line(LogLevel::warning, "refusing " + std::string(request.remote_address) +
                                            " for " + std::to_string(limits.lockout.count()) +
                                            " s after " + std::to_string(limits.max_failures) +
                                            " wrong secrets");
        }
        return error_reply(401, "unauthorized", "Missing or wrong x-internal-secret header");
    }

    // No Content-Type at all (nginx passes it empty) is refused like any other media type.
    switch (classify_content_type(request.content_type.value_or(""))) {
        case ContentTypeVerdict::json:
            break;
        case ContentTypeVerdict::not_json:
            return error_reply(415, "unsupported_media_type",
                               "Content-Type must be application/json");
        case ContentTypeVerdict::wrong_charset:
            return error_reply(415, "unsupported_media_type", "Content-Type charset must be utf-8");
    }

    const std::optional<std::uint64_t> length = parse_content_length(request.content_length);
    if (!length) return error_reply(400, "invalid_json", "Content-Length is not a number");
    if (*length > kMaxEventBytes) {
        return error_reply(
            413, "payload_too_large",
            "Request body is larger than " + std::to_string(kMaxEventBytes) + " bytes");
    }

    const std::optional<std::string> bytes = body.read(static_cast<std::size_t>(*length));
    if (!bytes) {
        return error_reply(400, "invalid_json", "Request body is shorter than Content-Length");
    }
    const ValidationResult validated = validate_event(*bytes, rules->policy);
    if (!validated.ok) {
        const bool syntax = validated.error == EventError::invalid_json;
        return error_reply(400, syntax ? "invalid_json" : "invalid_event", validated.message);
    }

    // A header pinned in nginx with `fastcgi_param ... $http_idempotency_key` arrives empty
    // when the bot sent none, so an empty value means "no key" rather than a malformed one.
    const std::string_view key = request.idempotency_key.value_or("");
    if (!key.empty() && !is_valid_idempotency_key(key)) {
        return error_reply(400, "invalid_event",
                           "Idempotency-Key header must be 1-128 visible ASCII characters");
    }
    return forward_event(validated.event, key);
}

Reply PublishHandler::forward_event(const ValidatedEvent& event, std::string_view idempotency_key) {
    ipc::PublishRequest request;
    request.idempotency_key = idempotency_key;
    request.type = event.type;
    request.shop_id = event.shop_id;
    request.user_id = event.user_id;
    request.json = event.json;

    const std::optional<ipc::PublishAck> ack = forwarder_.forward(request);
    if (!ack) {
        Reply reply =
            error_reply(503, "unavailable",
                        "Broadcast service unavailable; retry with the same Idempotency-Key");
        reply.headers.emplace_back("Retry-After", "1");
        return reply;
    }
    switch (ack->status) {
        case ipc::AckStatus::accepted:
        case ipc::AckStatus::duplicate:  // the first attempt's id and recipients
            return accepted_reply(event.type, *ack);
        case ipc::AckStatus::conflict:
            return error_reply(422, "idempotency_key_reused",
                               "This Idempotency-Key was already used for a different event; "
                               "nothing was broadcast. Use a new key for a new event");
        case ipc::AckStatus::rejected:
            break;
    }
    // The daemon refused a request this side built from a validated event: a version mismatch
    // or a bug, not the bot's fault.
    log_line(LogLevel::error, "shopcastd rejected a " + event.type + " event as malformed");
    return error_reply(500, "internal_error", "Internal error");
}

}  // namespace shopcast::fcgi
