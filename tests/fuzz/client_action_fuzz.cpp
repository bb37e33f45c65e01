// Fuzz target: parse_client_action on arbitrary bytes (what a browser may send).
// Properties beyond "no crash": a refusal says why; an accepted action carries only what its
// kind uses, and its shops are well-formed ID texts, sorted and unique.
#include "daemon/core/client_action.h"

#include "common/event.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

void fail(const char* what) {
    std::fprintf(stderr, "client_action_fuzz: %s\n", what);
    std::abort();
}

#define FUZZ_CHECK(condition)               \
    do {                                    \
        if (!(condition)) fail(#condition); \
    } while (0)

bool is_id_text(const std::string& id) {
    const auto normalized = shopcast::id_from_string(id);
    return normalized && *normalized == id;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const shopcast::ClientActionResult result = shopcast::parse_client_action(text);
    if (!result.ok) {
        FUZZ_CHECK(!result.error.empty());
        return 0;
    }
    const shopcast::ClientAction& action = result.action;
    const bool shops_kind = action.kind == shopcast::ClientActionKind::subscribe ||
                            action.kind == shopcast::ClientActionKind::unsubscribe;
    if (!shops_kind) FUZZ_CHECK(action.shops.empty());
    if (action.kind != shopcast::ClientActionKind::auth) FUZZ_CHECK(action.init_data.empty());
    if (action.kind != shopcast::ClientActionKind::resume) FUZZ_CHECK(action.since.empty());
    FUZZ_CHECK(std::is_sorted(action.shops.begin(), action.shops.end()));
    FUZZ_CHECK(std::adjacent_find(action.shops.begin(), action.shops.end()) == action.shops.end());
    for (const auto& shop : action.shops) FUZZ_CHECK(is_id_text(shop));
    // Decoded strings are never longer than the message that carried them.
    FUZZ_CHECK(action.init_data.size() <= size && action.since.size() <= size);
    return 0;
}
