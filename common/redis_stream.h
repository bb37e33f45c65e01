// The shared event stream of the multi-node mode: its key names, how a stream entry id becomes
// a position (the number cursors carry), and the Lua scripts every writer runs. The one place
// both programs learn the layout from.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/ipc.h"
#include "common/request_digest.h"  // the digest kPublishScript stores

namespace shopcast {

// All in one database, fixed names.
inline constexpr std::string_view kRedisStreamKey = "shopcast:events";
// The stream's life: an Epoch::record(). Replaced only when the stream (or this key) is lost.
inline constexpr std::string_view kRedisEpochKey = "shopcast:epoch";
// Followed by the bot's Idempotency-Key; see kPublishScript for the value.
inline constexpr std::string_view kRedisIdempotencyPrefix = "shopcast:idem:";
// A hash: field = node id ("<hostname>:<pid>"), value = format_node_heartbeat().
inline constexpr std::string_view kRedisNodesKey = "shopcast:nodes";
// A node whose heartbeat is further than this from Redis' clock is not counted as live.
inline constexpr std::int64_t kLiveNodeMs = 5000;

// The fields of every stream entry, in this order: epoch <name>, type, shop (may be empty),
// user (may be empty), event (ipc::PublishRequest::json, the validated object without "id").
inline constexpr std::string_view kEntryFieldEpoch = "epoch";
inline constexpr std::string_view kEntryFieldType = "type";
inline constexpr std::string_view kEntryFieldShop = "shop";
inline constexpr std::string_view kEntryFieldUser = "user";
inline constexpr std::string_view kEntryFieldEvent = "event";

std::string redis_idempotency_key(std::string_view idempotency_key);

// Stream entry id "MS-N" <-> position MS << 20 | N, so position order is entry order and the
// cursor codec carries a position as it carried a seq: an event's cursor is
// CursorCodec(epoch).event_cursor(position). "0-0" is position 0. nullopt for anything that is
// not a canonical entry id (decimal, no sign, no leading zero) or is out of range
// (N >= 2^20 or MS >= 2^44, i.e. after the year 2527).
std::optional<std::uint64_t> position_of_entry_id(std::string_view entry_id);
std::string entry_id_of_position(std::uint64_t position);
inline constexpr int kEntrySequenceBits = 20;
inline constexpr int kEntryMillisecondBits = 44;

// A daemon's line in kRedisNodesKey: "<unix ms> <connections> <last entry id read>".
struct NodeHeartbeat {
    std::int64_t unix_ms = 0;
    std::uint64_t connections = 0;
    std::string last_entry_id = "0-0";
};
std::string format_node_heartbeat(const NodeHeartbeat& heartbeat);
std::optional<NodeHeartbeat> parse_node_heartbeat(std::string_view text);

// Lua scripts, sent with EVAL (each runs atomically).
//
// KEYS stream, epoch; ARGV a freshly generated Epoch::record(). Returns the epoch record in
// force: the stored one when both keys exist; else the stream is recreated empty (an XADD with
// MAXLEN 0 leaves an empty stream whose last id marks the birth), the fresh record is stored
// and returned.
extern const std::string kEnsureEpochScript;
//
// KEYS stream, epoch, shopcast:idem:<key> or "" without a key; ARGV fresh epoch record,
// maxlen (SHOPCAST_HISTORY), type, shop, user, event json, request_digest_hex(), ttl seconds.
// Runs ensure_epoch, then replies one of
//   {"accepted", epoch record, entry id, recipients}
//   {"duplicate", epoch record, entry id, recipients}  the key's first event, same digest
//   {"conflict"}                                       the key's first event had another one
// The idempotency value is "<epoch name> <entry id> <digest hex> <recipients>"; a value of an
// older epoch counts as absent. recipients = the connections of the live nodes (heartbeat
// within kLiveNodeMs of Redis' TIME) when the entry was appended, not filtered by audience.
extern const std::string kPublishScript;
//
// KEYS shopcast:nodes. Replies {live nodes, their connections}, by the same rule.
extern const std::string kLiveNodesScript;

}  // namespace shopcast
