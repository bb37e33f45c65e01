#include "daemon/lws/ws_protocol.h"

#include <algorithm>
#include <array>
#include <chrono>

#include "daemon/core/client_action.h"
#include "daemon/core/frame_rules.h"
#include "daemon/lws/frame_guard.h"
#include "daemon/lws/guarded_callback.h"

namespace shopcast {
namespace {

constexpr int kCloseMessageTooBig = 1009;
// lws sends at most this much of one write at once and buffers the rest: above the Hub's batch.
constexpr std::size_t kMaxWriteBytes = 72 * 1024;
// A connection asked to close whose socket never drains enough to take the close frame.
constexpr int kCloseDrainTimeoutSeconds = 30;

// Per-connection data lws allocates zeroed; it only points at the Hub-owned Session.
struct ConnectionData {
    Session* session;
    bool binary_message;
    lws* wsi;
    lws_sorted_usec_list_t resume_reading;  // scheduled while reading is paused
    KeepaliveEntry keepalive;
    bool ping_wanted;  // the keepalive schedule asked for a PING: the next write sends it
};

// A PING written as raw bytes like every other frame. It carries one byte ("k") because lws
// 4.1.6 does not raise LWS_CALLBACK_RECEIVE_PONG for a PONG with an empty payload, and the
// client's PONG echoes the PING's.
constexpr std::array<unsigned char, 3> kPingFrame{0x89, 0x01, 'k'};  // FIN + ping, length 1

// The connection's data from its keepalive entry, which only our connections put in the schedule.
ConnectionData& connection_of(KeepaliveEntry& entry) {
    return *lws_container_of(&entry, ConnectionData, keepalive);
}

std::int64_t keepalive_now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

void request_writeable(lws* wsi) {
    lws_callback_on_writable(wsi);
}

WebSocketContext& context_of(lws* wsi) {
    return *static_cast<WebSocketContext*>(lws_get_vhost_user(lws_get_vhost(wsi)));
}

// A ping or pong beyond the action budget pauses reading from the connection until the budget
// is back (Hub::on_control_frame says how long): the flood then waits in the socket buffers and
// in the sender, costing nothing here, while events keep flowing to the connection.
void resume_reading(lws_sorted_usec_list_t* scheduled) {
    auto* data = lws_container_of(scheduled, ConnectionData, resume_reading);
    lws_rx_flow_control(data->wsi, 1);
}

// Anything that arrives from the client, PONGs and PINGs included, shows it is there.
void heard_from(lws* wsi, ConnectionData& data) {
    context_of(wsi).keepalive->heard(data.keepalive, keepalive_now_ms());
}

void charge_control_frames(lws* wsi, ConnectionData& data, std::uint64_t frames) {
    if (frames == 0) return;
    if (data.session->close) {
        // Nothing it sends matters any more, and while its PINGs keep coming lws' PONGs would
        // take every writeable turn, the one the close frame waits for included.
        lws_sul_cancel(&data.resume_reading);
        lws_rx_flow_control(wsi, 0);
        return;
    }
    heard_from(wsi, data);
    const std::int64_t pause_ms = context_of(wsi).hub->on_control_frame(*data.session, frames);
    if (pause_ms <= 0) return;
    lws_rx_flow_control(wsi, 0);
    lws_sul_schedule(lws_get_context(wsi), 0, &data.resume_reading, resume_reading,
                     pause_ms * LWS_US_PER_MS);
}

// lws answers a browser's PING itself and tells the protocol nothing (lib/roles/ws/ops-ws.c);
// frame_guard counts them as they are read and they are paid for there, before lws answers
// them: a pause taken here stops the next read.
void charge_pings(lws* wsi, std::uint64_t pings) noexcept {
    auto* data = static_cast<ConnectionData*>(lws_wsi_user(wsi));
    if (data == nullptr || data->session == nullptr) return;
    call_guarded("charging pings", [&] {
        charge_control_frames(wsi, *data, pings);
        return 0;
    });
}

std::string header(lws* wsi, lws_token_indexes token) {
    std::array<char, 256> buffer{};
    if (lws_hdr_total_length(wsi, token) >= static_cast<int>(buffer.size())) return {};
    if (lws_hdr_copy(wsi, buffer.data(), static_cast<int>(buffer.size()), token) < 0) return {};
    return buffer.data();
}

std::string client_address(lws* wsi, const WebSocketContext& context) {
    std::array<char, 64> peer{};
    if (!context.unix_listener) lws_get_peer_simple(wsi, peer.data(), peer.size());
    return resolve_client_address(context.unix_listener, peer.data(),
                                  header(wsi, WSI_TOKEN_HTTP_X_REAL_IP), *context.trusted_proxies);
}

bool origin_allowed(lws* wsi, const WebSocketContext& context) {
    if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0) return true;  // not a browser
    const std::string origin = header(wsi, WSI_TOKEN_ORIGIN);
    const auto& allowed = *context.allowed_origins;
    return std::find(allowed.begin(), allowed.end(), origin) != allowed.end();
}

// Answers the upgrade request itself (403/503) when the connection may not open.
int confirm_upgrade(lws* wsi) {
    const WebSocketContext& context = context_of(wsi);
    if (!origin_allowed(wsi, context)) {
        context.hub->metrics().count_refusal(Refusal::origin);
        lws_return_http_status(wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed");
        return 1;
    }
    switch (context.hub->admit(client_address(wsi, context))) {
        case Admission::accepted:
            return 0;
        case Admission::server_full:
            context.hub->metrics().count_refusal(Refusal::server_full);
            lws_return_http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "too many connections");
            return 1;
        case Admission::address_full:
            context.hub->metrics().count_refusal(Refusal::address_full);
            lws_return_http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                   "too many connections from this address");
            return 1;
    }
    return 1;
}

void open_connection(lws* wsi, ConnectionData& data) {
    WebSocketContext& context = context_of(wsi);
    Session& session = context.hub->open_session(client_address(wsi, context), wsi);
    data.session = &session;
    data.wsi = wsi;
    watch_frames(wsi, charge_pings);
    context.keepalive->add(data.keepalive, keepalive_now_ms());
    if (context.live_hold_ms > 0) {
        lws_set_timer_usecs(wsi, context.live_hold_ms * LWS_US_PER_MS);
    } else {
        context.hub->release_hold(session);
    }
}

// Fails the connection: lws sends a close frame with `code` and closes once the peer answers
// (or after its 5 s timeout).
int fail_connection(lws* wsi, int code, std::string_view reason) {
    lws_close_reason(wsi, static_cast<lws_close_status>(code),
                     reinterpret_cast<unsigned char*>(const_cast<char*>(reason.data())),
                     reason.size());
    return -1;
}

int receive_fragment(lws* wsi, ConnectionData& data, std::string_view fragment) {
    heard_from(wsi, data);
    Session& session = *data.session;
    Hub& hub = *context_of(wsi).hub;
    if (lws_is_first_fragment(wsi)) data.binary_message = lws_frame_is_binary(wsi) != 0;
    const bool final_fragment =
        lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
    switch (session.append_fragment(fragment, final_fragment, kMaxClientMessageBytes)) {
        case InboundStatus::incomplete:
            return 0;
        case InboundStatus::too_large:
            return fail_connection(wsi, kCloseMessageTooBig, "message over 4 KiB");
        case InboundStatus::complete:
            break;
    }
    std::string message = std::move(session.inbound);
    session.inbound.clear();
    if (data.binary_message) {
        hub.on_binary_message(session);
    } else if (!is_valid_utf8(message)) {
        // Checked here, not by lws (LWS_SERVER_OPTION_VALIDATE_UTF8): lws would also drop a
        // close frame whose reason is not UTF-8 without any code, where answer_peer_close
        // sends 1007.
        return fail_connection(wsi, kCloseInvalidPayload, "text is not UTF-8");
    } else {
        hub.on_text_message(session, message);
    }
    return 0;
}

// lws echoes the peer's close frame when this returns 0. It has already rewritten some codes no
// peer may send to 1002 in `payload`, but not all of them (5000 and up pass), nor a one-byte
// payload or a reason that is not UTF-8: those fail the connection here instead.
int answer_peer_close(lws* wsi, std::string_view payload) {
    const PeerCloseVerdict verdict = judge_peer_close(payload);
    if (verdict.echo) return 0;
    return fail_connection(
        wsi, verdict.code,
        verdict.code == kCloseInvalidPayload ? "close reason is not UTF-8" : "invalid close frame");
}

// The close frame goes out like an event, as raw bytes behind whatever is still buffered, and the
// connection ends once lws has sent it all: lws' own close path would wait for another
// writeable pass that a congested socket may not give it before its 5 s timer.
int close_connection(lws* wsi, Session& session) {
    if (!session.close_written) {
        const std::string& reason = session.close->reason;
        const std::size_t reason_length = std::min<std::size_t>(reason.size(), 123);
        std::array<unsigned char, 2 + 2 + 123> frame{};
        frame[0] = 0x88;  // FIN + close opcode
        frame[1] = static_cast<unsigned char>(2 + reason_length);
        frame[2] = static_cast<unsigned char>(session.close->code >> 8);
        frame[3] = static_cast<unsigned char>(session.close->code & 0xff);
        std::copy_n(reason.begin(), reason_length, frame.begin() + 4);
        const std::size_t length = 4 + reason_length;
        if (lws_write(wsi, frame.data(), length, LWS_WRITE_RAW) < static_cast<int>(length)) {
            return -1;
        }
        session.close_written = true;
    }
    if (lws_partial_buffered(wsi)) {
        request_writeable(wsi);
        return 0;
    }
    return -1;
}

// The keepalive PING goes ahead of anything the Hub has to send: lws calls WRITEABLE only once
// the previous write has left its buffer, so it never lands inside another frame.
int write_ping(lws* wsi, ConnectionData& data) {
    data.ping_wanted = false;
    auto frame = kPingFrame;
    if (lws_write(wsi, frame.data(), frame.size(), LWS_WRITE_RAW) <
        static_cast<int>(frame.size())) {
        return -1;
    }
    if (lws_partial_buffered(wsi)) request_writeable(wsi);
    return 0;
}

int write_next(lws* wsi, ConnectionData& data) {
    Session& session = *data.session;
    if (sent_unmasked_frame(wsi) && !session.close_written) {
        // RFC 6455 5.1: a client's frames are masked. lws 4.1.6 accepts them without a mask and
        // was shown nothing from that frame on (frame_guard.h); fail the connection at once,
        // ahead of anything still queued.
        session.close = CloseRequest{kCloseProtocolError, "frame not masked"};
        return close_connection(wsi, session);
    }
    if (session.close && session.control.empty()) return close_connection(wsi, session);
    if (data.ping_wanted) {
        if (write_ping(wsi, data) != 0) return -1;
        if (lws_partial_buffered(wsi)) return 0;  // the Hub writes on the next WRITEABLE
    }
    context_of(wsi).hub->on_writeable(session);
    return 0;
}

int callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, std::size_t len) {
    auto* data = static_cast<ConnectionData*>(user);
    switch (reason) {
        case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
            return confirm_upgrade(wsi);
        case LWS_CALLBACK_ESTABLISHED:
            open_connection(wsi, *data);
            return 0;
        case LWS_CALLBACK_TIMER:
            if (data != nullptr && data->session != nullptr) {
                context_of(wsi).hub->release_hold(*data->session);
            }
            return 0;
        case LWS_CALLBACK_RECEIVE:
            if (data == nullptr || data->session == nullptr) return -1;
            return receive_fragment(wsi, *data, {static_cast<const char*>(in), len});
        case LWS_CALLBACK_RECEIVE_PONG:
            if (data != nullptr && data->session != nullptr) {
                charge_control_frames(wsi, *data, 1);
            }
            return 0;
        case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
            // `in` is the close frame's payload: a 2-byte code, then the reason.
            if (data != nullptr && data->session != nullptr && len >= 2) {
                const auto* payload = static_cast<const unsigned char*>(in);
                data->session->peer_close_code = (payload[0] << 8) | payload[1];
            }
            return answer_peer_close(wsi, {static_cast<const char*>(in), len});
        case LWS_CALLBACK_SERVER_WRITEABLE:
            if (data == nullptr || data->session == nullptr) return 0;
            return write_next(wsi, *data);
        case LWS_CALLBACK_CLOSED:
            stop_watching_frames(wsi);
            // Also raised for connections refused before ESTABLISHED, with no session yet.
            if (data != nullptr && data->session != nullptr) {
                lws_sul_cancel(&data->resume_reading);
                context_of(wsi).keepalive->remove(data->keepalive);
                context_of(wsi).hub->close_session(*data->session);
                data->session = nullptr;
            }
            return 0;
        default:
            return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

}  // namespace

// The frames are complete WebSocket frames, so they go out as raw bytes: lws passes them through
// TLS when there is TLS and keeps what the socket did not take in the connection's buflist.
SendResult LwsSessionTransport::send(Session& session, std::span<const SharedFrame* const> frames) {
    auto* wsi = static_cast<lws*>(session.transport);
    if (wsi == nullptr) return SendResult::dropped;
    unsigned char* bytes = nullptr;
    std::size_t length = 0;
    if (frames.size() == 1) {
        const auto wire = frames.front()->wire();
        bytes = const_cast<unsigned char*>(wire.data());  // lws only reads a raw write
        length = wire.size();
    } else {
        cork_.clear();
        for (const SharedFrame* frame : frames) {
            const auto wire = frame->wire();
            cork_.insert(cork_.end(), wire.begin(), wire.end());
        }
        bytes = cork_.data();
        length = cork_.size();
    }
    if (lws_write(wsi, bytes, length, LWS_WRITE_RAW) < static_cast<int>(length)) {
        return SendResult::dropped;
    }
    return lws_partial_buffered(wsi) ? SendResult::backpressure : SendResult::sent;
}

void LwsSessionTransport::wake(Session& session) {
    auto* wsi = static_cast<lws*>(session.transport);
    if (wsi == nullptr) return;
    request_writeable(wsi);
    if (session.close && session.choked) {
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, kCloseDrainTimeoutSeconds);
    }
}

KeepaliveTimer::KeepaliveTimer(lws_context* context, KeepaliveSchedule& schedule)
    : context_(context), schedule_(&schedule) {
    lws_sul_schedule(context_, 0, &timer_, tick, kTickUsec);
}

KeepaliveTimer::~KeepaliveTimer() {
    lws_sul_cancel(&timer_);
}

void KeepaliveTimer::tick(lws_sorted_usec_list_t* timer) {
    auto* self = lws_container_of(timer, KeepaliveTimer, timer_);
    self->schedule_->run_due(
        keepalive_now_ms(),
        [](KeepaliveEntry& entry) {
            ConnectionData& data = connection_of(entry);
            data.ping_wanted = true;
            request_writeable(data.wsi);
        },
        [](KeepaliveEntry& entry) {
            // As lws' own validity timer did: no close frame to a peer that answers nothing, so
            // the page sees 1006 and reconnects.
            lws_set_timeout(connection_of(entry).wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        });
    lws_sul_schedule(self->context_, 0, &self->timer_, tick, kTickUsec);
}

lws_protocols websocket_protocol() {
    lws_protocols protocol{};
    protocol.name = "shopcast";
    protocol.callback = guarded_callback<callback>;
    protocol.per_session_data_size = sizeof(ConnectionData);
    protocol.rx_buffer_size = 1024;  // small: browsers send tiny messages, assembled in Session
    protocol.tx_packet_size = kMaxWriteBytes;  // a corked batch is written in one piece
    return protocol;
}

}  // namespace shopcast
