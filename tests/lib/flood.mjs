// Hostile-but-polite browsers and a normal page beside them (DESIGN.md "Browser actions and
// their budget"), shared by tests/integration/flood.test.mjs and the bench's flood scenario.
//
// startFlood() forks this file as a load-generator process, so the flood's own CPU never delays
// the measuring process, and resolves to { stats(), stop() }. Kinds:
//   resume  `connections` WebSockets, each subscribed to `shops` shops that never get events,
//           sending `resume` from `since` (an old but valid cursor) `perSecond` times a second;
//           a connection the daemon closes comes back at once, as an attacker's would.
//   ping    `connections` WebSockets (subscribed to one quiet shop, so that nothing else is
//           written to them) sending PINGs as fast as the socket takes them, and coming back
//           when closed. stats() counts the PONGs they got and how long they were open.
// The process ends by itself after `maxSeconds` even if nobody stops it.
//
// measureTraffic() is the normal page and the bot: one page that subscribes to nothing, one
// bot POSTing an event every `intervalMs` for `seconds`; it reports every POST status, POST and
// delivery latencies, and whether the page got every event once, in publish order.

import { fork } from 'node:child_process';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const clock = () => performance.timeOrigin + performance.now();

export function percentile(values, p) {
    if (values.length === 0) return null;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

// ------------------------------------------------------------------------------------------------
// The controller side

export function startFlood(options) {
    const child = fork(fileURLToPath(import.meta.url), ['--flood-worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    let pending = null;
    child.on('message', (message) => {
        if (message.ev === 'stats' && pending) {
            pending(message.stats);
            pending = null;
        }
    });
    const ready = new Promise((resolve, reject) => {
        const onReady = (message) => {
            if (message.ev !== 'ready') return;
            child.off('message', onReady);
            resolve();
        };
        child.on('message', onReady);
        child.once('exit', (code) => reject(new Error(`flood process exited (${code}) before it was ready`)));
    });
    child.send({ ev: 'start', options });
    const stats = () => new Promise((resolve) => {
        pending = resolve;
        child.send({ ev: 'stats' });
    });
    return ready.then(() => ({
        stats,
        async stop() {
            const last = await stats();
            child.send({ ev: 'stop' });
            const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
            await exited;
            clearTimeout(timer);
            return last;
        },
        kill: () => child.kill('SIGKILL'),
    }));
}

// A bot's POST to `publishUrl`, for callers without the test helpers: resolves to
// { status, json }.
export function jsonPoster(publishUrl, secret) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    return (event) => new Promise((resolve, reject) => {
        const body = JSON.stringify(event);
        const req = http.request(publishUrl, {
            method: 'POST',
            agent,
            timeout: 10000,
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-internal-secret': secret },
        }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
                let json;
                try {
                    json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
                } catch {
                    json = undefined;
                }
                resolve({ status: res.statusCode, json });
            });
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        req.end(body);
    });
}

// Fills the history with `count` events of `shopId` (8 POSTs in flight) and resolves to the
// first one's id: an old cursor that stays valid while the history holds them all.
export async function fillHistory(post, count, shopId = 2) {
    let next = 0;
    let oldest;
    const worker = async () => {
        while (next < count) {
            const n = ++next;
            const reply = await post({ type: 'product_added', shopId, productId: n });
            if (reply.status !== 200) throw new Error(`history event ${n} answered ${reply.status}`);
            if (n === 1) oldest = reply.json.id;
        }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    return oldest;
}

// Both floods of the threat model, each measured against the normal traffic; `quiet` first.
export async function floodScenario({ wsUrl, origin, post, history, seconds, log = () => {} }) {
    const oldest = await fillHistory(post, history);
    const result = { history, seconds };
    result.quiet = await measureTraffic({ wsUrl, origin, post, seconds });
    log(`quiet: ${summary(result.quiet)}`);
    const floods = {
        resume: { kind: 'resume', connections: 200, shops: 99, perSecond: 18, since: oldest },
        ping: { kind: 'ping', connections: 8 },
    };
    for (const [name, options] of Object.entries(floods)) {
        const flood = await startFlood({ ...options, wsUrl, origin, maxSeconds: seconds + 60 });
        try {
            await waitForOpened(flood, options.connections, 30_000);
            const helloMs = await timeToHello(wsUrl, origin, 10_000);
            const run = await measureTraffic({ wsUrl, origin, post, seconds });
            result[name] = { ...run, helloMs, flood: await flood.stop() };
            log(`${name} flood: ${summary(run)}; hello after ${helloMs.toFixed(1)} ms`);
        } catch (err) {
            flood.kill();
            throw err;
        }
    }
    return result;
}

export function summary(run) {
    const ms = (value) => (value === null ? '-' : `${value.toFixed(1)} ms`);
    return `${run.posts} POSTs ${JSON.stringify(run.statuses)}, POST p50 ${ms(run.postP50)} p99 ${ms(run.postP99)}, ` +
        `delivery p50 ${ms(run.deliveryP50)} p99 ${ms(run.deliveryP99)}, ${run.receivedIds.length}/${run.sentIds.length} delivered`;
}

// Resolves once `count` of the flood's connections have opened.
export async function waitForOpened(flood, count, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const stats = await flood.stats();
        if (stats.opened >= count) return;
        if (Date.now() > deadline) throw new Error(`only ${stats.opened} of ${count} flood connections opened`);
        await sleep(100);
    }
}

// The normal page and the bot. `post(body)` is the caller's POST (it knows the secret and the
// stack); it resolves to { status, json }.
export async function measureTraffic({ wsUrl, origin, post, seconds, intervalMs = 40, shopId = 1 }) {
    const page = await openPage(wsUrl, origin);
    const posts = [];
    const deadline = clock() + seconds * 1000;
    for (let n = 1; clock() < deadline; n += 1) {
        const started = clock();
        const reply = await post({ type: 'product_updated', shopId, productId: n, sentAt: started }).catch((err) => ({ status: `error ${err.code ?? err.message}` }));
        posts.push({ n, status: reply.status, id: reply.json?.id, ms: clock() - started });
        const wait = started + intervalMs - clock();
        if (wait > 0) await sleep(wait);
    }
    const accepted = posts.filter((p) => p.status === 200);
    const lastId = accepted.at(-1)?.id;
    const waitDeadline = clock() + 15000;
    while (lastId !== undefined && !page.events.some((e) => e.id === lastId) && clock() < waitDeadline && page.closed === null) await sleep(20);
    page.ws.close();
    const statuses = {};
    for (const p of posts) statuses[p.status] = (statuses[p.status] ?? 0) + 1;
    const postMs = posts.map((p) => p.ms);
    const deliveryMs = page.events.map((e) => e.ms);
    return {
        posts: posts.length,
        statuses,
        sentIds: accepted.map((p) => p.id),
        receivedIds: page.events.map((e) => e.id),
        pageClosed: page.closed,
        postP50: percentile(postMs, 50),
        postP99: percentile(postMs, 99),
        deliveryP50: percentile(deliveryMs, 50),
        deliveryP99: percentile(deliveryMs, 99),
    };
}

function openPage(wsUrl, origin) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(wsUrl, { origin, perMessageDeflate: false });
        const page = { ws, events: [], closed: null };
        ws.on('message', (data) => {
            const message = JSON.parse(data.toString('utf8'));
            if (message.type === 'hello') {
                ws.send(JSON.stringify({ action: 'resume', since: message.id }));
                resolve(page);
            } else if (typeof message.sentAt === 'number') {
                page.events.push({ id: message.id, ms: clock() - message.sentAt });
            }
        });
        ws.on('close', (code) => {
            page.closed = code;
        });
        ws.on('error', reject);
    });
}

// How long a fresh connection waits for its `hello`.
export function timeToHello(wsUrl, origin, timeoutMs) {
    return new Promise((resolve, reject) => {
        const started = clock();
        const ws = new WebSocket(wsUrl, { origin, perMessageDeflate: false });
        const timer = setTimeout(() => {
            ws.terminate();
            reject(new Error(`no hello within ${timeoutMs} ms`));
        }, timeoutMs);
        ws.on('message', (data) => {
            if (JSON.parse(data.toString('utf8')).type !== 'hello') return;
            clearTimeout(timer);
            ws.close();
            resolve(clock() - started);
        });
        ws.on('error', (err) => {
            clearTimeout(timer);
            reject(err);
        });
    });
}

// ------------------------------------------------------------------------------------------------
// The load-generator process

function runWorker() {
    const stats = { opened: 0, refused: 0, closes: {}, resumes: 0, pings: 0, pongs: 0, errors: 0, resyncs: 0, openSeconds: 0 };
    const openSince = new Map(); // socket -> when it opened
    const closedSeconds = { total: 0 };
    const snapshot = () => {
        let open = 0;
        for (const since of openSince.values()) open += (clock() - since) / 1000;
        return { ...stats, openSeconds: closedSeconds.total + open };
    };
    const sockets = new Set();
    let stopped = false;
    let options;

    function open() {
        if (stopped) return;
        const ws = new WebSocket(options.wsUrl, { origin: options.origin, perMessageDeflate: false });
        sockets.add(ws);
        let timer = null;
        const again = () => {
            if (ws.again) return;
            ws.again = true;
            if (openSince.has(ws)) closedSeconds.total += (clock() - openSince.get(ws)) / 1000;
            openSince.delete(ws);
            clearInterval(timer);
            sockets.delete(ws);
            setImmediate(open);
        };
        ws.on('open', () => {
            stats.opened += 1;
            openSince.set(ws, clock());
            if (options.kind === 'resume') {
                const shops = Array.from({ length: options.shops }, (_, i) => 1_000_000 + i);
                ws.send(JSON.stringify({ action: 'subscribe', shops }));
                const message = JSON.stringify({ action: 'resume', since: options.since });
                timer = setInterval(() => {
                    if (ws.readyState !== WebSocket.OPEN) return;
                    ws.send(message);
                    stats.resumes += 1;
                }, 1000 / options.perSecond);
            } else {
                ws.send(JSON.stringify({ action: 'subscribe', shops: [2_000_000] }));
                ws.on('pong', () => {
                    stats.pongs += 1;
                });
                const flood = () => {
                    if (stopped || ws.readyState !== WebSocket.OPEN) return;
                    // As fast as the socket takes them, without queueing without bound here.
                    while (ws.bufferedAmount < 64 * 1024) {
                        ws.ping();
                        stats.pings += 1;
                        if (stats.pings % 256 === 0) break;
                    }
                    setImmediate(flood);
                };
                flood();
            }
        });
        ws.on('message', (data) => {
            const type = JSON.parse(data.toString('utf8')).type;
            if (type === 'error') stats.errors += 1;
            if (type === 'resync') stats.resyncs += 1;
        });
        ws.on('unexpected-response', (request, response) => {
            stats.refused += 1;
            response.resume();
            request.destroy();
            setTimeout(again, 100);
        });
        ws.on('close', (code) => {
            stats.closes[code] = (stats.closes[code] ?? 0) + 1;
            again();
        });
        ws.on('error', again);
    }

    process.on('message', (message) => {
        if (message.ev === 'start') {
            options = message.options;
            for (let i = 0; i < options.connections; i += 1) open();
            setTimeout(() => process.exit(0), (options.maxSeconds ?? 120) * 1000).unref();
            process.send({ ev: 'ready' });
        } else if (message.ev === 'stats') {
            process.send({ ev: 'stats', stats: snapshot() });
        } else if (message.ev === 'stop') {
            stopped = true;
            for (const ws of sockets) ws.terminate();
            setTimeout(() => process.exit(0), 200);
        }
    });
    process.on('disconnect', () => process.exit(0));
}

if (process.argv[2] === '--flood-worker') runWorker();
