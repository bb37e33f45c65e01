// Delivery through nginx's /ws (DESIGN.md "WebSocket protocol" and "Delivery rules"): hello on
// connect, fan-out to every client with the reply's id, publish order, pass-through fields as
// JSON values, and wss over the self-signed https listener.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startTestStack,
  stopTestStack,
  connectClient,
  closeAll,
  post,
  publishOk,
  nextId,
  isCursor,
} from './helpers.mjs';

let stack;
const clients = [];

async function open(url = stack.wsUrl, options = {}) {
  const c = await connectClient(url, options);
  clients.push(c);
  return c;
}

before(async () => {
  stack = await startTestStack();
});

after(async () => {
  await closeAll(clients);
  await stopTestStack(stack);
});

test('hello arrives first on connect and carries the current cursor', async () => {
  const a = await open(stack.wsUrl, { resume: false });
  assert.deepEqual(a.messages, [{ type: 'hello', id: a.hello.id }]);
  assert.ok(isCursor(a.hello.id), `hello.id ${JSON.stringify(a.hello.id)}`);

  // A later connection's hello stands after the last event published before it: resuming
  // from it replays nothing and goes on live. It is a fresh string every time (DESIGN.md
  // "Cursors"), so a bare connect cannot tell whether anything was published meanwhile.
  const reply = await publishOk(stack, { type: 'new_subscriber', shopId: 5 });
  const b = await open(stack.wsUrl, { resume: false });
  try {
    assert.notEqual(b.hello.id, reply.id);
    assert.notEqual(b.hello.id, a.hello.id);
    b.send({ action: 'resume', since: b.hello.id });
    const next = await publishOk(stack, { type: 'new_subscriber', shopId: 5 });
    await b.waitForEvent(next.id);
    assert.deepEqual(b.eventIds(), [next.id]);
  } finally {
    await closeAll([a, b]);
  }
});

test('an event reaches two clients with its fields intact and the reply id; recipients is 2', async () => {
  const a = await open();
  const b = await open();
  const event = { type: 'product_added', shopId: 123, productId: 456 };
  const reply = await publishOk(stack, event);
  assert.deepEqual(reply, { success: true, message: 'Broadcast sent', type: 'product_added', id: reply.id, recipients: 2 });
  const [ga, gb] = await Promise.all([a.waitForEvent(reply.id), b.waitForEvent(reply.id)]);
  assert.deepEqual(ga, { ...event, id: reply.id });
  assert.deepEqual(gb, { ...event, id: reply.id });
  // The raw frame is one JSON text frame, and the event is the only message besides hello.
  assert.deepEqual(a.messages.map((m) => m.type), ['hello', 'product_added']);
  assert.equal(a.raw.at(-1).isBinary, false);
  await closeAll([a, b]);
});

test('200 events arrive in publish order with the ids of their replies, no gap, no duplicate', async () => {
  const a = await open();
  const ids = [];
  for (let n = 0; n < 200; n++) {
    const type = ['product_added', 'product_updated', 'product_deleted', 'new_subscriber', 'shop_updated', 'order_status'][n % 6];
    const event = type === 'order_status' ? { type, orderId: n + 1, status: 'paid', n } : { type, shopId: 9, productId: n + 1, n };
    if (type === 'new_subscriber' || type === 'shop_updated') delete event.productId;
    const reply = await publishOk(stack, event);
    ids.push(reply.id);
  }
  const got = await a.waitForCount((m) => m.n !== undefined, 200, { timeout: 5000 });
  assert.deepEqual(got.map((m) => m.id), ids);
  assert.deepEqual(got.map((m) => m.n), [...Array(200).keys()]);
  assert.equal(new Set(ids).size, 200, 'every id is new');
  await closeAll([a]);
});

test('concurrent publishes reach two clients in the same order, the order a resume replays', async () => {
  const a = await open();
  const since = a.hello.id;
  const b = await open();
  const replies = await Promise.all(
    Array.from({ length: 50 }, (_, n) => publishOk(stack, { type: 'product_updated', shopId: 3, productId: nextId(), burst: n })),
  );
  const ga = await a.waitForCount((m) => m.burst !== undefined, 50, { timeout: 5000 });
  const gb = await b.waitForCount((m) => m.burst !== undefined, 50, { timeout: 5000 });
  assert.deepEqual(ga.map((m) => m.id), gb.map((m) => m.id));
  assert.deepEqual(new Set(ga.map((m) => m.id)), new Set(replies.map((r) => r.id)));
  // The cursors are opaque: their order is the one the history replays.
  const c = await open(stack.wsUrl, { resume: false });
  c.send({ action: 'resume', since });
  const gc = await c.waitForCount((m) => m.burst !== undefined, 50, { timeout: 5000 });
  assert.deepEqual(gc.map((m) => m.id), ga.map((m) => m.id));
  await closeAll([a, b, c]);
});

test('50 clients each receive 100 events, all in publish order; recipients counts them all', async () => {
  const many = [];
  for (let i = 0; i < 50; i++) many.push(await open(i % 2 ? stack.wssUrl : stack.wsUrl));
  const ids = [];
  for (let n = 0; n < 100; n++) {
    const reply = await publishOk(stack, { type: 'product_updated', shopId: 30, productId: n + 1, fan: n });
    assert.equal(reply.recipients, 50);
    ids.push(reply.id);
  }
  for (const c of many) {
    const got = await c.waitForCount((m) => typeof m.fan === 'number', 100, { timeout: 5000 });
    assert.deepEqual(got.map((m) => m.id), ids);
  }
  await closeAll(many);
});

test('concurrent publishes of large events (~60 KiB) arrive intact', async () => {
  const a = await open();
  const events = Array.from({ length: 24 }, (_, n) => ({
    type: 'product_updated',
    shopId: 31,
    productId: n + 1,
    large: n,
    body: String.fromCharCode(97 + (n % 26)).repeat(60000 - n * 7) + 'é😀',
  }));
  const replies = await Promise.all(events.map((e) => publishOk(stack, e)));
  const got = await a.waitForCount((m) => typeof m.large === 'number', events.length, { timeout: 5000 });
  const byId = new Map(got.map((m) => [m.id, m]));
  assert.equal(byId.size, events.length);
  events.forEach((e, n) => assert.deepEqual(byId.get(replies[n].id), { ...e, id: replies[n].id }));
  await closeAll([a]);
});

test('pass-through fields arrive equal as JSON values', async () => {
  const a = await open();
  const body =
    '{"type":"product_updated","shopId":"shop_7-A","productId":42,' +
    '"name":"Caf\\u00e9 \\"Kvas\\" \\\\ \\/ \\n\\t","emoji":"\\ud83d\\ude00 😀","price":1.5e3,"neg":-0.25,' +
    '"big":12345678901234,"flags":[true,false,null],"nested":{"a":{"b":[1,{"c":"d"}]},"empty":{},"list":[]},' +
    '"cyr":"Новый товар","zero":0,"ctrl":"\\u0001\\u001f"}';
  const reply = await publishOk(stack, body);
  const got = await a.waitForEvent(reply.id);
  assert.deepEqual(got, { ...JSON.parse(body), id: reply.id });
  assert.equal(got.name, 'Café "Kvas" \\ / \n\t');
  assert.equal(got.price, 1500);
  await closeAll([a]);
});

test('wss through https with the self-signed certificate delivers like ws', async () => {
  const secure = await open(stack.wssUrl, { origin: stack.httpsOrigin });
  const plain = await open(stack.wsUrl, { origin: stack.origin });
  const event = { type: 'order_status', orderId: 'A-77', status: 'shipped' };
  // Publish over https as well: the API is served on both schemes.
  const res = await post(stack, event, { base: stack.httpsUrl });
  assert.equal(res.status, 200, res.text);
  const reply = res.json;
  assert.equal(reply.recipients, 2);
  assert.deepEqual(await secure.waitForEvent(reply.id), { ...event, id: reply.id });
  assert.deepEqual(await plain.waitForEvent(reply.id), { ...event, id: reply.id });
  await closeAll([secure, plain]);
});
