// shopcastd in Redis mode (DESIGN.md "Redis Streams"): it reads the shared stream and nothing
// else. A private redis-server on a Unix socket and two daemons run directly (no nginx);
// entries are appended with redis-cli in the contract's shape. Shown: entries arrive in stream
// order with ids that are cursors; a cursor from one daemon resumes exactly on the other; the
// events socket refuses publishes but answers health, which says "redis unavailable" while
// Redis is down or hangs; browsers stay connected and nothing is lost when it returns;
// FLUSHALL makes every browser resync and no old cursor replays an event of the new stream; a
// resume from further back than a daemon's cache is filled from the stream, exactly or not at all.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { connectClient, closeAll, isCursor, sleep, repoRoot } from './helpers.mjs';

const run = promisify(execFile);
const binDir = process.env.SHOPCAST_BIN_DIR ? path.resolve(process.env.SHOPCAST_BIN_DIR) : path.join(repoRoot, 'build', 'bin');
const shopcastd = path.join(binDir, 'shopcastd');
const dir = mkdtempSync(path.join(os.tmpdir(), 'shopcast-redis-reader-'));
const redisSocket = path.join(dir, 'redis.sock');
const clients = [];
let redis = null;
const daemons = [];

// Polls `check` until it returns something other than undefined; fails after `timeout` ms.
async function eventually(check, label, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    assert.ok(Date.now() < deadline, `timed out waiting for ${typeof label === 'function' ? label() : label}`);
    await sleep(50);
  }
}

async function startRedis() {
  const child = spawn('redis-server', ['--port', '0', '--unixsocket', redisSocket, '--save', '', '--appendonly', 'yes', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (chunk) => (log += chunk));
  child.stderr.on('data', (chunk) => (log += chunk));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  redis = { child, exited };
  await eventually(
    () => cli('PING').then((answer) => (answer === 'PONG' ? true : undefined), () => undefined),
    () => `redis-server to start: ${log}`,
  );
}

async function stopRedis() {
  if (!redis) return;
  redis.child.kill('SIGCONT'); // in case a test left it stopped
  redis.child.kill('SIGTERM');
  await redis.exited;
  redis = null;
}

function cli(...args) {
  return run('redis-cli', ['-s', redisSocket, ...args]).then(({ stdout }) => stdout.trim());
}

async function epochName() {
  const record = await cli('GET', 'shopcast:epoch');
  assert.match(record, /^[0-9a-z]{1,16}:[0-9a-f]{32}$/);
  return record.split(':')[0];
}

// An entry as shopcast-fcgi appends it: epoch, type, shop, user, event (without "id").
async function append(event, { epoch, shop = String(event.shopId ?? ''), user = '' } = {}) {
  return cli('XADD', 'shopcast:events', 'MAXLEN', '~', '10000', '*', 'epoch', epoch ?? (await epochName()), 'type', event.type, 'shop', shop, 'user', user, 'event', JSON.stringify(event));
}

async function freePort() {
  const { freePort: free } = await import(path.join(repoRoot, 'scripts', 'lib', 'stack.mjs'));
  return free();
}

async function startDaemon(name, settings = {}) {
  const port = await freePort();
  const eventsSocket = path.join(dir, `${name}-events.sock`);
  const child = spawn(shopcastd, [], {
    env: { PATH: process.env.PATH, SHOPCAST_EVENTS_SOCKET: eventsSocket, SHOPCAST_WS_LISTEN: `127.0.0.1:${port}`, SHOPCAST_REDIS_URL: `unix:${redisSocket}`, ...settings },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const daemon = { name, child, log: '', url: `ws://127.0.0.1:${port}/ws`, eventsSocket };
  child.stderr.on('data', (chunk) => (daemon.log += chunk));
  daemon.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  daemons.push(daemon);
  await eventually(() => (/stream epoch \w+: \d+ events loaded/.test(daemon.log) ? true : undefined), `${name} to load the stream: ${daemon.log}`);
  await eventually(async () => ((await health(daemon)).ok ? true : undefined), `${name} to be ready`);
  return daemon;
}

// One frame on the events socket and the one frame answering it: u32 length, then the payload.
function ipcExchange(socketPath, payload) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => (socket.destroy(), reject(new Error('no answer on the events socket'))), 5000);
    socket.on('connect', () => {
      const header = Buffer.alloc(4);
      header.writeUInt32BE(payload.length);
      socket.write(Buffer.concat([header, payload]));
    });
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 4 && received.length >= 4 + received.readUInt32BE(0)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(received.subarray(4, 4 + received.readUInt32BE(0)));
      }
    });
    socket.on('error', (err) => (clearTimeout(timer), reject(err)));
  });
}

const u32 = (n) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const field = (text) => Buffer.concat([u32(Buffer.byteLength(text)), Buffer.from(text)]);

// The health query (kind 3, query 2); its reply is kind 4, ok, text.
async function health(daemon) {
  const reply = await ipcExchange(daemon.eventsSocket, Buffer.concat([Buffer.from([3]), u32(2)]));
  assert.equal(reply[0], 4);
  return { ok: reply.readUInt32BE(1) === 1, text: reply.subarray(9, 9 + reply.readUInt32BE(5)).toString() };
}

// The metrics query (kind 3, query 1): Prometheus' text.
async function metrics(daemon) {
  const reply = await ipcExchange(daemon.eventsSocket, Buffer.concat([Buffer.from([3]), u32(1)]));
  assert.equal(reply[0], 4);
  return reply.subarray(9, 9 + reply.readUInt32BE(5)).toString();
}

// A publish request as shopcast-fcgi sends it locally (kind 1); the ack's status (0 accepted,
// 2 rejected).
async function publishOnEventsSocket(daemon, event) {
  const payload = Buffer.concat([Buffer.from([1]), field(''), field(event.type), field(String(event.shopId)), field(''), field(JSON.stringify(event))]);
  const reply = await ipcExchange(daemon.eventsSocket, payload);
  assert.equal(reply[0], 2, 'an ack');
  return reply.readUInt32BE(1);
}

async function open(url, options) {
  const c = await connectClient(url, options);
  clients.push(c);
  return c;
}

const product = (n) => ({ type: 'product_added', shopId: 5, productId: n });
const isEvent = (m) => m.type === 'product_added';

describe('shopcastd reading the Redis stream', () => {
  let a;
  let b;
  before(async () => {
    await startRedis();
    a = await startDaemon('a');
  });
  after(async () => {
    await closeAll(clients);
    for (const daemon of daemons) {
      if (daemon.child.exitCode === null) daemon.child.kill('SIGTERM');
      await daemon.exited;
    }
    await stopRedis();
    rmSync(dir, { recursive: true, force: true });
  });

  test('entries arrive in stream order, each with a cursor id and the published object', async () => {
    const c = await open(a.url);
    const entryIds = [];
    for (let n = 1; n <= 5; n += 1) entryIds.push(await append(product(n)));
    const events = await c.waitForCount(isEvent, 5, { timeout: 10_000 });
    assert.deepEqual(events.map((e) => e.productId), [1, 2, 3, 4, 5]);
    for (const event of events) {
      assert.ok(isCursor(event.id), `id ${event.id}`);
      assert.deepEqual(Object.keys(event).sort(), ['id', 'productId', 'shopId', 'type']);
    }
    assert.equal(new Set(events.map((e) => e.id)).size, 5, 'every id differs');
    assert.equal(entryIds.length, 5);
  });

  test('a malformed entry is skipped; the ones around it arrive', async () => {
    const c = await open(a.url);
    await append(product(10));
    await append({ type: 'product_added', shopId: 5 }); // no productId
    await append(product(11));
    const events = await c.waitForCount(isEvent, 2, { timeout: 10_000 });
    assert.deepEqual(events.map((e) => e.productId), [10, 11]);
    await eventually(() => (/skipping stream entry \d+-\d+: invalid event/.test(a.log) ? true : undefined), 'the skip to be logged');
  });

  test('a cursor handed out by one daemon resumes exactly on another', async () => {
    b = await startDaemon('b');
    const onA = await open(a.url);
    for (let n = 20; n <= 24; n += 1) await append(product(n));
    const seen = await onA.waitForCount(isEvent, 5, { timeout: 10_000 });
    const onB = await open(b.url, { resume: false });
    onB.send({ action: 'resume', since: seen[1].id });
    const replayed = await onB.waitForCount((m) => m.type === 'product_added', 3, { timeout: 10_000 });
    assert.deepEqual(replayed.map((e) => e.id), seen.slice(2).map((e) => e.id), 'the same ids, in the same order');
    await append(product(25));
    const [next] = await onA.waitForCount((m) => m.productId === 25, 1, { timeout: 10_000 });
    await onB.waitForEvent(next.id, { timeout: 10_000 });
    await onB.sync();
    assert.deepEqual(onB.events().map((e) => e.productId), [22, 23, 24, 25], 'nothing else, nothing twice');
    assert.ok(!onB.messages.some((m) => m.type === 'resync'), 'no resync');
  });

  test('the events socket refuses publishes and answers health and metrics', async () => {
    assert.equal(await publishOnEventsSocket(a, product(30)), 2, 'rejected');
    assert.deepEqual(await health(a), { ok: true, text: '' });
    assert.match(a.log, /refusing publish requests on the events socket: in Redis mode/);
    const text = await metrics(a);
    assert.match(text, /^shopcast_redis_connected 1$/m);
    assert.match(text, /^shopcast_redis_caught_up 1$/m);
    assert.match(text, /^shopcast_redis_entries_skipped_total 1$/m, 'the one malformed entry');
    assert.match(text, /^shopcast_redis_last_entry_timestamp_seconds [1-9]/m);
  });

  test('Redis stopped: browsers stay, health says unavailable; back: the gap arrives, no resync', async () => {
    const c = await open(a.url);
    await append(product(40));
    await c.waitForCount(isEvent, 1, { timeout: 10_000 });
    await stopRedis();
    const down = await eventually(async () => {
      const answer = await health(a);
      return answer.ok ? undefined : answer;
    }, 'health to say Redis is unavailable');
    assert.match(down.text, /redis unavailable/);
    assert.equal(c.closed, null, 'the browser stays connected');
    await c.sync();
    await startRedis(); // the same directory: the append-only file brings the stream back
    await append(product(41));
    await append(product(42));
    await eventually(async () => ((await health(a)).ok ? true : undefined), 'health to be ready again');
    const events = await c.waitForCount(isEvent, 3, { timeout: 10_000 });
    assert.deepEqual(events.map((e) => e.productId), [40, 41, 42]);
    assert.ok(!c.messages.some((m) => m.type === 'resync'), 'nothing was lost, so no resync');
  });

  test('a hanging Redis (SIGSTOP) is given up on: health says unavailable; it resumes after SIGCONT', async () => {
    const c = await open(a.url);
    redis.child.kill('SIGSTOP');
    try {
      const down = await eventually(async () => {
        const answer = await health(a);
        return answer.ok ? undefined : answer;
      }, 'health to notice the silence');
      assert.match(down.text, /redis unavailable/);
      assert.equal(c.closed, null, 'the browser stays connected');
    } finally {
      redis.child.kill('SIGCONT');
    }
    await eventually(async () => ((await health(a)).ok ? true : undefined), 'health to be ready again');
    await append(product(45));
    const [event] = await c.waitForCount(isEvent, 1, { timeout: 10_000 });
    assert.equal(event.productId, 45);
    assert.match(a.log, /no answer for 3 s/);
  });

  test('FLUSHALL: every browser resyncs, an old cursor resyncs, new entries flow', async () => {
    const onA = await open(a.url);
    const onB = await open(b.url);
    await append(product(50));
    const [old] = await onA.waitForCount(isEvent, 1, { timeout: 10_000 });
    const oldEpoch = await epochName();
    await cli('FLUSHALL');
    for (const c of [onA, onB]) {
      const resync = await c.waitForType('resync', { timeout: 10_000 });
      assert.equal(resync.reason, 'epoch_changed');
    }
    const newEpoch = await epochName();
    assert.notEqual(newEpoch, oldEpoch, 'a new life, a new epoch');
    await append(product(51));
    for (const c of [onA, onB]) {
      const [event] = await c.waitForCount((m) => m.productId === 51, 1, { timeout: 10_000 });
      assert.ok(isCursor(event.id));
    }
    const late = await open(b.url, { resume: false });
    late.send({ action: 'resume', since: old.id });
    const answer = await late.waitFor((m) => m.type !== 'hello', { timeout: 10_000 });
    assert.equal(answer.type, 'resync', `an old cursor resyncs: ${JSON.stringify(answer)}`);
    await late.sync();
    assert.deepEqual(late.events(), [], 'no event of the new stream is replayed for an old cursor');
  });

  test('a refused AUTH keeps the daemon unready and retrying, and the password out of the log', async () => {
    const password = 'pw-that-must-not-be-logged-9731';
    const passwordFile = path.join(dir, 'redis-password');
    writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    const eventsSocket = path.join(dir, 'auth-events.sock');
    const child = spawn(shopcastd, [], {
      // This Redis has no password, so it refuses AUTH: a stand-in for a wrong password.
      env: { PATH: process.env.PATH, SHOPCAST_EVENTS_SOCKET: eventsSocket, SHOPCAST_WS_LISTEN: `127.0.0.1:${await freePort()}`, SHOPCAST_REDIS_URL: `unix:${redisSocket}`, SHOPCAST_REDIS_PASSWORD_FILE: passwordFile },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const daemon = { name: 'auth', child, log: '', eventsSocket };
    child.stderr.on('data', (chunk) => (daemon.log += chunk));
    daemon.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    daemons.push(daemon);
    await eventually(() => (/Redis refused the connection's setup/.test(daemon.log) ? true : undefined), () => `the refusal to be logged: ${daemon.log}`);
    const answer = await health(daemon);
    assert.equal(answer.ok, false);
    assert.match(answer.text, /redis unavailable/);
    assert.ok(!daemon.log.includes(password), daemon.log);
  });

  test('a resume from below the cache is filled from the stream: each entry once, in order; trimmed past the cursor: resync', async () => {
    const onA = await open(a.url);
    // No MAXLEN: the stream keeps all 300, three times what the new daemon loads.
    const epoch = await epochName();
    const entryIds = [];
    for (let first = 1; first <= 300; first += 50) {
      const script = Array.from({ length: 50 }, (_, i) => {
        const event = product(1000 + first + i);
        return `XADD shopcast:events * epoch ${epoch} type product_added shop 5 user "" event ${JSON.stringify(JSON.stringify(event))}`;
      }).join('\n');
      await new Promise((resolve, reject) => {
        const child = execFile('redis-cli', ['-s', redisSocket], (err, stdout) => (err ? reject(err) : resolve(entryIds.push(...stdout.trim().split('\n')))));
        child.stdin.end(`${script}\n`);
      });
    }
    const seen = await onA.waitForCount((m) => m.productId > 1000, 300, { timeout: 20_000 });
    assert.deepEqual(seen.map((e) => e.productId - 1000), Array.from({ length: 300 }, (_, i) => i + 1));
    // Reason: a cache of 100 makes the stream longer than what this daemon holds.
    const c = await startDaemon('c', { SHOPCAST_HISTORY: '100' });
    assert.match(c.log, /: 100 events loaded/);

    const resumeOnC = async (since) => {
      const client = await open(c.url, { resume: false });
      client.send({ action: 'resume', since });
      await client.sync(10_000);
      return client;
    };
    const filled = await resumeOnC(seen[149].id); // after entry 150: 151..200 from the stream
    await filled.waitForCount(isEvent, 150, { timeout: 10_000 });
    assert.deepEqual(filled.events().map((e) => e.id), seen.slice(150).map((e) => e.id), 'entries 151..300, each once, in order');
    assert.ok(!filled.messages.some((m) => m.type === 'resync'), 'no resync');
    await append(product(2001));
    await filled.waitForCount((m) => m.productId === 2001, 1, { timeout: 10_000 });

    // 250 entries after the cursor: more than a fill may carry (SHOPCAST_HISTORY), so all or nothing.
    const tooFar = await resumeOnC(seen[49].id);
    assert.equal((await tooFar.waitForType('resync', { timeout: 10_000 })).reason, 'history_exhausted');
    await tooFar.sync();
    assert.deepEqual(tooFar.events(), [], 'no partial replay');

    // Entries 1..160 trimmed: the successor of entry 150 is gone.
    assert.equal(entryIds.length, 300);
    await cli('XTRIM', 'shopcast:events', 'MINID', entryIds[160]);
    assert.ok((await cli('XRANGE', 'shopcast:events', '-', '+', 'COUNT', '1')).startsWith(`${entryIds[160]}\n`), 'entry 161 is the oldest left');
    const trimmed = await resumeOnC(seen[149].id);
    assert.equal((await trimmed.waitForType('resync', { timeout: 10_000 })).reason, 'history_exhausted');
    await trimmed.sync();
    assert.deepEqual(trimmed.events(), [], 'nothing replayed');
    const stillThere = await resumeOnC(seen[169].id); // entry 170 is still there: exact again
    await stillThere.waitForCount(isEvent, 131, { timeout: 10_000 });
    assert.deepEqual(stillThere.events().map((e) => e.productId), [...seen.slice(170).map((e) => e.productId), 2001]);
  });

  test('stopping with SIGTERM exits cleanly', async () => {
    for (const daemon of daemons) {
      daemon.child.kill('SIGTERM');
      assert.deepEqual(await daemon.exited, { code: 0, signal: null }, daemon.log);
    }
  });
});

test('a Redis URL carrying credentials stops the start with one line that does not repeat them', async () => {
  const result = await run(shopcastd, [], {
    env: { PATH: process.env.PATH, SHOPCAST_EVENTS_SOCKET: '/nonexistent/events.sock', SHOPCAST_REDIS_URL: 'redis://user:hunter2-secret@127.0.0.1:6379' },
    timeout: 5000,
  }).then(
    () => ({ code: 0, stderr: '' }),
    (err) => ({ code: err.code, stderr: err.stderr }),
  );
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /SHOPCAST_REDIS/);
  assert.ok(!result.stderr.includes('hunter2-secret'), result.stderr);
  assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
});
