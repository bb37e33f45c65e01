// Resume and subscriptions (DESIGN.md "WebSocket protocol" and "Precise rules"): a browser that
// reconnects while events keep flowing gets exactly what it missed, in order, once; every kind
// of cursor that cannot be replayed answers `resync`; the live-delivery hold; shop filters.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startTestStack,
  stopTestStack,
  connectClient,
  closeAll,
  publishOk,
  nextId,
  sleep,
  probeAll,
  eventsBefore,
} from './helpers.mjs';

const clients = [];

async function open(stack, options) {
  const c = await connectClient(stack.wsUrl, options);
  clients.push(c);
  return c;
}

// Sends resume and expects `resync` with nothing replayed, then live delivery.
async function expectResync(stack, since, label) {
  const c = await open(stack, { resume: false });
  c.send({ action: 'resume', since });
  const msg = await c.waitForType('resync', { label: `resync for ${label}` });
  assert.equal(typeof msg.reason, 'string', `${label}: reason`);
  assert.ok(msg.reason.length > 0, `${label}: reason is not empty`);
  assert.deepEqual(Object.keys(msg).sort(), ['reason', 'type']);
  assert.deepEqual(c.events(), [], `${label}: nothing replayed`);
  const event = { type: 'shop_updated', shopId: 77, after: label };
  const reply = await publishOk(stack, event);
  assert.deepEqual(await c.waitForEvent(reply.id), { ...event, id: reply.id });
  assert.deepEqual(c.eventIds(), [reply.id], `${label}: only the live event`);
  await closeAll([c]);
}

after(async () => {
  await closeAll(clients);
});

describe('resume on the default stack', () => {
  let stack;
  before(async () => {
    stack = await startTestStack();
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  test('reconnecting twice while a publisher keeps publishing: 400 events, exact set, exact order, no duplicate', async () => {
    const TOTAL = 400;
    const published = [];
    let publisherError = null;
    let first = await open(stack);
    const publisher = (async () => {
      for (let n = 0; n < TOTAL; n++) {
        const reply = await publishOk(stack, { type: 'product_updated', shopId: 11, productId: n + 1, n });
        published.push(reply.id);
        if (n % 4 === 3) await sleep(5);
      }
    })().catch((err) => {
      publisherError = err;
    });
    const isStream = (m) => typeof m.n === 'number';
    // While away, the publisher goes on: wait until it published `count` more events.
    const publishedMore = async (count) => {
      const target = published.length + count;
      const deadline = Date.now() + 10000;
      while (published.length < target && publisherError === null) {
        assert.ok(Date.now() < deadline, `the publisher stalled at ${published.length}`);
        await sleep(5);
      }
    };

    // 1st connection: dropped abruptly (no close handshake) mid-stream.
    await first.waitForCount(isStream, 80, { timeout: 10000 });
    first.terminate();
    const received1 = first.events().filter(isStream);
    assert.ok(published.length < TOTAL - 100, 'the first disconnect happened mid-stream');
    await publishedMore(10);

    // 2nd connection: resumes, then closes normally mid-stream.
    const second = await open(stack, { resume: false });
    second.send({ action: 'resume', since: received1.at(-1).id });
    await second.waitForCount(isStream, 120, { timeout: 10000 });
    second.close();
    await second.waitClose();
    const received2 = second.events().filter(isStream);
    assert.ok(published.length < TOTAL - 50, 'the second disconnect happened mid-stream');
    await publishedMore(10);

    // 3rd connection: resumes and stays until the publisher is done.
    const third = await open(stack, { resume: false });
    third.send({ action: 'resume', since: received2.at(-1).id });
    await publisher;
    assert.equal(publisherError, null);
    assert.equal(published.length, TOTAL);
    await third.waitForEvent(published.at(-1), { timeout: 10000 });
    const received3 = third.events().filter(isStream);

    const all = [...received1, ...received2, ...received3];
    assert.deepEqual(all.map((m) => m.id), published);
    assert.deepEqual(all.map((m) => m.n), [...Array(TOTAL).keys()]);
    // Nothing but the stream arrived on any connection (no control message besides hello).
    for (const c of [first, second, third]) {
      assert.deepEqual(c.messages.filter((m) => !isStream(m)).map((m) => m.type), ['hello']);
    }
    await closeAll([third]);
  });

  test('resuming from hello.id replays everything published since that connection opened', async () => {
    const a = await open(stack, { resume: false });
    const since = a.hello.id;
    await closeAll([a]);
    const sent = [];
    for (let i = 0; i < 5; i++) {
      const event = { type: 'product_added', shopId: 12, productId: nextId(), i };
      sent.push({ ...event, id: (await publishOk(stack, event)).id });
    }
    const b = await open(stack, { resume: false });
    b.send({ action: 'resume', since });
    await b.waitForEvent(sent.at(-1).id);
    const live = { type: 'product_deleted', shopId: 12, productId: nextId() };
    const liveReply = await publishOk(stack, live);
    await b.waitForEvent(liveReply.id);
    assert.deepEqual(b.events(), [...sent, { ...live, id: liveReply.id }]);
  });

  test('events published after a connection opens are held until it sends resume, then arrive once', async () => {
    const opened = Date.now();
    const c = await open(stack, { resume: false });
    const sent = [];
    for (let i = 0; i < 3; i++) {
      const event = { type: 'new_subscriber', shopId: 13, i };
      sent.push({ ...event, id: (await publishOk(stack, event)).id });
    }
    // A round trip through the daemon after the publishes were acknowledged: an event not held
    // would have arrived before the answer.
    await c.sync();
    const checkedAt = Date.now() - opened;
    assert.ok(checkedAt < 900, `the machine is too slow to observe the hold (${checkedAt} ms)`);
    assert.deepEqual(c.events(), [], `held before resume (${checkedAt} ms in)`);
    c.send({ action: 'resume', since: c.hello.id });
    await c.waitForEvent(sent.at(-1).id);
    const live = { type: 'new_subscriber', shopId: 13, i: 3 };
    const liveReply = await publishOk(stack, live);
    const probe = await probeAll(stack, [c]);
    assert.deepEqual(eventsBefore(c, probe), [...sent, { ...live, id: liveReply.id }]);
  });

  test('without resume, held events are delivered once about 1 s after the connection opened', async () => {
    const opened = Date.now();
    const c = await open(stack, { resume: false });
    const event = { type: 'shop_updated', shopId: 14 };
    const reply = await publishOk(stack, event);
    await sleep(Math.max(0, 500 - (Date.now() - opened)));
    const checkedAt = Date.now() - opened;
    assert.ok(checkedAt < 900, `the machine is too slow to observe the hold (${checkedAt} ms)`);
    assert.deepEqual(c.events(), [], `still held ${checkedAt} ms in`);
    await c.waitForEvent(reply.id, { timeout: 2000 });
    const elapsed = Date.now() - opened;
    assert.ok(elapsed < 2000, `delivered ${elapsed} ms after connecting`);
    const live = { type: 'shop_updated', shopId: 14, later: true };
    const liveReply = await publishOk(stack, live);
    await c.waitForEvent(liveReply.id);
    assert.deepEqual(c.events(), [{ ...event, id: reply.id }, { ...live, id: liveReply.id }]);
  });

  // DESIGN.md "Cursors": an anonymous page must not learn from its ids how many events it could
  // not see (someone's orders), nor a bare connect a counter from hello. Read as an observer
  // would: the part every cursor shares, and what is left as a number.
  test("two public events around five private ones: the anonymous page's ids say nothing about them; hellos are fresh", async () => {
    const page = await open(stack);
    const around = async (privateCount) => {
      const before = await publishOk(stack, { type: 'shop_updated', shopId: 16, n: 1 });
      for (let i = 0; i < privateCount; i++) {
        await publishOk(stack, { type: 'order_status', orderId: nextId(), status: 'paid', userId: 302 });
      }
      const afterReply = await publishOk(stack, { type: 'shop_updated', shopId: 16, n: 2 });
      await page.waitForEvent(afterReply.id);
      return [before.id, afterReply.id];
    };
    const gap = await around(5);
    const none = await around(0);
    const hellos = [];
    for (let i = 0; i < 3; i++) {
      const bare = await open(stack, { resume: false });
      hellos.push(bare.hello.id);
      await closeAll([bare]);
    }
    assert.deepEqual(page.eventIds(), [...gap, ...none], 'the anonymous page gets only the public events');
    const all = [...gap, ...none, ...hellos];
    const shared = all.reduce((prefix, id) => {
      let n = 0;
      while (n < prefix.length && prefix[n] === id[n]) n++;
      return prefix.slice(0, n);
    });
    for (const id of all) assert.equal(id.length, all[0].length, `one length for every cursor: ${id}`);
    // What differs is a block as long as a 128-bit random value; read as a number, consecutive
    // ids are as far apart with five hidden events between them as with none, and as hellos.
    const rest = all.map((id) => BigInt(`0x${id.slice(shared.length).replace(/[^0-9a-f]/gi, '0')}`));
    assert.ok(all[0].length - shared.length >= 24, `ids differ in ${all[0].length - shared.length} characters only`);
    const distance = (a, b) => (a > b ? a - b : b - a);
    for (const [a, b] of [[0, 1], [2, 3], [1, 2], [4, 5], [5, 6]]) {
      assert.ok(distance(rest[a], rest[b]) > 2n ** 64n, `${all[a]} and ${all[b]} are close as numbers`);
    }
    assert.equal(new Set(hellos).size, hellos.length, 'every hello differs, with nothing published between them');
    // Opaque, yet still ordered for resume: from the first id, exactly the three public events after it.
    const back = await open(stack, { resume: false });
    back.send({ action: 'resume', since: gap[0] });
    await back.waitForEvent(none[1]);
    assert.deepEqual(back.eventIds(), [gap[1], ...none]);
    // And from a hello: nothing was published since.
    const fromHello = await open(stack, { resume: false });
    fromHello.send({ action: 'resume', since: hellos.at(-1) });
    const live = await publishOk(stack, { type: 'shop_updated', shopId: 16, n: 3 });
    await fromHello.waitForEvent(live.id);
    assert.deepEqual(fromHello.eventIds(), [live.id]);
    await closeAll([page, back, fromHello]);
  });

  describe('resync for every cursor that cannot be replayed', () => {
    let current;
    before(async () => {
      current = (await publishOk(stack, { type: 'shop_updated', shopId: 15 })).id;
    });
    test('malformed cursor', () => expectResync(stack, 'garbage', 'malformed'));
    // Cursors are opaque (DESIGN.md): a client only ever sends one it was given. The format's
    // own edge cases (other epoch, future or non-numeric sequence) are tests/unit/cursor_test.cpp's.
    test('a cursor with characters appended', () => expectResync(stack, `${current}0x`, 'appended'));
    test('a cursor with one character changed', () => expectResync(stack, `${current.slice(0, -1)}${current.endsWith('0') ? '1' : '0'}`, 'garbled'));
    test('an empty since is a malformed action -> error, then live delivery', async () => {
      const c = await open(stack, { resume: false });
      c.send({ action: 'resume', since: '' });
      const msg = await c.waitForType('error');
      assert.equal(typeof msg.message, 'string');
      const event = { type: 'shop_updated', shopId: 77, after: 'empty since' };
      const reply = await publishOk(stack, event);
      assert.deepEqual(await c.waitForEvent(reply.id, { timeout: 2000 }), { ...event, id: reply.id });
      assert.deepEqual(c.eventIds(), [reply.id]);
      await closeAll([c]);
    });
  });
});

describe('history eviction (SHOPCAST_HISTORY=10)', () => {
  let stack;
  // Every event this stack accepted, with its id, in publish order.
  const published = [];
  async function publish(event) {
    const reply = await publishOk(stack, event);
    published.push({ ...event, id: reply.id });
    return reply;
  }
  before(async () => {
    // Override: the default history (10,000 events) would take 10,000 publishes to evict from.
    stack = await startTestStack({ daemonEnv: { SHOPCAST_HISTORY: '10' } });
    for (let i = 1; i <= 20; i++) await publish({ type: 'product_added', shopId: 16, productId: i });
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  // Resumes from the event `back` places before the newest and expects the `back - 1` events
  // after it, then live delivery.
  async function expectReplay(back) {
    const since = published.at(-back).id;
    const expected = published.slice(published.length - back + 1);
    const c = await open(stack, { resume: false });
    c.send({ action: 'resume', since });
    if (expected.length) await c.waitForEvent(expected.at(-1).id);
    else await c.sync();
    const live = { type: 'product_added', shopId: 16, productId: nextId() };
    const reply = await publish(live);
    // The live event follows the replay: a duplicate from the replay would come before it.
    await c.waitForEvent(reply.id);
    assert.deepEqual(c.events(), [...expected, { ...live, id: reply.id }]);
    assert.deepEqual(c.messages.filter((m) => m.type === 'resync'), []);
    await closeAll([c]);
  }

  test('resuming from the event just before the 10 the history holds replays those 10', () => expectReplay(11));
  test('resuming from a recent cursor replays the 3 events after it', () => expectReplay(4));
  test('resuming from the newest cursor replays nothing and continues live', () => expectReplay(1));
  // Last: expectResync publishes events of its own.
  test('a cursor one event older than the history reaches -> resync', () => expectResync(stack, published.at(-12).id, 'evicted'));
});

describe('history eviction by bytes (SHOPCAST_HISTORY_BYTES=40000)', () => {
  let stack;
  const published = [];
  before(async () => {
    // Override: the default 64 MiB budget would take thousands of large events to exceed.
    stack = await startTestStack({ daemonEnv: { SHOPCAST_HISTORY_BYTES: '40000' } });
    for (let i = 1; i <= 12; i++) {
      const event = { type: 'product_added', shopId: 17, productId: i, pad: 'b'.repeat(8000) };
      published.push({ ...event, id: (await publishOk(stack, event)).id });
    }
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  test('the newest events within the byte budget are replayed', async () => {
    const c = await open(stack, { resume: false });
    c.send({ action: 'resume', since: published.at(-3).id });
    await c.waitForEvent(published.at(-1).id);
    const probe = await probeAll(stack, [c]);
    assert.deepEqual(eventsBefore(c, probe), published.slice(-2));
    await closeAll([c]);
  });

  test('a cursor whose followers no longer fit in the byte budget -> resync', () => expectResync(stack, published[0].id, 'evicted by bytes'));
});

describe('shop subscriptions', () => {
  let stack;
  before(async () => {
    stack = await startTestStack();
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  const shopsOf = (msg) => msg.shops.map(String).sort();

  async function subscribe(c, action, shops) {
    const from = c.messages.length;
    c.send({ action, shops });
    const msg = await c.waitFor((m) => m.type === 'subscribed' || m.type === 'error', { from, label: `answer to ${action}` });
    return msg;
  }

  test('a shop-1 subscriber gets shop-1 and shopless public events only; an empty set means everything again', async () => {
    const sub = await open(stack);
    const all = await open(stack);
    const answer = await subscribe(sub, 'subscribe', [1]);
    assert.equal(answer.type, 'subscribed');
    assert.deepEqual(Object.keys(answer).sort(), ['shops', 'type']);
    assert.deepEqual(shopsOf(answer), ['1']);

    const batch = [
      [{ type: 'product_added', shopId: 1, productId: nextId() }, true],
      [{ type: 'product_added', shopId: 2, productId: nextId() }, false],
      [{ type: 'order_status', orderId: nextId(), status: 'paid' }, true],
      [{ type: 'new_subscriber', shopId: '1' }, true],
      [{ type: 'shop_updated', shopId: 2 }, false],
      [{ type: 'order_status', orderId: nextId(), status: 'paid', shopId: 2 }, false],
      [{ type: 'product_deleted', shopId: 10, productId: nextId() }, false],
      [{ type: 'shop_updated', shopId: 1 }, true],
    ];
    const delivered = [];
    const everything = [];
    for (const [event, forSub] of batch) {
      const reply = await publishOk(stack, event);
      everything.push({ ...event, id: reply.id });
      if (forSub) delivered.push({ ...event, id: reply.id });
      assert.equal(reply.recipients, forSub ? 2 : 1, `recipients of ${JSON.stringify(event)}`);
    }
    await all.waitForEvent(everything.at(-1).id);
    await sub.waitForEvent(delivered.at(-1).id);
    const probe = await probeAll(stack, [all, sub]);
    assert.deepEqual(eventsBefore(sub, probe), delivered);
    assert.deepEqual(eventsBefore(all, probe), everything);

    // Unsubscribing everything: every public event again.
    const none = await subscribe(sub, 'unsubscribe', [1]);
    assert.equal(none.type, 'subscribed');
    assert.deepEqual(none.shops, []);
    const other = { type: 'product_added', shopId: 2, productId: nextId() };
    const reply = await publishOk(stack, other);
    assert.equal(reply.recipients, 2);
    assert.deepEqual(await sub.waitForEvent(reply.id), { ...other, id: reply.id });
    await closeAll([sub, all]);
  });

  test('7 and "7" name the same shop, in subscriptions and in events; answers carry the full set', async () => {
    const c = await open(stack);
    let answer = await subscribe(c, 'subscribe', [7]);
    assert.deepEqual(shopsOf(answer), ['7']);
    answer = await subscribe(c, 'subscribe', ['7']);
    assert.deepEqual(shopsOf(answer), ['7'], 'subscribing "7" after 7 adds nothing');
    answer = await subscribe(c, 'subscribe', [8, 'shop_x']);
    assert.deepEqual(shopsOf(answer), ['7', '8', 'shop_x']);

    const asString = { type: 'product_added', shopId: '7', productId: nextId() };
    const asNumber = { type: 'product_added', shopId: 7, productId: nextId() };
    const named = { type: 'shop_updated', shopId: 'shop_x' };
    const notMine = { type: 'shop_updated', shopId: 'shop_y' };
    const r1 = await publishOk(stack, asString);
    const r2 = await publishOk(stack, asNumber);
    const r3 = await publishOk(stack, notMine);
    const r4 = await publishOk(stack, named);
    assert.equal(r3.recipients, 0);
    await c.waitForEvent(r4.id);
    assert.deepEqual(c.events(), [
      { ...asString, id: r1.id },
      { ...asNumber, id: r2.id },
      { ...named, id: r4.id },
    ]);

    // The id's text is its decoded value: "a\u0062c" names shop "abc".
    answer = await subscribe(c, 'subscribe', ['abc']);
    const escaped = '{"type":"shop_updated","shopId":"a\\u0062c"}';
    const r5 = await publishOk(stack, escaped);
    assert.equal(r5.recipients, 1);
    assert.deepEqual(await c.waitForEvent(r5.id), { type: 'shop_updated', shopId: 'abc', id: r5.id });
    answer = await subscribe(c, 'unsubscribe', ['abc']);

    answer = await subscribe(c, 'unsubscribe', ['7']);
    assert.deepEqual(shopsOf(answer), ['8', 'shop_x'], 'unsubscribing "7" removes 7');
    answer = await subscribe(c, 'unsubscribe', [8, 'shop_x']);
    assert.deepEqual(answer.shops, []);
    await closeAll([c]);
  });

  test('a resume replays only the events the connection may see under its subscriptions', async () => {
    const a = await open(stack, { resume: false });
    const since = a.hello.id;
    await closeAll([a]);
    const mine = [];
    for (const [event, forMe] of [
      [{ type: 'product_added', shopId: 21, productId: nextId() }, true],
      [{ type: 'product_added', shopId: 22, productId: nextId() }, false],
      [{ type: 'order_status', orderId: nextId(), status: 'paid' }, true],
      [{ type: 'shop_updated', shopId: 21 }, true],
    ]) {
      const reply = await publishOk(stack, event);
      if (forMe) mine.push({ ...event, id: reply.id });
    }
    const c = await open(stack, { resume: false });
    const answer = await subscribe(c, 'subscribe', [21]);
    assert.deepEqual(shopsOf(answer), ['21']);
    c.send({ action: 'resume', since });
    await c.waitForEvent(mine.at(-1).id);
    const probe = await probeAll(stack, [c]);
    assert.deepEqual(eventsBefore(c, probe), mine);
    await closeAll([c]);
  });

  test('the max-shops limit (100) is answered with error and leaves the set unchanged', async () => {
    const c = await open(stack);
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    let answer = await subscribe(c, 'subscribe', hundred);
    assert.equal(answer.type, 'subscribed');
    assert.equal(answer.shops.length, 100);
    answer = await subscribe(c, 'subscribe', [101]);
    assert.equal(answer.type, 'error');
    assert.equal(typeof answer.message, 'string');
    assert.ok(answer.message.length > 0);

    const over = await publishOk(stack, { type: 'shop_updated', shopId: 101 });
    const inside = await publishOk(stack, { type: 'shop_updated', shopId: 100 });
    await c.waitForEvent(inside.id);
    assert.deepEqual(c.eventIds(), [inside.id], `shop 101 (${over.id}) was not added`);

    const fresh = await open(stack);
    answer = await subscribe(fresh, 'subscribe', Array.from({ length: 101 }, (_, i) => i + 1));
    assert.equal(answer.type, 'error', 'one request over the limit');
    await closeAll([c, fresh]);
  });

  for (const [label, shops] of [
    ['shop id 0', [0]],
    ['shop id -5', [-5]],
    ['shop id with a space', ['a b']],
    ['shops not an array', 7],
  ]) {
    test(`subscribe with ${label} -> error, connection stays usable`, async () => {
      const c = await open(stack);
      const answer = await subscribe(c, 'subscribe', shops);
      assert.equal(answer.type, 'error');
      const event = { type: 'shop_updated', shopId: 3 };
      const reply = await publishOk(stack, event);
      assert.deepEqual(await c.waitForEvent(reply.id), { ...event, id: reply.id });
      await closeAll([c]);
    });
  }
});
