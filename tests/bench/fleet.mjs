// The client fleet: enough load-generator processes (tests/bench/fleet-client.mjs, up to
// PER_PROCESS clients each, under the 20,000 open-files cap) to hold 100,000 WebSocket clients,
// each process from its own source addresses 127.0.0.x (a source address has ~28,000 ephemeral
// ports per destination), connecting at a bounded rate. For a broadcast it records when every
// client got each event.
//
//   const fleet = await startFleet({ clients: 100000, log });
//   const connect = await fleet.connect(targets, { perSecond: 2000 });  // [{url, origin}]
//   const events = await fleet.broadcast({ run: 'b', count: 3, publish: (seq) => ... });
//   await fleet.stop();
//
// Bounded in count and time: every wait has a deadline, every child a lifetime of its own
// (BENCH_FLEET_MAX_SECONDS), and the children are killed by PID when this process exits.

import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { now, quantile } from './load.mjs';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// 16,000 sockets and Node's own descriptors stay well under 20,000.
export const PER_PROCESS = 16000;
// bind() to port 0 searches part of the ephemeral range, and the previous session's sockets in
// TIME_WAIT hold their ports for a minute: a few thousand clients per source address.
const CLIENTS_PER_ADDRESS = 4000;
// Delivered within these many milliseconds of the publish (the last bucket: the rest).
export const HISTOGRAM_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

const live = new Set();
process.on('exit', () => {
    for (const child of live) {
        try {
            process.kill(child.pid, 'SIGKILL');
        } catch {
            // gone
        }
    }
});

// Ends every fleet process at once (the run's time limit): whatever waits on them fails.
export function killAllFleets() {
    for (const child of live) child.kill('SIGKILL');
}

// Source addresses 127.0.0.2-250, taken in turn across sessions.
let nextAddress = 2;
function takeAddresses(count) {
    return Array.from({ length: Math.ceil(count / CLIENTS_PER_ADDRESS) }, () => {
        const address = `127.0.0.${nextAddress}`;
        nextAddress = nextAddress >= 250 ? 2 : nextAddress + 1;
        return address;
    });
}

class FleetProcess {
    constructor(log) {
        this.child = fork(path.join(benchDir, 'fleet-client.mjs'), [], {
            serialization: 'advanced', // Float32Array results cross the channel as they are
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        this.pid = this.child.pid;
        live.add(this.child);
        this.waiters = [];
        this.child.on('error', (err) => log(`fleet process ${this.pid}: ${err.message}`));
        this.child.on('message', (msg) => {
            if (msg.ev === 'error') log(`fleet process ${this.pid}: ${msg.message}`);
            const i = this.waiters.findIndex((w) => w.ev === msg.ev);
            if (i >= 0) this.waiters.splice(i, 1)[0].resolve(msg);
        });
        this.exited = new Promise((resolve) => this.child.once('exit', () => {
            live.delete(this.child);
            for (const w of this.waiters.splice(0)) w.reject(new Error(`fleet process ${this.pid} exited`));
            resolve();
        }));
        this.started = this.wait('started', 30000);
    }

    wait(ev, timeoutMs) {
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.waiters = this.waiters.filter((w) => w !== waiter);
                reject(new Error(`fleet process ${this.pid}: no ${ev} within ${timeoutMs} ms`));
            }, timeoutMs);
            const waiter = {
                ev,
                resolve: (m) => {
                    clearTimeout(timer);
                    resolve(m);
                },
                reject: (e) => {
                    clearTimeout(timer);
                    reject(e);
                },
            };
            this.waiters.push(waiter);
        });
    }

    request(cmd, ev, timeoutMs = 60000) {
        if (!this.child.connected) return Promise.reject(new Error(`fleet process ${this.pid} exited`));
        const reply = this.wait(ev, timeoutMs);
        this.child.send(cmd);
        return reply;
    }

    async exit() {
        if (this.child.connected) this.child.send({ cmd: 'exit' });
        const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
        await this.exited;
        clearTimeout(timer);
    }
}

function addErrors(into, errors) {
    for (const [k, v] of Object.entries(errors)) into[k] = (into[k] || 0) + v;
    return into;
}

// `processes`: at least this many (one process parses its clients' frames on one core, so a
// fan-out measured with fewer processes than cores measures the fleet).
export async function startFleet({ clients, processes = 1, log = () => {} }) {
    const count = Math.min(clients, Math.max(processes, Math.ceil(clients / PER_PROCESS)));
    const procs = Array.from({ length: count }, () => new FleetProcess(log));
    try {
        await Promise.all(procs.map((p) => p.started));
    } catch (err) {
        await Promise.all(procs.map((p) => p.exit()));
        throw err;
    }
    const share = (i) => Math.floor(clients / count) + (i < clients % count ? 1 : 0);
    let opened = 0;

    async function progress() {
        const all = await Promise.all(procs.map((p) => p.request({ cmd: 'progress' }, 'progress', 20000)));
        return all.reduce((a, x) => ({ open: a.open + x.open, received: a.received + x.received, closed: a.closed + x.closed }), { open: 0, received: 0, closed: 0 });
    }

    return {
        processes: procs.length,
        pids: () => procs.map((p) => p.pid),
        progress,

        // Opens every client against `targets` (each client i to targets[i % length]), at most
        // `perSecond` new ones per second over the whole fleet, each given `timeoutMs` to open,
        // all of them `limitMs`; logs the count every 5 s.
        async connect(targets, { perSecond = 2000, inFlight = 64, timeoutMs = 30000, limitMs = 900000 } = {}) {
            const t0 = now();
            let first = 0;
            const plans = procs.map((p, i) => {
                const plan = { first, count: share(i), localAddresses: takeAddresses(share(i)) };
                first += plan.count;
                return plan;
            });
            const ticker = setInterval(() => {
                progress().then((p) => log(`fleet: ${p.open.toLocaleString('en-US')} of ${clients.toLocaleString('en-US')} open (${Math.round((now() - t0) / 1000)} s)`), () => {});
            }, 5000);
            try {
                const results = await Promise.all(procs.map((p, i) => p.request({
                    cmd: 'connect',
                    targets,
                    ...plans[i],
                    perSecond: perSecond / procs.length,
                    inFlight,
                    timeoutMs,
                }, 'connected', limitMs)));
                opened = results.reduce((a, r) => a + r.ok, 0);
                return {
                    clients,
                    processes: procs.length,
                    connected: opened,
                    failed: results.reduce((a, r) => a + r.failed, 0),
                    errors: results.reduce((a, r) => addErrors(a, r.errors), {}),
                    ms: now() - t0,
                    sourceAddresses: plans.flatMap((p) => p.localAddresses),
                };
            } finally {
                clearInterval(ticker);
            }
        },

        // Publishes `count` events one after another: each once the previous reached every open
        // client (or made no progress for `stallMs`, or `timeoutMs` passed), `gapMs` apart.
        // `publish(seq)` sends event seq of `run` carrying t = now() and resolves with its reply.
        // Returns, per event, when the clients got it: delivered, p50/p99, the last client, and
        // a histogram (HISTOGRAM_MS).
        async broadcast({ run, count, publish, gapMs = 500, stallMs = 3000, timeoutMs = 60000 }) {
            await Promise.all(procs.map((p) => p.request({ cmd: 'expect', run, events: count }, 'expecting')));
            const replies = [];
            const baseline = await progress();
            for (let seq = 0; seq < count; seq++) {
                const expected = baseline.open * (seq + 1);
                replies.push(await publish(seq));
                const deadline = Date.now() + timeoutMs;
                let last = -1;
                let lastChange = Date.now();
                for (;;) {
                    const p = await progress();
                    if (p.received !== last) {
                        last = p.received;
                        lastChange = Date.now();
                    }
                    if (p.received >= expected || Date.now() - lastChange > stallMs || Date.now() > deadline) break;
                    await sleep(50);
                }
                if (seq < count - 1) await sleep(gapMs);
            }
            const reports = await Promise.all(procs.map((p) => p.request({ cmd: 'report' }, 'report', 120000)));
            const perEvent = [];
            for (let seq = 0; seq < count; seq++) {
                const values = [];
                for (const r of reports) {
                    for (let c = 0; c < r.clients; c++) {
                        const v = r.latencies[c * r.events + seq];
                        if (!Number.isNaN(v)) values.push(v);
                    }
                }
                values.sort((a, b) => a - b);
                const histogram = HISTOGRAM_MS.map(() => 0).concat([0]);
                let b = 0;
                for (const v of values) {
                    while (b < HISTOGRAM_MS.length && v > HISTOGRAM_MS[b]) b++;
                    histogram[b] += 1;
                }
                perEvent.push({
                    seq,
                    expected: baseline.open,
                    delivered: values.length,
                    p50: quantile(values, 0.5),
                    p99: quantile(values, 0.99),
                    last: values.length ? values[values.length - 1] : null,
                    histogram,
                    reply: replies[seq],
                });
            }
            return {
                run,
                events: count,
                clients: baseline.open,
                perEvent,
                duplicates: reports.reduce((a, r) => a + r.duplicates, 0),
                stray: reports.reduce((a, r) => a + r.stray, 0),
                closed: reports.reduce((a, r) => a + r.closed, 0),
                closeCodes: reports.reduce((a, r) => addErrors(a, r.closeCodes), {}),
            };
        },

        async stop() {
            await Promise.all(procs.map((p) => p.exit()));
        },
    };
}
