// "Events per second the guide's helper achieves": a bot's bulk import through the dev stack
// as a newcomer gets it (scripts/lib/stack.mjs with its defaults, nginx's flood guard
// included), with the guide's own broadcastUpdate() (axios, 2 s timeout, no retry), awaited
// one call after another and with 8 calls in flight. A connected WebSocket page counts what
// arrives. Prints one line per run and, last, the runs as one JSON line.
//
//   node tests/bench/bot-import.mjs
//
// Knobs (environment): BOT_IMPORT_EVENTS (10000) per run, BOT_IMPORT_IN_FLIGHT ("1 8"),
// SHOPCAST_BIN_DIR (default build/bin). Stops by itself: every run is bounded by its count,
// each call by the helper's 2 s timeout, and the whole script by BOT_IMPORT_MAX_SECONDS (300).
import os from 'node:os';
import { rm } from 'node:fs/promises';
import WebSocket from 'ws';

import { startStack } from '../../scripts/lib/stack.mjs';
import { importProducts } from '../lib/guide-broadcast.mjs';

const EVENTS = Number(process.env.BOT_IMPORT_EVENTS ?? 10_000);
const IN_FLIGHT = (process.env.BOT_IMPORT_IN_FLIGHT ?? '1 8').split(/[\s,]+/).filter(Boolean).map(Number);
const MAX_SECONDS = Number(process.env.BOT_IMPORT_MAX_SECONDS ?? 300);
const DELIVERY_WAIT_MS = 10_000;

// A page that never sends anything, like the guide's WebApp; counts events per shop.
function openPage(stack) {
    const received = new Map();
    const ws = new WebSocket(stack.wsUrl, { origin: stack.origin });
    ws.on('message', (data) => {
        const message = JSON.parse(data.toString('utf8'));
        if (message.shopId !== undefined) received.set(message.shopId, (received.get(message.shopId) ?? 0) + 1);
    });
    return new Promise((resolve, reject) => {
        ws.once('message', () => resolve({ ws, received })); // hello: live delivery is set up
        ws.once('error', reject);
    });
}

async function waitForDeliveries(page, shopId, count) {
    const deadline = Date.now() + DELIVERY_WAIT_MS;
    while ((page.received.get(shopId) ?? 0) < count && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return page.received.get(shopId) ?? 0;
}

let stack = null;

async function main() {
    stack = await startStack();
    const runs = [];
    try {
        const page = await openPage(stack);
        // The daemon holds a new connection's live events until it resumes or 1 s passes.
        await new Promise((resolve) => setTimeout(resolve, 1100));
        for (const [index, inFlight] of IN_FLIGHT.entries()) {
            const shopId = 7000 + index;
            const result = await importProducts({ backendUrl: stack.httpUrl, secret: stack.secret, shopId, count: EVENTS, inFlight });
            const delivered = await waitForDeliveries(page, shopId, EVENTS);
            const run = {
                inFlight,
                events: EVENTS,
                seconds: Number(result.seconds.toFixed(2)),
                eventsPerSecond: Math.round(EVENTS / result.seconds),
                failed: result.failed.length,
                delivered,
            };
            runs.push(run);
            console.log(`${inFlight === 1 ? 'sequential' : `${inFlight} in flight`}: ${EVENTS} events in ${run.seconds} s = ${run.eventsPerSecond} events/s; ` +
                `${run.failed} failed, ${delivered} delivered to the page` + (result.failed[0] ? ` (first failure: ${result.failed[0]})` : ''));
        }
        page.ws.close();
    } finally {
        await stack.stop();
        await rm(stack.dir, { recursive: true, force: true });
    }
    console.log(JSON.stringify({ bench: 'bot-import', cpus: os.cpus().length, node: process.version, runs }));
    if (runs.some((run) => run.failed > 0 || run.delivered !== run.events)) process.exitCode = 1;
}

const guard = setTimeout(async () => {
    console.error(`bot-import: not done within ${MAX_SECONDS} s, giving up`);
    await stack?.stop().catch(() => {});
    process.exit(2);
}, MAX_SECONDS * 1000);
guard.unref();

main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
});
