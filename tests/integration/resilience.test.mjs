// The daemon going away and coming back (DESIGN.md "IPC" and the 503 row): the FastCGI side
// answers 503 `unavailable` with Retry-After quickly instead of hanging, reconnects by itself,
// never mixes up a late acknowledgement; SIGTERM closes browsers with 1001; a cursor of the
// previous daemon's epoch gets `resync`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startTestStack,
  stopTestStack,
  connectClient,
  closeAll,
  post,
  publishOk,
  assertJsonError,
  nextId,
  sleep,
  rawUpgrade,
  clientFrame,
} from './helpers.mjs';
import path from 'node:path';

let stack;
let fcgiPid;
let oldCursor;
const clients = [];

async function open(url = stack.wsUrl, options) {
  const c = await connectClient(url, options);
  clients.push(c);
  return c;
}

async function expectUnavailable(label, options = {}, maxMs = 1500) {
  const started = Date.now();
  const res = await post(stack, { type: 'product_added', shopId: 1, productId: nextId() }, options);
  const elapsed = Date.now() - started;
  assertJsonError(res, 503, 'unavailable', label);
  assert.equal(res.headers['retry-after'], '1', `${label}: Retry-After`);
  assert.ok(elapsed < maxMs, `${label}: answered after ${elapsed} ms, limit ${maxMs} ms`);
  return { res, elapsed };
}

before(async () => {
  stack = await startTestStack();
  fcgiPid = stack.fcgiPid;
  assert.ok(fcgiPid > 0);
});

after(async () => {
  // A failed test may leave the daemon stopped by SIGSTOP.
  if (stack?.daemonPid) {
    try {
      process.kill(stack.daemonPid, 'SIGCONT');
    } catch {
      // gone already
    }
  }
  await closeAll(clients);
  await stopTestStack(stack);
});

test('daemon killed with SIGKILL -> POST answers 503 unavailable with Retry-After: 1 within 1.5 s', async () => {
  const c = await open();
  const reply = await publishOk(stack, { type: 'product_added', shopId: 1, productId: nextId() });
  await c.waitForEvent(reply.id);
  oldCursor = reply.id;

  const status = await stack.stopDaemon('SIGKILL');
  assert.equal(status.signal, 'SIGKILL');
  // The first request finds the broken connection, the later ones find nobody listening.
  for (let i = 1; i <= 3; i++) await expectUnavailable(`POST #${i} while the daemon is down`);
  // The FastCGI app survived (no SIGPIPE death) and is the same process.
  assert.equal(stack.fcgiPid, fcgiPid);
  await c.waitClose(2000);
});

test('daemon restarted -> the next POST is 200 without restarting shopcast-fcgi', async () => {
  await stack.startDaemon();
  const c = await open();
  assert.notEqual(c.hello.id, oldCursor, 'a restarted daemon starts from a cursor of its own');
  const event = { type: 'product_updated', shopId: 2, productId: nextId() };
  const reply = await publishOk(stack, event);
  assert.equal(reply.recipients, 1);
  assert.deepEqual(await c.waitForEvent(reply.id), { ...event, id: reply.id });
  // Every FastCGI worker had a broken connection: each must reconnect on its own.
  const more = [];
  for (let i = 0; i < 8; i++) more.push(await publishOk(stack, { type: 'shop_updated', shopId: 2, seq: i }));
  more.push(...(await Promise.all(Array.from({ length: 16 }, (_, i) => publishOk(stack, { type: 'shop_updated', shopId: 2, par: i })))));
  await c.waitForCount((m) => m.shopId === 2 && m.type === 'shop_updated', more.length);
  assert.deepEqual(new Set(c.eventIds()), new Set([reply.id, ...more.map((r) => r.id)]));
  assert.equal(stack.fcgiPid, fcgiPid);
  await closeAll([c]);
});

test("after a restart, resuming from the old epoch's cursor -> resync, then live delivery", async () => {
  const c = await open(stack.wsUrl, { resume: false });
  c.send({ action: 'resume', since: oldCursor });
  const resync = await c.waitForType('resync');
  assert.equal(typeof resync.reason, 'string');
  assert.ok(resync.reason.length > 0);
  assert.deepEqual(c.events(), []);
  const event = { type: 'new_subscriber', shopId: 4 };
  const reply = await publishOk(stack, event);
  assert.deepEqual(await c.waitForEvent(reply.id), { ...event, id: reply.id });
  await closeAll([c]);
});

test('a daemon that does not acknowledge -> 503 after the 1 s ack timeout; a retry with the same Idempotency-Key is delivered once', async () => {
  const c = await open();
  const key = `retry-${nextId()}`;
  const event = { type: 'product_added', shopId: 5, productId: nextId(), retried: true };
  process.kill(stack.daemonPid, 'SIGSTOP');
  let first;
  try {
    const started = Date.now();
    first = await post(stack, event, { headers: { 'idempotency-key': key } });
    const elapsed = Date.now() - started;
    assertJsonError(first, 503, 'unavailable', 'stopped daemon');
    assert.equal(first.headers['retry-after'], '1');
    // Not before the 1 s ack timeout; the upper bound only catches a hang (the machine is noisy).
    assert.ok(elapsed >= 900 && elapsed < 5000, `answered after ${elapsed} ms, expected the 1 s ack timeout`);
  } finally {
    process.kill(stack.daemonPid, 'SIGCONT');
  }
  const retry = await publishOk(stack, event, { headers: { 'idempotency-key': key } });
  assert.deepEqual(await c.waitForEvent(retry.id), { ...event, id: retry.id });

  // Later publishes get their own acknowledgements, not the late one of the timed-out request.
  const replies = [];
  for (let i = 0; i < 10; i++) {
    const e = { type: 'product_updated', shopId: 5, productId: nextId(), after: i };
    const r = await publishOk(stack, e);
    replies.push(r);
    assert.deepEqual(await c.waitForEvent(r.id), { ...e, id: r.id });
  }
  // The ten later events were awaited: a late duplicate of the retried one would precede them.
  const retried = c.events().filter((m) => m.retried === true);
  assert.equal(retried.length, 1, `the retried event arrived ${retried.length} times`);
  assert.deepEqual(c.eventIds(), [retry.id, ...replies.map((r) => r.id)]);
  await closeAll([c]);
});

test('SIGTERM -> every connected browser (ws and wss) gets close code 1001, the daemon exits 0', async () => {
  const plain = await open(stack.wsUrl, { origin: stack.origin });
  const secure = await open(stack.wssUrl, { origin: stack.httpsOrigin });
  const status = await stack.stopDaemon('SIGTERM');
  assert.deepEqual(status, { code: 0, signal: null });
  const [a, b] = await Promise.all([plain.waitClose(2000), secure.waitClose(2000)]);
  assert.equal(a.code, 1001);
  assert.equal(b.code, 1001);

  await expectUnavailable('POST after SIGTERM');
  await stack.startDaemon();
  const c = await open();
  const reply = await publishOk(stack, { type: 'shop_updated', shopId: 6 });
  await c.waitForEvent(reply.id);
  assert.equal(stack.fcgiPid, fcgiPid);
  await closeAll([c]);
});

test('SIGTERM with a reader that has stopped reading: the daemon still exits 0 within its grace period', async () => {
  const plain = await open(stack.wsUrl, { origin: stack.origin });
  const stalled = await rawUpgrade('ws://localhost/ws', { socketPath: path.join(stack.runDir, 'ws.sock') });
  assert.equal(stalled.status, 101);
  stalled.socket.on('error', () => {});
  stalled.socket.write(clientFrame(0x1, JSON.stringify({ action: 'resume', since: 'x' })));
  // ~200 KiB for it: the Unix socket fills, the rest waits in its queue (below 1 MiB).
  for (let i = 0; i < 24; i++) await publishOk(stack, { type: 'product_updated', shopId: 6, productId: i + 1, pad: 'p'.repeat(8192) });
  const started = Date.now();
  const stopping = stack.stopDaemon('SIGTERM');
  // A referenced timer keeps this process alive while the daemon is waited for.
  const outcome = await Promise.race([stopping, sleep(6000).then(() => 'still running')]);
  const stopMs = Date.now() - started;
  stalled.socket.destroy(); // lets a daemon that waits for this reader finish
  const status = await stopping;
  assert.equal((await plain.waitClose(2000)).code, 1001);
  assert.notEqual(outcome, 'still running', `shopcastd still running ${stopMs} ms after SIGTERM while a reader is stalled (3 s grace expected)`);
  assert.deepEqual(status, { code: 0, signal: null });

  await stack.startDaemon();
  const reply = await publishOk(stack, { type: 'shop_updated', shopId: 6 });
  assert.equal(reply.recipients, 0);
});
