#include "daemon/redis/stream_reader.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "common/event.h"
#include "common/log.h"
#include "common/redis_stream.h"
#include "daemon/core/call_guarded.h"

namespace shopcast {
namespace {

constexpr std::uint64_t kMinBackoffMs = 100;
constexpr std::uint64_t kMaxBackoffMs = 5000;
// Connecting, AUTH, SELECT and the epoch script must be done by then, else it is tried again.
constexpr std::uint64_t kConnectDeadlineMs = 2000;
constexpr std::int64_t kCheckIntervalMs = 1000;
// A connected Redis answers within XREAD's block time; one that stays silent much longer hangs
// (stopped, swapping, a dead peer without a reset) and is given up on, so health says so.
constexpr std::uint64_t kSilenceLimitMs = 3000;
constexpr const char* kReadBlockMs = "1000";
constexpr std::size_t kReadCount = 1000;
// A gap fill not answered by then is refused: the browser resyncs instead of waiting on.
constexpr std::uint64_t kFillTimeoutMs = 3000;

std::int64_t wall_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string node_id() {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    return std::string(host) + ":" + std::to_string(::getpid());
}

std::optional<std::string_view> text_of(const redisReply* reply) {
    if (reply == nullptr) return std::nullopt;
    if (reply->type != REDIS_REPLY_STRING && reply->type != REDIS_REPLY_STATUS) {
        return std::nullopt;
    }
    return std::string_view(reply->str, reply->len);
}

std::string describe_error(const redisReply* reply) {
    if (reply->type == REDIS_REPLY_ERROR) {
        // Redis' error text names the command's problem; it never echoes the password.
        return std::string(reply->str, std::min<std::size_t>(reply->len, 200));
    }
    return "unexpected reply type " + std::to_string(reply->type);
}

// [id, [field, value, ...]] in the contract's shape: epoch, type, shop, user, event.
StreamEntry read_entry(const redisReply* reply) {
    StreamEntry entry;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        entry.problem = "not an entry";
        return entry;
    }
    if (std::optional<std::string_view> id = text_of(reply->element[0])) entry.id = *id;
    const std::optional<std::uint64_t> position = position_of_entry_id(entry.id);
    if (!position) {
        entry.problem = "entry id out of range";
        return entry;
    }
    entry.position = *position;
    const redisReply* fields = reply->element[1];
    constexpr std::array<std::string_view, 5> kNames{
        kEntryFieldEpoch, kEntryFieldType, kEntryFieldShop, kEntryFieldUser, kEntryFieldEvent};
    const std::array<std::string*, 5> values{&entry.epoch, &entry.type, &entry.shop_id,
                                             &entry.user_id, &entry.json};
    if (fields->type != REDIS_REPLY_ARRAY || fields->elements != 2 * kNames.size()) {
        entry.problem = "fields are not epoch, type, shop, user, event";
        return entry;
    }
    for (std::size_t i = 0; i < kNames.size(); ++i) {
        const std::optional<std::string_view> name = text_of(fields->element[2 * i]);
        const std::optional<std::string_view> value = text_of(fields->element[2 * i + 1]);
        if (!name || *name != kNames[i] || !value) {
            entry.problem = "fields are not epoch, type, shop, user, event";
            return entry;
        }
        values[i]->assign(*value);
    }
    if (!is_epoch_name(entry.epoch)) {
        entry.problem = "malformed epoch";
        return entry;
    }
    const ValidatedEvent claimed{entry.type, entry.shop_id, entry.user_id, entry.json};
    if (std::optional<std::string> error = forwarded_event_error(claimed)) {
        entry.problem = "invalid event: " + error->substr(0, 200);
    }
    return entry;
}

// What XINFO STREAM says about what the stream has dropped. Trimming (MAXLEN) does not move
// max-deleted-entry-id (only XDEL does), so the count of entries ever added against the length
// tells whether anything beyond the epoch's birth entry was trimmed.
struct StreamInfo {
    std::uint64_t last_generated = 0;
    std::optional<std::uint64_t> first_entry;  // nullopt: empty
    bool trimmed = false;  // an entry other than the birth entry has been removed
};

std::optional<StreamInfo> read_stream_info(const redisReply* reply) {
    if (reply->type != REDIS_REPLY_ARRAY) return std::nullopt;
    StreamInfo info;
    std::optional<long long> length;
    std::optional<long long> added;
    std::optional<std::uint64_t> last_generated;
    for (std::size_t i = 0; i + 1 < reply->elements; i += 2) {
        const std::optional<std::string_view> name = text_of(reply->element[i]);
        const redisReply* value = reply->element[i + 1];
        if (!name) continue;
        if (*name == "length" && value->type == REDIS_REPLY_INTEGER) length = value->integer;
        if (*name == "entries-added" && value->type == REDIS_REPLY_INTEGER) added = value->integer;
        if (*name == "last-generated-id") {
            if (std::optional<std::string_view> id = text_of(value)) {
                last_generated = position_of_entry_id(*id);
            }
        }
        if (*name == "first-entry" && value->type == REDIS_REPLY_ARRAY && value->elements == 2) {
            if (std::optional<std::string_view> id = text_of(value->element[0])) {
                info.first_entry = position_of_entry_id(*id);
                if (!info.first_entry) return std::nullopt;
            }
        }
    }
    if (!length || !added || !last_generated) return std::nullopt;
    info.last_generated = *last_generated;
    info.trimmed = *added - *length > 1;
    return info;
}

}  // namespace

StreamReader::StreamReader(uv_loop_t* loop, RedisEndpoint endpoint, Hub& hub,
                           std::size_t history_events)
    : loop_(loop),
      endpoint_(std::move(endpoint)),
      hub_(hub),
      history_events_(std::max<std::size_t>(history_events, 1)),
      node_id_(node_id()),
      retry_timer_(loop),
      connect_deadline_(loop),
      silence_watch_(loop),
      fill_deadline_(loop) {}

StreamReader::~StreamReader() {
    stopping_ = true;
    if (context_ != nullptr) {
        redisAsyncContext* context = std::exchange(context_, nullptr);
        redisAsyncFree(context);  // pending callbacks run with no reply and are ignored
    }
}

void StreamReader::start() {
    log_line(LogLevel::info, "reading events from Redis at " + endpoint_.describe() + " (stream " +
                                 std::string(kRedisStreamKey) + ", node " + node_id_ + ")");
    connect();
}

void StreamReader::warn(std::string line) {
    if (auto admitted = log_.admit(std::move(line), static_cast<std::int64_t>(uv_now(loop_)))) {
        log_line(LogLevel::warning, *admitted);
    }
}

template <StreamReader::Handler handler>
void StreamReader::reply_to(redisAsyncContext* context, void* reply, void* data) {
    auto* reader = static_cast<StreamReader*>(data);
    // No reply: the connection is going away; on_disconnected or drop() takes it from there.
    if (reader->stopping_ || reply == nullptr || context != reader->context_) return;
    reader->last_reply_ms_ = uv_now(reader->loop_);
    const int outcome = call_guarded("redis reply", [&] {
        (reader->*handler)(static_cast<redisReply*>(reply));
        return 0;
    });
    if (outcome != 0) reader->drop("internal error");
}

void StreamReader::on_connected(const redisAsyncContext* context, int status) {
    auto* reader = static_cast<StreamReader*>(context->data);
    if (status == REDIS_OK || reader == nullptr || reader->context_ != context) return;
    // hiredis frees the context after this callback.
    reader->context_ = nullptr;
    reader->on_lost(std::string("cannot connect: ") + context->errstr);
}

void StreamReader::on_disconnected(const redisAsyncContext* context, int status) {
    auto* reader = static_cast<StreamReader*>(context->data);
    if (reader == nullptr || reader->context_ != context) return;  // dropped on purpose
    reader->context_ = nullptr;
    reader->on_lost(status == REDIS_OK ? std::string("connection closed")
                                       : std::string("connection lost: ") + context->errstr);
}

void StreamReader::connect() {
    redisAsyncContext* context = endpoint_.unix_path.empty()
                                     ? redisAsyncConnect(endpoint_.host.c_str(), endpoint_.port)
                                     : redisAsyncConnectUnix(endpoint_.unix_path.c_str());
    if (context == nullptr || context->err != 0) {
        const std::string why = context == nullptr ? "out of memory" : context->errstr;
        if (context != nullptr) redisAsyncFree(context);
        on_lost("cannot connect: " + why);
        return;
    }
    context->data = this;
    if (redisLibuvAttach(context, loop_) != REDIS_OK) {
        redisAsyncFree(context);
        on_lost("cannot attach to the event loop");
        return;
    }
    redisAsyncSetConnectCallback(context, on_connected);
    redisAsyncSetDisconnectCallback(context, on_disconnected);
    context_ = context;
    connect_deadline_.start(kConnectDeadlineMs, [this] {
        if (!health_.connected) drop("no answer within 2 s");
    });
    // Queued until the socket connects; each answer is checked in order.
    if (!endpoint_.password.empty())
        send_with<&StreamReader::on_setup_reply>({"AUTH", endpoint_.password});
    if (endpoint_.db != 0)
        send_with<&StreamReader::on_setup_reply>({"SELECT", std::to_string(endpoint_.db)});
    check_epoch();
}

template <StreamReader::Handler handler>
bool StreamReader::send_with(const std::vector<std::string>& arguments) {
    if (context_ == nullptr) return false;
    std::vector<const char*> pointers;
    std::vector<std::size_t> lengths;
    for (const std::string& argument : arguments) {
        pointers.push_back(argument.data());
        lengths.push_back(argument.size());
    }
    if (redisAsyncCommandArgv(context_, reply_to<handler>, this, static_cast<int>(pointers.size()),
                              pointers.data(), lengths.data()) != REDIS_OK) {
        drop("cannot send a command");
        return false;
    }
    return true;
}

void StreamReader::drop(std::string_view why) {
    if (context_ == nullptr) return;
    redisAsyncContext* context = std::exchange(context_, nullptr);
    // Inside a reply callback hiredis defers the free until the callback returns.
    redisAsyncFree(context);
    on_lost(why);
}

void StreamReader::watch_for_silence() {
    silence_watch_.start(kSilenceLimitMs / 2, [this] {
        if (!health_.connected) return;
        if (uv_now(loop_) - last_reply_ms_ > kSilenceLimitMs) {
            drop("no answer for 3 s");
            return;
        }
        watch_for_silence();
    });
}

void StreamReader::on_lost(std::string_view why) {
    connect_deadline_.stop();
    silence_watch_.stop();
    // Their replies will not come: every parked browser resyncs now.
    std::deque<PendingFill> lost = std::move(fills_);
    fills_.clear();
    fill_deadline_.stop();
    for (PendingFill& pending : lost) {
        if (pending.done) pending.done(GapFill{});
    }
    const bool was_connected = health_.connected;
    health_.connected = false;
    health_.caught_up = false;
    if (stopping_) return;
    if (was_connected || !outage_logged_) {
        // One line per outage: while Redis stays away, retries are not logged again.
        log_line(LogLevel::warning, "Redis " + endpoint_.describe() + ": " + std::string(why) +
                                        "; connected browsers stay, retrying with backoff");
        outage_logged_ = true;
    }
    schedule_reconnect();
}

void StreamReader::schedule_reconnect() {
    const std::uint64_t ceiling = std::min(kMaxBackoffMs, kMinBackoffMs << std::min(attempts_, 6u));
    ++attempts_;
    // Half fixed, half random: daemons that lost Redis together do not all return at once.
    static thread_local std::minstd_rand random(std::random_device{}());
    const std::uint64_t delay = ceiling / 2 + random() % (ceiling / 2 + 1);
    retry_timer_.start(delay, [this] { connect(); });
}

void StreamReader::on_setup_reply(redisReply* reply) {
    if (reply->type == REDIS_REPLY_ERROR) {
        warn("Redis refused the connection's setup: " + describe_error(reply));
        drop("setup refused");
    }
}

void StreamReader::check_epoch() {
    const Epoch fresh = Epoch::generate();
    send_with<&StreamReader::on_epoch>({"EVAL", kEnsureEpochScript, "2",
                                        std::string(kRedisStreamKey), std::string(kRedisEpochKey),
                                        fresh.record()});
}

void StreamReader::on_epoch(redisReply* reply) {
    const std::optional<std::string_view> record = text_of(reply);
    std::optional<Epoch> epoch;
    if (record) epoch = Epoch::from_record(*record);
    if (!epoch) {
        warn("Redis answered the epoch script with " +
             (record ? std::string("a malformed epoch") : describe_error(reply)));
        drop("no epoch");
        return;
    }
    if (!health_.connected) {
        health_.connected = true;
        ++health_.connects;
        connect_deadline_.stop();
        watch_for_silence();
        attempts_ = 0;
        if (outage_logged_ || health_.connects > 1) {
            log_line(LogLevel::info, "Redis " + endpoint_.describe() + " is back");
        }
        outage_logged_ = false;
    }
    candidate_ = *epoch;
    candidate_record_ = std::string(*record);
    if (epoch_ && candidate_record_ == epoch_record_) {
        // The same life: continue from the last id read if nothing after it was trimmed.
        send_with<&StreamReader::on_gap_info>({"XINFO", "STREAM", std::string(kRedisStreamKey)});
        return;
    }
    begin_load("epoch_changed");
}

void StreamReader::on_gap_info(redisReply* reply) {
    const std::optional<StreamInfo> info = read_stream_info(reply);
    if (!info) {
        warn("Redis answered XINFO STREAM with " + describe_error(reply));
        drop("cannot inspect the stream");
        return;
    }
    const std::uint64_t last = position_of_entry_id(last_id_).value_or(0);
    // Trimming removes the oldest entries only: what follows the last id read is all there
    // unless something was trimmed and the oldest entry left lies after it.
    const bool complete = !info->trimmed || (info->first_entry ? *info->first_entry <= last
                                                               : info->last_generated <= last);
    if (complete) {
        read_next();
        return;
    }
    begin_load("gap_trimmed");
}

void StreamReader::begin_load(std::string_view reason) {
    load_reason_ = reason;
    loading_.clear();
    send_with<&StreamReader::on_newest>({"XREVRANGE", std::string(kRedisStreamKey), "+", "-",
                                         "COUNT", std::to_string(history_events_ + 1)});
}

void StreamReader::on_newest(redisReply* reply) {
    if (reply->type != REDIS_REPLY_ARRAY) {
        warn("Redis answered XREVRANGE with " + describe_error(reply));
        drop("cannot load the stream");
        return;
    }
    loading_.reserve(reply->elements);
    for (std::size_t i = 0; i < reply->elements; ++i) {
        loading_.push_back(read_entry(reply->element[i]));
        if (loading_.back().id.empty()) {
            drop("malformed XREVRANGE reply");
            return;
        }
    }
    if (loading_.size() > history_events_) {
        // Everything after the extra, oldest entry is loaded: it is the floor.
        const std::uint64_t floor = loading_.back().position;
        loading_.pop_back();
        finish_load(floor);
        return;
    }
    // The whole stream is here: the floor is the newest entry it ever dropped.
    send_with<&StreamReader::on_load_info>({"XINFO", "STREAM", std::string(kRedisStreamKey)});
}

void StreamReader::on_load_info(redisReply* reply) {
    const std::optional<StreamInfo> info = read_stream_info(reply);
    if (!info) {
        warn("Redis answered XINFO STREAM with " + describe_error(reply));
        drop("cannot inspect the stream");
        return;
    }
    // Untrimmed, the loaded entries are all this epoch ever had. Trimmed, all that is known is
    // that nothing before the oldest one loaded is left: a cursor just below it may have missed
    // a trimmed entry, so only the oldest's own predecessor position answers.
    std::uint64_t floor = 0;
    if (info->trimmed) {
        // Empty when read: what was appended since is read next, from before its oldest.
        const std::optional<std::uint64_t> oldest =
            loading_.empty() ? info->first_entry : loading_.back().position;
        floor = oldest ? *oldest - 1 : info->last_generated;
    }
    finish_load(floor);
}

void StreamReader::finish_load(std::uint64_t floor) {
    epoch_ = candidate_;
    epoch_record_ = candidate_record_;
    ++health_.resets;
    last_id_ = entry_id_of_position(floor);
    const std::vector<StreamEntry> entries = std::move(loading_);
    loading_.clear();
    hub_.reset_stream(*epoch_, floor, load_reason_, [&] {
        for (auto entry = entries.rbegin(); entry != entries.rend(); ++entry) take(*entry);
    });
    log_line(LogLevel::info, "stream epoch " + epoch_->name + ": " +
                                 std::to_string(hub_.history().size()) + " events loaded, floor " +
                                 entry_id_of_position(floor) + " (" + load_reason_ + ")");
    read_next();
}

void StreamReader::take(const StreamEntry& entry) {
    last_id_ = entry.id;
    health_.last_entry_ms = static_cast<std::int64_t>(entry.position >> kEntrySequenceBits);
    if (!entry.problem.empty()) {
        ++health_.entries_skipped;
        warn("skipping stream entry " + entry.id + ": " + entry.problem);
        return;
    }
    if (hub_.append_from_stream(entry.position,
                                {entry.type, entry.shop_id, entry.user_id, entry.json})) {
        ++health_.entries_read;
    }
}

void StreamReader::read_next() {
    const std::int64_t now = static_cast<std::int64_t>(uv_now(loop_));
    if (now >= next_check_ms_) {
        next_check_ms_ = now + kCheckIntervalMs;
        write_heartbeat_and_check_epoch();
        return;
    }
    send_with<&StreamReader::on_read>({"XREAD", "BLOCK", kReadBlockMs, "COUNT",
                                       std::to_string(kReadCount), "STREAMS",
                                       std::string(kRedisStreamKey), last_id_});
}

void StreamReader::on_read(redisReply* reply) {
    if (reply->type == REDIS_REPLY_NIL) {
        health_.caught_up = true;  // nothing new within the block time
        read_next();
        return;
    }
    // [[stream, [entry, ...]]]
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1 ||
        reply->element[0]->type != REDIS_REPLY_ARRAY || reply->element[0]->elements != 2 ||
        reply->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
        warn("Redis answered XREAD with " + describe_error(reply));
        drop("cannot read the stream");
        return;
    }
    const redisReply* entries = reply->element[0]->element[1];
    for (std::size_t i = 0; i < entries->elements; ++i) {
        StreamEntry entry = read_entry(entries->element[i]);
        if (entry.id.empty()) {
            drop("malformed XREAD reply");
            return;
        }
        if (entry.problem.empty() && entry.epoch != epoch_->name) {
            if (entry.id != rechecked_entry_id_) {
                // The stream was recreated under us: what the epoch key says decides.
                rechecked_entry_id_ = entry.id;
                hub_.deliver_published();
                check_epoch();
                return;
            }
            entry.problem = "epoch " + entry.epoch + " is not the stream's";
        }
        take(entry);
    }
    if (entries->elements < kReadCount) health_.caught_up = true;
    hub_.deliver_published();
    read_next();
}

void StreamReader::write_heartbeat_and_check_epoch() {
    NodeHeartbeat heartbeat;
    heartbeat.unix_ms = wall_ms();
    heartbeat.connections = hub_.session_count();
    heartbeat.last_entry_id = last_id_;
    send_with<&StreamReader::on_heartbeat>(
        {"HSET", std::string(kRedisNodesKey), node_id_, format_node_heartbeat(heartbeat)});
    send_with<&StreamReader::on_epoch_key>({"GET", std::string(kRedisEpochKey)});
}

void StreamReader::on_heartbeat(redisReply* reply) {
    if (reply->type == REDIS_REPLY_ERROR)
        warn("Redis refused the heartbeat: " + describe_error(reply));
}

void StreamReader::on_epoch_key(redisReply* reply) {
    if (text_of(reply) == std::optional<std::string_view>(epoch_record_)) {
        read_next();
        return;
    }
    // Gone (a flush) or replaced: agree on the epoch again, then reload.
    check_epoch();
}

bool StreamReader::fill(std::uint64_t after, std::uint64_t through, Done done) {
    if (context_ == nullptr || !health_.connected || !epoch_ || stopping_) return false;
    // COUNT one more than the history holds: a reply that long is cut short, not exact.
    // Then XINFO and the epoch key: read after the range, they can only show more trimmed or
    // a newer epoch than the range saw, so an answer they allow is sound.
    const bool sent =
        send_with<&StreamReader::on_fill_range>(
            {"XRANGE", std::string(kRedisStreamKey), "(" + entry_id_of_position(after),
             entry_id_of_position(through), "COUNT", std::to_string(history_events_ + 1)}) &&
        send_with<&StreamReader::on_fill_info>({"XINFO", "STREAM", std::string(kRedisStreamKey)}) &&
        send_with<&StreamReader::on_fill_epoch>({"GET", std::string(kRedisEpochKey)});
    if (!sent) return false;  // drop() has failed the earlier ones; this one was not queued
    fills_.push_back(PendingFill{after, std::move(done), uv_now(loop_) + kFillTimeoutMs, {}});
    expire_fills();  // schedules the earliest deadline
    return true;
}

void StreamReader::expire_fills() {
    const std::uint64_t now = uv_now(loop_);
    std::uint64_t next_deadline = 0;
    std::vector<GapFiller::Done> expired;
    for (PendingFill& pending : fills_) {
        if (!pending.done) continue;
        if (pending.deadline_ms <= now) {
            expired.push_back(std::move(pending.done));
            pending.done = nullptr;  // keeps its place until its replies have passed
        } else if (next_deadline == 0) {
            next_deadline = pending.deadline_ms;
        }
    }
    for (GapFiller::Done& done : expired) done(GapFill{});
    if (next_deadline == 0) {
        fill_deadline_.stop();
    } else {
        fill_deadline_.start(next_deadline - now, [this] { expire_fills(); });
    }
}

void StreamReader::on_fill_range(redisReply* reply) {
    if (fills_.empty()) return;
    PendingFill& pending = fills_.front();
    if (reply->type != REDIS_REPLY_ARRAY) {
        warn("Redis answered a gap fill's XRANGE with " + describe_error(reply));
        return;  // not exact: the browser resyncs
    }
    if (reply->elements > history_events_) return;  // cut short
    GapFill& fill = pending.fill;
    for (std::size_t i = 0; i < reply->elements; ++i) {
        StreamEntry entry = read_entry(reply->element[i]);
        if (entry.id.empty()) return;
        if (!entry.problem.empty()) continue;  // skipped when read live too
        fill.entries.push_back(FilledEntry{entry.position, std::move(entry.epoch),
                                           std::move(entry.shop_id), std::move(entry.user_id),
                                           std::move(entry.json)});
    }
    fill.exact = true;  // so far: XINFO and the epoch key decide
}

void StreamReader::on_fill_info(redisReply* reply) {
    if (fills_.empty()) return;
    PendingFill& pending = fills_.front();
    const std::optional<StreamInfo> info = read_stream_info(reply);
    // Trimming takes the oldest entries only: if the oldest one left is at or before the
    // cursor, every entry after it is still there.
    const bool untouched =
        info && (!info->trimmed || (info->first_entry && *info->first_entry <= pending.after));
    if (!untouched) pending.fill.exact = false;
}

void StreamReader::on_fill_epoch(redisReply* reply) {
    if (fills_.empty()) return;
    if (text_of(reply) != std::optional<std::string_view>(epoch_record_)) {
        fills_.front().fill.exact = false;
    }
    PendingFill pending = std::move(fills_.front());
    fills_.pop_front();
    if (pending.done) pending.done(std::move(pending.fill));
}

}  // namespace shopcast
