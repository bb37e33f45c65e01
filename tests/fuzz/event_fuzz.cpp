// Fuzz target: validate_event on arbitrary bytes.
// Properties beyond "no crash": an accepted body yields `json` that is the body minus
// surrounding whitespace, is itself a JSON object (checked by RapidJSON independently) and
// validates again to the same event; IDs are well-formed; the userId policy only narrows.
#include "common/event.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using shopcast::ValidatedEvent;
using shopcast::ValidationPolicy;
using shopcast::ValidationResult;

void fail(const char* what, std::string_view body) {
    std::fprintf(stderr, "event_fuzz: %s (body %zu bytes)\n", what, body.size());
    std::abort();
}

#define FUZZ_CHECK(condition, body)               \
    do {                                          \
        if (!(condition)) fail(#condition, body); \
    } while (0)

bool same(const ValidatedEvent& a, const ValidatedEvent& b) {
    return a.type == b.type && a.shop_id == b.shop_id && a.user_id == b.user_id && a.json == b.json;
}

std::string_view trim_json_whitespace(std::string_view text) {
    constexpr std::string_view kWhitespace = " \t\r\n";
    const auto first = text.find_first_not_of(kWhitespace);
    if (first == std::string_view::npos) return {};
    const auto last = text.find_last_not_of(kWhitespace);
    return text.substr(first, last - first + 1);
}

// True when `text` is one JSON object and nothing else, judged by RapidJSON alone. A raw NUL
// is never valid JSON, and RapidJSON would take it for the end of input, so refuse it first.
bool is_json_object(std::string_view text) {
    if (text.find('\0') != std::string_view::npos) return false;
    rapidjson::Document document;
    document.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(
        text.data(), text.size());
    return !document.HasParseError() && document.IsObject();
}

bool is_id_text(const std::string& id) {
    const auto normalized = shopcast::id_from_string(id);
    return normalized && *normalized == id;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    static const ValidationPolicy kOpen{};
    static const ValidationPolicy kStrict{{"order_status", "product_added"}};

    const ValidationResult result = shopcast::validate_event(body, kOpen);
    if (!result.ok) {
        FUZZ_CHECK(!result.message.empty(), body);
        // A stricter policy never accepts what the open one refused.
        FUZZ_CHECK(!shopcast::validate_event(body, kStrict).ok, body);
        return 0;
    }

    const ValidatedEvent& event = result.event;
    FUZZ_CHECK(event.json.size() <= size, body);
    FUZZ_CHECK(event.json == trim_json_whitespace(body), body);
    FUZZ_CHECK(is_json_object(event.json), body);
    FUZZ_CHECK(shopcast::is_known_event_type(event.type), body);
    FUZZ_CHECK(event.shop_id.empty() || is_id_text(event.shop_id), body);
    FUZZ_CHECK(event.user_id.empty() || is_id_text(event.user_id), body);

    const ValidationResult again = shopcast::validate_event(event.json, kOpen);
    FUZZ_CHECK(again.ok && same(again.event, event), body);

    const ValidationResult strict = shopcast::validate_event(body, kStrict);
    const bool needs_user = event.type == "order_status" || event.type == "product_added";
    if (needs_user && event.user_id.empty()) {
        FUZZ_CHECK(!strict.ok && strict.error == shopcast::EventError::invalid_event, body);
    } else {
        FUZZ_CHECK(strict.ok && same(strict.event, event), body);
    }
    return 0;
}
