// One load-generator process of the benchmark: holds many WebSocket clients and records, for every
// benchmark event each of them receives, the publish-to-receive latency. tests/bench/run.mjs forks
// several of these (one process stays well under the 20,000 open-files cap) and drives them over
// the IPC channel:
//
//   parent -> {cmd:'connect', url, origin, count, protocol, localAddresses, concurrency, timeoutMs}
//          <- {ev:'connected', ok, failed, errors, ms}
//   parent -> {cmd:'record', run, events}     start a measured run of `events` events (seq 0..events-1)
//   parent -> {cmd:'progress'}                <- {ev:'progress', received, warm, closed}
//   parent -> {cmd:'report'}                  <- {ev:'report', latencies: Float32Array, ...}
//   parent -> {cmd:'exit'}                    closes every socket and exits
//
// An event is the published JSON object; the benchmark fields are `run` (which measured run it
// belongs to, or "warm"), `seq` and `t`, the publisher's wall-clock send time in milliseconds
// (performance.timeOrigin + performance.now(), the same clock here). Latency = receive time - t.
//
// protocol 'shopcast': after {"type":"hello","id":C} the client sends {"action":"resume","since":C}
// so live delivery starts at once; 'plain': a connection is ready when it opens.
// url may be ws://, wss:// (the certificate is not checked: the benchmark's own, self-signed) or
// ws+unix:///path/to.sock:/ws; localAddresses, when given, are the source addresses TCP clients
// take in turn.
//
// The process exits by itself when the parent goes away or after BENCH_CLIENT_MAX_SECONDS (600).

import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

const MAX_SECONDS = Number(process.env.BENCH_CLIENT_MAX_SECONDS || 600);
const lifetime = setTimeout(() => {
    process.stderr.write(`clients.mjs: ${MAX_SECONDS} s lifetime reached, exiting\n`);
    process.exit(3);
}, MAX_SECONDS * 1000);
lifetime.unref();

if (!process.send) {
    process.stderr.write('clients.mjs is started by tests/bench/run.mjs (it needs an IPC channel)\n');
    process.exit(2);
}
process.on('disconnect', () => process.exit(0));

const now = () => performance.timeOrigin + performance.now();

const conns = []; // { ws, ready, index }
let closedUnexpectedly = 0;
const closeCodes = {};
let exiting = false;

// The measured run: latencies[conn * events + seq], NaN until received.
let run = null;
let events = 0;
let latencies = new Float32Array(0);
let received = 0;
let duplicates = 0;
let reordered = 0;
let stray = 0; // benchmark events of another run (or unparsable frames)
let warm = 0; // warm-up events received (any connection)
let lastSeq = new Int32Array(0);
let cpuAtRecord = process.cpuUsage();
let wallAtRecord = now();

function onMessage(conn, data) {
    const at = now();
    const text = typeof data === 'string' ? data : data.toString('utf8');
    let msg;
    try {
        msg = JSON.parse(text);
    } catch {
        stray += 1;
        return;
    }
    if (!conn.ready) {
        // Shopcast: the greeting carries the cursor to resume from.
        if (msg.type === 'hello' && typeof msg.id === 'string') {
            conn.ws.send(JSON.stringify({ action: 'resume', since: msg.id }));
            markReady(conn);
        }
        return;
    }
    if (msg.run === 'warm') {
        warm += 1;
        return;
    }
    if (msg.run === undefined) return; // a control message (subscribed, resync, ...)
    if (msg.run !== run || !Number.isInteger(msg.seq) || msg.seq < 0 || msg.seq >= events) {
        stray += 1;
        return;
    }
    const slot = conn.index * events + msg.seq;
    if (!Number.isNaN(latencies[slot])) {
        duplicates += 1;
        return;
    }
    latencies[slot] = at - msg.t;
    received += 1;
    // Out of seq order; meaningful only when publishes do not overlap (concurrent POSTs may
    // reach the server in another order than their seq).
    if (msg.seq < lastSeq[conn.index]) reordered += 1;
    lastSeq[conn.index] = msg.seq;
}

function markReady(conn) {
    if (conn.ready) return;
    conn.ready = true;
    conn.settle?.(true);
}

function openOne(url, origin, protocol, localAddress, timeoutMs) {
    return new Promise((resolve) => {
        const conn = { ws: null, ready: false, index: -1, settle: null };
        let settled = false;
        const timer = setTimeout(() => finish(false, 'timeout'), timeoutMs);
        const finish = (ok, why) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            if (!ok) {
                try {
                    conn.ws.terminate();
                } catch {
                    // never opened
                }
            }
            resolve({ ok, conn, why });
        };
        conn.settle = (ok) => finish(ok, 'ok');
        const ws = new WebSocket(url, {
            origin,
            perMessageDeflate: false, // no system gets to compress: same bytes everywhere
            skipUTF8Validation: true, // the load generator's CPU is the scarce resource
            handshakeTimeout: timeoutMs,
            rejectUnauthorized: false,
            ...(localAddress ? { localAddress } : {}),
        });
        conn.ws = ws;
        ws.on('open', () => {
            if (protocol === 'plain') markReady(conn);
        });
        ws.on('message', (data) => onMessage(conn, data));
        ws.on('error', (err) => finish(false, err.message));
        ws.on('close', (code) => {
            if (!settled) {
                finish(false, `closed ${code}`);
                return;
            }
            if (conn.ready && !exiting) {
                closedUnexpectedly += 1;
                closeCodes[code] = (closeCodes[code] || 0) + 1;
            }
        });
    });
}

async function connect({ url, origin, count, protocol, localAddresses = [], concurrency = 100, timeoutMs = 15000 }) {
    const started = now();
    let next = 0;
    let failed = 0;
    const errors = {};
    const worker = async () => {
        while (next < count) {
            const localAddress = localAddresses.length ? localAddresses[next % localAddresses.length] : undefined;
            next += 1;
            const { ok, conn, why } = await openOne(url, origin, protocol, localAddress, timeoutMs);
            if (ok) {
                conn.index = conns.length;
                conns.push(conn);
            } else {
                failed += 1;
                errors[why] = (errors[why] || 0) + 1;
            }
        }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
    process.send({ ev: 'connected', ok: conns.length, failed, errors, ms: now() - started });
}

function record({ run: runId, events: count }) {
    run = runId;
    events = count;
    latencies = new Float32Array(conns.length * count).fill(Number.NaN);
    lastSeq = new Int32Array(conns.length).fill(-1);
    received = 0;
    duplicates = 0;
    reordered = 0;
    stray = 0;
    cpuAtRecord = process.cpuUsage();
    wallAtRecord = now();
    process.send({ ev: 'recording', run });
}

function report() {
    const cpu = process.cpuUsage(cpuAtRecord);
    process.send({
        ev: 'report',
        run,
        connections: conns.length,
        events,
        received,
        duplicates,
        reordered,
        stray,
        closedUnexpectedly,
        closeCodes,
        cpuMs: (cpu.user + cpu.system) / 1000,
        wallMs: now() - wallAtRecord,
        latencies,
    });
}

process.on('message', (msg) => {
    switch (msg.cmd) {
        case 'connect':
            connect(msg).catch((err) => process.send({ ev: 'error', message: err.stack }));
            break;
        case 'record':
            record(msg);
            break;
        case 'progress':
            process.send({ ev: 'progress', received, warm, closed: closedUnexpectedly });
            break;
        case 'report':
            report();
            break;
        case 'exit':
            exiting = true;
            for (const { ws } of conns) ws.terminate();
            setTimeout(() => process.exit(0), 50);
            break;
        default:
            process.send({ ev: 'error', message: `unknown command ${JSON.stringify(msg.cmd)}` });
    }
});

process.send({ ev: 'started', pid: process.pid });
