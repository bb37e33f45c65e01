// Limits that protect the daemon (DESIGN.md "Delivery rules" and "Precise rules"): bounded
// per-connection queues (a reader that stalls is closed, memory stays flat, others get every
// event), ping/pong reaping, the Origin allow-list, the connection limit, the 4 KiB inbound
// limit, malformed client frames, and nothing listening beyond loopback.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  startTestStack,
  stopTestStack,
  connectClient,
  closeAll,
  publishOk,
  rawUpgrade,
  readRssBytes,
  childPids,
  nextId,
  sleep,
  WebSocket,
  underAddressSanitizer,
} from './helpers.mjs';

const execFileP = promisify(execFile);
const clients = [];

async function open(stack, options) {
  const c = await connectClient(stack.wsUrl, options);
  clients.push(c);
  return c;
}

after(async () => {
  await closeAll(clients);
});

describe('stack with SHOPCAST_MAX_QUEUE=65536, SHOPCAST_HISTORY=64', () => {
  let stack;
  before(async () => {
    stack = await startTestStack({
      daemonEnv: {
        // A 64 KiB queue fills with a few events, so the limit shows within a short flood (the
        // 1 MiB default is tested as shipped in defaults.test.mjs).
        SHOPCAST_MAX_QUEUE: '65536',
        // The default history (10,000 events, 64 MiB) would keep the whole flood: the RSS
        // bound below would then measure the history, not the queues.
        SHOPCAST_HISTORY: '64',
      },
    });
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  test('readers that never read are closed with 1013; a normal reader gets every event; RSS stays below half the flood', async (t) => {
    // 16 MiB of ~8 KiB events, published in batches of 8 while two readers never read. Loopback
    // TCP and nginx hold a few MiB per reader; an unbounded queue would hold the rest of the
    // flood for each of them, well above RSS_BOUND. The bounded one holds 64 KiB.
    const EVENTS = 2048;
    const PAD = 8 * 1024;
    const FLOOD_BYTES = EVENTS * PAD;
    const RSS_BOUND = 7 * 1024 * 1024;
    assert.ok(RSS_BOUND < FLOOD_BYTES / 2);
    const fast = await open(stack);
    const slow = await open(stack);
    slow.ws._socket.pause(); // stops reading: the kernel buffers fill, then the daemon's queue
    // A raw TLS client through https that completes the upgrade and then never reads.
    const raw = await rawUpgrade(stack.wssUrl, { origin: stack.httpsOrigin });
    assert.equal(raw.status, 101);
    let rawClosed = false;
    raw.socket.on('close', () => {
      rawClosed = true;
    });
    raw.socket.on('error', () => {});
    await sleep(1100); // past the live-delivery hold of the raw client (it sends no resume)

    const pid = stack.daemonPid;
    const baseline = readRssBytes(pid);
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, readRssBytes(pid));
    }, 20);
    const batches = [];
    try {
      const started = Date.now();
      for (let n = 0; n < EVENTS; n += 8) {
        // Paced within nginx's publish limit (200 r/s after a burst of 1,000), which a 429
        // would otherwise end the flood with.
        const allowed = 900 + 180 * ((Date.now() - started) / 1000);
        if (n + 8 > allowed) await sleep(((n + 8 - allowed) / 180) * 1000);
        const batch = [];
        for (let k = n; k < n + 8; k++) {
          batch.push(publishOk(stack, { type: 'product_updated', shopId: 1, productId: k + 1, k, pad: 'x'.repeat(PAD) }));
        }
        batches.push(await Promise.all(batch));
      }
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, readRssBytes(pid));
    assert.equal(batches[0][0].recipients, 3, 'all three readers counted at first');
    assert.equal(batches.at(-1).at(-1).recipients, 1, 'both stalled readers dropped by the end of the flood');

    // Every event, once; batch after batch (within a batch the publishes race, so their order
    // is the daemon's).
    const batchOf = new Map(batches.flatMap((replies, b) => replies.map((r) => [r.id, b])));
    const got = await fast.waitForCount((m) => typeof m.k === 'number', EVENTS, { timeout: 60000 });
    assert.equal(new Set(got.map((m) => m.id)).size, EVENTS, 'no duplicate');
    assert.ok(got.every((m) => batchOf.has(m.id) && m.pad.length === PAD), 'only the published events, intact');
    const order = got.map((m) => batchOf.get(m.id));
    assert.ok(order.every((b, i) => i === 0 || b >= order[i - 1]), 'batches arrive in publish order');

    const asan = underAddressSanitizer(stack);
    const grew = ((peak - baseline) / 1048576).toFixed(1);
    if (asan) {
      // ASan's quarantine keeps freed memory: RSS measures the flood's churn, not the queues.
      t.diagnostic(`RSS +${grew} MiB (not checked under AddressSanitizer)`);
    } else {
      assert.ok(peak - baseline < RSS_BOUND, `daemon RSS grew by ${grew} MiB during a ${FLOOD_BYTES / 1048576} MiB flood`);
    }

    // The stalled ws client, reading again, gets the daemon's 1013 end to end.
    slow.ws._socket.resume();
    const closed = await slow.waitClose(15000);
    assert.equal(closed.code, 1013, `close ${JSON.stringify(closed)}`);
    const slowGot = slow.events().filter((m) => typeof m.k === 'number');
    assert.ok(slowGot.length < EVENTS, `the stalled reader got ${slowGot.length} events before being closed`);
    t.diagnostic(`RSS +${grew} MiB; stalled ws client got ${slowGot.length}/${EVENTS} events, close ${closed.code}`);

    // The raw client: reading what arrived shows the connection ended.
    raw.socket.on('data', () => {});
    raw.socket.resume();
    const deadline = Date.now() + 10000;
    while (!rawClosed && Date.now() < deadline) await sleep(50);
    assert.ok(rawClosed, 'the stalled TLS reader was disconnected');
    raw.socket.destroy();
    await closeAll([fast, slow]);
  });

  test("a reader stalled on the daemon's own socket is closed once about SHOPCAST_MAX_QUEUE is pending", async (t) => {
    // Straight to ws.sock: no nginx and no TCP buffers in between, only the Unix socket's
    // ~200 KiB, so the bound the daemon keeps is visible. With the 1 MiB default it would take
    // more than 128 events of 8 KiB.
    const fast = await open(stack);
    const raw = await rawUpgrade('ws://localhost/ws', { socketPath: path.join(stack.runDir, 'ws.sock') });
    assert.equal(raw.status, 101);
    raw.socket.on('error', () => {});
    await sleep(1100); // past the live-delivery hold (this client sends no resume)
    const replies = [];
    for (let k = 0; k < 128; k++) {
      const reply = await publishOk(stack, { type: 'product_updated', shopId: 1, productId: k + 1, direct: k, pad: 'd'.repeat(8192) });
      replies.push(reply);
      if (k === 0) assert.equal(reply.recipients, 2);
      if (reply.recipients === 1) break;
    }
    t.diagnostic(`dropped after ${replies.length} events of 8 KiB`);
    assert.equal(replies.at(-1).recipients, 1, `still a recipient after ${replies.length} events of 8 KiB`);
    // Not before the queue itself was full: more than 64 KiB were sent to it.
    assert.ok(replies.length * 8192 > 65536, `dropped after only ${replies.length} events`);
    const got = await fast.waitForCount((m) => typeof m.direct === 'number', replies.length, { timeout: 5000 });
    assert.deepEqual(got.map((m) => m.id), replies.map((r) => r.id));
    raw.socket.destroy();
    await closeAll([fast]);
  });

  test('allowed origins (own http and https, 127.0.0.1 and localhost) and no Origin are accepted', async () => {
    const origins = [
      stack.origin,
      stack.httpsOrigin,
      `http://localhost:${stack.httpPort}`,
      `https://localhost:${stack.httpsPort}`,
      undefined,
    ];
    for (const origin of origins) {
      const c = await open(stack, { origin });
      assert.equal(c.hello.type, 'hello', `origin ${origin}`);
      await closeAll([c]);
    }
    const secure = await connectClient(stack.wssUrl, { origin: stack.httpsOrigin });
    clients.push(secure);
    await closeAll([secure]);
  });

  for (const origin of [
    'http://evil.example',
    'null',
    'https://127.0.0.1',
    'http://127.0.0.1',
    'OTHER_PORT',
    'http://localhost.evil.example',
    'https://evil.example:443',
  ]) {
    test(`Origin ${origin} is refused with 403 on the upgrade`, async () => {
      const value = origin === 'OTHER_PORT' ? `http://127.0.0.1:${stack.httpPort + 1}` : origin;
      await assert.rejects(connectClient(stack.wsUrl, { origin: value }), (err) => {
        assert.equal(err.statusCode, 403, `${value}: ${err.message}`);
        return true;
      });
    });
  }

  test('an inbound frame of 4,096 bytes is handled; 4,097 bytes -> close 1009', async () => {
    const c = await open(stack);
    const base = '{"action":"subscribe","shops":[1]}';
    c.send(base + ' '.repeat(4096 - base.length));
    const answer = await c.waitForType('subscribed');
    assert.deepEqual(answer.shops.map(String), ['1']);
    assert.equal(c.closed, null);

    c.send(base + ' '.repeat(4097 - base.length));
    const closed = await c.waitClose(2000);
    assert.equal(closed.code, 1009);
  });

  test('a 64 KiB inbound frame -> close 1009', async () => {
    const c = await open(stack);
    c.send(JSON.stringify({ action: 'subscribe', shops: [1], pad: 'y'.repeat(65536) }));
    const closed = await c.waitClose(2000);
    assert.equal(closed.code, 1009);
  });

  for (const [label, frame] of [
    ['a binary frame', { data: Buffer.from('{"action":"subscribe","shops":[1]}'), binary: true }],
    ['an unknown action', { data: '{"action":"dance"}' }],
    ['a message without action', { data: '{"shops":[1]}' }],
    ['invalid JSON', { data: '{"action":' }],
    ['a JSON array', { data: '["subscribe"]' }],
    ['resume without since', { data: '{"action":"resume"}' }],
  ]) {
    test(`${label} -> error message, the connection stays open and receives events`, async () => {
      const c = await open(stack);
      c.ws.send(frame.data, { binary: !!frame.binary });
      const msg = await c.waitForType('error');
      assert.equal(typeof msg.message, 'string');
      assert.ok(msg.message.length > 0);
      const event = { type: 'product_added', shopId: 2, productId: nextId() };
      const reply = await publishOk(stack, event);
      assert.deepEqual(await c.waitForEvent(reply.id), { ...event, id: reply.id });
      assert.equal(c.closed, null);
      assert.deepEqual(c.messages.map((m) => m.type), ['hello', 'error', 'product_added']);
      await closeAll([c]);
    });
  }

  test('every TCP listener of nginx, shopcastd and shopcast-fcgi is on 127.0.0.1', async () => {
    const pids = [stack.nginxPid, ...childPids(stack.nginxPid), stack.daemonPid, stack.fcgiPid];
    assert.ok(pids.every((p) => Number.isInteger(p) && p > 0), `pids ${pids}`);
    assert.ok(pids.length >= 4, 'nginx has at least one worker');

    const inodes = new Set();
    for (const pid of pids) {
      for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        try {
          const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
          if (m) inodes.add(m[1]);
        } catch {
          // closed meanwhile
        }
      }
    }
    const listeners = [];
    for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
      for (const line of fs.readFileSync(file, 'utf8').trim().split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f[3] === '0A' && inodes.has(f[9])) listeners.push({ file, local: f[1] });
      }
    }
    const ports = listeners.map((l) => parseInt(l.local.split(':')[1], 16)).sort((a, b) => a - b);
    assert.deepEqual(ports, [stack.httpPort, stack.httpsPort].sort((a, b) => a - b), 'the listeners are exactly nginx http and https');
    for (const l of listeners) {
      assert.equal(l.file, '/proc/net/tcp', `IPv6 listener ${l.local}`);
      assert.equal(l.local.split(':')[0], '0100007F', `listener ${l.local} is not 127.0.0.1`);
    }

    // The same through ss: every listening socket of these processes is bound to 127.0.0.1.
    const { stdout } = await execFileP('ss', ['-ltnpH']);
    const ours = stdout.split('\n').filter((line) => pids.some((p) => line.includes(`pid=${p},`)));
    assert.equal(ours.length, 2, `ss lines: ${ours.join('\n')}`);
    for (const line of ours) {
      const local = line.trim().split(/\s+/)[3];
      assert.match(local, /^127\.0\.0\.1:\d+$/, line);
    }
  });

  test('the daemon creates ws.sock with mode 0660 and events.sock with 0600', () => {
    for (const [name, mode] of [['ws.sock', '660'], ['events.sock', '600']]) {
      const st = fs.statSync(path.join(stack.runDir, name));
      assert.ok(st.isSocket(), name);
      assert.equal((st.mode & 0o777).toString(8), mode, name);
    }
  });
});

describe('stack with SHOPCAST_PING_INTERVAL=2, SHOPCAST_HANGUP_TIMEOUT=4', () => {
  let stack;
  before(async () => {
    // Override: a silent client's hangup shows within seconds instead of 40 s; the default
    // keepalive through nginx is tested as shipped in defaults.test.mjs (70 s idle).
    stack = await startTestStack({ daemonEnv: { SHOPCAST_PING_INTERVAL: '2', SHOPCAST_HANGUP_TIMEOUT: '4' } });
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  test('a client that never answers pings is gone within the hangup time; one that does stays', async (t) => {
    const started = Date.now();
    const silent = await open(stack, { wsOptions: { autoPong: false } });
    const polite = await open(stack);
    const closed = await silent.waitClose(9000);
    const elapsed = closed.at - started;
    assert.ok(silent.pings >= 1, 'the daemon pinged');
    t.diagnostic(`silent client closed after ${elapsed} ms with ${closed.code}, ${silent.pings} pings seen`);
    assert.ok(elapsed >= 2000 && elapsed <= 6500, `silent client closed after ${elapsed} ms (hangup 4 s)`);

    // The polite client answered every ping and outlives the hangup time.
    await sleep(Math.max(0, 6500 - (Date.now() - started)));
    assert.equal(polite.closed, null);
    assert.ok(polite.pings >= 2, `polite client saw ${polite.pings} pings`);
    const event = { type: 'shop_updated', shopId: 3 };
    const reply = await publishOk(stack, event);
    assert.equal(reply.recipients, 1);
    assert.deepEqual(await polite.waitForEvent(reply.id), { ...event, id: reply.id });
    await closeAll([polite]);
  });
});

describe('stack with SHOPCAST_MAX_CONNECTIONS=3', () => {
  let stack;
  before(async () => {
    // Override: reaching the default 10,000 would take 10,000 sockets.
    stack = await startTestStack({ daemonEnv: { SHOPCAST_MAX_CONNECTIONS: '3' } });
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  // Attempts a connection and reports how it ended within `ms`: refused with an HTTP status,
  // closed with a code and reason, or still open with its messages.
  function attempt(ms = 2000) {
    return new Promise((resolve) => {
      const started = Date.now();
      const ws = new WebSocket(stack.wsUrl, { origin: stack.origin, perMessageDeflate: false });
      const messages = [];
      let settled = false;
      const finish = (outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ ...outcome, ms: Date.now() - started, messages, ws });
      };
      const timer = setTimeout(() => finish({ kind: 'pending' }), ms);
      ws.on('unexpected-response', (req, res) => {
        res.resume();
        finish({ kind: 'http', status: res.statusCode });
        req.destroy();
      });
      ws.on('message', (data) => messages.push(JSON.parse(data.toString())));
      ws.on('close', (code, reason) => finish({ kind: 'close', code, reason: reason.toString() }));
      ws.on('error', () => {});
    });
  }

  test('the 4th connection is refused clearly within 2 s; a freed slot is reusable', async (t) => {
    const three = [await open(stack), await open(stack), await open(stack)];
    const fourth = await attempt(2000);
    fourth.ws.terminate();
    t.diagnostic(`4th connection: ${JSON.stringify({ kind: fourth.kind, status: fourth.status, code: fourth.code, reason: fourth.reason, ms: fourth.ms })}`);
    assert.notEqual(fourth.kind, 'pending', `the 4th connection was left hanging (messages ${JSON.stringify(fourth.messages)})`);
    if (fourth.kind === 'http') {
      assert.equal(fourth.status, 503);
    } else {
      assert.ok([1008, 1013].includes(fourth.code), `close code ${fourth.code}`);
      assert.ok(fourth.reason.length > 0, 'the close carries a reason');
    }
    assert.ok(fourth.ms < 2000);
    assert.deepEqual(fourth.messages.filter((m) => m.type !== 'hello'), []);

    const reply = await publishOk(stack, { type: 'shop_updated', shopId: 4 });
    assert.equal(reply.recipients, 3, 'the refused connection is not counted');

    await closeAll([three[0]]);
    let replacement = null;
    for (let i = 0; i < 20 && !replacement; i++) {
      try {
        replacement = await open(stack);
      } catch {
        await sleep(100);
      }
    }
    assert.ok(replacement, 'a slot freed by a close is reused');
    const again = await publishOk(stack, { type: 'shop_updated', shopId: 4 });
    assert.equal(again.recipients, 3);
    await closeAll([...three, replacement]);
  });
});

describe('stack with SHOPCAST_MAX_CONNECTIONS_PER_IP=2', () => {
  let stack;
  before(async () => {
    stack = await startTestStack({ daemonEnv: { SHOPCAST_MAX_CONNECTIONS_PER_IP: '2' } });
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  test("the 3rd connection from one address is refused; a browser's own X-Real-IP does not get around it", async () => {
    const two = [await open(stack), await open(stack)];
    await assert.rejects(connectClient(stack.wsUrl, { headers: { 'X-Real-IP': '192.0.2.10' }, timeout: 2000 }), (err) => {
      assert.equal(err.statusCode, 503, err.message);
      return true;
    });
    // Directly on the daemon's socket, the address is what X-Real-IP (set by nginx) says.
    const direct = `ws+unix://${path.join(stack.runDir, 'ws.sock')}:/ws`;
    const other = await connectClient(direct, { headers: { 'X-Real-IP': '192.0.2.10' } });
    clients.push(other);
    const reply = await publishOk(stack, { type: 'shop_updated', shopId: 8 });
    assert.equal(reply.recipients, 3);
    await other.waitForEvent(reply.id);
    await closeAll([...two, other]);
  });
});
