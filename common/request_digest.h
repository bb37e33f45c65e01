// What makes two publishes "the same event" for an Idempotency-Key. The daemon's key cache (and
// the state file it survives a restart in) and Redis mode's idempotency values both hold this
// digest, so its input never changes: a key remembered before an upgrade still matches after.
#pragma once

#include <array>
#include <string>

#include "common/ipc.h"

namespace shopcast {

using RequestDigest = std::array<unsigned char, 32>;

// SHA-256 of the type and the validated JSON object shopcast-fcgi forwards, which is the body's
// bytes without the whitespace around it, exactly what browsers would be sent. A retry resends
// the same bytes; any other body (another value, another order of fields, other spacing inside)
// would deliver something else, so it is another event. The key and the audience are not part
// of it.
RequestDigest request_digest(const ipc::PublishRequest& request);

// The same digest as 64 lowercase hex digits, the form Redis holds (see kPublishScript).
std::string request_digest_hex(const ipc::PublishRequest& request);

}  // namespace shopcast
