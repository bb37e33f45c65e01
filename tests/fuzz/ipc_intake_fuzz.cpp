// Fuzz target: the daemon's IPC intake end to end (frame reader, request decoding, event rules)
// on arbitrary bytes. Properties beyond "no crash": the verdicts do not depend on how the stream
// is split; every request let through is a JSON object of a known type that validate_event
// accepts, with the type and routing fields that JSON holds; and a request let through passes
// again after an encode/decode round trip.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/event.h"
#include "common/ipc.h"
#include "daemon/core/publish_intake.h"

namespace {

namespace ipc = shopcast::ipc;

void fail(const char* what) {
    std::fprintf(stderr, "ipc_intake_fuzz: %s\n", what);
    std::abort();
}

#define FUZZ_CHECK(condition)               \
    do {                                    \
        if (!(condition)) fail(#condition); \
    } while (0)

// A verdict reduced to what must not depend on the split: a query, refused, or the request's
// fields.
std::string summary(const shopcast::IntakeItem& item) {
    if (item.query) return "query " + std::to_string(static_cast<int>(*item.query));
    if (!item.request) return "refused";
    const ipc::PublishRequest& r = *item.request;
    return r.idempotency_key + '\0' + r.type + '\0' + r.shop_id + '\0' + r.user_id + '\0' + r.json;
}

void check_let_through(const shopcast::IntakeItem& item) {
    // Exactly one verdict: a query, a request, or a refusal.
    FUZZ_CHECK(int(item.query.has_value()) + int(item.request.has_value()) +
                   int(!item.refusal.empty()) ==
               1);
    if (!item.request) return;
    const ipc::PublishRequest& request = *item.request;
    FUZZ_CHECK(shopcast::is_known_event_type(request.type));
    const shopcast::ValidationResult checked =
        shopcast::validate_event(request.json, shopcast::ValidationPolicy{});
    FUZZ_CHECK(checked.ok);
    FUZZ_CHECK(checked.event.type == request.type);
    FUZZ_CHECK(checked.event.shop_id == request.shop_id);
    FUZZ_CHECK(checked.event.user_id == request.user_id);
    FUZZ_CHECK(checked.event.json == request.json);
    FUZZ_CHECK(request.json.front() == '{' && request.json.back() == '}');
    const std::string frame = ipc::encode_request(request);
    const shopcast::IntakeItem again =
        shopcast::check_publish_payload(std::string_view(frame).substr(ipc::kFrameHeaderBytes));
    FUZZ_CHECK(again.request && summary(again) == summary(item));
}

struct Run {
    bool intact = true;
    std::vector<std::string> verdicts;
};

// Feeds `bytes` in pieces of `first_piece`, then 1, 2, ... `max_piece` bytes (cyclically), taking
// verdicts as it goes.
Run run(std::string_view bytes, std::size_t first_piece, std::size_t max_piece) {
    Run result;
    shopcast::PublishIntake intake;
    std::size_t piece = first_piece;
    for (std::size_t at = 0; at < bytes.size(); at += piece, piece = piece % max_piece + 1) {
        if (!intake.feed(bytes.substr(at, piece))) {
            result.intact = false;
            break;
        }
        while (auto item = intake.next()) {
            check_let_through(*item);
            result.verdicts.push_back(summary(*item));
        }
    }
    if (result.intact) result.intact = intake.feed({});
    return result;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);

    // The input as one payload, as the listener would see it inside a frame.
    check_let_through(shopcast::check_publish_payload(bytes));

    // The input as a stream: whole, and split into small pieces. A broken stream stops at the
    // same frame either way, so the verdicts before it agree.
    const Run whole = run(bytes, bytes.size() + 1, 1);
    const Run pieces = run(bytes, 1, 7);
    FUZZ_CHECK(whole.intact == pieces.intact);
    FUZZ_CHECK(whole.verdicts == pieces.verdicts);
    return 0;
}
