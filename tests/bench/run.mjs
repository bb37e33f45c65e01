// The benchmark: Shopcast (through nginx and direct) against nchan, a hand-rolled Node.js `ws`
// backend and two floors (tests/bench/floor_sender.cpp over loopback TCP and over a Unix
// socket), driven by the same load generator (tests/bench/clients.mjs). scripts/bench runs it;
// BENCHMARKS.md describes the method. Every system is started fresh for every session (one
// client count); sessions of the same size run back to back, alternating the order of systems.
//
// Scenarios (BENCH_SCENARIOS, default all):
//   latency  BENCH_LATENCY="1000x10 5000x2": N clients x events/s for BENCH_RUN_SECONDS (12):
//            p50/p90/p99, loss, order, server CPU per delivery, frames per send
//   ramp     at each of BENCH_RAMP_N (1000 10000) clients, rising fan-out BENCH_RAMP
//            (deliveries/s; steps under 2 events/s left out), BENCH_STEP_SECONDS (3) each, until a step falls
//            behind twice in a row (a step that fell behind is run once more)
//   burst    one event to all of BENCH_BURST_N (10000) clients, BENCH_BURST_REPS (5) times
//   memory   idle memory per connection at BENCH_MEMORY_N (10000 19000), where a system can
//            hold N; and over wss:// for shopcast-direct at BENCH_WSS_N (2000)
//   publish  publish-only POSTs/s with BENCH_INFLIGHT (8) in flight, no clients, BENCH_PUBLISH_SECONDS (5)
//   post     POST latency with BENCH_INFLIGHT in flight while BENCH_POST_N (2000) clients receive
//            BENCH_POST_EVENTS (200) events of BENCH_POST_BYTES (1500)
//   flood    Shopcast only: a normal page and a bot POSTing 25 events/s for BENCH_FLOOD_SECONDS (10),
//            quiet, then beside 200 connections resuming from an old cursor 18×/s (99 quiet shops
//            each, a history of BENCH_FLOOD_HISTORY (9000) events, the oldest of which must
//            stay retained by the default 10,000), then beside 8 PING floods
//            (tests/lib/flood.mjs): POST p50/p99 and delivery p99 against the quiet run
//   scale    only when named (never in the default run nor the smoke run): BENCH_SCALE_CLIENTS
//            (100000) clients on BENCH_SCALE_DAEMONS (6) shopcastd in direct mode, one broadcast
//            at a time to all, and fan-out with those daemons against one at
//            BENCH_SCALE_FANOUT_CLIENTS (15000); BENCH_SCALE_EVENTS (3), BENCH_SCALE_FANOUT_EVENTS
//            (10), BENCH_SCALE_RATE (2000 connections/s), BENCH_SCALE_CONNECT_SECONDS (900),
//            BENCH_SCALE_MODE (auto, redis, shared, local), BENCH_SCALE_PING_INTERVAL (0: default).
//            tests/bench/scale.mjs describes it; its table is a section of BENCHMARKS.md of its own
// Other knobs: BENCH_SYSTEMS, BENCH_HEAVY_SKIP ("node": left out at N >= 10000), BENCH_CLIENT_PROCS (2),
// BENCH_SETTLE_MS (2000), BENCH_WARM_EVENTS (20), BENCH_OUTPUT (BENCHMARKS.md; "-": print only),
// BENCH_MAX_SECONDS (1140: everything started is killed after it), BENCH_SMOKE=1 (a tiny run of every
// scenario that checks only that every system ran and delivered everything), SHOPCAST_BIN_DIR,
// BENCH_FLOOR_BIN_DIR (where floor_sender is; default build-bench/bin).

import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../../scripts/lib/stack.mjs';
import {
    connectClients, killAllClients, measuredRun, now, ok2xx, publishAtRate, publishClosedLoop, publishOne, stopClients, waitFor,
} from './load.mjs';
import { cpuSnapshot, memoryDelta, memorySnapshot } from './procfs.mjs';
import { floodScenario, jsonPoster } from '../lib/flood.mjs';
import { MAX_CLIENTS, SkipSystem, SYSTEMS, start } from './systems.mjs';
import { killAllFleets } from './fleet.mjs';
import { scaleScenario } from './scale.mjs';

const execFileAsync = promisify(execFile);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ------------------------------------------------------------------------------------------------
// Settings

const smoke = process.env.BENCH_SMOKE === '1';
const defaults = smoke
    ? { latency: '200x5', runSeconds: 2, rampN: '200', ramp: '1000 2000', stepSeconds: 1, burstN: 200, burstReps: 2,
        memoryN: '200', wssN: 200, publishSeconds: 1, postN: 200, postEvents: 20, settleMs: 300, warmEvents: 5, maxSeconds: 300,
        floodSeconds: 2, floodHistory: 500 }
    : { latency: '1000x10 5000x2', runSeconds: 12, rampN: '1000 10000', ramp: '5000 10000 20000 40000 60000 80000 100000 130000 160000 200000 250000',
        stepSeconds: 3, burstN: 10000, burstReps: 5, memoryN: '10000 19000', wssN: 2000, publishSeconds: 5, postN: 2000,
        postEvents: 200, settleMs: 2000, warmEvents: 20, maxSeconds: 1140, floodSeconds: 10, floodHistory: 9000 };

function fail(message) {
    console.error(message);
    process.exit(2);
}
function envList(name, fallback) {
    const text = process.env[name];
    return (text === undefined || text.trim() === '' ? String(fallback) : text).trim().split(/[\s,]+/).filter(Boolean);
}
function envInt(name, fallback, min = 0, max = Number.MAX_SAFE_INTEGER) {
    const text = process.env[name];
    if (text === undefined || text === '') return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) fail(`${name}=${text}: expected an integer from ${min} to ${max}`);
    return value;
}
function envInts(name, fallback, min, max) {
    return envList(name, fallback).map((t) => {
        const value = Number(t);
        if (!Number.isInteger(value) || value < min || value > max) fail(`${name}: ${t} is not an integer from ${min} to ${max}`);
        return value;
    });
}

const SCENARIOS = ['latency', 'ramp', 'burst', 'memory', 'publish', 'post', 'flood', 'scale'];
// The whole machine for minutes: run only when asked for.
const DEFAULT_SCENARIOS = SCENARIOS.filter((s) => s !== 'scale');
const FLOOD_SOCKETS = 211; // 200 resuming + 8 pinging + the page, a hello probe, spares
const MAX_N = 19500; // three load-generator processes; one server process holds them all
const settings = {
    smoke,
    systems: envList('BENCH_SYSTEMS', SYSTEMS.join(' ')),
    scenarios: envList('BENCH_SCENARIOS', DEFAULT_SCENARIOS.join(' ')),
    latency: envList('BENCH_LATENCY', defaults.latency).map((t) => {
        const m = t.match(/^(\d+)x(\d+(?:\.\d+)?)$/);
        if (!m || Number(m[1]) < 1 || Number(m[1]) > MAX_N || Number(m[2]) <= 0) fail(`BENCH_LATENCY: ${t} is not CLIENTSxRATE (e.g. 1000x10)`);
        return { n: Number(m[1]), rate: Number(m[2]) };
    }),
    runSeconds: envInt('BENCH_RUN_SECONDS', defaults.runSeconds, 1, 600),
    rampN: envInts('BENCH_RAMP_N', defaults.rampN, 1, MAX_N),
    ramp: envInts('BENCH_RAMP', defaults.ramp, 1, 10_000_000),
    stepSeconds: envInt('BENCH_STEP_SECONDS', defaults.stepSeconds, 1, 60),
    burstN: envInt('BENCH_BURST_N', defaults.burstN, 1, MAX_N),
    burstReps: envInt('BENCH_BURST_REPS', defaults.burstReps, 1, 100),
    memoryN: envInts('BENCH_MEMORY_N', defaults.memoryN, 1, MAX_N),
    wssN: envInt('BENCH_WSS_N', defaults.wssN, 0, MAX_N),
    publishSeconds: envInt('BENCH_PUBLISH_SECONDS', defaults.publishSeconds, 1, 600),
    inflight: envInt('BENCH_INFLIGHT', 8, 1, 64),
    postN: envInt('BENCH_POST_N', defaults.postN, 1, MAX_N),
    postEvents: envInt('BENCH_POST_EVENTS', defaults.postEvents, 1, 100000),
    postBytes: envInt('BENCH_POST_BYTES', 1500, 0, 60000),
    floodSeconds: envInt('BENCH_FLOOD_SECONDS', defaults.floodSeconds, 1, 120),
    floodHistory: envInt('BENCH_FLOOD_HISTORY', defaults.floodHistory, 1, 9000),
    heavySkip: envList('BENCH_HEAVY_SKIP', smoke ? '' : 'node'),
    heavyN: 10000,
    clientProcs: envInt('BENCH_CLIENT_PROCS', 2, 1, 16),
    settleMs: envInt('BENCH_SETTLE_MS', defaults.settleMs, 0, 60000),
    warmEvents: envInt('BENCH_WARM_EVENTS', defaults.warmEvents, 1, 10000),
    maxSeconds: envInt('BENCH_MAX_SECONDS', defaults.maxSeconds, 10),
    output: process.env.BENCH_OUTPUT ?? path.join(repoRoot, ...(smoke ? ['bench-output', 'smoke', 'BENCHMARKS.md'] : ['BENCHMARKS.md'])),
    binDir: path.resolve(process.env.SHOPCAST_BIN_DIR || path.join(repoRoot, 'build-bench', 'bin')),
    floorBinDir: path.resolve(process.env.BENCH_FLOOR_BIN_DIR || path.join(repoRoot, 'build-bench', 'bin')),
    command: process.env.BENCH_COMMAND || 'scripts/bench',
};
// A smoke run of it (BENCH_SMOKE=1 BENCH_SCENARIOS=scale) is tiny: three daemons, 600 clients.
settings.scale = {
    clients: envInt('BENCH_SCALE_CLIENTS', smoke ? 600 : 100000, 1, 120000),
    daemons: envInt('BENCH_SCALE_DAEMONS', smoke ? 3 : 6, 2, 16),
    fanoutClients: envInt('BENCH_SCALE_FANOUT_CLIENTS', smoke ? 300 : 15000, 1, 19000),
    events: envInt('BENCH_SCALE_EVENTS', 3, 1, 100),
    fanoutEvents: envInt('BENCH_SCALE_FANOUT_EVENTS', smoke ? 3 : 10, 1, 100),
    rate: envInt('BENCH_SCALE_RATE', 2000, 10, 20000),
    connectSeconds: envInt('BENCH_SCALE_CONNECT_SECONDS', 900, 10, 3600),
    mode: envList('BENCH_SCALE_MODE', 'auto')[0],
    // 0: the daemons' default (SHOPCAST_PING_INTERVAL); else that interval, hangup 15 s after.
    pingInterval: envInt('BENCH_SCALE_PING_INTERVAL', 0, 0, 3600),
    settleMs: settings.settleMs,
    eventTimeoutMs: 60000,
    binDir: settings.binDir,
};
if (!['auto', 'redis', 'shared', 'local'].includes(settings.scale.mode)) fail(`BENCH_SCALE_MODE=${settings.scale.mode}: expected auto, redis, shared or local`);
if (settings.heavySkip.length === 1 && settings.heavySkip[0] === '-') settings.heavySkip = [];
for (const s of settings.systems) if (!SYSTEMS.includes(s)) fail(`BENCH_SYSTEMS: unknown system ${s} (known: ${SYSTEMS.join(', ')})`);
for (const s of settings.scenarios) if (!SCENARIOS.includes(s)) fail(`BENCH_SCENARIOS: unknown scenario ${s} (known: ${SCENARIOS.join(', ')})`);

function log(line) {
    process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

// ------------------------------------------------------------------------------------------------
// The plan: sessions of one system at one client count, each with the tasks of that count.

const hasPublishApi = (system) => !system.startsWith('floor');

function buildPlan() {
    const groups = new Map(); // `${n}/${tls}` -> { n, tls, tasks: [{kind, ...}] }
    const add = (n, task, tls = false) => {
        const key = `${n}/${tls}`;
        if (!groups.has(key)) groups.set(key, { n, tls, tasks: [] });
        groups.get(key).tasks.push(task);
    };
    const on = (s) => settings.scenarios.includes(s);
    // Cheap and central first, so that a run cut short by BENCH_MAX_SECONDS still has them.
    if (on('latency')) for (const { n, rate } of settings.latency) add(n, { kind: 'latency', rate });
    if (on('ramp')) for (const n of settings.rampN) add(n, { kind: 'ramp' });
    if (on('post')) add(settings.postN, { kind: 'post', only: settings.systems.filter(hasPublishApi) });
    if (on('publish')) add(0, { kind: 'publish', only: settings.systems.filter(hasPublishApi) });
    // Sized (nginx's worker connections) for the flood's sockets; it connects no bench clients.
    if (on('flood')) add(FLOOD_SOCKETS, { kind: 'flood', only: ['shopcast'] });
    if (on('burst')) add(settings.burstN, { kind: 'burst' });
    if (on('memory')) {
        for (const n of settings.memoryN) add(n, { kind: 'memory' });
        if (settings.wssN > 0) add(settings.wssN, { kind: 'memory', only: ['shopcast-direct'] }, true);
    }
    const order = ['memory', 'latency', 'ramp', 'burst', 'post', 'publish', 'flood'];
    // Sessions of 10,000 clients or more after the rest: they take longest to connect.
    const ordered = [...groups.values()].sort((a, b) => (a.n >= settings.heavyN) - (b.n >= settings.heavyN));
    const sessions = [];
    ordered.forEach((g, i) => {
        const systems = i % 2 === 0 ? settings.systems : [...settings.systems].reverse();
        for (const system of systems) {
            if (g.n > (MAX_CLIENTS[system] ?? MAX_N)) continue;
            if (g.n >= settings.heavyN && settings.heavySkip.includes(system)) continue;
            const tasks = g.tasks.filter((t) => !t.only || t.only.includes(system)).sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
            if (tasks.length) sessions.push({ system, n: g.n, tls: g.tls, tasks });
        }
    });
    return sessions;
}

// ------------------------------------------------------------------------------------------------
// Tasks

// A ramp step kept up when everything arrived, every POST was accepted, p99 stayed under the
// limit for N clients (250 ms up to 2,500 clients, N/10 ms above, at most 1 s: one event takes
// longer to reach 10,000 clients than 1,000) and the median lag did not grow during the step.
export function sustainedLimits(n) {
    const p99 = Math.min(1000, Math.max(250, n / 10));
    return { p99, drift: Math.max(50, p99 / 5) };
}
function sustained(step, n) {
    const { p99, drift } = sustainedLimits(n);
    const l = step.latencyMs;
    return step.lost === 0 && step.publish.accepted === step.events && l.p99 !== null && l.p99 <= p99 &&
        l.p50LastQuarter <= l.p50FirstQuarter + drift;
}

async function warmUp(sys, clients, connected, rate) {
    const count = Math.max(1, Math.min(settings.warmEvents, Math.ceil(rate * 3)));
    await publishAtRate(sys, { run: 'warm', count, rate });
    const warm = await waitFor(clients, (p) => p.warm >= connected * count, 15000);
    return { events: count, delivered: warm.warm, expected: connected * count };
}

const tasks = {
    async latency(ctx, { rate }) {
        const { sys, clients, connected, name, n } = ctx;
        const warm = await warmUp(sys, clients, connected, rate);
        const count = Math.max(1, Math.round(rate * settings.runSeconds));
        log(`${name}, N=${n}: latency, ${count} events at ${rate}/s`);
        const run = await measuredRun(sys, clients, connected, { run: `lat${rate}`, count, publish: () => publishAtRate(sys, { run: `lat${rate}`, count, rate }) });
        run.rate = rate;
        run.warm = warm;
        const l = run.latencyMs;
        log(`${name}, N=${n}: p50 ${l.p50?.toFixed(2)} ms, p99 ${l.p99?.toFixed(2)} ms, lost ${run.lost}/${run.expected}`);
        return run;
    },

    async ramp(ctx) {
        const { sys, clients, connected, name, n } = ctx;
        const steps = [];
        for (let i = 0, retried = false; i < settings.ramp.length; i++) {
            const offered = settings.ramp[i];
            const rate = offered / connected;
            if (rate < 2 && i < settings.ramp.length - 1) continue; // slower steps take too long at large N
            const count = Math.max(8, Math.round(rate * settings.stepSeconds));
            const step = await measuredRun(sys, clients, connected, { run: `tp${offered}`, count, publish: () => publishAtRate(sys, { run: `tp${offered}`, count, rate }) });
            step.rate = rate;
            step.offered = rate * connected;
            step.deliveredPerSec = step.received / (count / rate);
            step.sustained = sustained(step, n);
            steps.push(step);
            log(`${name}, N=${n}: ${Math.round(step.offered)} deliveries/s -> ${step.sustained ? 'kept up' : 'fell behind'}: ${step.received}/${step.expected}, ` +
                `p50 ${step.latencyMs.p50FirstQuarter?.toFixed(1)} -> ${step.latencyMs.p50LastQuarter?.toFixed(1)} ms, p99 ${step.latencyMs.p99?.toFixed(1)} ms`);
            // A shared machine has noisy seconds: a step that fell behind is run once more, and
            // the ramp ends when it falls behind again.
            if (step.sustained) {
                retried = false;
            } else {
                if (retried) break;
                retried = true;
                i--;
            }
        }
        return steps;
    },

    async burst(ctx) {
        const { sys, clients, connected, name, n } = ctx;
        await warmUp(sys, clients, connected, 1);
        const reps = [];
        for (let i = 0; i < settings.burstReps; i++) {
            const run = await measuredRun(sys, clients, connected, { run: `burst${i}`, count: 1, publish: () => publishAtRate(sys, { run: `burst${i}`, count: 1, rate: 1 }) });
            reps.push(run);
            await sleep(300);
        }
        const median = (pick) => {
            const v = reps.map(pick).filter((x) => x !== null).sort((a, b) => a - b);
            return v.length ? v[Math.floor((v.length - 1) / 2)] : null;
        };
        const summary = {
            reps,
            p50: median((r) => r.latencyMs.p50),
            p99: median((r) => r.latencyMs.p99),
            last: median((r) => r.latencyMs.max),
            cpuUsPerDelivery: median((r) => Object.values(r.serverCpuUsPerDelivery).reduce((a, v) => a + (v ?? 0), 0)),
        };
        const ms = (v) => (v === null ? '–' : v.toFixed(1));
        log(`${name}, N=${n}: one event to all: p50 ${ms(summary.p50)} ms, p99 ${ms(summary.p99)} ms, last ${ms(summary.last)} ms ` +
            `(median of ${reps.length}); delivered ${reps.reduce((a, r) => a + r.received, 0)}/${reps.reduce((a, r) => a + r.expected, 0)}`);
        return summary;
    },

    async post(ctx) {
        const { sys, clients, connected, name, n } = ctx;
        const count = settings.postEvents;
        const run = await measuredRun(sys, clients, connected, {
            run: 'post',
            count,
            publish: () => publishClosedLoop(sys, { run: 'post', inflight: settings.inflight, count, pad: settings.postBytes }),
        });
        const p = run.publish;
        log(`${name}, N=${n}: POST with ${settings.inflight} in flight: p50 ${p.replyP50?.toFixed(1)} ms, p99 ${p.replyP99?.toFixed(1)} ms, ` +
            `${p.postsPerSec.toFixed(0)}/s; delivered ${run.received}/${run.expected}`);
        return run;
    },
};

async function publishOnly(sys, name) {
    await publishClosedLoop(sys, { run: 'warm', inflight: settings.inflight, count: 50 });
    const groups = sys.groups();
    const cpu0 = cpuSnapshot(groups);
    const result = await publishClosedLoop(sys, { run: 'pub', inflight: settings.inflight, seconds: settings.publishSeconds });
    const cpu1 = cpuSnapshot(groups);
    result.serverCpuUsPerPost = {};
    for (const k of Object.keys(cpu0)) result.serverCpuUsPerPost[k] = ((cpu1[k] - cpu0[k]) * 1000) / Math.max(1, result.posts);
    log(`${name}: publish only, ${settings.inflight} in flight: ${result.postsPerSec.toFixed(0)} POSTs/s, p50 ${result.replyP50?.toFixed(2)} ms, p99 ${result.replyP99?.toFixed(2)} ms`);
    return result;
}

// The normal page's POST and delivery latency, quiet and beside each flood, in one session.
async function floodRun(sys, name) {
    return floodScenario({
        wsUrl: sys.wsUrl, origin: sys.origin, post: jsonPoster(sys.publishUrl, sys.secret),
        history: settings.floodHistory, seconds: settings.floodSeconds, log: (line) => log(`${name}: ${line}`),
    });
}

// ------------------------------------------------------------------------------------------------
// A session: one system, started fresh, at one client count.

const skipped = {}; // "system" or "system (wss)" -> reason

async function runSession({ system, n, tls, tasks: todo }, tmpRoot) {
    const name = tls ? `${system} (wss)` : system;
    const result = { system, n, tls, tasks: todo.map((t) => t.kind) };
    if (skipped[name]) return { ...result, skipped: skipped[name] };
    const dir = await mkdtemp(path.join(tmpRoot, `${system}-`));
    log(`${name}, N=${n}: starting (${result.tasks.join(', ')})`);
    let sys;
    try {
        sys = await start[system](n, dir, { binDir: settings.binDir, floorBinDir: settings.floorBinDir, tls });
    } catch (err) {
        await rm(dir, { recursive: true, force: true }).catch(() => {});
        if (err instanceof SkipSystem) {
            skipped[name] = err.message;
            log(`${name}: SKIPPED: ${err.message}`);
            return { ...result, skipped: err.message };
        }
        log(`${name}, N=${n}: FAILED to start: ${err.message}`);
        return { ...result, error: `could not start: ${err.message.split('\n')[0]}` };
    }
    result.memoryProcesses = sys.memory;
    let clients = [];
    try {
        // Exercise the publish path once so lazily made state is in the baseline.
        const first = await publishOne(sys, { run: 'warm', seq: 0 });
        // nchan answers 202 (queued) while a channel has no subscriber, 201 or 200 otherwise.
        if (!ok2xx(first.status)) throw new Error(`a publish with no clients answered ${first.status}`);
        if (n === 0) {
            result.publish = await publishOnly(sys, name);
            return result;
        }
        if (result.tasks.every((kind) => kind === 'flood')) {
            result.flood = await floodRun(sys, name);
            return result;
        }
        await sleep(500);
        const before = memorySnapshot(sys.groups());
        const t0 = now();
        const connection = await connectClients(sys, n, { procs: settings.clientProcs, log });
        clients = connection.clients;
        result.connect = connection.connect;
        const { connected, failed, errors } = connection.connect;
        log(`${name}, N=${n}: ${connected} connected in ${Math.round(now() - t0)} ms${failed ? `, ${failed} failed ${JSON.stringify(errors)}` : ''}`);
        if (connected === 0) throw new Error(`no client could connect: ${JSON.stringify(errors)}`);
        await sleep(settings.settleMs);
        result.memoryIdle = memoryDelta(before, memorySnapshot(sys.groups()), connected);
        const ctx = { sys, clients, connected, name, n };
        for (const task of todo) {
            if (task.kind === 'memory') continue; // read above, for every session
            if (task.kind === 'latency') (result.latency ??= []).push(await tasks.latency(ctx, task));
            else result[task.kind] = await tasks[task.kind](ctx, task);
        }
    } catch (err) {
        result.error = err.message;
        result.logs = sys.logs();
        log(`${name}, N=${n}: FAILED: ${err.message}`);
    } finally {
        await stopClients(clients);
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
    const lscpu = (await run('lscpu', [])) ?? '';
    const field = (key) => (lscpu.match(new RegExp(`^${key}:\\s*(.*)$`, 'm')) || [])[1]?.trim() ?? null;
    const dpkgVersion = async (pkg) => run('dpkg-query', ['-W', '-f=${Version}', pkg]);
    const wsVersion = JSON.parse(readFileSync(path.join(repoRoot, 'node_modules', 'ws', 'package.json'), 'utf8')).version;
    const nofile = (readFileSync('/proc/self/limits', 'utf8').match(/^Max open files\s+(\d+)\s+(\d+)/m) || []).slice(1).join('/');
    const cache = path.join(settings.binDir, '..', 'CMakeCache.txt');
    const buildType = existsSync(cache) ? (readFileSync(cache, 'utf8').match(/^CMAKE_BUILD_TYPE:STRING=(.*)$/m) || [])[1] : 'unknown';
    return {
        date: new Date().toISOString(),
        nproc: os.availableParallelism?.() ?? os.cpus().length,
        cpuModel: field('Model name') ?? 'unknown',
        cores: `${field('CPU\\(s\\)')} CPUs: ${field('Socket\\(s\\)')} socket × ${field('Core\\(s\\) per socket')} cores × ${field('Thread\\(s\\) per core')} threads` +
            (field('Hypervisor vendor') ? `, ${field('Hypervisor vendor')} guest` : ''),
        memTotalMb: Math.round(os.totalmem() / 1048576),
        kernel: os.release(),
        nofile,
        node: process.version,
        ws: wsVersion,
        nginx: (await run('nginx', ['-v']))?.replace(/^nginx version:\s*/, ''),
        nginxPackage: await dpkgVersion('nginx-light') || await dpkgVersion('nginx'),
        nchan: await dpkgVersion('libnginx-mod-nchan'),
        libwebsockets: await dpkgVersion('libwebsockets17'),
        shopcastBinaries: settings.binDir,
        shopcastBuildType: buildType,
        gitRevision: await run('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD']),
        gitDirty: Boolean(await run('git', ['-C', repoRoot, 'status', '--porcelain', '--untracked-files=normal'])),
        loadAverageAtStart: os.loadavg().map((v) => v.toFixed(2)).join(' '),
    };
}

// ------------------------------------------------------------------------------------------------

// The smoke run's only verdict: every system ran every task it was given and delivered
// everything, and the report exists. No timing is judged.
function smokeProblems(results, reportFile) {
    const problems = [];
    const runsOf = (r) => [...(r.latency ?? []), ...(r.ramp ?? []), ...(r.burst?.reps ?? []), ...(r.post ? [r.post] : [])];
    for (const r of results) {
        const what = `${r.system}${r.tls ? ' (wss)' : ''} N=${r.n}`;
        if (r.skipped) continue;
        if (r.error) problems.push(`${what}: ${r.error}`);
        if (r.connect?.failed) problems.push(`${what}: ${r.connect.failed} clients could not connect`);
        for (const run of runsOf(r)) {
            if (run.lost || run.duplicates || run.closedUnexpectedly || run.publish.accepted !== run.events) {
                problems.push(`${what}, ${run.run}: delivered ${run.received}/${run.expected}, ${run.duplicates} duplicates, ` +
                    `${run.closedUnexpectedly} closed, ${run.publish.accepted}/${run.events} POSTs accepted`);
            }
        }
        if (r.publish && r.publish.accepted !== r.publish.posts) problems.push(`${what}: ${r.publish.posts - r.publish.accepted} POSTs refused`);
        for (const run of ['quiet', 'resume', 'ping'].map((k) => r.flood?.[k]).filter(Boolean)) {
            const ok = run.statuses[200] === run.posts && run.receivedIds.join() === run.sentIds.join();
            if (!ok) problems.push(`${what}, flood: ${JSON.stringify(run.statuses)}, delivered ${run.receivedIds.length}/${run.sentIds.length}`);
        }
    }
    for (const system of settings.systems) {
        if (!results.some((r) => r.system === system && !r.skipped && !r.error)) {
            if (!skipped[system]) problems.push(`${system}: did not run`);
        }
    }
    if (reportFile !== '-' && !existsSync(reportFile)) problems.push(`${reportFile} was not written`);
    return problems;
}

// The scale scenario's smoke verdict: every session held every client and every event reached all.
function scaleProblems(scale) {
    if (!scale) return [];
    return scale.sessions.flatMap((sc) => {
        if (sc.error) return [`scale ${sc.label}: ${sc.error}`];
        const problems = [];
        if (sc.connect.failed) problems.push(`scale ${sc.label}: ${sc.connect.failed} clients could not connect`);
        if (!sc.summary.everyEventToAll || sc.summary.duplicates || sc.summary.closed) {
            problems.push(`scale ${sc.label}: delivered ${sc.summary.delivered}/${sc.summary.expected}, ${sc.summary.duplicates} duplicates, ${sc.summary.closed} closed`);
        }
        return problems;
    });
}

async function main() {
    const startedAt = Date.now();
    // At the limit the load generators are killed, which ends the session under way; the report
    // is written with what was measured. Should stopping take long, everything is killed.
    let timeUp = false;
    setTimeout(() => {
        log(`BENCH_MAX_SECONDS=${settings.maxSeconds} reached: ending the session under way, skipping the rest`);
        timeUp = true;
        killAllClients();
        killAllFleets();
        setTimeout(() => {
            log('still running 60 s after BENCH_MAX_SECONDS: stopping everything');
            process.exit(1);
        }, 60000).unref();
    }, settings.maxSeconds * 1000).unref();
    for (const signal of ['SIGINT', 'SIGTERM']) {
        process.on(signal, () => {
            log(`${signal}: stopping`);
            process.exit(130);
        });
    }
    const facts = await machineFacts();
    const plan = buildPlan();
    log(`machine: ${facts.cores}, ${facts.cpuModel}, load ${facts.loadAverageAtStart}; ${plan.length} sessions; systems ${settings.systems.join(', ')}${smoke ? ' (smoke run)' : ''}`);
    const tmpRoot = await mkdtemp(path.join(os.tmpdir(), 'shopcast-bench-'));
    // Searchable by nginx's unprivileged workers, which reach the stacks' sockets through it.
    await chmod(tmpRoot, 0o711);
    const results = [];
    let scale = null;
    try {
        for (const session of plan) {
            if (timeUp) {
                const { system, n, tls, tasks: todo } = session;
                results.push({ system, n, tls, tasks: todo.map((t) => t.kind), error: `not run: BENCH_MAX_SECONDS=${settings.maxSeconds} reached` });
                continue;
            }
            results.push(await runSession(session, tmpRoot));
            await sleep(smoke ? 200 : 1000); // let TIME_WAIT sockets and the page cache settle
        }
        if (settings.scenarios.includes('scale')) {
            scale = await scaleScenario({ settings: { ...settings.scale, timeUp: () => timeUp }, tmpRoot, log });
        }
    } finally {
        await rm(tmpRoot, { recursive: true, force: true }).catch(() => {});
    }
    facts.loadAverageAtEnd = os.loadavg().map((v) => v.toFixed(2)).join(' ');
    const report = { facts, settings: { ...settings, output: undefined }, results, skipped, scale, durationS: (Date.now() - startedAt) / 1000 };
    const outDir = path.join(repoRoot, 'bench-output', ...(smoke ? ['smoke'] : []));
    await mkdir(outDir, { recursive: true });
    const jsonFile = path.join(outDir, `bench-${facts.date.replace(/[:.]/g, '-')}.json`);
    await writeFile(jsonFile, JSON.stringify(report, (k, v) => (k === 'logs' ? undefined : v), 2));
    log(`raw results: ${path.relative(repoRoot, jsonFile)}`);
    const { renderReport, renderScaleReport, updateBenchmarksFile, SCALE_MARKERS } = await import('./report.mjs');
    const { renderChart } = await import('./chart.mjs');
    const chartName = 'docs/bench-latency.svg';
    // A run of the scale scenario alone leaves the main section as it was.
    const section = plan.length ? renderReport(report, { chart: chartName }) : null;
    const scaleSection = scale ? renderScaleReport(report) : null;
    if (settings.output === '-') {
        for (const text of [section, scaleSection].filter(Boolean)) process.stdout.write(`${text}\n`);
    } else {
        if (section) {
            await updateBenchmarksFile(settings.output, section);
            const chartFile = path.join(path.dirname(settings.output), chartName);
            await mkdir(path.dirname(chartFile), { recursive: true });
            await writeFile(chartFile, renderChart(report));
            log(`report: ${path.relative(process.cwd(), settings.output) || settings.output}, chart: ${path.relative(process.cwd(), chartFile)}`);
        }
        if (scaleSection) {
            await updateBenchmarksFile(settings.output, scaleSection, SCALE_MARKERS);
            log(`scale report: ${path.relative(process.cwd(), settings.output) || settings.output}`);
        }
    }
    for (const [what, why] of Object.entries(skipped)) log(`skipped ${what}: ${why}`);
    const failed = results.filter((r) => r.error);
    for (const r of failed) log(`FAILED ${r.system} N=${r.n}: ${r.error}\n${Object.entries(r.logs ?? {}).map(([k, v]) => `--- ${k}\n${v}`).join('\n')}`);
    const scaleFailed = (scale?.sessions ?? []).filter((sc) => sc.error);
    for (const sc of scaleFailed) log(`FAILED scale ${sc.label}: ${sc.error}\n${Object.entries(sc.logs ?? {}).map(([k, v]) => `--- ${k}\n${v}`).join('\n')}`);
    if (failed.length || scaleFailed.length || timeUp) process.exitCode = 1;
    if (smoke) {
        const problems = [...(plan.length ? smokeProblems(results, settings.output) : []), ...scaleProblems(scale)];
        if (problems.length) {
            log(`smoke run FAILED:\n  ${problems.join('\n  ')}`);
            process.exitCode = 1;
        } else {
            log(`smoke run ok: every system ran every scenario and delivered everything (${Math.round(report.durationS)} s)`);
        }
    }
    log(`took ${Math.round(report.durationS)} s`);
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
