// Shopcast browser client: one WebSocket to /ws that authenticates, keeps its
// shop subscriptions, resumes from the last event it saw after every
// reconnect, and reconnects with capped exponential backoff and full jitter.
//
// Dependency-free ES module; works in browsers and, with `WebSocketImpl` from
// the `ws` package, in Node.
//
//   import { connect } from './shopcast-client.js';
//   const client = connect({
//     url: 'wss://shop.example/ws',
//     initData: window.Telegram?.WebApp?.initData,
//     shops: [123],
//     onEvent: (event) => { ... },            // every event, in publish order
//     onResync: (reason) => { refetch(); },   // missed events are gone: refetch
//     onAuthError: (message) => { ... },      // initData refused: no private events
//   });
//
// With `coalesce: { windowMs: 250 }` and `onBatch({ shopId, events })`, a
// burst of refetch-style events for one shop (product_added, product_updated,
// product_deleted, shop_updated) becomes one onBatch call per window, so the
// page refetches once per burst; everything else still goes to onEvent at once.

// Messages the server sends that are not events. An event always carries
// both `type` and `id`; a message without `id` whose type is not listed here
// is a control message from a newer server and is ignored.
const CONTROL_TYPES = new Set(['hello', 'resync', 'auth_ok', 'error', 'subscribed']);

// A connection that stayed up this long counts as healthy: the next drop
// starts the backoff from the beginning again. A `hello` alone does not: a
// server that accepts and then fails must not be hammered.
const HEALTHY_CONNECTION_MS = 5000;

// Close codes that mean "the server is restarting or going away" (1001 going
// away, 1012 service restart): every page of the server gets one at the same
// moment, so the first reconnect is spread over a window instead of all
// pages arriving within the same half second.
const SERVER_RESTART_CODES = new Set([1001, 1012]);

const WS_OPEN = 1;

// Events that only tell a page to refetch a shop's data: a burst of them for
// one shop asks for one refetch. Private events (those with a userId) never
// wait, whatever their type.
const COALESCED_TYPES = new Set(['product_added', 'product_updated', 'product_deleted', 'shop_updated']);
const DEFAULT_COALESCE_MS = 250;

const INDICATOR_ID = 'shopcast-ws-indicator';
const INDICATOR_CONNECTED = '🟢 WS Connected';
const INDICATOR_DISCONNECTED = '🔴 WS Disconnected';

/**
 * Delay before reconnect attempt number `attempt` (0-based): "full jitter",
 * a uniform random value in [0, min(maxMs, baseMs * 2^attempt)].
 */
export function backoffDelay(attempt, { baseMs = 500, maxMs = 30000 } = {}, random = Math.random) {
    const exponent = Math.min(Math.max(0, attempt), 40); // 2^40 * base dwarfs any cap
    const cap = Math.min(maxMs, baseMs * 2 ** exponent);
    return Math.min(cap, Math.floor(random() * (cap + 1)));
}

/**
 * Delay before the first reconnect after the server said it is restarting:
 * uniform in [0, spreadMs]. With the default 5 s, 10,000 pages come back at
 * about 2,000 per second rather than all at once.
 */
export function restartDelay(spreadMs = 5000, random = Math.random) {
    return Math.floor(random() * (Math.max(0, spreadMs) + 1));
}

/**
 * Opens the connection and keeps it open until close().
 *
 * Options: url, initData (Telegram.WebApp.initData; sent as a message, never
 * in the URL), shops (initial subscriptions), onEvent(event),
 * onStatus('connecting' | 'connected' | 'disconnected'), onResync(reason),
 * onAuthError(message) when the server refused initData (stale or invalid:
 * the connection stays open but anonymous, so private events do not come),
 * onControl(message) for auth_ok / error / subscribed, coalesce (false,
 * true or {windowMs}) with onBatch({shopId, events}), dev (console logging
 * and the status indicator), WebSocketImpl, backoff {baseMs, maxMs},
 * random and now (injectable for tests).
 */
export function connect({
    url,
    initData,
    shops = [],
    onEvent,
    onStatus,
    onResync,
    onControl,
    onAuthError,
    coalesce = false,
    onBatch,
    dev = false,
    WebSocketImpl = globalThis.WebSocket,
    backoff = {},
    restartSpreadMs = 5000,
    random = Math.random,
    now = Date.now,
} = {}) {
    if (!url) throw new TypeError('shopcast: url is required');
    if (typeof WebSocketImpl !== 'function') throw new TypeError('shopcast: no WebSocket implementation');

    const coalesceMs = coalesceWindow(coalesce);
    if (coalesceMs != null && typeof onBatch !== 'function') {
        throw new TypeError('shopcast: coalesce needs an onBatch callback');
    }

    const backoffOptions = { baseMs: backoff.baseMs ?? 500, maxMs: backoff.maxMs ?? 30000 };
    // Shop ids are compared by their text on the server (7 and "7" are one
    // shop); keyed the same way here, the original value is what is sent.
    const subscriptions = new Map();
    for (const shop of shops) subscriptions.set(String(shop), shop);

    let socket = null;       // the current WebSocket, null while disconnected
    let openedAt = null;     // when the current socket opened
    let helloId = null;      // cursor from the current connection's hello
    let connectionId = null; // newest cursor seen on the current connection
    let lastId = null;       // cursor to resume from
    let authPending = false; // auth sent on this connection, not answered yet
    let attempt = 0;         // reconnect attempts since the last healthy connection
    let timer = null;        // pending reconnect
    let status = null;
    let closed = false;
    // Coalesced events waiting for their window to end, by shop id as text.
    // Each entry: { shopId, events, timer }.
    const batches = new Map();

    const indicator = dev ? createIndicator() : null;

    function setStatus(next) {
        if (next === status) return;
        status = next;
        if (indicator) indicator.textContent = next === 'connected' ? INDICATOR_CONNECTED : INDICATOR_DISCONNECTED;
        if (indicator) indicator.dataset.state = next;
        call(onStatus, next);
    }

    function send(message) {
        if (!socket || socket.readyState !== WS_OPEN) return false;
        socket.send(JSON.stringify(message));
        return true;
    }

    function open() {
        clearTimer();
        if (closed || socket) return;
        setStatus('connecting');
        let ws;
        try {
            ws = new WebSocketImpl(url);
        } catch (err) {
            if (dev) console.error('❌ WebSocket failed:', err?.message ?? err);
            setStatus('disconnected');
            scheduleReconnect();
            return;
        }
        socket = ws;
        openedAt = null;
        helloId = null;
        connectionId = null;
        authPending = false;
        ws.onopen = () => {
            if (socket !== ws) return;
            openedAt = now();
            setStatus('connected');
            if (dev) console.log('✅ WebSocket connected');
            if (initData) authPending = send({ action: 'auth', initData });
            if (subscriptions.size) send({ action: 'subscribe', shops: [...subscriptions.values()] });
            if (lastId != null) send({ action: 'resume', since: lastId });
        };
        ws.onmessage = (message) => {
            if (socket !== ws) return;
            handleMessage(message.data);
        };
        ws.onerror = () => {
            // A close event always follows; reconnecting happens there.
        };
        ws.onclose = (event) => {
            if (socket !== ws) return;
            socket = null;
            if (openedAt != null && now() - openedAt > HEALTHY_CONNECTION_MS) attempt = 0;
            setStatus('disconnected');
            scheduleReconnect(SERVER_RESTART_CODES.has(event?.code));
        };
    }

    function handleMessage(data) {
        const text = typeof data === 'string' ? data : String(data);
        let message;
        try {
            message = JSON.parse(text);
        } catch {
            if (dev) console.log('📨 WebSocket message:', text);
            return;
        }
        if (dev) console.log('📨 WebSocket message:', message);
        if (!message || typeof message !== 'object' || Array.isArray(message)) return;
        const { type, id } = message;
        if (typeof type !== 'string') return;

        if (CONTROL_TYPES.has(type)) {
            handleControl(message);
            return;
        }
        if (id == null) return; // a control message this client does not know
        lastId = id;
        connectionId = id;
        deliver(message);
    }

    // Straight to onEvent, or into the shop's batch: the first coalesced event
    // of a shop opens a window; everything for that shop until it ends goes
    // into the same onBatch call.
    function deliver(event) {
        if (coalesceMs == null || !COALESCED_TYPES.has(event.type) || event.userId != null || event.shopId == null) {
            call(onEvent, event);
            return;
        }
        const key = String(event.shopId);
        let batch = batches.get(key);
        if (!batch) {
            batch = { shopId: event.shopId, events: [], timer: null };
            batch.timer = setTimeout(() => flushBatch(key), coalesceMs);
            batches.set(key, batch);
        }
        batch.events.push(event);
    }

    function flushBatch(key) {
        const batch = batches.get(key);
        if (!batch) return;
        batches.delete(key);
        clearTimeout(batch.timer);
        call(onBatch, { shopId: batch.shopId, events: batch.events });
    }

    function flushBatches() {
        for (const key of [...batches.keys()]) flushBatch(key);
    }

    function handleControl(message) {
        switch (message.type) {
            case 'hello':
                helloId = message.id ?? null;
                connectionId = connectionId ?? helloId;
                // Nothing to replay: start live delivery now instead of after the
                // server's hold, and resume from here after a drop.
                if (lastId == null && helloId != null) {
                    lastId = helloId;
                    send({ action: 'resume', since: helloId });
                }
                break;
            case 'resync':
                // What was missed is gone; the page refetches. Continue from the
                // newest cursor this connection has seen (its hello, or an event
                // after it), or, before any, from whatever the server gives next.
                lastId = connectionId;
                flushBatches(); // what arrived before the gap comes before the refetch
                call(onResync, message.reason);
                break;
            case 'auth_ok':
                authPending = false;
                call(onControl, message);
                break;
            case 'error':
                // The server answers actions in the order they were sent, and auth
                // goes first: the first error while auth is unanswered is auth's.
                if (authPending) {
                    authPending = false;
                    if (dev) console.warn('🔒 initData refused:', message.message);
                    call(onAuthError, String(message.message ?? 'auth failed'));
                }
                call(onControl, message);
                break;
            default: // subscribed
                call(onControl, message);
        }
    }

    function scheduleReconnect(serverRestarting = false) {
        if (closed || timer) return;
        const delay = serverRestarting && attempt === 0
            ? restartDelay(restartSpreadMs, random)
            : backoffDelay(attempt, backoffOptions, random);
        attempt += 1;
        timer = setTimeout(() => {
            timer = null;
            open();
        }, delay);
    }

    function clearTimer() {
        if (timer) clearTimeout(timer);
        timer = null;
    }

    // Back from the background, the network, or Telegram's `activated`: while
    // disconnected, don't sit out the backoff.
    function reconnectNow() {
        if (closed || socket) return;
        open();
    }
    const onVisibility = () => {
        if (document.visibilityState === 'visible') reconnectNow();
    };
    const webApp = globalThis.Telegram?.WebApp;
    if (typeof document !== 'undefined') document.addEventListener('visibilitychange', onVisibility);
    if (typeof window !== 'undefined') window.addEventListener('online', reconnectNow);
    webApp?.onEvent?.('activated', reconnectNow);

    open();

    return {
        /** Adds shops to the subscription set (kept across reconnects). */
        subscribe(more) {
            const added = [];
            for (const shop of more) {
                if (subscriptions.has(String(shop))) continue;
                subscriptions.set(String(shop), shop);
                added.push(shop);
            }
            if (added.length) send({ action: 'subscribe', shops: added });
        },
        /** Removes shops; an empty set means every public event again. */
        unsubscribe(fewer) {
            const removed = fewer.filter((shop) => subscriptions.delete(String(shop)));
            if (removed.length) send({ action: 'unsubscribe', shops: removed });
        },
        /** Closes the connection for good: no reconnects, no listeners left,
         *  and batches still waiting for their window are dropped. */
        close() {
            if (closed) return;
            closed = true;
            clearTimer();
            for (const batch of batches.values()) clearTimeout(batch.timer);
            batches.clear();
            if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', onVisibility);
            if (typeof window !== 'undefined') window.removeEventListener('online', reconnectNow);
            webApp?.offEvent?.('activated', reconnectNow);
            const ws = socket;
            socket = null;
            if (ws) {
                try {
                    ws.close(1000);
                } catch {
                    // already closing
                }
            }
            setStatus('disconnected');
        },
        get lastId() {
            return lastId;
        },
        get connected() {
            return status === 'connected' && socket != null && socket.readyState === WS_OPEN;
        },
    };
}

// The coalescing window in ms, or null when coalescing is off.
function coalesceWindow(coalesce) {
    if (coalesce === false || coalesce == null) return null;
    const windowMs = coalesce === true ? DEFAULT_COALESCE_MS : coalesce.windowMs ?? DEFAULT_COALESCE_MS;
    if (typeof windowMs !== 'number' || !(windowMs > 0) || !Number.isFinite(windowMs)) {
        throw new TypeError('shopcast: coalesce.windowMs must be a positive number of milliseconds');
    }
    return windowMs;
}

function call(callback, value) {
    if (typeof callback !== 'function') return;
    try {
        callback(value);
    } catch (err) {
        console.error('shopcast: callback failed', err);
    }
}

function createIndicator() {
    if (typeof document === 'undefined') return null;
    let element = document.getElementById(INDICATOR_ID);
    if (!element) {
        element = document.createElement('div');
        element.id = INDICATOR_ID;
        element.dataset.testid = 'ws-indicator';
        element.setAttribute('role', 'status');
        Object.assign(element.style, {
            position: 'fixed',
            top: '8px',
            right: '8px',
            zIndex: '2147483647',
            padding: '4px 10px',
            borderRadius: '999px',
            font: '12px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif',
            color: '#fff',
            background: 'rgba(20, 20, 20, 0.78)',
            pointerEvents: 'none',
        });
        (document.body ?? document.documentElement).appendChild(element);
    }
    element.textContent = INDICATOR_DISCONNECTED;
    return element;
}
