// A restart of shopcastd while browsers are connected and the bot keeps publishing (DESIGN.md
// "Restarts and operations"). Each browser here behaves like the client library: it resumes from
// the last id it saw after any drop. The bot sends an Idempotency-Key and retries what was not
// answered 200.
//   - SIGTERM, then start: history, epoch and keys persist, so 0 resync, 0 lost, 0 duplicated.
//   - SIGKILL, then start: no state survives a crash; every browser gets `resync` or an exact
//     replay, and never a gap or a duplicate inside what it was told is continuous.
//   - A damaged state file: a new epoch (resync), never a wrong event.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startTestStack, stopTestStack, post, sleep, WebSocket, CONTROL_TYPES } from './helpers.mjs';

const CLIENTS = Number(process.env.SHOPCAST_RESTART_CLIENTS ?? 2000);
const PUBLISH_INTERVAL_MS = 20; // about 50 events/s: a busy shop, far below what the daemon takes
const RESTART_SPREAD_MS = 5000; // web/shopcast-client.js's restartSpreadMs default

let stack;
const livePages = new Set(); // every page not yet stopped, so that no failure leaves one reconnecting

before(async () => {
  // Every page here resumes on its own. The hold only has to outlast the time its resume takes
  // to arrive: one round trip for a real page, but seconds here, where 2,000 pages share this one
  // process's event loop on a loaded machine. A resume after the hold is answered with resync
  // (tests/unit/action_cost_test.cpp), which would be taken for a gap below.
  stack = await startTestStack({ daemonEnv: { SHOPCAST_LIVE_HOLD_MS: '60000' } });
});

after(async () => {
  stopPages(livePages);
  await stopTestStack(stack);
});

// A page that reconnects by itself and resumes from the last id it saw. `log` keeps every event
// and every resync in arrival order.
class ResumingPage {
  constructor(url, origin) {
    this.url = url;
    this.origin = origin;
    this.cursor = null;
    this.log = [];
    this.connects = 0;
    this.refused = 0;
    this.stopped = false;
    this.ready = new Promise((resolve) => {
      this.markReady = resolve;
    });
    livePages.add(this);
    this.open();
  }

  open() {
    if (this.stopped) return;
    const ws = new WebSocket(this.url, { origin: this.origin, rejectUnauthorized: false, perMessageDeflate: false });
    this.ws = ws;
    // As web/shopcast-client.js does: resume at once on a reconnect, from hello on the first.
    ws.on('open', () => {
      if (this.cursor !== null) ws.send(JSON.stringify({ action: 'resume', since: this.cursor }));
    });
    ws.on('message', (data) => {
      const message = JSON.parse(data.toString('utf8'));
      if (message.type === 'hello') {
        this.connects += 1;
        if (this.cursor === null) {
          this.cursor = message.id;
          ws.send(JSON.stringify({ action: 'resume', since: message.id }));
        }
        this.markReady();
      } else if (message.type === 'resync') {
        this.log.push({ resync: message.reason });
      } else if (!CONTROL_TYPES.has(message.type)) {
        this.log.push({ id: message.id, n: message.productId });
        this.cursor = message.id;
      }
    });
    // Refused upgrades (the daemon still starting) are counted and retried; with a listener
    // here, ws leaves ending the request to us and emits no close.
    ws.on('unexpected-response', (request, response) => {
      this.refused += 1;
      response.resume();
      request.destroy();
      this.retry(ws, 0);
    });
    ws.on('error', () => this.retry(ws, 0));
    ws.on('close', (code) => this.retry(ws, code));
  }

  // One reconnect per socket, whichever of its events comes first.
  retry(ws, code) {
    if (this.stopped || ws.retried) return;
    ws.retried = true;
    // The client library's spread after a restart (1001/1012), else a short retry.
    const delay = code === 1001 || code === 1012 ? Math.random() * RESTART_SPREAD_MS : 200 + Math.random() * 300;
    setTimeout(() => this.open(), delay);
  }

  events() {
    return this.log.filter((entry) => entry.id !== undefined);
  }

  resyncs() {
    return this.log.filter((entry) => entry.resync !== undefined);
  }

  stop() {
    this.stopped = true;
    livePages.delete(this);
    this.ws.terminate();
  }
}

function stopPages(pages) {
  for (const page of [...pages]) page.stop();
}

// Publishes event n with key `${prefix}-${n}` until it is answered 200; counts what was not.
async function publishUntilAccepted(prefix, n, counts) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const reply = await post(stack, { type: 'product_added', shopId: 7, productId: n }, {
      headers: { 'Idempotency-Key': `${prefix}-${n}` },
      timeout: 2000,
    }).catch((err) => ({ status: `error ${err.code ?? err.message}` }));
    if (reply.status === 200) return reply.json.id;
    counts[reply.status] = (counts[reply.status] ?? 0) + 1;
    assert.ok(Date.now() < deadline, `event ${n} not accepted within 20 s (last: ${reply.status})`);
    await sleep(Number(reply.headers?.['retry-after'] ?? 0.2) * 1000);
  }
}

// Opens CLIENTS pages into `pages` (the caller's, so that it can stop them whatever happens).
async function openPages(pages) {
  for (let i = 0; i < CLIENTS; i += 1) {
    pages.push(new ResumingPage(stack.wsUrl, stack.origin));
    if (i % 200 === 199) await Promise.all(pages.slice(-200).map((p) => p.ready));
  }
  await Promise.all(pages.map((p) => p.ready));
}

// Publishes continuously; `restart()` runs after `before` events, publishing goes on meanwhile.
async function publishAcrossRestart(prefix, { before, after: afterCount, restart }) {
  const counts = {};
  const ids = [];
  let n = 0;
  const publisher = (async () => {
    while (n < before + afterCount) {
      n += 1;
      ids.push(await publishUntilAccepted(prefix, n, counts));
      await sleep(PUBLISH_INTERVAL_MS);
    }
  })();
  while (n < before) await sleep(10);
  await restart();
  await publisher;
  return { ids, counts, total: n };
}

async function waitForAll(pages, lastId, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const behind = pages.filter((p) => !p.events().some((e) => e.id === lastId));
    if (behind.length === 0) return;
    if (Date.now() > deadline) {
      const sample = behind[0];
      assert.fail(`${behind.length} of ${pages.length} pages lack the last event after ${timeoutMs} ms; one has ${sample.events().length} events, ${sample.connects} connects`);
    }
    await sleep(100);
  }
}

function report(label, pages, counts) {
  const refused = pages.reduce((sum, p) => sum + p.refused, 0);
  const resyncs = pages.reduce((sum, p) => sum + p.resyncs().length, 0);
  console.log(`# ${label}: ${pages.length} pages, refused upgrades during the restart: ${refused}, resyncs: ${resyncs}, POST answers other than 200: ${JSON.stringify(counts)}`);
}

test(`SIGTERM and start with ${CLIENTS} resuming pages: 0 resync, 0 lost, 0 duplicated`, { timeout: 180_000 }, async () => {
  const pages = [];
  try {
    await openPages(pages);
    const { ids, counts, total } = await publishAcrossRestart('term', {
      before: 50,
      after: 100,
      restart: async () => {
        const status = await stack.stopDaemon('SIGTERM');
        assert.equal(status.code, 0, 'shopcastd exits 0 on SIGTERM');
        await stack.startDaemon();
      },
    });
    await waitForAll(pages, ids.at(-1), 30_000);
    report('SIGTERM', pages, counts);
    assert.match(stack.daemonLog(), /continuing epoch \S+ with \d+ events/);
    const expected = Array.from({ length: total }, (_, i) => i + 1);
    for (const page of pages) {
      assert.deepEqual(page.resyncs(), [], 'no page is told to resync after a planned restart');
      assert.deepEqual(page.events().map((e) => e.n), expected, 'every event once, in publish order');
      assert.deepEqual(page.events().map((e) => e.id), ids, 'the ids the bot was answered');
    }
  } finally {
    stopPages(pages);
  }
});

test(`SIGKILL and start with ${CLIENTS} resuming pages: resync allowed, never a gap or a duplicate`, { timeout: 180_000 }, async () => {
  const pages = [];
  try {
    await openPages(pages);
    const { ids, counts } = await publishAcrossRestart('kill', {
      before: 50,
      after: 100,
      restart: async () => {
        await stack.stopDaemon('SIGKILL');
        await stack.startDaemon();
      },
    });
    await waitForAll(pages, ids.at(-1), 30_000);
    report('SIGKILL', pages, counts);
    for (const page of pages) {
      const seen = new Set();
      let previous = null; // the productId before, within a stretch the page was told is continuous
      for (const [at, entry] of page.log.entries()) {
        if (entry.resync !== undefined) {
          previous = null;
          continue;
        }
        assert.ok(!seen.has(entry.id), `event id ${entry.id} arrived twice`);
        seen.add(entry.id);
        // The first event of the test run starts the first stretch; after that, consecutive.
        if (previous !== null) {
          const around = JSON.stringify(page.log.slice(Math.max(0, at - 3), at + 3));
          assert.equal(entry.n, previous + 1, `a gap or a repeat after ${previous} without a resync: ${around}`);
        }
        previous = entry.n;
      }
      const numbers = page.events().map((e) => e.n);
      assert.equal(numbers[0], 1, 'the first stretch starts at the first event');
      assert.equal(numbers.at(-1), 150, 'the page ends with the last event');
    }
  } finally {
    stopPages(pages);
  }
});

test('a damaged state file means a new epoch: resync, never a wrong event', async () => {
  const probe = new ResumingPage(stack.wsUrl, stack.origin);
  try {
    await probe.ready;
    const before = await publishUntilAccepted('damage', 1, {});
    await waitForAll([probe], before, 5000);
    assert.equal((await stack.stopDaemon('SIGTERM')).code, 0);
    const stateFile = path.join(stack.stateDir, 'shopcastd.state');
    const bytes = fs.readFileSync(stateFile);
    bytes[Math.floor(bytes.length / 2)] ^= 0x01; // one flipped bit, anywhere, is enough
    fs.writeFileSync(stateFile, bytes);
    await stack.startDaemon();
    assert.match(stack.daemonLog(), /state file .* not used \(checksum mismatch\)/);
    // The page comes back within the restart spread; its old cursor gets resync.
    const deadline = Date.now() + 10_000;
    while (probe.resyncs().length === 0) {
      assert.ok(Date.now() < deadline, 'the page resumed and was told to resync');
      await sleep(50);
    }
    const after = await publishUntilAccepted('damage', 2, {});
    await waitForAll([probe], after, 10_000);
    const tail = probe.log.slice(probe.log.findIndex((e) => e.id === before) + 1);
    assert.deepEqual(tail, [{ resync: 'epoch_changed' }, { id: after, n: 2 }], 'resync, then only the new event');
  } finally {
    probe.stop();
  }
});
