// The `scale` scenario of the benchmark (BENCH_SCENARIOS=scale; never part of the default run):
// BENCH_SCALE_CLIENTS (100,000) WebSocket clients held by BENCH_SCALE_DAEMONS (6) shopcastd
// processes in direct mode on this machine, every one receiving each broadcast; and fan-out with
// those daemons against one, at a client count one daemon can hold (BENCH_SCALE_FANOUT_CLIENTS,
// 15,000). Three sessions, each on a fresh stack (tests/bench/scale-stack.mjs) and a fresh client
// fleet (tests/bench/fleet.mjs):
//
//   scale, N daemons     BENCH_SCALE_CLIENTS clients, BENCH_SCALE_EVENTS (3) events
//   fan-out, N daemons   BENCH_SCALE_FANOUT_CLIENTS clients, BENCH_SCALE_FANOUT_EVENTS (10) events
//   fan-out, 1 daemon    the same clients on one daemon, the same events
//
// Each session: daemons' RSS before the clients and BENCH_SETTLE_MS after the last one opened
// (per connection = the difference ÷ clients), then one event at a time (the next once every
// client had the previous one): per event p50, p99 and the time until the last client had it.
// BENCH_SCALE_MODE: redis (the stack's `workers: N` on its own Redis, one shared port, events
// POSTed into the stream), shared (the same daemons, the event handed to each on its events
// socket), local (N local-mode daemons on their own ports, each sent the event on its events
// socket) or auto (default: the first of these that this tree and its binaries can run). BENCH_SCALE_RATE (2000):
// new connections per second over the whole fleet; BENCH_SCALE_CONNECT_SECONDS (900): the most a
// session's connecting may take. BENCH_SCALE_PING_INTERVAL (0: the daemons' default of 25 s):
// the daemons' keepalive ping interval, hangup 15 s later. libwebsockets 4.1.6 re-arms each
// connection's keepalive timer by a walk of a sorted list of every connection's timer, so at the
// default an idle daemon spends CPU growing with the square of its connections (BENCHMARKS.md).

import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { startFleet } from './fleet.mjs';
import { now } from './load.mjs';
import { cpuSnapshot, memorySnapshot } from './procfs.mjs';
import { startScaleStack } from './scale-stack.mjs';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function openDescriptors(pid) {
    try {
        return readdirSync(`/proc/${pid}/fd`).length;
    } catch {
        return null;
    }
}

function daemonMemory(pids) {
    const perDaemon = pids.map((pid) => memorySnapshot({ d: [pid] }).d);
    return { perDaemon, rssKb: perDaemon.reduce((a, m) => a + m.rss, 0), anonKb: perDaemon.reduce((a, m) => a + m.anon, 0) };
}

const median = (values) => {
    const v = values.filter((x) => x !== null && x !== undefined).sort((a, b) => a - b);
    return v.length ? v[Math.floor((v.length - 1) / 2)] : null;
};

async function session({ kind, label, mode, daemons, clients, processes, events, settings, dir, log }) {
    const t0 = now();
    const result = { kind, label, mode, daemons, clients, events };
    log(`scale: ${label}: starting ${daemons} daemon(s) (${mode} mode) for ${clients.toLocaleString('en-US')} clients`);
    // Room for an uneven spread over a shared port; under the 20,000 descriptors of a process.
    const maxConnections = Math.min(19900, Math.ceil((clients / daemons) * 1.15) + 100);
    const daemonEnv = settings.pingInterval
        ? { SHOPCAST_PING_INTERVAL: String(settings.pingInterval), SHOPCAST_HANGUP_TIMEOUT: String(settings.pingInterval + 15) }
        : {};
    const stack = await startScaleStack({ mode, daemons, dir, binDir: settings.binDir, maxConnections, daemonEnv });
    let fleet = null;
    try {
        await stack.publish({ run: 'warm', seq: 0 }); // lazily made state into the baseline
        await sleep(500);
        const pids = stack.daemonPids();
        const before = daemonMemory(pids);
        fleet = await startFleet({ clients, processes, log });
        result.connect = await fleet.connect(stack.targets, { perSecond: settings.rate, limitMs: settings.connectSeconds * 1000 });
        const c = result.connect;
        log(`scale: ${label}: ${c.connected.toLocaleString('en-US')} of ${clients.toLocaleString('en-US')} open in ${(c.ms / 1000).toFixed(1)} s ` +
            `(${c.processes} fleet processes, ${c.sourceAddresses.length} source addresses)${c.failed ? `, ${c.failed} failed ${JSON.stringify(c.errors)}` : ''}`);
        if (c.connected === 0) throw new Error(`no client could connect: ${JSON.stringify(c.errors)}`);
        await sleep(settings.settleMs);
        const after = daemonMemory(pids);
        const held = await fleet.progress();
        result.held = held.open;
        result.descriptors = pids.map(openDescriptors);
        result.memory = {
            beforeKb: before.rssKb,
            afterKb: after.rssKb,
            perConnKb: (after.rssKb - before.rssKb) / c.connected,
            anonPerConnKb: (after.anonKb - before.anonKb) / c.connected,
            perDaemon: pids.map((pid, i) => ({ pid, beforeKb: before.perDaemon[i].rss, afterKb: after.perDaemon[i].rss })),
            fleetRssKb: daemonMemory(fleet.pids()).rssKb,
        };
        log(`scale: ${label}: ${held.open.toLocaleString('en-US')} held; daemons' RSS ${Math.round(before.rssKb / 1024)} -> ${Math.round(after.rssKb / 1024)} MB, ` +
            `${result.memory.perConnKb.toFixed(2)} KB per connection; descriptors per daemon ${result.descriptors.join(' ')}`);
        const cpu0 = cpuSnapshot({ daemons: pids }).daemons;
        const b = await fleet.broadcast({
            run: `scale-${daemons}-${clients}`,
            count: events,
            publish: (seq) => stack.publish({ run: `scale-${daemons}-${clients}`, seq }),
            timeoutMs: settings.eventTimeoutMs,
        });
        result.broadcast = b;
        // The daemons' CPU over the broadcasts (the gaps between events included) per delivery.
        result.daemonCpuMs = cpuSnapshot({ daemons: pids }).daemons - cpu0;
        for (const e of b.perEvent) {
            log(`scale: ${label}: event ${e.seq}: ${e.delivered.toLocaleString('en-US')}/${e.expected.toLocaleString('en-US')} delivered, ` +
                `p50 ${e.p50?.toFixed(1)} ms, p99 ${e.p99?.toFixed(1)} ms, last ${e.last?.toFixed(1)} ms (publish ${e.reply.status} in ${e.reply.ms.toFixed(1)} ms)`);
        }
        result.summary = {
            delivered: b.perEvent.reduce((a, e) => a + e.delivered, 0),
            expected: b.perEvent.reduce((a, e) => a + e.expected, 0),
            everyEventToAll: b.perEvent.every((e) => e.delivered === e.expected),
            p50: median(b.perEvent.map((e) => e.p50)),
            p99: median(b.perEvent.map((e) => e.p99)),
            last: median(b.perEvent.map((e) => e.last)),
            worstLast: Math.max(...b.perEvent.map((e) => e.last ?? Infinity)),
            firstEventLast: b.perEvent[0]?.last ?? null,
            daemonCpuUsPerDelivery: (result.daemonCpuMs * 1000) / Math.max(1, b.perEvent.reduce((a, e) => a + e.delivered, 0)),
            duplicates: b.duplicates,
            closed: b.closed,
        };
    } catch (err) {
        result.error = err.message;
        result.logs = stack.logs();
        log(`scale: ${label}: FAILED: ${err.message}`);
    } finally {
        if (fleet) await fleet.stop();
        await stack.stop();
        result.seconds = (now() - t0) / 1000;
    }
    return result;
}

// What this tree and these binaries can run: `redis` once shopcast-fcgi appends to the stream
// and shopcastd reads it; `shared` once the stack starts several daemons on one port; else `local`.
async function bestMode(binDir) {
    const { readFile } = await import('node:fs/promises');
    const { repoRoot } = await import('../../scripts/lib/stack.mjs');
    const has = async (file, text) => (await readFile(file).catch(() => Buffer.alloc(0))).includes(text);
    const stack = path.join(repoRoot, 'scripts', 'lib', 'stack.mjs');
    if (!(await has(stack, 'workers = 1'))) return 'local';
    const streamRead = await has(path.join(binDir, 'shopcastd'), 'XREAD');
    const streamAppend = await has(path.join(binDir, 'shopcast-fcgi'), 'XADD');
    return streamRead && streamAppend ? 'redis' : 'shared';
}

export async function scaleScenario({ settings, tmpRoot, log }) {
    const mode = settings.mode === 'auto' ? await bestMode(settings.binDir) : settings.mode;
    const t0 = now();
    // The same fleet for both fan-out sessions, one process per 4,000 clients (at least two, one
    // per core): a process parses its clients' frames one after another.
    const fanoutProcesses = Math.max(2, Math.ceil(settings.fanoutClients / 4000));
    // The headline first, so that a run cut short by BENCH_MAX_SECONDS still has it.
    const plan = [
        { kind: 'scale', label: `scale, ${settings.daemons} daemons`, daemons: settings.daemons, clients: settings.clients, processes: 1, events: settings.events },
        { kind: 'fanout', label: `fan-out, ${settings.daemons} daemons`, daemons: settings.daemons, clients: settings.fanoutClients, processes: fanoutProcesses, events: settings.fanoutEvents },
        { kind: 'fanout', label: 'fan-out, 1 daemon', daemons: 1, clients: settings.fanoutClients, processes: fanoutProcesses, events: settings.fanoutEvents },
    ];
    const sessions = [];
    for (const s of plan) {
        if (settings.timeUp()) {
            sessions.push({ ...s, mode, error: 'not run: BENCH_MAX_SECONDS reached' });
            continue;
        }
        const dir = await mkdtemp(path.join(tmpRoot, 'scale-'));
        try {
            sessions.push(await session({ ...s, mode, settings, dir, log }));
        } finally {
            await rm(dir, { recursive: true, force: true }).catch(() => {});
        }
        await sleep(2000); // closed sockets leave TIME_WAIT; the next session takes other source addresses
    }
    return { mode, settings: { ...settings, timeUp: undefined }, sessions, seconds: (now() - t0) / 1000 };
}
