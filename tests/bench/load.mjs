// The load: load-generator processes holding the WebSocket clients (tests/bench/clients.mjs),
// the publisher (open loop at a fixed rate, or closed loop with a fixed number of POSTs in
// flight) and a measured run (publish, wait for the deliveries, collect latencies, CPU and
// write system calls of the server processes).

import { fork, spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { cpuSnapshot, machineCpu } from './procfs.mjs';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const now = () => performance.timeOrigin + performance.now();

// A client process holds one socket per connection; stay well under the 20,000 open-files cap.
export const PER_PROCESS_MAX = 9000;

export function quantile(sorted, q) {
    if (sorted.length === 0) return null;
    const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
    return sorted[i];
}

// ------------------------------------------------------------------------------------------------
// Load-generator processes

const liveClients = new Set();
process.on('exit', () => {
    for (const child of liveClients) {
        try {
            child.kill('SIGKILL');
        } catch {
            // gone
        }
    }
});

// Ends every load generator at once (the run's time limit): whatever waits on them fails.
export function killAllClients() {
    for (const child of liveClients) child.kill('SIGKILL');
}

class ClientProcess {
    constructor(log) {
        this.child = fork(path.join(benchDir, 'clients.mjs'), [], {
            serialization: 'advanced', // Float32Array results cross the channel as they are
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        liveClients.add(this.child);
        this.child.on('error', (err) => log(`load generator ${this.child.pid}: ${err.message}`));
        this.waiters = [];
        this.child.on('message', (msg) => {
            if (msg.ev === 'error') log(`client ${this.child.pid}: ${msg.message}`);
            const i = this.waiters.findIndex((w) => w.ev === msg.ev);
            if (i >= 0) this.waiters.splice(i, 1)[0].resolve(msg);
        });
        this.exited = new Promise((resolve) => this.child.once('exit', () => {
            liveClients.delete(this.child);
            for (const w of this.waiters) w.reject(new Error(`load generator ${this.child.pid} exited`));
            resolve();
        }));
    }
    request(cmd, ev, timeoutMs = 60000) {
        if (!this.child.connected) return Promise.reject(new Error(`load generator ${this.child.pid} exited`));
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`load generator: no ${ev} within ${timeoutMs} ms`)), timeoutMs);
            this.waiters.push({
                ev,
                resolve: (m) => {
                    clearTimeout(timer);
                    resolve(m);
                },
                reject: (e) => {
                    clearTimeout(timer);
                    reject(e);
                },
            });
            this.child.send(cmd);
        });
    }
    async exit() {
        if (!this.child.connected) {
            if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
            await this.exited;
            return;
        }
        this.child.send({ cmd: 'exit' });
        const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
        await this.exited;
        clearTimeout(timer);
    }
}

// Source addresses for TCP clients, 2,000 clients each, taken in turn from 127.0.0.2-250: a
// bind() to port 0 searches only part of the ephemeral range, and the previous session's
// sockets in TIME_WAIT still hold their ports for a minute.
const CLIENTS_PER_ADDRESS = 2000;
let nextAddress = 2;
function takeAddresses(count) {
    return Array.from({ length: Math.ceil(count / CLIENTS_PER_ADDRESS) }, () => {
        const address = `127.0.0.${nextAddress}`;
        nextAddress = nextAddress >= 250 ? 2 : nextAddress + 1;
        return address;
    });
}

// Starts enough load-generator processes for n clients and connects them to sys.
export async function connectClients(sys, n, { procs, log }) {
    const count = Math.min(n, Math.max(procs, Math.ceil(n / PER_PROCESS_MAX)));
    const clients = Array.from({ length: count }, () => new ClientProcess(log));
    await Promise.all(clients.map((c) => new Promise((resolve) => {
        c.waiters.push({ ev: 'started', resolve, reject: resolve });
    })));
    const share = (i) => Math.floor(n / count) + (i < n % count ? 1 : 0);
    const t0 = now();
    const connects = await Promise.all(clients.map((c, i) => c.request({
        cmd: 'connect',
        url: sys.wsUrl,
        origin: sys.origin,
        count: share(i),
        protocol: sys.protocol,
        localAddresses: sys.wsUrl.startsWith('ws+unix:') ? [] : takeAddresses(share(i)),
        concurrency: 100,
        timeoutMs: 30000, // a loaded machine takes long to answer thousands of handshakes
    }, 'connected', 180000)));
    const errors = {};
    for (const c of connects) for (const [k, v] of Object.entries(c.errors)) errors[k] = (errors[k] || 0) + v;
    return {
        clients,
        connect: {
            connected: connects.reduce((a, c) => a + c.ok, 0),
            failed: connects.reduce((a, c) => a + c.failed, 0),
            errors,
            ms: now() - t0,
        },
    };
}

export async function stopClients(clients) {
    await Promise.all(clients.map((c) => c.exit()));
}

async function progress(clients) {
    const all = await Promise.all(clients.map((c) => c.request({ cmd: 'progress' }, 'progress', 10000)));
    return all.reduce((a, p) => ({ received: a.received + p.received, warm: a.warm + p.warm, closed: a.closed + p.closed }), { received: 0, warm: 0, closed: 0 });
}

// Polls until `done(progress)` or the deadline; returns the last progress.
export async function waitFor(clients, done, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
        last = await progress(clients);
        if (done(last) || Date.now() > deadline) return last;
        await sleep(100);
    }
}

// ------------------------------------------------------------------------------------------------
// Publishing

const publishAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });

export function publishOne(sys, fields, pad = 0) {
    return new Promise((resolve) => {
        const started = now();
        const event = { type: 'product_updated', shopId: 1, productId: (fields.seq ?? 0) + 1, ...fields, t: started };
        if (pad > 0) event.description = 'x'.repeat(pad);
        const body = JSON.stringify(event);
        const req = http.request(sys.publishUrl, {
            method: 'POST',
            agent: publishAgent,
            timeout: 10000,
            headers: {
                'content-type': 'application/json',
                'content-length': Buffer.byteLength(body),
                'x-internal-secret': sys.secret,
            },
        }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode, ms: now() - started }));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', (err) => resolve({ status: 0, error: err.message, ms: now() - started }));
        req.end(body);
    });
}

export const ok2xx = (status) => status >= 200 && status < 300;

function summarizeReplies(replies, startedAt) {
    const statuses = {};
    for (const r of replies) statuses[r.status] = (statuses[r.status] || 0) + 1;
    const ms = replies.map((r) => r.ms).sort((a, b) => a - b);
    return {
        posts: replies.length,
        statuses,
        accepted: replies.filter((r) => ok2xx(r.status)).length,
        replyP50: quantile(ms, 0.5),
        replyP90: quantile(ms, 0.9),
        replyP99: quantile(ms, 0.99),
        replyMax: ms.length ? ms[ms.length - 1] : null,
        publishMs: now() - startedAt,
    };
}

// Publishes `count` events at `rate`/s on an absolute schedule (open loop: a slow reply does not
// delay the next event). Resolves with the replies once all have answered.
export async function publishAtRate(sys, { run, count, rate }) {
    const interval = 1000 / rate;
    const start = now() + 5;
    const pending = [];
    for (let i = 0; i < count; i++) {
        const wait = start + i * interval - now();
        if (wait > 1) await sleep(wait);
        pending.push(publishOne(sys, { run, seq: i }));
    }
    return summarizeReplies(await Promise.all(pending), start);
}

// Closed loop: `inflight` POSTs outstanding at all times, until `count` were sent or `seconds`
// passed (whichever comes first).
export async function publishClosedLoop(sys, { run, inflight, count = Infinity, seconds = Infinity, pad = 0 }) {
    const start = now();
    const deadline = start + seconds * 1000;
    const replies = [];
    let next = 0;
    const worker = async () => {
        while (next < count && now() < deadline) {
            const seq = next++;
            replies.push(await publishOne(sys, { run, seq }, pad));
        }
    };
    await Promise.all(Array.from({ length: inflight }, worker));
    const summary = summarizeReplies(replies, start);
    summary.postsPerSec = replies.length / (summary.publishMs / 1000);
    return summary;
}

// ------------------------------------------------------------------------------------------------
// Write-side system calls of the sending processes, counted by `perf stat` on the syscall
// tracepoints (counting only, no sampling; /proc/PID/io's syscw misses send() and sendto()).

const WRITE_SYSCALLS = ['write', 'writev', 'sendto', 'sendmsg', 'sendmmsg'].map((s) => `syscalls:sys_enter_${s}`).join(',');
const livePerf = new Set();
process.on('exit', () => {
    for (const child of livePerf) child.kill('SIGKILL');
});

// { name: [pid] } -> { stop(): Promise<{ name: count | null }> }
async function countWrites(groups) {
    const counters = Object.entries(groups).filter(([, pids]) => pids.length).map(([name, pids]) => {
        const child = spawn('perf', ['stat', '-x,', '-e', WRITE_SYSCALLS, '-p', pids.join(',')], { stdio: ['ignore', 'ignore', 'pipe'] });
        livePerf.add(child);
        let output = '';
        child.stderr.on('data', (chunk) => {
            output += chunk;
        });
        const done = new Promise((resolve) => {
            child.once('error', () => resolve(null)); // no perf here
            child.once('close', () => {
                livePerf.delete(child);
                const counts = output.split('\n').map((line) => line.split(',')).filter((f) => f[2]?.startsWith('syscalls:'));
                resolve(counts.length ? counts.reduce((a, f) => a + (Number(f[0]) || 0), 0) : null);
            });
        });
        return { name, child, done };
    });
    await sleep(200); // perf attaches to the processes
    return {
        async stop() {
            for (const c of counters) c.child.kill('SIGINT');
            const out = {};
            for (const c of counters) out[c.name] = await c.done;
            return out;
        },
    };
}

// ------------------------------------------------------------------------------------------------
// A measured run: `publish()` sends events `run` 0..count-1; every client records them.

export async function measuredRun(sys, clients, connected, { run, count, publish }) {
    await Promise.all(clients.map((c) => c.request({ cmd: 'record', run, events: count }, 'recording')));
    const groups = sys.groups();
    const writes = await countWrites(Object.fromEntries(sys.senders.map((name) => [name, groups[name] ?? []])));
    const cpu0 = cpuSnapshot(groups);
    const machine0 = machineCpu();
    const t0 = now();
    const pub = await publish();
    const expected = connected * count;
    // Drain: everything in, or no progress for 3 s, or 15 s at most.
    let last = -1;
    let lastChange = Date.now();
    const drainDeadline = Date.now() + 15000;
    for (;;) {
        const p = await progress(clients);
        if (p.received !== last) {
            last = p.received;
            lastChange = Date.now();
        }
        if (p.received >= expected || Date.now() - lastChange > 3000 || Date.now() > drainDeadline) break;
        await sleep(20);
    }
    const wallMs = now() - t0;
    const cpu1 = cpuSnapshot(groups);
    const writeCounts = await writes.stop();
    const machine1 = machineCpu();
    const reports = await Promise.all(clients.map((c) => c.request({ cmd: 'report' }, 'report', 60000)));

    let received = 0;
    for (const r of reports) received += r.received;
    const all = new Float64Array(received);
    let k = 0;
    for (const r of reports) for (const v of r.latencies) if (!Number.isNaN(v)) all[k++] = v;
    all.sort();
    // Median latency of the first and the last quarter of the events: a system that cannot keep
    // up shows a last quarter far above the first.
    const quarter = (from, to) => {
        const part = [];
        for (const r of reports) {
            for (let c = 0; c < r.connections; c++) {
                for (let seq = from; seq < to; seq++) {
                    const v = r.latencies[c * count + seq];
                    if (!Number.isNaN(v)) part.push(v);
                }
            }
        }
        part.sort((a, b) => a - b);
        return quantile(part, 0.5);
    };
    const q = Math.max(1, Math.floor(count / 4));
    const serverCpuMs = {};
    for (const name of Object.keys(cpu0)) serverCpuMs[name] = cpu1[name] - cpu0[name];
    const framesPerSend = {};
    for (const name of sys.senders) {
        const count = writeCounts[name];
        framesPerSend[name] = count ? received / count : null;
    }
    const clientCpuMs = reports.reduce((a, r) => a + r.cpuMs, 0);
    return {
        run,
        events: count,
        expected,
        received,
        lost: expected - received,
        duplicates: reports.reduce((a, r) => a + r.duplicates, 0),
        reordered: reports.reduce((a, r) => a + r.reordered, 0),
        stray: reports.reduce((a, r) => a + r.stray, 0),
        closedUnexpectedly: reports.reduce((a, r) => a + r.closedUnexpectedly, 0),
        latencyMs: {
            p50: quantile(all, 0.5),
            p90: quantile(all, 0.9),
            p99: quantile(all, 0.99),
            max: all.length ? all[all.length - 1] : null,
            p50FirstQuarter: quarter(0, q),
            p50LastQuarter: quarter(count - q, count),
        },
        publish: pub,
        wallMs,
        serverCpuMs,
        serverCpuUsPerDelivery: Object.fromEntries(Object.entries(serverCpuMs).map(([n, ms]) => [n, received ? (ms * 1000) / received : null])),
        framesPerSend,
        clientCores: clientCpuMs / wallMs,
        machineBusy: (machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total),
    };
}
