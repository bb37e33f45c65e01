// The servers of the scale scenario (tests/bench/scale.mjs): N shopcastd processes for browsers
// in direct mode, and one way to publish a broadcast to all of them.
//
//   local  N daemons in local mode (no Redis), each on its own port, each fed by its own events
//          socket with the IPC framing of common/ipc.h: the same event is handed to every daemon
//   shared the dev stack with `workers: N` (scripts/lib/stack.mjs): Redis, N daemons sharing one
//          direct-mode port (SO_REUSEPORT); the event handed to each daemon on its events socket
//   redis  the same stack, events POSTed through nginx and shopcast-fcgi into the stream that
//          every daemon reads
//
// startScaleStack({ mode, daemons, dir, binDir, maxConnections, daemonEnv }) resolves to
//   { mode, daemons, targets: [{url, origin}], daemonPids(), publish({run, seq}) -> {ok, status, ms},
//     logs(), stop() }

import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { freePort, startStack } from '../../scripts/lib/stack.mjs';
import { now, publishOne } from './load.mjs';
import { startProcess } from './systems.mjs';

// ------------------------------------------------------------------------------------------------
// The IPC framing (common/ipc.h): a 4-byte big-endian length, then the payload: a kind byte and
// fields, each a 4-byte big-endian length and bytes (or a 4-byte number).

const PUBLISH_REQUEST = 1;
const PUBLISH_ACK = 2;
const ACK_STATUS = ['accepted', 'duplicate', 'rejected', 'conflict'];

function u32(value) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(value);
    return b;
}
const field = (text) => {
    const bytes = Buffer.from(text, 'utf8');
    return Buffer.concat([u32(bytes.length), bytes]);
};

export function encodePublishRequest({ idempotencyKey = '', type, shopId = '', userId = '', json }) {
    const payload = Buffer.concat([Buffer.from([PUBLISH_REQUEST]), field(idempotencyKey), field(type), field(shopId), field(userId), field(json)]);
    return Buffer.concat([u32(payload.length), payload]);
}

export function decodeAck(payload) {
    if (payload[0] !== PUBLISH_ACK || payload.length < 13) return null;
    const status = payload.readUInt32BE(1);
    const idLength = payload.readUInt32BE(5);
    if (payload.length !== 13 + idLength) return null;
    return { status: ACK_STATUS[status] ?? null, id: payload.toString('utf8', 9, 9 + idLength), recipients: payload.readUInt32BE(9 + idLength) };
}

// One connection to a daemon's events socket; requests answered in order.
async function eventsConnection(socketPath) {
    const socket = net.connect(socketPath);
    await once(socket, 'connect');
    const pending = [];
    let buffer = Buffer.alloc(0);
    socket.on('data', (chunk) => {
        buffer = Buffer.concat([buffer, chunk]);
        while (buffer.length >= 4 && buffer.length >= 4 + buffer.readUInt32BE(0)) {
            const length = buffer.readUInt32BE(0);
            const ack = decodeAck(buffer.subarray(4, 4 + length));
            buffer = buffer.subarray(4 + length);
            pending.shift()?.resolve(ack);
        }
    });
    const failAll = (err) => {
        for (const p of pending.splice(0)) p.reject(err);
    };
    socket.on('error', failAll);
    socket.on('close', () => failAll(new Error(`${socketPath}: closed`)));
    return {
        send(request) {
            return new Promise((resolve, reject) => {
                pending.push({ resolve, reject });
                socket.write(encodePublishRequest(request));
            });
        },
        close: () => socket.destroy(),
    };
}

// The same event (load.mjs's publishOne event) to every daemon; ok once every one accepted it.
async function publishEverywhere(connections, fields) {
    const t0 = now();
    const json = JSON.stringify({ type: 'product_updated', shopId: 1, productId: (fields.seq ?? 0) + 1, ...fields, t: t0 });
    const acks = await Promise.all(connections.map((c) => c.send({ type: 'product_updated', shopId: '1', json }).catch(() => null)));
    const ok = acks.every((a) => a?.status === 'accepted');
    return { ok, status: ok ? 200 : 0, ms: now() - t0, recipients: acks.reduce((a, x) => a + (x?.recipients ?? 0), 0) };
}

// ------------------------------------------------------------------------------------------------

async function startLocal({ daemons, dir, binDir, maxConnections, daemonEnv = {} }) {
    const runDir = path.join(dir, 'run');
    await mkdir(runDir, { recursive: true });
    const origin = 'http://127.0.0.1';
    const started = [];
    const connections = [];
    const stop = async () => {
        for (const c of connections) c.close();
        await Promise.all(started.map((d) => d.proc.stop()));
    };
    try {
        for (let i = 0; i < daemons; i++) {
            const stateDir = path.join(dir, `state-${i}`);
            await mkdir(stateDir, { recursive: true, mode: 0o700 });
            const eventsSocket = path.join(runDir, `events-${i}.sock`);
            const port = await freePort();
            const env = {
                PATH: process.env.PATH,
                SHOPCAST_EVENTS_SOCKET: eventsSocket,
                SHOPCAST_WS_LISTEN: `127.0.0.1:${port}`,
                SHOPCAST_ALLOWED_ORIGINS: origin,
                SHOPCAST_STATE_DIRECTORY: stateDir,
                SHOPCAST_MAX_CONNECTIONS: String(maxConnections),
                ...daemonEnv,
            };
            const proc = await startProcess(`shopcastd ${i}`, path.join(binDir, 'shopcastd'), [], { env, ready: (out) => out.includes('shopcastd ready') });
            started.push({ proc, port, eventsSocket });
            connections.push(await eventsConnection(eventsSocket));
        }
    } catch (err) {
        await stop();
        throw err;
    }
    return {
        mode: 'local',
        daemons,
        targets: started.map((d) => ({ url: `ws://127.0.0.1:${d.port}/ws`, origin })),
        daemonPids: () => started.map((d) => d.proc.pid),
        publish: (fields) => publishEverywhere(connections, fields),
        logs: () => Object.fromEntries(started.map((d, i) => [`shopcastd ${i}`, d.proc.output().slice(-2000)])),
        stop,
    };
}

// The dev stack with `workers: N` daemons sharing one direct-mode port (SO_REUSEPORT, which the
// daemons open only on Redis). `publishVia`: 'redis' POSTs through nginx and shopcast-fcgi into
// the stream; 'ipc' hands the event to every daemon on its own events socket (for a tree whose
// daemons share the port but do not read the stream yet).
async function startWorkers({ daemons, dir, binDir, maxConnections, publishVia, daemonEnv = {} }) {
    const stack = await startStack({
        binDir,
        dir,
        workers: daemons,
        redis: true, // one daemon too: the comparison is on the same path
        directPort: 0,
        // nginx carries only the publish API here: the browsers are on the daemons' shared port.
        workerProcesses: 1,
        workerConnections: 1024,
        daemonEnv: { SHOPCAST_MAX_CONNECTIONS: String(maxConnections), ...daemonEnv },
    });
    const connections = [];
    try {
        if (publishVia === 'ipc') for (const d of stack.daemons) connections.push(await eventsConnection(d.eventsSocket));
    } catch (err) {
        await stack.stop();
        throw err;
    }
    const sys = { publishUrl: `${stack.httpUrl}/api/internal/broadcast`, secret: stack.secret };
    return {
        mode: publishVia === 'ipc' ? 'shared' : 'redis',
        daemons,
        targets: [{ url: stack.directWsUrl, origin: stack.origin }],
        daemonPids: () => stack.daemonPids,
        publish: publishVia === 'ipc'
            ? (fields) => publishEverywhere(connections, fields)
            : async (fields) => {
                const reply = await publishOne(sys, fields);
                return { ok: reply.status === 200, status: reply.status, ms: reply.ms };
            },
        logs: () => ({ shopcastd: stack.daemonLog().slice(-4000), nginx: stack.nginxLog().slice(-2000) }),
        async stop() {
            for (const c of connections) c.close();
            await stack.stop();
        },
    };
}

export function startScaleStack({ mode, ...opts }) {
    if (mode === 'local') return startLocal(opts);
    if (mode === 'shared') return startWorkers({ ...opts, publishVia: 'ipc' });
    if (mode === 'redis') return startWorkers({ ...opts, publishVia: 'redis' });
    throw new Error(`scale stack mode must be local, shared or redis, got ${mode}`);
}
