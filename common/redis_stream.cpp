#include "common/redis_stream.h"

#include <charconv>

namespace shopcast {
namespace {

constexpr std::uint64_t kMaxSequence = (std::uint64_t{1} << kEntrySequenceBits) - 1;
constexpr std::uint64_t kMaxMilliseconds = (std::uint64_t{1} << kEntryMillisecondBits) - 1;

// A canonical unsigned decimal: digits only, no leading zero but "0" itself.
std::optional<std::uint64_t> canonical_decimal(std::string_view text) {
    if (text.empty() || (text.size() > 1 && text.front() == '0')) return std::nullopt;
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

std::string lua_quoted(std::string_view text) {
    return "'" + std::string(text) + "'";  // key names hold no quote or backslash
}

// Shared by the scripts below: one text, so the rules cannot drift apart.
const std::string kLuaFunctions = R"lua(
local function epoch_name(record)
  return string.match(record, '^[^:]*')
end

local function ensure_epoch(stream, epoch_key, fresh)
  local current = redis.call('GET', epoch_key)
  if current and redis.call('EXISTS', stream) == 1 then
    return current
  end
  redis.call('DEL', stream)
  redis.call('XADD', stream, 'MAXLEN', '0', '*', 'epoch', epoch_name(fresh))
  redis.call('SET', epoch_key, fresh)
  return fresh
end

local function live_nodes(nodes_key)
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local fields = redis.call('HGETALL', nodes_key)
  local count, connections = 0, 0
  for i = 2, #fields, 2 do
    local ms, held = string.match(fields[i], '^(%d+) (%d+) ')
    if ms and math.abs(now_ms - tonumber(ms)) <= )lua" +
                                  std::to_string(kLiveNodeMs) +
                                  R"lua( then
      count = count + 1
      connections = connections + tonumber(held)
    end
  end
  return count, connections
end
)lua";

}  // namespace

std::string redis_idempotency_key(std::string_view idempotency_key) {
    return std::string(kRedisIdempotencyPrefix) + std::string(idempotency_key);
}

std::optional<std::uint64_t> position_of_entry_id(std::string_view entry_id) {
    const std::size_t dash = entry_id.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    const auto milliseconds = canonical_decimal(entry_id.substr(0, dash));
    const auto sequence = canonical_decimal(entry_id.substr(dash + 1));
    if (!milliseconds || !sequence || *milliseconds > kMaxMilliseconds ||
        *sequence > kMaxSequence) {
        return std::nullopt;
    }
    return *milliseconds << kEntrySequenceBits | *sequence;
}

std::string entry_id_of_position(std::uint64_t position) {
    return std::to_string(position >> kEntrySequenceBits) + "-" +
           std::to_string(position & kMaxSequence);
}

std::string format_node_heartbeat(const NodeHeartbeat& heartbeat) {
    return std::to_string(heartbeat.unix_ms) + " " + std::to_string(heartbeat.connections) + " " +
           heartbeat.last_entry_id;
}

std::optional<NodeHeartbeat> parse_node_heartbeat(std::string_view text) {
    const std::size_t first = text.find(' ');
    if (first == std::string_view::npos) return std::nullopt;
    const std::size_t second = text.find(' ', first + 1);
    if (second == std::string_view::npos) return std::nullopt;
    const auto unix_ms = canonical_decimal(text.substr(0, first));
    const auto connections = canonical_decimal(text.substr(first + 1, second - first - 1));
    const std::string_view last = text.substr(second + 1);
    if (!unix_ms || !connections || *unix_ms > kMaxMilliseconds || !position_of_entry_id(last)) {
        return std::nullopt;
    }
    return NodeHeartbeat{static_cast<std::int64_t>(*unix_ms), *connections, std::string(last)};
}

const std::string kEnsureEpochScript = kLuaFunctions + R"lua(
return ensure_epoch(KEYS[1], KEYS[2], ARGV[1])
)lua";

const std::string kPublishScript = kLuaFunctions + R"lua(
local stream, idem = KEYS[1], KEYS[3]
local record = ensure_epoch(stream, KEYS[2], ARGV[1])
local name = epoch_name(record)
local digest = ARGV[7]
if idem ~= '' then
  local seen = redis.call('GET', idem)
  if seen then
    local seen_name, seen_id, seen_digest, seen_recipients =
      string.match(seen, '^(%S+) (%S+) (%S+) (%d+)$')
    if seen_name == name then
      if seen_digest == digest then
        return {'duplicate', record, seen_id, tonumber(seen_recipients)}
      end
      return {'conflict'}
    end
  end
end
local id = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], '*',
  'epoch', name, 'type', ARGV[3], 'shop', ARGV[4], 'user', ARGV[5], 'event', ARGV[6])
local _, recipients = live_nodes()lua" +
                                   lua_quoted(kRedisNodesKey) +
                                   R"lua()
if idem ~= '' then
  redis.call('SET', idem, name .. ' ' .. id .. ' ' .. digest .. ' ' .. recipients, 'EX', ARGV[8])
end
return {'accepted', record, id, recipients}
)lua";

const std::string kLiveNodesScript = kLuaFunctions + R"lua(
local count, connections = live_nodes(KEYS[1])
return {count, connections}
)lua";

}  // namespace shopcast
