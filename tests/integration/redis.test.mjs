// Several daemons on one Redis stream (DESIGN.md "Beyond one machine"): a real redis-server on a
// Unix socket, three shopcastd and two shopcast-fcgi behind the real nginx, all started by the
// stack with the defaults a newcomer gets. In every test a bot publishes continuously with an
// Idempotency-Key and retries what was not answered 200 (503, or no answer within the guide's
// 2 s) with the same key; every browser checks each event once and in order against the ids the
// bot was answered.
//   - a cursor from one daemon resumes exactly on another;
//   - SIGKILL of one daemon: its browsers reconnect through nginx to the others, 0 lost, 0 dup;
//   - Redis stopped: POSTs 503 (Retry-After: 1) at once, browsers stay connected, readiness says
//     why; Redis back with its data: the gap arrives, 0 lost, 0 dup;
//   - Redis flushed: every browser gets resync and never an event of the stream's old life;
//   - one Idempotency-Key through both fcgi instances: one stream entry, one id, seen once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import axios from 'axios';
import { startTestStack, stopTestStack, request, sleep, WebSocket, CONTROL_TYPES, PUBLISH_PATH } from './helpers.mjs';

const DAEMONS = 3;
const FCGI_INSTANCES = 2;
const PAGES_PER_DAEMON = 8;
const PUBLISH_INTERVAL_MS = 20; // about 50 events/s: a busy shop
const BOT_TIMEOUT_MS = 2000; // the guide's broadcastUpdate() gives up after 2 s
const ACCEPT_DEADLINE_MS = 30_000; // one event must be accepted within this, retries included
const DELIVERY_TIMEOUT_MS = 30_000;
const STREAM_KEY = 'shopcast:events'; // common/redis_stream.h
const TEST_TIMEOUT_MS = 180_000;

// ---------------------------------------------------------------------------------------------
// The stack's multi-daemon handles, in one place.

function daemonWsUrl(stack, index) {
  return `ws+unix://${stack.daemons[index].wsSocket}:/ws`;
}

async function killDaemon(stack, index) {
  return stack.stopDaemon(index, 'SIGKILL');
}

function redisOf(stack) {
  return stack.redis;
}

function fcgiSocket(stack, index) {
  return stack.fcgiInstances[index].socket;
}

async function withStack(run) {
  const stack = await startTestStack({ workers: DAEMONS, fcgiInstances: FCGI_INSTANCES });
  const pages = [];
  const bots = [];
  try {
    await run(stack, pages, bots);
  } finally {
    for (const bot of bots) bot.halt();
    for (const page of pages) page.stop();
    await stopTestStack(stack);
  }
}

// ---------------------------------------------------------------------------------------------
// The bot

// Publishes product_added events 1, 2, ... one at a time, each with the key `${prefix}-${n}`, as
// the guide's helper does (axios, the secret header, 2 s timeout), and retries an event until it
// is answered 200: after Retry-After on a 503, after 200 ms on a timeout or a refused connection.
class Bot {
  constructor(stack, { prefix, shopId = 7 }) {
    this.stack = stack;
    this.prefix = prefix;
    this.shopId = shopId;
    this.ids = []; // ids[n - 1]: the id of event n, from its 200 reply
    this.accepted = []; // { n, id, sentAt, answeredAt } of the attempt answered 200
    this.attempts = []; // every attempt not answered 200: { n, status, ms, retryAfter, error, at }
    this.halted = false;
    this.stopping = false;
  }

  start() {
    this.running = (async () => {
      for (let n = 1; !this.stopping && !this.halted; n += 1) {
        await this.publish(n);
        await sleep(PUBLISH_INTERVAL_MS);
      }
    })();
    return this;
  }

  async publish(n) {
    const deadline = Date.now() + ACCEPT_DEADLINE_MS;
    for (;;) {
      if (this.halted) return;
      const sentAt = Date.now();
      let status;
      let retryAfter;
      let error;
      let id;
      try {
        const res = await axios.post(
          `${this.stack.httpUrl}${PUBLISH_PATH}`,
          { type: 'product_added', shopId: this.shopId, productId: n },
          {
            headers: { 'x-internal-secret': this.stack.secret, 'Idempotency-Key': `${this.prefix}-${n}` },
            timeout: BOT_TIMEOUT_MS,
            validateStatus: () => true,
          },
        );
        status = res.status;
        retryAfter = res.headers['retry-after'];
        if (status === 200) id = res.data.id;
        else error = res.data?.error;
      } catch (err) {
        status = 'no reply';
        error = err.code ?? err.message;
      }
      const answeredAt = Date.now();
      if (status === 200) {
        assert.equal(typeof id, 'string', `event ${n}: a 200 reply has an id`);
        this.ids[n - 1] = id;
        this.accepted.push({ n, id, sentAt, answeredAt });
        return;
      }
      this.attempts.push({ n, status, ms: answeredAt - sentAt, retryAfter, error, at: sentAt });
      if (Date.now() > deadline) {
        this.halted = true;
        throw new Error(`event ${n} not accepted within ${ACCEPT_DEADLINE_MS / 1000} s; last attempts: ${JSON.stringify(this.attempts.slice(-3))}`);
      }
      await sleep(status === 503 && retryAfter !== undefined ? Number(retryAfter) * 1000 : 200);
    }
  }

  // Resolves once `count` events are accepted.
  async waitForAccepted(count, timeout = ACCEPT_DEADLINE_MS) {
    const deadline = Date.now() + timeout;
    while (this.ids.length < count) {
      assert.ok(Date.now() < deadline, `the bot has ${this.ids.length} of ${count} events accepted after ${timeout} ms`);
      await Promise.race([this.running, sleep(20)]);
    }
  }

  // Finishes the event in progress, then stops; resolves with every id, in publish order.
  async stop() {
    this.stopping = true;
    await this.running;
    return this.ids;
  }

  halt() {
    this.halted = true;
  }
}

// ---------------------------------------------------------------------------------------------
// Browsers

// A page that behaves like web/shopcast-client.js: resumes from hello on its first connection (or
// from `since`, a cursor it kept, like a reloaded page) and from the last id it saw after any
// drop. It first connects to `firstUrl` (one daemon's own socket) and reconnects through
// `reconnectUrl` (nginx). `log` keeps every event and resync in arrival order.
class Page {
  constructor({ firstUrl, reconnectUrl, origin, pages, since = null }) {
    this.firstUrl = firstUrl;
    this.reconnectUrl = reconnectUrl ?? firstUrl;
    this.origin = origin;
    this.cursor = since;
    this.helloIds = [];
    this.log = [];
    this.connects = 0;
    this.closes = 0;
    this.stopped = false;
    this.ready = new Promise((resolve) => {
      this.markReady = resolve;
    });
    pages?.push(this);
    this.open(this.firstUrl);
  }

  open(url) {
    if (this.stopped) return;
    const ws = new WebSocket(url, { origin: this.origin, perMessageDeflate: false, handshakeTimeout: 5000 });
    this.ws = ws;
    ws.on('open', () => {
      if (this.cursor !== null) ws.send(JSON.stringify({ action: 'resume', since: this.cursor }));
    });
    ws.on('message', (data) => {
      const message = JSON.parse(data.toString('utf8'));
      if (message.type === 'hello') {
        this.connects += 1;
        this.helloIds.push(message.id);
        if (this.cursor === null) {
          this.cursor = message.id;
          ws.send(JSON.stringify({ action: 'resume', since: message.id }));
        }
        this.markReady();
      } else if (message.type === 'resync') {
        this.log.push({ resync: message.reason, at: Date.now() });
      } else if (!CONTROL_TYPES.has(message.type)) {
        this.log.push({ id: message.id, n: message.productId, shopId: message.shopId, at: Date.now() });
        this.cursor = message.id;
      }
    });
    ws.on('unexpected-response', (req, res) => {
      res.resume();
      req.destroy();
      this.retry(ws);
    });
    ws.on('error', () => this.retry(ws));
    ws.on('close', () => {
      this.closes += 1;
      this.retry(ws);
    });
  }

  // One reconnect per socket, whichever of its events comes first.
  retry(ws) {
    if (this.stopped || ws.retried) return;
    ws.retried = true;
    setTimeout(() => this.open(this.reconnectUrl), 200 + Math.random() * 300);
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  events() {
    return this.log.filter((entry) => entry.id !== undefined);
  }

  eventIds() {
    return this.events().map((entry) => entry.id);
  }

  resyncs() {
    return this.log.filter((entry) => entry.resync !== undefined);
  }

  stop() {
    this.stopped = true;
    this.ws.terminate();
  }
}

// PAGES_PER_DAEMON pages on each daemon's own socket, reconnecting through nginx.
async function openPagesOnEveryDaemon(stack, pages) {
  const opened = [];
  for (let d = 0; d < DAEMONS; d += 1) {
    for (let i = 0; i < PAGES_PER_DAEMON; i += 1) {
      const page = new Page({ firstUrl: daemonWsUrl(stack, d), reconnectUrl: stack.wsUrl, origin: stack.origin, pages });
      page.daemon = d;
      opened.push(page);
    }
  }
  await bounded(Promise.all(opened.map((p) => p.ready)), 10_000, 'every page has its hello');
  return opened;
}

async function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function eventually(check, what, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeout} ms`);
    await sleep(50);
  }
}

async function waitForAll(pages, lastId, timeout = DELIVERY_TIMEOUT_MS) {
  await eventually(
    () => (pages.every((p) => p.eventIds().includes(lastId)) ? true : undefined),
    `every page has ${lastId} (${pages.filter((p) => !p.eventIds().includes(lastId)).length} of ${pages.length} lack it)`,
    timeout,
  ).catch((err) => {
    const behind = pages.find((p) => !p.eventIds().includes(lastId));
    if (behind) err.message += `; one has ${behind.events().length} events, ${behind.connects} connects, last ${JSON.stringify(behind.log.slice(-2))}`;
    throw err;
  });
}

// Every event once, in publish order, no resync: the page saw exactly the bot's ids.
function assertExact(page, ids, label) {
  assert.deepEqual(page.resyncs(), [], `${label}: no resync`);
  const got = page.eventIds();
  const firstMismatch = got.findIndex((id, i) => id !== ids[i]);
  assert.deepEqual(
    got,
    ids,
    `${label}: every event once and in order (${got.length} received, ${ids.length} published, first difference at ${firstMismatch})`,
  );
  assert.deepEqual(page.events().map((e) => e.n), ids.map((_, i) => i + 1), `${label}: productIds 1..${ids.length}`);
}

// ---------------------------------------------------------------------------------------------
// FastCGI, straight to one shopcast-fcgi instance (nginx would pick one itself)

function fcgiRecord(type, content, requestId = 1) {
  const padding = (8 - (content.length % 8)) % 8;
  const header = Buffer.alloc(8);
  header.writeUInt8(1, 0); // FCGI_VERSION_1
  header.writeUInt8(type, 1);
  header.writeUInt16BE(requestId, 2);
  header.writeUInt16BE(content.length, 4);
  header.writeUInt8(padding, 6);
  return Buffer.concat([header, content, Buffer.alloc(padding)]);
}

function fcgiLength(n) {
  if (n < 128) return Buffer.from([n]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((n | 0x80000000) >>> 0);
  return b;
}

function fcgiParams(params) {
  return Buffer.concat(
    Object.entries(params).flatMap(([name, value]) => {
      const k = Buffer.from(name);
      const v = Buffer.from(String(value));
      return [fcgiLength(k.length), fcgiLength(v.length), k, v];
    }),
  );
}

// One POST to the publish endpoint of the instance on `socketPath`, with the parameters nginx's
// site passes (nginx/snippets/shopcast-publish.conf). Resolves like helpers' request().
function fcgiPublish(socketPath, { secret, body, idempotencyKey, timeout = 5000 }) {
  const bytes = Buffer.from(JSON.stringify(body));
  const params = {
    REQUEST_METHOD: 'POST',
    DOCUMENT_URI: PUBLISH_PATH,
    REQUEST_URI: PUBLISH_PATH,
    SCRIPT_NAME: PUBLISH_PATH,
    CONTENT_TYPE: 'application/json',
    CONTENT_LENGTH: bytes.length,
    REMOTE_ADDR: '127.0.0.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    HTTP_X_INTERNAL_SECRET: secret,
    HTTP_IDEMPOTENCY_KEY: idempotencyKey,
  };
  const begin = Buffer.from([0, 1, 0, 0, 0, 0, 0, 0]); // FCGI_RESPONDER, close the connection after
  const request = Buffer.concat([
    fcgiRecord(1, begin),
    fcgiRecord(4, fcgiParams(params)),
    fcgiRecord(4, Buffer.alloc(0)),
    fcgiRecord(5, bytes),
    fcgiRecord(5, Buffer.alloc(0)),
  ]);
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    let buffer = Buffer.alloc(0);
    const stdout = [];
    const timer = setTimeout(() => socket.destroy(new Error(`no FastCGI reply from ${socketPath} within ${timeout} ms`)), timeout);
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.length >= 8) {
        const type = buffer.readUInt8(1);
        const length = buffer.readUInt16BE(4);
        const padding = buffer.readUInt8(6);
        if (buffer.length < 8 + length + padding) break;
        const content = buffer.subarray(8, 8 + length);
        buffer = buffer.subarray(8 + length + padding);
        if (type === 6) stdout.push(content);
        if (type === 3) {
          clearTimeout(timer);
          socket.destroy();
          resolve(parseCgiResponse(Buffer.concat(stdout).toString('utf8')));
          return;
        }
      }
    });
  });
}

function parseCgiResponse(text) {
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const body = end < 0 ? '' : text.slice(end + 4);
  const headers = {};
  for (const line of head.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let json;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: Number(/^(\d{3})/.exec(headers.status ?? '200')[1]), headers, text: body, json };
}

// ---------------------------------------------------------------------------------------------

test('a cursor from one daemon resumes exactly on another', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withStack(async (stack, pages, bots) => {
    // Watchers on every daemon see the whole run; their ids are what the others must match.
    const watchers = await openPagesOnEveryDaemon(stack, pages);
    // A page whose hello comes from daemon 0, before any event: it resumes on daemon 2 later.
    const early = new Page({ firstUrl: daemonWsUrl(stack, 0), origin: stack.origin });
    await bounded(early.ready, 5000, 'hello on daemon 0');
    const earlyCursor = early.helloIds[0];
    early.stop();

    const bot = new Bot(stack, { prefix: 'cursor' }).start();
    bots.push(bot);
    // A page on daemon 0 that sees some events, then leaves with its last cursor.
    const leaver = new Page({ firstUrl: daemonWsUrl(stack, 0), origin: stack.origin, pages });
    await bot.waitForAccepted(20);
    await eventually(() => (leaver.events().length >= 10 ? true : undefined), 'the leaver has 10 events');
    leaver.stop();
    const leftAt = leaver.cursor;
    assert.ok(leaver.eventIds().includes(leftAt));
    await bot.waitForAccepted(leaver.events().length + 40); // events it misses while away

    // The same cursors, resumed on the other daemons while the bot keeps publishing.
    const resumed = [];
    for (const [label, cursor, daemon] of [
      ['hello of daemon 0 on daemon 2', earlyCursor, 2],
      ['last event seen on daemon 0, on daemon 1', leftAt, 1],
      ['last event seen on daemon 0, on daemon 2', leftAt, 2],
    ]) {
      const page = new Page({ firstUrl: daemonWsUrl(stack, daemon), origin: stack.origin, pages, since: cursor });
      await bounded(page.ready, 5000, `hello on daemon ${daemon}`);
      resumed.push({ label, cursor, page });
    }
    await bot.waitForAccepted(bot.ids.length + 40);
    const ids = await bot.stop();
    await waitForAll([...watchers, ...resumed.map((r) => r.page)], ids.at(-1));

    for (const page of watchers) assertExact(page, ids, `watcher on daemon ${page.daemon}`);
    for (const { label, cursor, page } of resumed) {
      const from = cursor === earlyCursor ? 0 : ids.indexOf(cursor) + 1;
      assert.ok(from > 0 || cursor === earlyCursor, `${label}: the cursor is one of the bot's ids`);
      assert.deepEqual(page.resyncs(), [], `${label}: no resync`);
      assert.deepEqual(page.eventIds(), ids.slice(from), `${label}: exactly the events after the cursor`);
    }
  });
});

test('SIGKILL of one daemon: its pages reconnect through nginx to the others, 0 lost, 0 duplicated', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withStack(async (stack, pages, bots) => {
    const all = await openPagesOnEveryDaemon(stack, pages);
    const bot = new Bot(stack, { prefix: 'sigkill' }).start();
    bots.push(bot);
    await bot.waitForAccepted(50);
    const victims = all.filter((p) => p.daemon === 1);
    await killDaemon(stack, 1);
    await eventually(() => (victims.every((p) => p.connects >= 2) ? true : undefined), 'every page of the killed daemon is connected again', 15_000);
    await bot.waitForAccepted(bot.ids.length + 100);
    const ids = await bot.stop();
    await waitForAll(all, ids.at(-1));

    for (const page of all) assertExact(page, ids, `page first on daemon ${page.daemon}`);
    for (const page of all.filter((p) => p.daemon !== 1)) assert.equal(page.connects, 1, 'pages of the other daemons never dropped');
    console.log(`# SIGKILL: ${victims.length} pages moved; POST answers other than 200: ${JSON.stringify(countStatuses(bot.attempts))}`);
  });
});

function countStatuses(attempts) {
  const counts = {};
  for (const a of attempts) counts[a.status] = (counts[a.status] ?? 0) + 1;
  return counts;
}

async function readiness(stack) {
  return request(`${stack.httpUrl}/health/ready`);
}

test('Redis stopped: 503 at once, pages stay, not ready; Redis back: the gap arrives, 0 lost, 0 duplicated', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withStack(async (stack, pages, bots) => {
    const all = await openPagesOnEveryDaemon(stack, pages);
    assert.equal((await readiness(stack)).status, 200, 'ready before');
    const bot = new Bot(stack, { prefix: 'outage' }).start();
    bots.push(bot);
    await bot.waitForAccepted(40);

    const stoppedAt = Date.now();
    await redisOf(stack).stop();

    // POSTs during the outage: each answered 503 with Retry-After: 1 before the guide's bot
    // would give up (2 s), never a hang.
    for (let i = 1; i <= 5; i += 1) {
      const started = Date.now();
      const res = await request(`${stack.httpUrl}${PUBLISH_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-internal-secret': stack.secret, 'Idempotency-Key': `outage-probe-${i}` },
        body: JSON.stringify({ type: 'shop_updated', shopId: 99 }),
        timeout: 5000,
      });
      const ms = Date.now() - started;
      assert.equal(res.status, 503, `probe ${i}: ${res.text}`);
      assert.equal(res.headers['retry-after'], '1', `probe ${i}: Retry-After`);
      assert.equal(res.json?.error, 'unavailable', `probe ${i}: ${res.text}`);
      assert.ok(ms < BOT_TIMEOUT_MS, `probe ${i} answered in ${ms} ms`);
    }
    const notReady = await eventually(async () => {
      const res = await readiness(stack);
      return res.status === 503 && /redis/i.test(res.text) ? res : undefined;
    }, 'readiness says Redis is unavailable');
    assert.equal(notReady.json?.status, 'not_ready', notReady.text);
    // Counted once the probes are answered: an event Redis took just before it stopped may be
    // answered 200 while it stops.
    const acceptedBefore = bot.ids.length;
    // The outage outlasts the daemons' first reconnect attempts.
    await sleep(3000);
    assert.ok(all.every((p) => p.isOpen && p.connects === 1), 'every page still connected during the outage');
    assert.equal(bot.ids.length, acceptedBefore, 'nothing accepted while Redis is down');

    await redisOf(stack).restart();
    await bot.waitForAccepted(acceptedBefore + 60);
    const ids = await bot.stop();
    await waitForAll(all, ids.at(-1));
    await eventually(async () => ((await readiness(stack)).status === 200 ? true : undefined), 'ready again');

    for (const page of all) {
      assertExact(page, ids, `page on daemon ${page.daemon}`);
      assert.equal(page.connects, 1, 'the page never dropped');
    }
    const during = bot.attempts.filter((a) => a.at >= stoppedAt);
    assert.ok(during.length > 0, 'the bot was refused during the outage');
    for (const a of during) {
      assert.equal(a.status, 503, `the bot's attempts during the outage are 503: ${JSON.stringify(a)}`);
      assert.ok(a.ms < BOT_TIMEOUT_MS, `answered in ${a.ms} ms`);
    }
    console.log(`# Redis outage: ${during.length} bot attempts refused (503), slowest ${Math.max(...during.map((a) => a.ms))} ms`);
  });
});

test('Redis flushed: every page gets resync, never an event of the old life', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withStack(async (stack, pages, bots) => {
    const all = await openPagesOnEveryDaemon(stack, pages);
    const bot = new Bot(stack, { prefix: 'flush' }).start();
    bots.push(bot);
    // A page that is away during the flush and comes back with a cursor of the old life.
    const away = new Page({ firstUrl: daemonWsUrl(stack, 1), origin: stack.origin, pages });
    await bot.waitForAccepted(30);
    await waitForAll([away], bot.ids[19]);
    away.stop();
    const awayCursor = away.cursor;

    const flushStart = Date.now();
    await redisOf(stack).flushAll();
    const flushEnd = Date.now();
    await eventually(() => (all.every((p) => p.resyncs().length > 0) ? true : undefined), 'every page got resync');
    await bot.waitForAccepted(bot.ids.length + 40);
    const back = new Page({ firstUrl: daemonWsUrl(stack, 2), origin: stack.origin, pages, since: awayCursor });
    await bot.waitForAccepted(bot.ids.length + 20);
    const ids = await bot.stop();

    // Old life: answered before the flush began; new life: sent after it ended. The one event in
    // flight across the flush may be either.
    const oldIds = new Set(bot.accepted.filter((a) => a.answeredAt < flushStart).map((a) => a.id));
    const newIds = new Set(bot.accepted.filter((a) => a.sentAt > flushEnd).map((a) => a.id));
    assert.ok(oldIds.size >= 30 && newIds.size >= 60, `old ${oldIds.size}, new ${newIds.size}`);
    await waitForAll([...all, back], ids.at(-1));

    for (const page of [...all, back]) {
      const label = page === back ? 'the page back with an old cursor' : `page on daemon ${page.daemon}`;
      const firstResync = page.log.findIndex((e) => e.resync !== undefined);
      assert.ok(firstResync >= 0, `${label}: resync`);
      const lastResync = page.log.findLastIndex((e) => e.resync !== undefined);
      const before = page.log.slice(0, firstResync);
      const after = page.log.slice(lastResync + 1);
      assert.ok(page.log.slice(firstResync, lastResync + 1).every((e) => e.resync !== undefined), `${label}: nothing between its resyncs: ${JSON.stringify(page.log.slice(firstResync, lastResync + 1))}`);
      if (page === back) {
        assert.equal(before.length, 0, `${label}: no event before its resync`);
        assert.equal(page.log[firstResync].resync, 'epoch_changed', `${label}: the reason`);
      }
      for (const e of before) assert.ok(!newIds.has(e.id), `${label}: ${e.id} (new life) before the resync`);
      for (const e of after) assert.ok(!oldIds.has(e.id), `${label}: ${e.id} (old life) after the resync`);
      const afterIds = after.map((e) => e.id);
      assert.equal(new Set(afterIds).size, afterIds.length, `${label}: no event twice after the resync`);
      // After the resync: live, in publish order, with no gap from the first event it got.
      const start = ids.indexOf(afterIds[0]);
      assert.ok(start >= 0, `${label}: the first event after the resync is one the bot was answered`);
      assert.deepEqual(afterIds, ids.slice(start), `${label}: every event after the resync, in order`);
      // Every event published after the page was told to resync has arrived.
      const resyncAt = page.log[lastResync].at;
      for (const a of bot.accepted.filter((x) => x.sentAt > resyncAt)) assert.ok(afterIds.includes(a.id), `${label}: ${a.id} sent after the resync arrived`);
      // Before the resync: the old life, in order, each once.
      const beforeIds = before.map((e) => e.id);
      assert.deepEqual(beforeIds, ids.slice(0, beforeIds.length), `${label}: the old life in order before the resync`);
    }
  });
});

test('one Idempotency-Key through both fcgi instances: one stream entry, one id, every page sees it once', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withStack(async (stack, pages, bots) => {
    const all = await openPagesOnEveryDaemon(stack, pages);
    const bot = new Bot(stack, { prefix: 'idem' }).start();
    bots.push(bot);
    await bot.waitForAccepted(20);

    const marker = `twice-${Date.now()}`;
    const body = { type: 'shop_updated', shopId: 7, marker };
    const send = (instance) => fcgiPublish(fcgiSocket(stack, instance), { secret: stack.secret, body, idempotencyKey: marker });
    // At the same time through both, then again through each.
    const racing = await Promise.all([send(0), send(1)]);
    const again = [await send(1), await send(0)];
    const replies = [...racing, ...again];
    for (const [i, res] of replies.entries()) {
      assert.equal(res.status, 200, `reply ${i}: ${res.text}`);
      assert.equal(res.json.success, true);
    }
    const id = replies[0].json.id;
    for (const res of replies) assert.equal(res.json.id, id, 'every reply has the first id');

    await bot.waitForAccepted(bot.ids.length + 20);
    const ids = await bot.stop();
    await waitForAll(all, ids.at(-1));

    const entries = (await redisOf(stack).cli('XRANGE', STREAM_KEY, '-', '+')).split('\n').filter((line) => line.includes(marker));
    assert.equal(entries.length, 1, `one stream entry carries the marker: ${entries.join(' | ')}`);

    for (const page of all) {
      const label = `page on daemon ${page.daemon}`;
      const got = page.eventIds();
      assert.equal(got.filter((x) => x === id).length, 1, `${label}: the keyed event once`);
      assert.deepEqual(page.resyncs(), [], `${label}: no resync`);
      assert.deepEqual(got.filter((x) => x !== id), ids, `${label}: the bot's events once and in order`);
    }
  });
});
