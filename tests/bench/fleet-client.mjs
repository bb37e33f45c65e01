// One process of the client fleet (tests/bench/fleet.mjs): holds up to ~16,000 WebSocket clients
// (one descriptor each, under the 20,000 open-files cap) from its own source addresses, opened at
// a bounded rate, and records when each of them receives each benchmark event. Driven by the
// parent over the IPC channel:
//
//   parent -> {cmd:'connect', targets:[{url, origin}], first, count, localAddresses, perSecond,
//              inFlight, timeoutMs}
//          <- {ev:'connected', ok, failed, errors, ms}     once every one of `count` was tried
//   parent -> {cmd:'expect', run, events}   record events seq 0..events-1 of `run`
//          <- {ev:'expecting', run}
//   parent -> {cmd:'progress'}              <- {ev:'progress', open, received, closed}
//   parent -> {cmd:'report'}                <- {ev:'report', ..., latencies: Float32Array}
//   parent -> {cmd:'exit'}                  closes every socket and exits
//
// Client i (of the whole fleet: `first` + its index here) goes to targets[i % targets.length],
// so a fleet spread over several daemons' ports loads them evenly; source addresses are taken in
// turn. A client is open once the greeting arrived and it answered with `resume` from the
// greeting's cursor (as tests/bench/clients.mjs does), so live delivery starts at once.
// An event carries `run`, `seq` and `t`, the publisher's send time (performance.timeOrigin +
// performance.now(): one clock on this machine); latencies[client * events + seq] = receive - t.
//
// Exits by itself when the parent goes away or after BENCH_FLEET_MAX_SECONDS (900).

import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

const MAX_SECONDS = Number(process.env.BENCH_FLEET_MAX_SECONDS || 900);
setTimeout(() => {
    process.stderr.write(`fleet-client.mjs: ${MAX_SECONDS} s lifetime reached, exiting\n`);
    process.exit(3);
}, MAX_SECONDS * 1000).unref();

if (!process.send) {
    process.stderr.write('fleet-client.mjs is started by tests/bench/fleet.mjs (it needs an IPC channel)\n');
    process.exit(2);
}
process.on('disconnect', () => process.exit(0));

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const open = []; // WebSocket of each open client; its index is the client's slot in `latencies`
let closed = 0; // open clients the server (or the network) closed
const closeCodes = {};
let exiting = false;

let run = null;
let events = 0;
let latencies = new Float32Array(0);
let received = 0;
let duplicates = 0;
let stray = 0;

function onEvent(slot, text) {
    const at = now();
    let msg;
    try {
        msg = JSON.parse(text);
    } catch {
        stray += 1;
        return;
    }
    if (msg.run === undefined || msg.run === 'warm') return; // control messages, warm-up events
    if (msg.run !== run || !Number.isInteger(msg.seq) || msg.seq < 0 || msg.seq >= events) {
        stray += 1;
        return;
    }
    const i = slot * events + msg.seq;
    if (!Number.isNaN(latencies[i])) {
        duplicates += 1;
        return;
    }
    latencies[i] = at - msg.t;
    received += 1;
}

// Resolves to null once open (greeting answered), else to why not.
function openOne({ url, origin }, localAddress, timeoutMs) {
    return new Promise((resolve) => {
        let slot = -1;
        const ws = new WebSocket(url, {
            origin,
            perMessageDeflate: false,
            skipUTF8Validation: true, // the load generator's CPU is the scarce resource
            handshakeTimeout: timeoutMs,
            ...(localAddress ? { localAddress } : {}),
        });
        const timer = setTimeout(() => fail('timeout'), timeoutMs);
        function fail(why) {
            if (slot >= 0) return;
            clearTimeout(timer);
            ws.removeAllListeners('message');
            ws.terminate();
            resolve(why);
        }
        ws.on('message', (data) => {
            const text = data.toString('utf8');
            if (slot >= 0) {
                onEvent(slot, text);
                return;
            }
            let msg;
            try {
                msg = JSON.parse(text);
            } catch {
                return;
            }
            if (msg.type !== 'hello' || typeof msg.id !== 'string') return;
            ws.send(JSON.stringify({ action: 'resume', since: msg.id }));
            clearTimeout(timer);
            slot = open.length;
            open.push(ws);
            resolve(null);
        });
        ws.on('error', (err) => fail(err.code || err.message));
        ws.on('close', (code) => {
            if (slot < 0) {
                fail(`closed ${code}`);
            } else if (!exiting) {
                closed += 1;
                closeCodes[code] = (closeCodes[code] || 0) + 1;
            }
        });
    });
}

// Opens `count` clients, at most `perSecond` started per second and `inFlight` handshakes at
// once: a burst of thousands of SYNs overflows the listen backlog and makes retransmits (1 s, 3 s)
// the connect time.
async function connect({ targets, first = 0, count, localAddresses = [], perSecond = 500, inFlight = 64, timeoutMs = 30000 }) {
    const started = now();
    const errors = {};
    let failed = 0;
    let next = 0;
    const interval = 1000 / perSecond;
    const worker = async () => {
        while (next < count) {
            const i = next++;
            const due = started + i * interval;
            if (due > now()) await sleep(due - now());
            const target = targets[(first + i) % targets.length];
            const why = await openOne(target, localAddresses.length ? localAddresses[i % localAddresses.length] : undefined, timeoutMs);
            if (why !== null) {
                failed += 1;
                errors[why] = (errors[why] || 0) + 1;
            }
        }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(inFlight, count)) }, worker));
    process.send({ ev: 'connected', ok: open.length, failed, errors, ms: now() - started });
}

function expect(msg) {
    run = msg.run;
    events = msg.events;
    latencies = new Float32Array(open.length * events).fill(Number.NaN);
    received = 0;
    duplicates = 0;
    stray = 0;
    process.send({ ev: 'expecting', run });
}

process.on('message', (msg) => {
    switch (msg.cmd) {
        case 'connect':
            connect(msg).catch((err) => process.send({ ev: 'error', message: err.stack }));
            break;
        case 'expect':
            expect(msg);
            break;
        case 'progress':
            process.send({ ev: 'progress', open: open.length - closed, received, closed });
            break;
        case 'report':
            process.send({ ev: 'report', run, clients: open.length, events, received, duplicates, stray, closed, closeCodes, latencies });
            break;
        case 'exit':
            exiting = true;
            for (const ws of open) ws.terminate();
            setTimeout(() => process.exit(0), 50);
            break;
        default:
            process.send({ ev: 'error', message: `unknown command ${JSON.stringify(msg.cmd)}` });
    }
});

process.send({ ev: 'started', pid: process.pid });
