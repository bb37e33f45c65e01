// The stack as shipped: no setting overridden (README.md's settings table), behind the
// production nginx site (nginx/shopcast.conf, on test ports), for the behaviours that depend on
// the defaults. The idle connection is opened first and checked last, so its
// 70 s run alongside the other tests instead of adding to the suite's time.
//   - keepalive: an idle browser behind nginx (proxy_read_timeout 60 s) lives on through the
//     daemon's 25 s pings and gets an event published after 70 s;
//   - the 1 MiB queue: a prompt reader keeps up with a flood, one that never reads is closed
//     with 1013, and not before more than 1 MiB was published to it;
//   - the 300 s idempotency TTL: a retry within it is deduplicated.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestStack, stopTestStack, connectClient, closeAll, publishOk as publishOkVia, nextId } from './helpers.mjs';

const IDLE_MS = 70_000; // beyond nginx's 60 s proxy_read_timeout
// scripts/test sets SHOPCAST_LONG_TESTS=0 for its second (ASan) run: the 70 s wait runs once.
const LONG = process.env.SHOPCAST_LONG_TESTS !== '0';

// The production site takes publishes over https only.
const publishOk = (stack, event, options = {}) => publishOkVia(stack, event, { base: stack.httpsUrl, ...options });
const DEFAULT_QUEUE_BYTES = 1024 * 1024;

describe('default-configured stack (no overrides)', () => {
  let stack;
  let idle;
  let idleSince;
  const clients = [];

  before(async () => {
    stack = await startTestStack({ site: 'production' });
    // As the guide's WebApp: it connects and never sends anything (no resume).
    idle = await connectClient(stack.wssUrl, { origin: stack.httpsOrigin, resume: false });
    idleSince = Date.now();
  });
  after(async () => {
    await closeAll([idle, ...clients]);
    await stopTestStack(stack);
  });

  async function open() {
    const client = await connectClient(stack.wssUrl, { origin: stack.httpsOrigin });
    clients.push(client);
    return client;
  }

  test('a retry with the same Idempotency-Key within the TTL is deduplicated', async () => {
    const watcher = await open();
    const key = `defaults-${nextId()}`;
    const event = { type: 'product_updated', shopId: 5, productId: 6, note: 'retried' };
    const first = await publishOk(stack, event, { headers: { 'idempotency-key': key } });
    const retry = await publishOk(stack, event, { headers: { 'idempotency-key': key } });
    assert.equal(retry.id, first.id);
    // A probe published after the retry: once it arrived, a duplicate would have too.
    const probe = await publishOk(stack, { type: 'shop_updated', shopId: 5, note: 'probe' });
    await watcher.waitForEvent(probe.id, { timeout: 5000 });
    assert.deepEqual(watcher.eventIds(), [first.id, probe.id]);
  });

  test('a prompt reader keeps up with a flood; one that never reads is closed with 1013 after more than 1 MiB', async (t) => {
    const PAD = 8 * 1024;
    const MAX_EVENTS = 4096; // 32 MiB: more than loopback, nginx and the default queue hold
    const prompt = await open();
    const stalled = await open();
    stalled.ws._socket.pause(); // stops reading: the kernel buffers fill, then the daemon's queue
    const replies = [];
    let recipientsAtStart;
    for (let k = 0; k < MAX_EVENTS; k++) {
      // One at a time: the order of the replies is the order of delivery.
      const reply = await publishOk(stack, { type: 'product_updated', shopId: 9, productId: k + 1, k, pad: 'x'.repeat(PAD) });
      replies.push(reply);
      recipientsAtStart ??= reply.recipients;
      if (reply.recipients < recipientsAtStart) break;
    }
    const publishedBytes = replies.length * PAD;
    t.diagnostic(`the stalled reader was dropped after ${replies.length} events (${(publishedBytes / 1048576).toFixed(1)} MiB)`);
    assert.equal(replies.at(-1).recipients, recipientsAtStart - 1, `the stalled reader still counted after ${replies.length} events of 8 KiB`);
    assert.ok(publishedBytes > DEFAULT_QUEUE_BYTES, `dropped after only ${publishedBytes} bytes`);

    const got = await prompt.waitForCount((m) => typeof m.k === 'number', replies.length, { timeout: 30000 });
    assert.deepEqual(got.map((m) => m.id), replies.map((r) => r.id), 'the prompt reader got every event, in order');

    stalled.ws._socket.resume();
    const closed = await stalled.waitClose(15000);
    assert.equal(closed.code, 1013, `close ${JSON.stringify(closed)}`);
    const stalledGot = stalled.events().filter((m) => typeof m.k === 'number');
    assert.ok(stalledGot.length < replies.length, `the stalled reader got ${stalledGot.length} events`);
  });

  const skipIdle = !LONG && 'SHOPCAST_LONG_TESTS=0: the 70 s idle test runs in the other run';
  test('an idle connection through nginx outlives 70 s on the daemon\'s pings and still gets events', { skip: skipIdle }, async () => {
    const left = IDLE_MS - (Date.now() - idleSince);
    if (left > 0) await idle.waitClose(left).catch(() => null); // resolves early only on a close
    assert.equal(idle.closed, null, `the idle connection closed after ${((idle.closed?.at - idleSince) / 1000).toFixed(1)} s: ${JSON.stringify(idle.closed)}`);
    assert.ok(idle.pings >= 2, `${idle.pings} pings in 70 s`);
    const reply = await publishOk(stack, { type: 'shop_updated', shopId: 77, note: 'after 70 s idle' });
    const got = await idle.waitForEvent(reply.id, { timeout: 5000 });
    assert.equal(got.note, 'after 70 s idle');
  });
});
