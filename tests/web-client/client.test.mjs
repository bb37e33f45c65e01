// Tests for web/shopcast-client.js.
//
// "protocol" and "backoff" drive the client against an in-memory socket whose
// server side the test plays; "against the real stack" runs it with the `ws`
// package through nginx to a real shopcastd (scripts/lib/stack.mjs).
//
//   node --test tests/web-client/

import { after, before, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';

import { backoffDelay, connect, restartDelay } from '../../web/shopcast-client.js';
import { assertCoalescedBurst, publishBurst } from './burst.mjs';

// ---------------------------------------------------------------- helpers --

// A WebSocket stand-in. The client talks to it like to a browser WebSocket;
// the test plays the server through accept(), message(), drop().
function fakeSocketClass() {
    return class FakeSocket {
        static instances = [];
        constructor(url) {
            this.url = url;
            this.readyState = 0;
            this.sent = [];
            FakeSocket.instances.push(this);
        }
        send(text) {
            assert.equal(this.readyState, 1, 'send on a socket that is not open');
            this.sent.push(JSON.parse(text));
        }
        close(code) {
            this.closedWith = code;
            this.readyState = 3;
        }
        accept(helloId) {
            this.readyState = 1;
            this.onopen?.({});
            if (helloId !== undefined) this.message({ type: 'hello', id: helloId });
        }
        message(value) {
            this.onmessage?.({ data: typeof value === 'string' ? value : JSON.stringify(value) });
        }
        drop(code = 1006) {
            this.readyState = 3;
            this.onclose?.({ code });
        }
        static get last() {
            return FakeSocket.instances.at(-1);
        }
    };
}

function recorder() {
    const log = { events: [], statuses: [], resyncs: [], controls: [] };
    const callbacks = {
        onEvent: (e) => log.events.push(e),
        onStatus: (s) => log.statuses.push(s),
        onResync: (r) => log.resyncs.push(r),
        onControl: (m) => log.controls.push(m),
    };
    return { log, callbacks };
}

function waitFor(predicate, what, timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
        const started = Date.now();
        const poll = () => {
            let value;
            try {
                value = predicate();
            } catch (err) {
                reject(err);
                return;
            }
            if (value) resolve(value);
            else if (Date.now() - started > timeoutMs) reject(new Error(`timed out waiting for ${what}`));
            else setTimeout(poll, 10);
        };
        poll();
    });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- backoff --

describe('backoff', () => {
    it('stays within [0, cap] and the cap doubles up to maxMs', () => {
        const options = { baseMs: 500, maxMs: 30000 };
        const caps = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000];
        caps.forEach((cap, attempt) => {
            assert.equal(backoffDelay(attempt, options, () => 0), 0);
            assert.equal(backoffDelay(attempt, options, () => 0.9999999), cap, `cap at attempt ${attempt}`);
            for (let i = 0; i < 200; i += 1) {
                const delay = backoffDelay(attempt, options);
                assert.ok(Number.isInteger(delay) && delay >= 0 && delay <= cap, `attempt ${attempt}: ${delay}`);
            }
        });
        // Huge attempt numbers neither overflow nor exceed the cap.
        assert.equal(backoffDelay(5000, options, () => 0.9999999), 30000);
    });

    it('uses full jitter: delays spread over the whole range', () => {
        const delays = Array.from({ length: 2000 }, () => backoffDelay(4, { baseMs: 500, maxMs: 30000 }));
        const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
        assert.ok(Math.min(...delays) < 800 && Math.max(...delays) > 7200, 'spans [0, 8000]');
        assert.ok(mean > 3400 && mean < 4600, `mean ${mean} near 4000`);
    });

    it('waits longer after each failed attempt, also across a hello on a short-lived connection', () => {
        mock.timers.enable({ apis: ['setTimeout'] });
        try {
            const Socket = fakeSocketClass();
            const client = connect({
                url: 'ws://shop.test/ws',
                WebSocketImpl: Socket,
                backoff: { baseMs: 100, maxMs: 1000 },
                random: () => 0.9999999, // always the cap, so each wait is known
            });
            // Each attempt fails before opening; the next waits for the next cap.
            for (const cap of [100, 200, 400, 800, 1000, 1000]) {
                const count = Socket.instances.length;
                Socket.last.drop();
                mock.timers.tick(cap - 1);
                assert.equal(Socket.instances.length, count, `no attempt before ${cap} ms`);
                mock.timers.tick(1);
                assert.equal(Socket.instances.length, count + 1, `an attempt after ${cap} ms`);
            }
            // A hello alone does not reset the backoff: a server that accepts and then drops
            // every connection must not be retried at baseMs.
            Socket.last.accept('e1:0');
            Socket.last.drop();
            const count = Socket.instances.length;
            mock.timers.tick(999);
            assert.equal(Socket.instances.length, count, 'still at the cap after a short-lived hello');
            mock.timers.tick(1);
            assert.equal(Socket.instances.length, count + 1);
            client.close();
        } finally {
            mock.timers.reset();
        }
    });

    it('spreads the first reconnect after a server restart (1001, 1012) over restartSpreadMs', () => {
        assert.equal(restartDelay(10000, () => 0), 0);
        assert.equal(restartDelay(10000, () => 0.9999999), 10000);
        const delays = Array.from({ length: 2000 }, () => restartDelay(10000));
        assert.ok(Math.min(...delays) < 500 && Math.max(...delays) > 9500, 'spans [0, 10000]');
        for (const code of [1001, 1012]) {
            mock.timers.enable({ apis: ['setTimeout'] });
            try {
                let clock = 0;
                const Socket = fakeSocketClass();
                const client = connect({
                    url: 'ws://shop.test/ws',
                    WebSocketImpl: Socket,
                    restartSpreadMs: 8000,
                    random: () => 0.75,
                    now: () => clock,
                });
                Socket.last.accept('e1:0');
                Socket.last.message({ type: 'product_added', shopId: 1, productId: 1, id: 'e1:1' });
                clock += 60000; // a long, healthy connection
                Socket.last.drop(code);
                const count = Socket.instances.length;
                mock.timers.tick(5999);
                assert.equal(Socket.instances.length, count, `code ${code}: not before 0.75 × 8000 ms`);
                mock.timers.tick(1);
                assert.equal(Socket.instances.length, count + 1, `code ${code}: reconnects at 6000 ms`);
                // The cursor survives: the new connection resumes from the last event.
                Socket.last.accept('e1:1');
                assert.deepEqual(Socket.last.sent.at(-1), { action: 'resume', since: 'e1:1' });
                client.close();
            } finally {
                mock.timers.reset();
            }
        }
    });

    it('reconnects after an ordinary drop of a healthy connection within baseMs', () => {
        mock.timers.enable({ apis: ['setTimeout'] });
        try {
            let clock = 0;
            const Socket = fakeSocketClass();
            const client = connect({
                url: 'ws://shop.test/ws',
                WebSocketImpl: Socket,
                backoff: { baseMs: 100, maxMs: 10000 },
                restartSpreadMs: 60000,
                random: () => 0.9999999,
                now: () => clock,
            });
            Socket.last.accept('e1:0');
            clock += 60000;
            Socket.last.drop(1006); // a network drop, not a restart: no spread
            const count = Socket.instances.length;
            mock.timers.tick(100);
            assert.equal(Socket.instances.length, count + 1);
            client.close();
        } finally {
            mock.timers.reset();
        }
    });

    it('starts over after a connection that lasted more than 5 s', () => {
        mock.timers.enable({ apis: ['setTimeout'] });
        try {
            let clock = 0;
            const Socket = fakeSocketClass();
            const client = connect({
                url: 'ws://shop.test/ws',
                WebSocketImpl: Socket,
                backoff: { baseMs: 100, maxMs: 10000 },
                random: () => 0.9999999,
                now: () => clock,
            });
            for (const cap of [100, 200, 400]) {
                Socket.last.drop();
                mock.timers.tick(cap);
            }
            Socket.last.accept(); // open, but no hello (e.g. an old server)
            clock += 5001;
            Socket.last.drop();
            const count = Socket.instances.length;
            mock.timers.tick(100);
            assert.equal(Socket.instances.length, count + 1, 'back to baseMs');
            client.close();
        } finally {
            mock.timers.reset();
        }
    });
});

// --------------------------------------------------------------- protocol --

describe('protocol', () => {
    it('authenticates and subscribes by message, never in the URL', () => {
        const Socket = fakeSocketClass();
        const url = 'wss://shop.test/ws';
        const initData = 'query_id=AA&user=%7B%7D&hash=ff';
        const client = connect({ url, initData, shops: [123, 'sku-shop'], WebSocketImpl: Socket });
        assert.equal(Socket.last.url, url);
        Socket.last.accept();
        assert.deepEqual(Socket.last.sent, [
            { action: 'auth', initData: 'query_id=AA&user=%7B%7D&hash=ff' },
            { action: 'subscribe', shops: [123, 'sku-shop'] },
        ]);
        client.close();
    });

    it('onAuthError: the error answering auth, once per connection; later errors are not auth\'s', () => {
        mock.timers.enable({ apis: ['setTimeout'] });
        try {
            const Socket = fakeSocketClass();
            const authErrors = [];
            const controls = [];
            const client = connect({
                url: 'ws://shop.test/ws', initData: 'auth_date=1&hash=00', shops: [1], WebSocketImpl: Socket,
                onAuthError: (message) => authErrors.push(message), onControl: (m) => controls.push(m),
            });
            Socket.last.accept('v:0');
            Socket.last.message({ type: 'error', message: 'auth failed: auth_date too old' });
            Socket.last.message({ type: 'error', message: 'at most 100 shops per connection' });
            assert.deepEqual(authErrors, ['auth failed: auth_date too old']);
            assert.equal(controls.length, 2, 'both errors still reach onControl');

            Socket.last.drop(); // the next connection authenticates again, and this time it works
            mock.timers.tick(60_000);
            assert.equal(Socket.instances.length, 2, 'reconnected');
            Socket.last.accept('v:1');
            assert.deepEqual(Socket.last.sent[0], { action: 'auth', initData: 'auth_date=1&hash=00' });
            Socket.last.message({ type: 'auth_ok', userId: 5 });
            Socket.last.message({ type: 'error', message: 'at most 100 shops per connection' });
            assert.deepEqual(authErrors, ['auth failed: auth_date too old']);

            // Without initData nothing is sent, so no error is auth's.
            const anonymous = fakeSocketClass();
            const other = connect({ url: 'ws://shop.test/ws', WebSocketImpl: anonymous, onAuthError: (m) => authErrors.push(m) });
            anonymous.last.accept('v:2');
            anonymous.last.message({ type: 'error', message: 'unknown action' });
            assert.equal(authErrors.length, 1);
            client.close();
            other.close();
        } finally {
            mock.timers.reset();
        }
    });

    it('resumes from hello at once when it has no cursor yet', () => {
        const Socket = fakeSocketClass();
        const client = connect({ url: 'ws://shop.test/ws', WebSocketImpl: Socket });
        Socket.last.accept('k3f9:17');
        assert.deepEqual(Socket.last.sent, [{ action: 'resume', since: 'k3f9:17' }]);
        assert.equal(client.lastId, 'k3f9:17');
        assert.equal(client.connected, true);
        client.close();
    });

    it('delivers events, tracks the last id and ignores what it does not know', () => {
        const Socket = fakeSocketClass();
        const { log, callbacks } = recorder();
        const client = connect({ url: 'ws://shop.test/ws', WebSocketImpl: Socket, ...callbacks });
        Socket.last.accept('a:0');
        Socket.last.message({ type: 'product_added', shopId: 123, productId: 456, id: 'a:1' });
        Socket.last.message({ type: 'typing_indicator', shopId: 123 }); // future control message
        Socket.last.message({ type: 'server_notice', text: 'maintenance at 3' });
        Socket.last.message('not json at all');
        Socket.last.message('[1,2,3]');
        Socket.last.message({ no_type: true, id: 'a:99' });
        Socket.last.message({ type: 'subscribed', shops: [] });
        Socket.last.message({ type: 'auth_ok', userId: 42 });
        Socket.last.message({ type: 'error', message: 'bad action' });
        Socket.last.message({ type: 'order_status', orderId: 9, status: 'confirmed', note: { a: 1 }, id: 'a:2' });
        assert.deepEqual(log.events, [
            { type: 'product_added', shopId: 123, productId: 456, id: 'a:1' },
            { type: 'order_status', orderId: 9, status: 'confirmed', note: { a: 1 }, id: 'a:2' },
        ]);
        assert.deepEqual(log.controls.map((m) => m.type), ['subscribed', 'auth_ok', 'error']);
        assert.equal(client.lastId, 'a:2');
        assert.deepEqual(log.resyncs, []);
        client.close();
    });

    it('after a drop, re-sends auth, the current subscriptions and resume', () => {
        mock.timers.enable({ apis: ['setTimeout'] });
        try {
            const Socket = fakeSocketClass();
            const client = connect({
                url: 'ws://shop.test/ws',
                initData: 'user=1&hash=aa',
                shops: [1, 2],
                WebSocketImpl: Socket,
                random: () => 0,
            });
            Socket.last.accept('e:0');
            client.subscribe([3, '2']); // "2" is shop 2 again: only 3 is new
            client.unsubscribe([1, 99]);
            assert.deepEqual(Socket.last.sent.slice(2), [
                { action: 'resume', since: 'e:0' },
                { action: 'subscribe', shops: [3] },
                { action: 'unsubscribe', shops: [1] },
            ]);
            Socket.last.message({ type: 'new_subscriber', shopId: 2, id: 'e:5' });
            Socket.last.drop();
            assert.equal(client.connected, false);
            mock.timers.tick(0);
            Socket.last.accept();
            assert.deepEqual(Socket.last.sent, [
                { action: 'auth', initData: 'user=1&hash=aa' },
                { action: 'subscribe', shops: [2, 3] },
                { action: 'resume', since: 'e:5' },
            ]);
            Socket.last.message({ type: 'hello', id: 'e:7' });
            assert.equal(Socket.last.sent.length, 3, 'no second resume when one was sent');
            assert.equal(client.lastId, 'e:5');
            client.close();
        } finally {
            mock.timers.reset();
        }
    });

    it('on resync tells the page and continues from the new connection', () => {
        mock.timers.enable({ apis: ['setTimeout'] });
        try {
            const Socket = fakeSocketClass();
            const { log, callbacks } = recorder();
            const client = connect({ url: 'ws://shop.test/ws', WebSocketImpl: Socket, random: () => 0, ...callbacks });
            Socket.last.accept('old:0');
            Socket.last.message({ type: 'shop_updated', shopId: 5, id: 'old:3' });
            Socket.last.drop();
            mock.timers.tick(0);
            Socket.last.accept('new:0'); // daemon restarted: a new epoch
            assert.deepEqual(Socket.last.sent, [{ action: 'resume', since: 'old:3' }]);
            Socket.last.message({ type: 'resync', reason: 'epoch changed' });
            assert.deepEqual(log.resyncs, ['epoch changed']);
            assert.equal(client.lastId, 'new:0');
            Socket.last.message({ type: 'shop_updated', shopId: 5, id: 'new:1' });
            assert.equal(client.lastId, 'new:1');
            Socket.last.drop();
            mock.timers.tick(0);
            Socket.last.accept('new:1');
            assert.deepEqual(Socket.last.sent, [{ action: 'resume', since: 'new:1' }]);
            client.close();
        } finally {
            mock.timers.reset();
        }
    });

    it('a resync before any hello waits for the next cursor', () => {
        const Socket = fakeSocketClass();
        const { log, callbacks } = recorder();
        const client = connect({ url: 'ws://shop.test/ws', WebSocketImpl: Socket, ...callbacks });
        Socket.last.accept();
        Socket.last.message({ type: 'resync', reason: 'history' });
        assert.equal(client.lastId, null);
        Socket.last.message({ type: 'hello', id: 'z:4' });
        assert.deepEqual(Socket.last.sent, [{ action: 'resume', since: 'z:4' }]);
        assert.deepEqual(log.resyncs, ['history']);
        client.close();
    });

    it('close() stops reconnecting and reports disconnected', () => {
        mock.timers.enable({ apis: ['setTimeout'] });
        try {
            const Socket = fakeSocketClass();
            const { log, callbacks } = recorder();
            const client = connect({ url: 'ws://shop.test/ws', WebSocketImpl: Socket, ...callbacks });
            Socket.last.accept('c:0');
            const socket = Socket.last;
            client.close();
            assert.equal(socket.closedWith, 1000);
            socket.drop(1000); // the close event arrives after close()
            mock.timers.tick(60000);
            assert.equal(Socket.instances.length, 1);
            assert.deepEqual(log.statuses, ['connecting', 'connected', 'disconnected']);
            assert.equal(client.connected, false);
        } finally {
            mock.timers.reset();
        }
    });

    it('reconnects at once when the page becomes visible, goes online or Telegram reports activated', () => {
        mock.timers.enable({ apis: ['setTimeout'] });
        const saved = { document: globalThis.document, window: globalThis.window, Telegram: globalThis.Telegram };
        try {
            const listeners = {};
            const windowListeners = {};
            const telegramListeners = {};
            globalThis.window = {
                addEventListener: (name, fn) => { windowListeners[name] = fn; },
                removeEventListener: (name) => { delete windowListeners[name]; },
            };
            globalThis.document = {
                visibilityState: 'hidden',
                addEventListener: (name, fn) => { listeners[name] = fn; },
                removeEventListener: (name) => { delete listeners[name]; },
                getElementById: () => null,
            };
            globalThis.Telegram = {
                WebApp: {
                    onEvent: (name, fn) => { telegramListeners[name] = fn; },
                    offEvent: (name) => { delete telegramListeners[name]; },
                },
            };
            const Socket = fakeSocketClass();
            const client = connect({
                url: 'ws://shop.test/ws',
                WebSocketImpl: Socket,
                backoff: { baseMs: 60000, maxMs: 60000 }, // only an explicit trigger reconnects in time
                random: () => 0.9999999,
            });
            Socket.last.accept('v:0');
            Socket.last.drop();
            assert.equal(Socket.instances.length, 1);

            globalThis.document.visibilityState = 'visible';
            listeners.visibilitychange();
            assert.equal(Socket.instances.length, 2, 'visible -> reconnect now');
            listeners.visibilitychange();
            assert.equal(Socket.instances.length, 2, 'not while a connection is under way');

            Socket.last.drop();
            telegramListeners.activated();
            assert.equal(Socket.instances.length, 3, 'activated -> reconnect now');
            Socket.last.accept('v:1');
            telegramListeners.activated();
            assert.equal(Socket.instances.length, 3, 'no reconnect while connected');

            Socket.last.drop();
            windowListeners.online();
            assert.equal(Socket.instances.length, 4, 'back online -> reconnect now');

            client.close();
            assert.equal(listeners.visibilitychange, undefined);
            assert.equal(windowListeners.online, undefined);
            assert.equal(telegramListeners.activated, undefined);
        } finally {
            globalThis.document = saved.document;
            globalThis.window = saved.window;
            globalThis.Telegram = saved.Telegram;
            mock.timers.reset();
        }
    });
});

// ------------------------------------------------------ real stack (e2e) --

describe('coalescing', () => {
    // The page's view: every callback in the order the client made it.
    function coalescingClient(options = {}) {
        const Socket = fakeSocketClass();
        const calls = [];
        const client = connect({
            url: 'ws://shop.test/ws',
            WebSocketImpl: Socket,
            coalesce: { windowMs: 250 },
            onEvent: (event) => calls.push({ event }),
            onBatch: (batch) => calls.push({ batch }),
            onResync: (reason) => calls.push({ resync: reason }),
            ...options,
        });
        Socket.last.accept('a:0');
        return { client, socket: Socket.last, calls };
    }

    it('is off by default: each product event is its own onEvent call at once', () => {
        const Socket = fakeSocketClass();
        const { log, callbacks } = recorder();
        const client = connect({ url: 'ws://shop.test/ws', WebSocketImpl: Socket, ...callbacks });
        Socket.last.accept('a:0');
        for (let n = 1; n <= 3; n += 1) Socket.last.message({ type: 'product_added', shopId: 1, productId: n, id: `a:${n}` });
        assert.deepEqual(log.events.map((e) => e.id), ['a:1', 'a:2', 'a:3']);
        client.close();
    });

    it('needs onBatch and a positive window', () => {
        const Socket = fakeSocketClass();
        assert.throws(() => connect({ url: 'ws://x/ws', WebSocketImpl: Socket, coalesce: true }), /onBatch/);
        for (const windowMs of [0, -5, Number.NaN, '250']) {
            assert.throws(() => connect({ url: 'ws://x/ws', WebSocketImpl: Socket, coalesce: { windowMs }, onBatch() {} }), /windowMs/);
        }
        assert.equal(Socket.instances.length, 0, 'no socket is opened for a bad option');
    });

    it('one onBatch per shop per window; order_status, new_subscriber and private events pass at once', () => {
        mock.timers.enable({ apis: ['setTimeout'] });
        try {
            const { client, socket, calls } = coalescingClient();
            socket.message({ type: 'product_added', shopId: 1, productId: 10, id: 'a:1' });
            socket.message({ type: 'product_updated', shopId: '2', productId: 20, id: 'a:2' });
            socket.message({ type: 'order_status', orderId: 5, status: 'paid', id: 'a:3' });
            socket.message({ type: 'product_deleted', shopId: '1', productId: 10, id: 'a:4' });
            socket.message({ type: 'product_updated', shopId: 1, productId: 11, userId: 42, id: 'a:5' });
            socket.message({ type: 'new_subscriber', shopId: 1, id: 'a:6' });
            socket.message({ type: 'shop_updated', shopId: 1, id: 'a:7' });
            assert.deepEqual(calls.map((c) => c.event?.id), ['a:3', 'a:5', 'a:6'], 'immediate events, nothing else yet');
            assert.equal(client.lastId, 'a:7', 'the cursor is the last event seen, batched or not');

            mock.timers.tick(249);
            assert.equal(calls.length, 3, 'the window is not over');
            mock.timers.tick(1);
            assert.deepEqual(calls.slice(3).map((c) => [c.batch.shopId, c.batch.events.map((e) => e.id)]), [
                [1, ['a:1', 'a:4', 'a:7']], // 1 and "1" are one shop; the first event's id is kept
                ['2', ['a:2']],
            ]);

            // The next burst opens a new window.
            socket.message({ type: 'product_added', shopId: 1, productId: 12, id: 'a:8' });
            mock.timers.tick(250);
            assert.deepEqual(calls.at(-1).batch.events.map((e) => e.id), ['a:8']);
            assert.equal(calls.length, 6);
            client.close();
        } finally {
            mock.timers.reset();
        }
    });

    it('a resync delivers what is waiting first; close() drops it', () => {
        mock.timers.enable({ apis: ['setTimeout'] });
        try {
            const { client, socket, calls } = coalescingClient();
            socket.message({ type: 'product_added', shopId: 1, productId: 10, id: 'a:1' });
            socket.message({ type: 'resync', reason: 'epoch' });
            assert.deepEqual(calls, [
                { batch: { shopId: 1, events: [{ type: 'product_added', shopId: 1, productId: 10, id: 'a:1' }] } },
                { resync: 'epoch' },
            ]);
            socket.message({ type: 'product_added', shopId: 1, productId: 11, id: 'a:2' });
            client.close();
            mock.timers.tick(1000);
            assert.equal(calls.length, 2);
        } finally {
            mock.timers.reset();
        }
    });
});

describe('against the real stack', () => {
    let stack;
    const clients = [];

    // The stack allows only its own origins; Node sends none unless told. The
    // wrapper also remembers its sockets, so a test can cut one off, and while
    // `gate.closed` it dials a path nginx answers with 404: the network is down.
    function originSocket() {
        const sockets = [];
        const gate = { closed: false };
        class OriginWebSocket extends WebSocket {
            constructor(url, protocols) {
                super(gate.closed ? url.replace(/\/ws$/, '/no-such-socket') : url, protocols, { origin: stack.origin });
                sockets.push(this);
            }
        }
        return { OriginWebSocket, sockets, gate };
    }

    function open(options = {}) {
        const { OriginWebSocket, sockets, gate } = originSocket();
        const { log, callbacks } = recorder();
        const client = connect({
            url: stack.wsUrl,
            WebSocketImpl: OriginWebSocket,
            // Override: the default (500 ms doubling to 30 s) could make each reconnect here
            // wait up to 30 s; it is checked in 'backoff' above and by the demo page in e2e.
            backoff: { baseMs: 100, maxMs: 1000 },
            ...callbacks,
            ...options,
        });
        clients.push(client);
        return { client, log, sockets, gate };
    }

    async function publish(body) {
        const reply = await stack.publish(body);
        assert.equal(reply.status, 200, `publish ${JSON.stringify(body)} -> ${reply.status} ${reply.text}`);
        return reply.json;
    }

    before(async () => {
        const { startStack } = await import('../../scripts/lib/stack.mjs');
        stack = await startStack({});
    });

    after(async () => {
        for (const client of clients) client.close();
        await stack?.stop();
    });

    it('receives a published event with the id the publish reply gave', async () => {
        const { client, log } = open();
        await waitFor(() => client.lastId, 'hello');
        const reply = await publish({ type: 'product_added', shopId: 123, productId: 456 });
        await waitFor(() => log.events.length === 1, 'the event');
        assert.deepEqual(log.events[0], { type: 'product_added', shopId: 123, productId: 456, id: reply.id });
        assert.equal(client.lastId, reply.id);
    });

    it('answers hello with resume, so live delivery starts before the server\'s 1 s hold ends', async () => {
        let helloAt = 0;
        const { client, log } = open({ onControl: () => {} });
        await waitFor(() => client.lastId, 'hello');
        helloAt = Date.now();
        const reply = await publish({ type: 'new_subscriber', shopId: 'hold-check' });
        await waitFor(() => log.events.length === 1, 'the event');
        const latency = Date.now() - helloAt;
        assert.equal(log.events[0].id, reply.id);
        assert.ok(latency < 900, `event arrived ${latency} ms after hello; the hold is 1000 ms`);
    });

    it('after a dropped connection, events published meanwhile arrive once each, in order', async () => {
        const { client, log, sockets, gate } = open();
        await waitFor(() => client.lastId, 'hello');
        const first = await publish({ type: 'shop_updated', shopId: 77 });
        await waitFor(() => log.events.length === 1, 'the first event');

        gate.closed = true; // reconnect attempts fail until the gate opens
        const dropped = sockets.at(-1);
        dropped.terminate(); // the network goes away: no close handshake
        await waitFor(() => !client.connected, 'the drop');
        const ids = [];
        for (let productId = 1; productId <= 5; productId += 1) {
            ids.push((await publish({ type: 'product_updated', shopId: 77, productId })).id);
        }
        await waitFor(() => sockets.length >= 3, 'failed reconnect attempts');
        assert.equal(log.events.length, 1, 'nothing arrives while away');

        gate.closed = false;
        await waitFor(() => log.events.length >= 6, 'the missed events');
        await sleep(300); // room for a duplicate to show up
        assert.deepEqual(log.events.map((e) => e.id), [first.id, ...ids]);
        assert.deepEqual(log.events.slice(1).map((e) => e.productId), [1, 2, 3, 4, 5]);
        assert.deepEqual(log.resyncs, []);
        assert.equal(client.lastId, ids.at(-1));

        const live = await publish({ type: 'shop_updated', shopId: 77 });
        await waitFor(() => log.events.length === 7, 'live delivery after the replay');
        assert.equal(log.events[6].id, live.id);
    });

    it('keeps its subscriptions across a reconnect', async () => {
        const { client, log, sockets } = open({ shops: [501] });
        await waitFor(() => log.controls.some((m) => m.type === 'subscribed'), 'subscribed');
        client.subscribe([502]);
        await waitFor(() => log.controls.filter((m) => m.type === 'subscribed').length === 2, 'second subscribed');
        assert.deepEqual(log.controls.at(-1).shops.map(String).sort(), ['501', '502']);

        sockets.at(-1).terminate();
        await waitFor(() => sockets.length === 2 && client.connected, 'the reconnect');
        await waitFor(() => log.controls.filter((m) => m.type === 'subscribed').length === 3, 'subscribed again');
        assert.deepEqual(log.controls.at(-1).shops.map(String).sort(), ['501', '502']);

        await publish({ type: 'new_subscriber', shopId: 999 });
        const wanted = await publish({ type: 'new_subscriber', shopId: 502 });
        await waitFor(() => log.events.length >= 1, 'the subscribed shop event');
        await sleep(200);
        assert.deepEqual(log.events.map((e) => e.id), [wanted.id]);
    });

    it('after a planned restart (SIGTERM) resumes what it missed, with no resync', async () => {
        const { client, log } = open();
        await waitFor(() => client.lastId, 'hello');
        await publish({ type: 'order_status', orderId: 30, status: 'paid' });
        await waitFor(() => log.events.length === 1, 'the first event');

        await stack.stopDaemon('SIGTERM');
        await waitFor(() => !client.connected, 'the close');
        await stack.startDaemon();
        // Published before the page is back (it waits up to restartSpreadMs): replayed on resume.
        const missed = await publish({ type: 'order_status', orderId: 30, status: 'shipped' });
        await waitFor(() => log.events.length === 2, 'the event published while it was away', 15000);
        assert.equal(log.events[1].id, missed.id);
        const live = await publish({ type: 'order_status', orderId: 30, status: 'delivered' });
        await waitFor(() => log.events.length === 3, 'the next live event');
        assert.equal(log.events[2].id, live.id);
        assert.deepEqual(log.resyncs, []);
    });

    it('after a crash (SIGKILL, a new epoch) asks the page to refetch, then goes on live', async () => {
        const { client, log } = open();
        await waitFor(() => client.lastId, 'hello');
        await publish({ type: 'order_status', orderId: 31, status: 'paid' });
        await waitFor(() => log.events.length === 1, 'the first event');
        const oldId = client.lastId;

        await stack.stopDaemon('SIGKILL');
        await waitFor(() => !client.connected, 'the close');
        await stack.startDaemon();
        await waitFor(() => log.resyncs.length === 1, 'resync', 15000);
        assert.ok(client.connected);
        assert.notEqual(client.lastId, oldId);

        const reply = await publish({ type: 'order_status', orderId: 31, status: 'shipped' });
        await waitFor(() => log.events.length === 2, 'the event after the restart');
        assert.equal(log.events[1].id, reply.id);
        assert.equal(client.lastId, reply.id);
        assert.equal(log.resyncs.length, 1);
    });
    it('coalesces a burst of 500 product events; an order_status in the middle is not held back', async (t) => {
        const windowMs = 250;
        const calls = [];
        const { client } = open({
            coalesce: { windowMs },
            onEvent: (event) => calls.push({ at: Date.now(), event }),
            onBatch: (batch) => calls.push({ at: Date.now(), batch }),
        });
        await waitFor(() => client.lastId && client.connected, 'hello');
        const burst = await publishBurst(stack, 500, 250, 901);
        await waitFor(() => calls.filter((c) => c.batch).flatMap((c) => c.batch.events).length >= 500, 'the batches');
        await sleep(windowMs + 100); // room for a stray extra batch or duplicate to show up
        const { batches } = assertCoalescedBurst(calls, burst, windowMs);
        t.diagnostic(`500 events in ${batches} onBatch calls`);
        assert.equal(client.lastId, burst.ids.at(-1));
    });
});

// ------------------------------------------ real stack: auth and coming back --

describe('against the real stack: refused initData, coming back to the page', () => {
    const BOT_TOKEN = '7000000002:AAH-shopcast-web-client-test-token_0123456789';
    const MAX_AGE = 3600;
    const USER = { id: 424242, first_name: 'Dana' };
    const LONG_MS = 60_000; // a backoff no wait below can sit out
    let stack;
    const clients = [];
    let makeInitData;

    class OriginWebSocket extends WebSocket {
        constructor(url, protocols) {
            super(url, protocols, { origin: stack.origin });
        }
    }

    function open(options = {}) {
        const { log, callbacks } = recorder();
        log.authErrors = [];
        const client = connect({
            url: stack.wsUrl,
            WebSocketImpl: OriginWebSocket,
            onAuthError: (message) => log.authErrors.push(message),
            ...callbacks,
            ...options,
        });
        clients.push(client);
        return { client, log };
    }

    async function publish(body) {
        const reply = await stack.publish(body);
        assert.equal(reply.status, 200, `publish ${JSON.stringify(body)} -> ${reply.status} ${reply.text}`);
        return reply.json;
    }

    before(async () => {
        ({ makeInitData } = await import('../lib/telegram-init-data.mjs'));
        const { startStack } = await import('../../scripts/lib/stack.mjs');
        // Override: auth has no default bot token; a short max age makes "stale" easy to build.
        stack = await startStack({ daemonEnv: { BOT_TOKEN, SHOPCAST_AUTH_MAX_AGE: String(MAX_AGE) } });
    });

    after(async () => {
        for (const client of clients) client.close();
        await stack?.stop();
    });

    it('valid initData: auth_ok, the private event arrives, no onAuthError', async () => {
        const initData = makeInitData({ botToken: BOT_TOKEN, user: USER, authDate: Math.floor(Date.now() / 1000) });
        const { client, log } = open({ initData });
        await waitFor(() => log.controls.some((m) => m.type === 'auth_ok'), 'auth_ok');
        await waitFor(() => client.lastId, 'hello');
        const reply = await publish({ type: 'order_status', orderId: 71, status: 'paid', userId: USER.id });
        await waitFor(() => log.events.length === 1, 'the private event');
        assert.equal(log.events[0].id, reply.id);
        assert.deepEqual(log.authErrors, []);
    });

    for (const [name, initData] of [
        ['stale (auth_date older than the max age)', () => makeInitData({
            botToken: BOT_TOKEN, user: USER, authDate: Math.floor(Date.now() / 1000) - MAX_AGE - 60 })],
        ['signed with another bot\'s token', () => makeInitData({
            botToken: '7000000003:AAH-not-the-configured-bot-token_987654321', user: USER,
            authDate: Math.floor(Date.now() / 1000) })],
    ]) {
        it(`${name}: onAuthError says why; public events still come, the private one does not`, async () => {
            const { client, log } = open({ initData: initData() });
            await waitFor(() => log.authErrors.length === 1, 'onAuthError');
            assert.match(log.authErrors[0], /auth/);
            assert.ok(log.controls.some((m) => m.type === 'error' && m.message === log.authErrors[0]),
                'onControl still sees the error');
            await waitFor(() => client.lastId, 'hello');
            await publish({ type: 'order_status', orderId: 72, status: 'paid', userId: USER.id });
            const open_ = await publish({ type: 'new_subscriber', shopId: 'public-after-refusal' });
            await waitFor(() => log.events.length >= 1, 'the public event');
            await sleep(200); // room for the private event to show up if it were delivered
            assert.deepEqual(log.events.map((e) => e.id), [open_.id]);
            assert.equal(log.authErrors.length, 1, 'one refusal per connection');
        });
    }

    // The page's triggers are stand-ins (Node has no document or Telegram); the connection,
    // the daemon going away and coming back are real.
    for (const trigger of ['visibilitychange', 'activated']) {
        it(`daemon back while the page was away: ${trigger} reconnects at once, not after the backoff`, async () => {
            const saved = { document: globalThis.document, Telegram: globalThis.Telegram };
            const listeners = {};
            try {
                globalThis.document = {
                    visibilityState: 'visible',
                    addEventListener: (name, fn) => { listeners[name] = fn; },
                    removeEventListener: (name) => { delete listeners[name]; },
                };
                globalThis.Telegram = {
                    WebApp: {
                        onEvent: (name, fn) => { listeners[name] = fn; },
                        offEvent: (name) => { delete listeners[name]; },
                    },
                };
                const { client, log } = open({
                    backoff: { baseMs: LONG_MS, maxMs: LONG_MS },
                    restartSpreadMs: LONG_MS,
                    random: () => 0.999,
                });
                await waitFor(() => client.lastId && client.connected, 'connected');
                globalThis.document.visibilityState = 'hidden';
                listeners.visibilitychange();

                await stack.stopDaemon('SIGTERM');
                await waitFor(() => !client.connected, 'the close');
                await stack.startDaemon();
                await sleep(1000);
                assert.equal(client.connected, false, 'still waiting out its backoff');

                const missed = await publish({ type: 'shop_updated', shopId: `back-${trigger}` });
                globalThis.document.visibilityState = 'visible';
                listeners[trigger]();
                await waitFor(() => client.connected, 'the prompt reconnect', 15_000);
                await waitFor(() => log.events.some((e) => e.id === missed.id), 'the missed event, resumed', 15_000);
                assert.deepEqual(log.resyncs, []);
                client.close();
            } finally {
                globalThis.document = saved.document;
                globalThis.Telegram = saved.Telegram;
            }
        });
    }
});
