// The benchmark: Shopcast against nchan and a hand-rolled Node.js `ws` backend on this machine,
// each behind (or inside) one nginx worker, driven by the same load generator
// (tests/bench/clients.mjs). scripts/bench runs it; see BENCHMARKS.md for the method.
//
// For every N (connected WebSocket clients) and every system, on a freshly started server:
//   1. memory: VmRSS of the server processes before and after N idle clients connect,
//      (after - before) / N, and again after the measured run;
//   2. latency: M events POSTed through nginx at a fixed rate, each carrying the publisher's send
//      time; every client records receive - send; p50/p90/p99/max, delivered vs expected, and the
//      CPU time each server process spent per delivered message;
//   3. (BENCH_THROUGHPUT=1) fan-out throughput: rising publish rates, BENCH_STEP_SECONDS each, until
//      events are lost or the lag keeps growing.
// Results: bench-output/<timestamp>.json (everything) and the generated section of BENCHMARKS.md.
//
// Knobs (environment):
//   BENCH_N="1000 5000"   clients per run (<= 8000: one nginx worker holds two fds per client)
//   BENCH_M=200           measured events per run, at most BENCH_RUN_SECONDS (15) worth of them
//   BENCH_RATE=50         events per second...
//   BENCH_MAX_FANOUT=10000  ...capped so that rate * N stays at or below this many deliveries/s:
//                         latency is measured well below saturation on a shared 2-core machine
//                         (the throughput steps look for saturation)
//   BENCH_SYSTEMS="shopcast shopcast-ulimit nchan node"   (shopcast-ulimit: see systems below)
//   BENCH_CLIENT_PROCS=2  load-generator processes (each holds N / procs sockets)
//   BENCH_THROUGHPUT=1    run the throughput steps (0 to skip), with BENCH_THROUGHPUT_N (1000)
//                         clients, or the smallest N when that is not one of BENCH_N
//   BENCH_RATES="10 25 50 75 100 150 200 300" throughput steps (events/s)
//   BENCH_STEP_SECONDS=3  length of each throughput step
//   BENCH_SETTLE_MS=2000  idle time before reading memory
//   BENCH_WARM_EVENTS=20  unmeasured events (at the run's rate, at most 3 s of them) before each run
//   BENCH_OUTPUT=BENCHMARKS.md   where the report goes ("-" for none)
//   BENCH_MAX_SECONDS=900 the whole run stops (everything it started killed) after this long
//   SHOPCAST_BIN_DIR      shopcastd / shopcast-fcgi to measure (scripts/bench: build-bench/bin)

import { execFile, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort, probeHttp, repoRoot, startStack } from '../../scripts/lib/stack.mjs';

const execFileAsync = promisify(execFile);
const benchDir = path.dirname(fileURLToPath(import.meta.url));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.timeOrigin + performance.now();

// ------------------------------------------------------------------------------------------------
// Settings

function envList(name, fallback) {
    const text = process.env[name];
    return (text === undefined || text.trim() === '' ? fallback : text).trim().split(/[\s,]+/);
}
function envInt(name, fallback, min = 1, max = Number.MAX_SAFE_INTEGER) {
    const text = process.env[name];
    if (text === undefined || text === '') return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) {
        console.error(`${name}=${text}: expected an integer from ${min} to ${max}`);
        process.exit(2);
    }
    return value;
}

const KNOWN_SYSTEMS = ['shopcast', 'shopcast-ulimit', 'nchan', 'node'];
const settings = {
    ns: envList('BENCH_N', '1000 5000').map((n) => {
        const value = Number(n);
        if (!Number.isInteger(value) || value < 1 || value > 8000) {
            console.error(`BENCH_N: ${n} is not a client count from 1 to 8000`);
            process.exit(2);
        }
        return value;
    }),
    m: envInt('BENCH_M', 200, 1, 100000),
    rate: envInt('BENCH_RATE', 50, 1, 10000),
    maxFanout: envInt('BENCH_MAX_FANOUT', 10000, 100),
    runSeconds: envInt('BENCH_RUN_SECONDS', 15, 1, 3600),
    systems: envList('BENCH_SYSTEMS', KNOWN_SYSTEMS.join(' ')),
    clientProcs: envInt('BENCH_CLIENT_PROCS', 2, 1, 16),
    throughput: process.env.BENCH_THROUGHPUT !== '0',
    throughputN: envInt('BENCH_THROUGHPUT_N', 1000, 1, 8000),
    rates: envList('BENCH_RATES', '10 25 50 75 100 150 200 300').map((r) => {
        const value = Number(r);
        if (!Number.isInteger(value) || value < 1 || value > 10000) {
            console.error(`BENCH_RATES: ${r} is not a rate from 1 to 10000 events/s`);
            process.exit(2);
        }
        return value;
    }),
    stepSeconds: envInt('BENCH_STEP_SECONDS', 3, 1, 60),
    settleMs: envInt('BENCH_SETTLE_MS', 2000, 0, 60000),
    warmEvents: envInt('BENCH_WARM_EVENTS', 20, 1, 10000),
    output: process.env.BENCH_OUTPUT ?? path.join(repoRoot, 'BENCHMARKS.md'),
    binDir: path.resolve(process.env.SHOPCAST_BIN_DIR || path.join(repoRoot, 'build-bench', 'bin')),
    command: process.env.BENCH_COMMAND || 'scripts/bench',
};
for (const s of settings.systems) {
    if (!KNOWN_SYSTEMS.includes(s)) {
        console.error(`BENCH_SYSTEMS: unknown system ${s} (known: ${KNOWN_SYSTEMS.join(', ')})`);
        process.exit(2);
    }
}
// The throughput steps reuse the clients of one latency run: BENCH_THROUGHPUT_N if it is one of
// BENCH_N, else the smallest N.
if (!settings.ns.includes(settings.throughputN)) settings.throughputN = Math.min(...settings.ns);
// A client process holds one socket per connection; stay well under the 20,000 open-files cap.
const PER_PROCESS_MAX = 9000;

function log(line) {
    process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

// ------------------------------------------------------------------------------------------------
// /proc readings

function procStatus(pid) {
    try {
        const text = readFileSync(`/proc/${pid}/status`, 'utf8');
        const kb = (key) => Number((text.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm')) || [])[1] || 0);
        return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), shmem: kb('RssShmem') };
    } catch {
        return null;
    }
}

const CLOCK_TICK_MS = 10; // USER_HZ is 100 on Linux
function procCpuMs(pid) {
    try {
        const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
        return (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS; // utime + stime
    } catch {
        return 0;
    }
}

function childPids(pid) {
    try {
        return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
        return [];
    }
}

// Whole-machine CPU: busy and total jiffies from /proc/stat.
function machineCpu() {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = fields[3] + (fields[4] || 0);
    return { busy: total - idle, total };
}

// { name: [pid...] } -> { name: {rss, anon, file, shmem} } summed over the pids
function memorySnapshot(groups) {
    const out = {};
    for (const [name, pids] of Object.entries(groups)) {
        const sum = { rss: 0, anon: 0, file: 0, shmem: 0 };
        for (const pid of pids) {
            const s = procStatus(pid);
            if (s) for (const k of Object.keys(sum)) sum[k] += s[k];
        }
        out[name] = sum;
    }
    return out;
}

function cpuSnapshot(groups) {
    const out = {};
    for (const [name, pids] of Object.entries(groups)) out[name] = pids.reduce((a, pid) => a + procCpuMs(pid), 0);
    return out;
}

// ------------------------------------------------------------------------------------------------
// Child processes this benchmark starts itself (the Shopcast stack tracks its own)

const ownChildren = new Set();
process.on('exit', () => {
    for (const child of ownChildren) {
        try {
            child.kill('SIGKILL');
        } catch {
            // gone
        }
    }
});
for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
        log(`${signal}: stopping`);
        process.exit(130);
    });
}

let setpriv = null;
async function withPdeathsig(command, args) {
    if (setpriv === null) {
        setpriv = await execFileAsync('setpriv', ['--help'])
            .then(({ stdout }) => stdout.includes('--pdeathsig'))
            .catch(() => false);
    }
    return setpriv ? ['setpriv', ['--pdeathsig', 'SIGKILL', '--', command, ...args]] : [command, args];
}

async function startProcess(name, command, args, { env = process.env, ready }) {
    const [file, argv] = await withPdeathsig(command, args);
    const child = spawn(file, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    ownChildren.add(child);
    let output = '';
    const append = (chunk) => {
        output += chunk.toString('utf8');
        if (output.length > 1 << 20) output = output.slice(-(1 << 19));
    };
    child.stdout.on('data', append);
    child.stderr.on('data', append);
    const exited = new Promise((resolve) => child.once('close', (code, signal) => {
        ownChildren.delete(child);
        resolve({ code, signal });
    }));
    const deadline = Date.now() + 10000;
    for (;;) {
        if (child.exitCode !== null || child.signalCode !== null) {
            throw new Error(`${name} exited before it was ready:\n${output}`);
        }
        if (await ready(output)) break;
        if (Date.now() > deadline) throw new Error(`${name} not ready within 10 s:\n${output}`);
        await sleep(25);
    }
    return {
        pid: child.pid,
        output: () => output,
        async stop() {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
            await exited;
            clearTimeout(timer);
        },
    };
}


// ------------------------------------------------------------------------------------------------
// The systems under test. start(n) resolves to
//   { wsUrl, publishUrl, secret, origin, protocol, groups(): {name: [pid]}, headline: [names], stop() }

const isRoot = process.getuid?.() === 0;

// worker_connections for n proxied clients (two slots each) plus room for publishers, and more:
// once fewer than 1/16 of the slots are free, nginx starts closing idle keep-alive connections
// and connections still waiting for their request ("worker_connections are not enough, reusing
// connections"), which fails WebSocket handshakes and resets the publisher's connection.
const workerConnections = (n) => Math.ceil(((2 * n + 256) * 16) / 14);

async function renderTemplate(file, values) {
    const text = await readFile(path.join(benchDir, file), 'utf8');
    return text.replace(/@([A-Z_]+)@/g, (whole, name) => {
        if (!(name in values)) throw new Error(`${file}: no value for ${whole}`);
        return String(values[name]);
    });
}

async function startNginx(dir, template, extra) {
    const runDir = path.join(dir, 'run');
    await mkdir(runDir, { recursive: true });
    await mkdir(path.join(dir, 'tmp'), { recursive: true });
    const port = await freePort();
    const wc = extra.workerConnections;
    const conf = await renderTemplate(template, {
        PREFIX: dir,
        RUN_DIR: runDir,
        HTTP_PORT: port,
        WORKER_CONNECTIONS: wc,
        WORKER_NOFILE: Math.min(20000, wc + 64), // a slot is one fd
        USER_DIRECTIVE: isRoot ? 'user                    root;' : '',
        ...extra.values,
    });
    await writeFile(path.join(dir, 'nginx.conf'), conf);
    const nginxBin = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
    const url = `http://127.0.0.1:${port}`;
    const proc = await startProcess('nginx', nginxBin, ['-p', `${dir}/`, '-c', path.join(dir, 'nginx.conf'), '-e', 'stderr'], {
        ready: async () => (await probeHttp(`${url}/`)) !== null,
    });
    return { proc, url, port, runDir };
}

async function startShopcast(n, dir, daemonEnv = {}) {
    const stack = await startStack({
        binDir: settings.binDir,
        dir,
        workerConnections: workerConnections(n),
        // The benchmark publishes from one address faster than the default limit allows.
        rateLimit: '100000r/s',
        rateBurst: 100000,
        daemonEnv: {
            SHOPCAST_MAX_CONNECTIONS_PER_IP: String(n + 1000), // every client is 127.0.0.1
            ...(n + 100 > 10000 ? { SHOPCAST_MAX_CONNECTIONS: String(n + 1000) } : {}),
            ...daemonEnv,
        },
    });
    return stack;
}

const systems = {
    // As shipped: every daemon setting at its default but the per-address limit.
    async shopcast(n, dir) {
        return shopcastSystem(await startShopcast(n, dir));
    },

    // An experiment, not a deployment: SHOPCAST_MAX_CONNECTIONS at or above the open-files limit, so the
    // daemon passes libwebsockets an fd_limit_per_thread that is not below the ulimit. lws 4.1
    // then finds a connection from its fd by index instead of a linear scan of every slot
    // (wsi_from_fd), which is what the default setting costs on every socket event.
    async 'shopcast-ulimit'(n, dir) {
        return shopcastSystem(await startShopcast(n, dir, { SHOPCAST_MAX_CONNECTIONS: '1000000' }));
    },

    async nchan(n, dir) {
        const secret = randomBytes(24).toString('base64url');
        const nginx = await startNginx(dir, 'nginx-nchan.conf.template', {
            workerConnections: workerConnections(n),
            values: { SECRET: secret },
        });
        return {
            wsUrl: `ws://127.0.0.1:${nginx.port}/ws`,
            publishUrl: `${nginx.url}/api/internal/broadcast`,
            secret,
            origin: nginx.url,
            protocol: 'plain',
            groups: () => ({ 'nginx worker': childPids(nginx.proc.pid) }),
            headline: ['nginx worker'],
            logs: () => ({ nginx: nginx.proc.output().slice(-4000) }),
            stop: () => nginx.proc.stop(),
        };
    },

    async node(n, dir) {
        const secret = randomBytes(24).toString('base64url');
        const runDir = path.join(dir, 'run');
        await mkdir(runDir, { recursive: true });
        const socket = path.join(runDir, 'node.sock');
        const server = await startProcess('node-ws', process.execPath, [path.join(benchDir, 'node-ws-server.mjs'), '--listen', socket], {
            env: { ...process.env, INTERNAL_SECRET: secret },
            ready: (out) => out.includes('node-ws ready'),
        });
        let nginx;
        try {
            nginx = await startNginx(dir, 'nginx-node.conf.template', { workerConnections: workerConnections(n), values: {} });
        } catch (err) {
            await server.stop();
            throw err;
        }
        return {
            wsUrl: `ws://127.0.0.1:${nginx.port}/ws`,
            publishUrl: `${nginx.url}/api/internal/broadcast`,
            secret,
            origin: nginx.url,
            protocol: 'plain',
            groups: () => ({ node: [server.pid], 'nginx worker': childPids(nginx.proc.pid) }),
            headline: ['node', 'nginx worker'],
            logs: () => ({ node: server.output().slice(-4000), nginx: nginx.proc.output().slice(-4000) }),
            async stop() {
                await server.stop();
                await nginx.proc.stop();
            },
        };
    },
};

function shopcastSystem(stack) {
    return {
        wsUrl: stack.wsUrl,
        publishUrl: `${stack.httpUrl}/api/internal/broadcast`,
        secret: stack.secret,
        origin: stack.origin,
        protocol: 'shopcast',
        groups: () => ({
            shopcastd: [stack.daemonPid],
            'nginx worker': childPids(stack.nginxPid),
            'shopcast-fcgi': [stack.fcgiPid],
        }),
        headline: ['shopcastd', 'nginx worker'],
        logs: () => ({ shopcastd: stack.daemonLog().slice(-4000), nginx: stack.nginxLog().slice(-4000) }),
        stop: () => stack.stop(),
    };
}

// ------------------------------------------------------------------------------------------------
// Load-generator processes

class ClientProcess {
    constructor() {
        this.child = fork(path.join(benchDir, 'clients.mjs'), [], {
            serialization: 'advanced', // Float32Array results cross the channel as they are
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        ownChildren.add(this.child);
        this.waiters = [];
        this.child.on('message', (msg) => {
            if (msg.ev === 'error') log(`client ${this.child.pid}: ${msg.message}`);
            const i = this.waiters.findIndex((w) => w.ev === msg.ev);
            if (i >= 0) this.waiters.splice(i, 1)[0].resolve(msg);
        });
        this.exited = new Promise((resolve) => this.child.once('exit', () => {
            ownChildren.delete(this.child);
            for (const w of this.waiters) w.reject(new Error(`load generator ${this.child.pid} exited`));
            resolve();
        }));
    }
    request(cmd, ev, timeoutMs = 60000) {
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
        if (this.child.exitCode !== null) return;
        this.child.send({ cmd: 'exit' });
        const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
        await this.exited;
        clearTimeout(timer);
    }
}

async function startClients(n) {
    const procs = Math.max(settings.clientProcs, Math.ceil(n / PER_PROCESS_MAX));
    const list = Array.from({ length: Math.min(procs, n) }, () => new ClientProcess());
    await Promise.all(list.map((c) => new Promise((resolve) => {
        c.waiters.push({ ev: 'started', resolve, reject: resolve });
    })));
    return list;
}

// ------------------------------------------------------------------------------------------------
// Publishing

const publishAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });

function publishOne(sys, fields) {
    return new Promise((resolve) => {
        const started = now();
        const body = JSON.stringify({ type: 'product_updated', shopId: 1, productId: (fields.seq ?? 0) + 1, ...fields, t: started });
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

const ok2xx = (status) => status >= 200 && status < 300;

// Publishes `count` events at `rate`/s on an absolute schedule (open loop: a slow reply does not
// delay the next event). Resolves with the replies once all have answered.
async function publishAtRate(sys, { run, count, rate, firstSeq = 0 }) {
    const interval = 1000 / rate;
    const start = now() + 5;
    const pending = [];
    for (let i = 0; i < count; i++) {
        const due = start + i * interval;
        const wait = due - now();
        if (wait > 1) await sleep(wait);
        pending.push(publishOne(sys, { run, seq: firstSeq + i }));
    }
    const replies = await Promise.all(pending);
    const statuses = {};
    for (const r of replies) statuses[r.status] = (statuses[r.status] || 0) + 1;
    const ms = replies.map((r) => r.ms).sort((a, b) => a - b);
    const accepted = replies.filter((r) => ok2xx(r.status)).length;
    return { statuses, accepted, replyP50: quantile(ms, 0.5), replyP99: quantile(ms, 0.99), publishMs: now() - start };
}

// ------------------------------------------------------------------------------------------------
// Measuring

function quantile(sorted, q) {
    if (sorted.length === 0) return null;
    const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
    return sorted[i];
}

async function progress(clients) {
    const all = await Promise.all(clients.map((c) => c.request({ cmd: 'progress' }, 'progress', 10000)));
    return all.reduce((a, p) => ({ received: a.received + p.received, warm: a.warm + p.warm, closed: a.closed + p.closed }), { received: 0, warm: 0, closed: 0 });
}

// Polls until `done(progress)` or the deadline; returns the last progress.
async function waitFor(clients, done, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
        last = await progress(clients);
        if (done(last) || Date.now() > deadline) return last;
        await sleep(100);
    }
}

async function measuredRun(sys, clients, connected, { run, count, rate }) {
    await Promise.all(clients.map((c) => c.request({ cmd: 'record', run, events: count }, 'recording')));
    const groups = sys.groups();
    const cpu0 = cpuSnapshot(groups);
    const machine0 = machineCpu();
    const t0 = now();
    const pub = await publishAtRate(sys, { run, count, rate });
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
        await sleep(50);
    }
    const wallMs = now() - t0;
    const cpu1 = cpuSnapshot(groups);
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
    const clientCpuMs = reports.reduce((a, r) => a + r.cpuMs, 0);
    return {
        run,
        rate,
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
            p999: quantile(all, 0.999),
            max: all.length ? all[all.length - 1] : null,
            p50FirstQuarter: quarter(0, q),
            p50LastQuarter: quarter(count - q, count),
        },
        publish: pub,
        wallMs,
        serverCpuMs,
        serverCpuUsPerDelivery: Object.fromEntries(Object.entries(serverCpuMs).map(([n, ms]) => [n, received ? (ms * 1000) / received : null])),
        clientCpuMs,
        clientCores: clientCpuMs / wallMs,
        machineBusy: (machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total),
    };
}

function memoryDelta(before, after, n) {
    const out = {};
    for (const name of Object.keys(after)) {
        const b = before[name] || { rss: 0, anon: 0, file: 0, shmem: 0 };
        const a = after[name];
        out[name] = {
            beforeKb: b.rss,
            afterKb: a.rss,
            perConnKb: n ? (a.rss - b.rss) / n : null,
            anonPerConnKb: n ? (a.anon - b.anon) / n : null,
            shmemPerConnKb: n ? (a.shmem - b.shmem) / n : null,
        };
    }
    return out;
}

// A throughput step kept up when everything arrived, every publish was accepted, p99 stayed
// under SUSTAINED_P99_MS and the median lag did not grow during the step (last quarter of the
// events within SUSTAINED_DRIFT_MS of the first).
const SUSTAINED_P99_MS = 250;
const SUSTAINED_DRIFT_MS = 50;
function sustained(step) {
    const l = step.latencyMs;
    return step.lost === 0 && step.publish.accepted === step.events && l.p99 !== null && l.p99 <= SUSTAINED_P99_MS &&
        l.p50LastQuarter <= l.p50FirstQuarter + SUSTAINED_DRIFT_MS;
}

// One system at one N, on a freshly started server.
async function benchOne(name, n, tmpRoot) {
    const dir = await mkdtemp(path.join(tmpRoot, `${name}-`));
    log(`${name}, N=${n}: starting`);
    let sys;
    try {
        sys = await systems[name](n, dir);
    } catch (err) {
        log(`${name}, N=${n}: FAILED to start: ${err.message}`);
        return { system: name, n, headline: [], error: `could not start: ${err.message.split('\n')[0]}` };
    }
    const result = { system: name, n, headline: sys.headline };
    let clients = [];
    try {
        // Exercise the publish path once so lazily made state is in the baseline.
        const first = await publishOne(sys, { run: 'warm', seq: 0 });
        // nchan answers 202 (queued) while a channel has no subscriber, 201 or 200 otherwise.
        if (!ok2xx(first.status)) throw new Error(`${name}: a publish with no clients answered ${first.status}`);
        await sleep(500);
        const before = memorySnapshot(sys.groups());

        clients = await startClients(n);
        const share = (i) => Math.floor(n / clients.length) + (i < n % clients.length ? 1 : 0);
        const t0 = now();
        const connects = await Promise.all(clients.map((c, i) => c.request({
            cmd: 'connect',
            url: sys.wsUrl,
            origin: sys.origin,
            count: share(i),
            protocol: sys.protocol,
            concurrency: 100,
            timeoutMs: 15000,
        }, 'connected', 120000)));
        const connected = connects.reduce((a, c) => a + c.ok, 0);
        const failed = connects.reduce((a, c) => a + c.failed, 0);
        const errors = {};
        for (const c of connects) for (const [k, v] of Object.entries(c.errors)) errors[k] = (errors[k] || 0) + v;
        result.connect = { connected, failed, errors, ms: now() - t0 };
        log(`${name}, N=${n}: ${connected} connected in ${Math.round(now() - t0)} ms${failed ? `, ${failed} failed ${JSON.stringify(errors)}` : ''}`);
        if (connected === 0) throw new Error(`${name}: no client could connect: ${JSON.stringify(errors)}`);

        await sleep(settings.settleMs);
        const idle = memorySnapshot(sys.groups());
        result.memoryIdle = memoryDelta(before, idle, connected);

        // Warm-up at the run's rate: every buffer on the path exists and a JIT has compiled the
        // broadcast loop before anything is measured.
        const rate = Math.max(1, Math.min(settings.rate, Math.floor(settings.maxFanout / connected)));
        const count = Math.min(settings.m, Math.max(1, rate * settings.runSeconds));
        const warmEvents = Math.max(1, Math.min(settings.warmEvents, rate * 3));
        await publishAtRate(sys, { run: 'warm', count: warmEvents, rate });
        const warm = await waitFor(clients, (p) => p.warm >= connected * warmEvents, 15000);
        result.warmDelivered = { events: warmEvents, delivered: warm.warm, expected: connected * warmEvents };

        log(`${name}, N=${n}: ${count} events at ${rate}/s`);
        result.latency = await measuredRun(sys, clients, connected, { run: 'lat', count, rate });
        const l = result.latency;
        log(`${name}, N=${n}: p50 ${l.latencyMs.p50?.toFixed(2)} ms, p99 ${l.latencyMs.p99?.toFixed(2)} ms, max ${l.latencyMs.max?.toFixed(2)} ms, lost ${l.lost}/${l.expected}`);
        result.memoryAfterRun = memoryDelta(before, memorySnapshot(sys.groups()), connected);

        if (settings.throughput && n === settings.throughputN) {
            result.throughput = [];
            for (const stepRate of settings.rates) {
                const count = Math.max(1, Math.round(stepRate * settings.stepSeconds));
                const step = await measuredRun(sys, clients, connected, { run: `tp${stepRate}`, count, rate: stepRate });
                const deliveredPerSec = step.received / (step.publish.publishMs / 1000);
                step.sustained = sustained(step);
                result.throughput.push({ ...step, deliveredPerSec });
                log(`${name}, N=${n}: ${stepRate} events/s -> ${step.sustained ? 'kept up' : 'fell behind'}: delivered ${step.received}/${step.expected}, ` +
                    `p50 ${step.latencyMs.p50FirstQuarter?.toFixed(1)} -> ${step.latencyMs.p50LastQuarter?.toFixed(1)} ms, p99 ${step.latencyMs.p99?.toFixed(1)} ms`);
                if (!step.sustained) break;
            }
        }
    } catch (err) {
        result.error = err.message;
        result.logs = sys.logs();
        log(`${name}, N=${n}: FAILED: ${err.message}`);
    } finally {
        await Promise.all(clients.map((c) => c.exit()));
        await sys.stop();
        await rm(dir, { recursive: true, force: true }).catch(() => {});
    }
    return result;
}

// ------------------------------------------------------------------------------------------------
// Machine facts

async function run(command, args) {
    try {
        const { stdout, stderr } = await execFileAsync(command, args);
        return (stdout + stderr).trim();
    } catch {
        return null;
    }
}

async function machineFacts() {
    const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
    const model = (cpuinfo.match(/^model name\s*:\s*(.*)$/m) || [])[1] || 'unknown';
    const dpkgVersion = async (pkg) => run('dpkg-query', ['-W', '-f=${Version}', pkg]);
    const wsVersion = JSON.parse(readFileSync(path.join(repoRoot, 'node_modules', 'ws', 'package.json'), 'utf8')).version;
    const nofile = (readFileSync('/proc/self/limits', 'utf8').match(/^Max open files\s+(\d+)\s+(\d+)/m) || []).slice(1).join('/');
    return {
        date: new Date().toISOString(),
        nproc: os.availableParallelism?.() ?? os.cpus().length,
        cpuModel: model,
        memTotalMb: Math.round(os.totalmem() / 1048576),
        kernel: os.release(),
        nofile,
        node: process.version,
        ws: wsVersion,
        nginx: (await run('nginx', ['-v']))?.replace(/^nginx version:\s*/, ''),
        nginxPackage: await dpkgVersion('nginx-light') || await dpkgVersion('nginx'),
        nchan: await dpkgVersion('libnginx-mod-nchan'),
        libwebsockets: await dpkgVersion('libwebsockets17'),
        libfcgi: await dpkgVersion('libfcgi0ldbl') || await dpkgVersion('libfcgi-bin'),
        shopcastBinaries: settings.binDir,
        shopcastBuildType: await buildType(),
        gitRevision: await run('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD']),
        gitDirty: Boolean(await run('git', ['-C', repoRoot, 'status', '--porcelain', '--untracked-files=normal'])),
        loadAverageAtStart: os.loadavg().map((v) => v.toFixed(2)).join(' '),
    };
}

async function buildType() {
    const cache = path.join(settings.binDir, '..', 'CMakeCache.txt');
    try {
        return (readFileSync(cache, 'utf8').match(/^CMAKE_BUILD_TYPE:STRING=(.*)$/m) || [])[1] || 'unknown';
    } catch {
        return 'unknown';
    }
}

// ------------------------------------------------------------------------------------------------

async function main() {
    const startedAt = Date.now();
    const maxSeconds = envInt('BENCH_MAX_SECONDS', 900);
    setTimeout(() => {
        log(`BENCH_MAX_SECONDS=${maxSeconds} reached: stopping everything`);
        process.exit(1);
    }, maxSeconds * 1000).unref();
    const facts = await machineFacts();
    log(`machine: ${facts.nproc} x ${facts.cpuModel}; N=${settings.ns.join(',')} M=${settings.m} rate<=${settings.rate}/s; systems ${settings.systems.join(', ')}`);
    const tmpRoot = await mkdtemp(path.join(os.tmpdir(), 'shopcast-bench-'));
    const results = [];
    try {
        for (const [i, n] of settings.ns.entries()) {
            // Alternate the order, so that a noisy minute on a shared machine does not always land
            // on the same system.
            const order = i % 2 === 0 ? settings.systems : [...settings.systems].reverse();
            for (const name of order) {
                results.push(await benchOne(name, n, tmpRoot));
                await sleep(1000); // let TIME_WAIT sockets and the page cache settle
            }
        }
    } finally {
        await rm(tmpRoot, { recursive: true, force: true }).catch(() => {});
    }
    facts.loadAverageAtEnd = os.loadavg().map((v) => v.toFixed(2)).join(' ');
    const report = { facts, settings: { ...settings, output: undefined }, results, durationS: (Date.now() - startedAt) / 1000 };
    const outDir = path.join(repoRoot, 'bench-output');
    await mkdir(outDir, { recursive: true });
    const jsonFile = path.join(outDir, `bench-${facts.date.replace(/[:.]/g, '-')}.json`);
    await writeFile(jsonFile, JSON.stringify(report, null, 2));
    log(`raw results: ${path.relative(repoRoot, jsonFile)}`);
    const { renderReport, updateBenchmarksFile } = await import('./report.mjs');
    const section = renderReport(report);
    process.stdout.write(`${section}\n`);
    if (settings.output !== '-') {
        await updateBenchmarksFile(settings.output, section);
        log(`report: ${path.relative(process.cwd(), settings.output) || settings.output}`);
    }
    const failed = results.filter((r) => r.error);
    if (failed.length) {
        log(`${failed.length} run(s) failed: ${failed.map((r) => `${r.system} N=${r.n}`).join(', ')}`);
        process.exitCode = 1;
    }
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
