// Publish API (DESIGN.md "Publish API"): the seed's curl command and broadcastUpdate(), every
// row of the error table in the documented check order, body and ID limits, Idempotency-Key,
// the daemon's Broadcast log line, and no secret in any log. After every refused request a
// valid event is published and a connected browser must receive exactly it: a refusal never
// loses or duplicates anything accepted. Each test starts after a boundary event its browser has
// received, and checks only what came after it: a failed test cannot fail the next ones.
import { describe, test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import axios from 'axios';
import {
  startTestStack,
  stopTestStack,
  connectClient,
  closeAll,
  post,
  publishOk,
  assertJsonError,
  escapeRegExp,
  nextId,
  PUBLISH_PATH,
  isCursor,
  CONTROL_TYPES,
} from './helpers.mjs';

const execFileP = promisify(execFile);

// A second accepted secret, as during a rotation (INTERNAL_SECRET_PREVIOUS).
const PREVIOUS_SECRET = 'previous-secret-for-rotation-0123456789abcdef';
// Wrong secrets sent in this file; none of them may reach a log either.
const WRONG_SECRET = 'wrong-secret-value-that-must-not-be-logged-42';
const MAX_BODY = 65536;
// Override: the default TTL (300 s, tested as shipped in defaults.test.mjs) is too long to see
// a key expire within the suite's time.
const IDEMPOTENCY_TTL = 2; // seconds

let stack;
let client;
const clients = [];
// Where the current test's messages start in client.messages, and the ids of the events the
// client must have received since then, in publish order.
let mark = 0;
let expectedIds = [];

function eventIdsSinceMark() {
  return client.messages.slice(mark).filter((m) => !CONTROL_TYPES.has(m.type)).map((m) => m.id);
}

function validEvent(extra = {}) {
  return { type: 'product_updated', shopId: 1, productId: nextId(), ...extra };
}

// Waits for the accepted event `reply` describes and checks the client's whole event list:
// exactly the accepted events so far, in order, nothing refused in between.
async function expectDelivered(reply, sent) {
  expectedIds.push(reply.id);
  const got = await client.waitForEvent(reply.id, { from: mark });
  if (sent) assert.deepEqual(got, { ...sent, id: reply.id });
  assert.deepEqual(eventIdsSinceMark(), expectedIds);
}

// Publishes a valid event after a refused request and checks that it, and only it, arrives.
async function followWithValid(label) {
  const event = validEvent({ after: label });
  const reply = await publishOk(stack, event);
  assert.equal(reply.recipients, 1);
  await expectDelivered(reply, event);
}

async function expectRefused(label, sendRequest, status, error) {
  const res = await sendRequest();
  assertJsonError(res, status, error, label);
  assert.equal(typeof res.json.message, 'string', `${label}: message`);
  await followWithValid(label);
  return res;
}

// A valid event whose serialization is exactly `size` bytes, padded by a pass-through field.
function eventOfSize(size) {
  const base = { type: 'product_added', shopId: 1, productId: nextId(), pad: '' };
  const overhead = Buffer.byteLength(JSON.stringify(base));
  base.pad = 'p'.repeat(size - overhead);
  const text = JSON.stringify(base);
  assert.equal(Buffer.byteLength(text), size);
  return { text, event: base };
}

// `{"type":...,"x":[[...]]}`: the object is level 1, so `arrays` nested arrays give depth arrays+1.
function nestedBody(arrays) {
  return `{"type":"product_added","shopId":1,"productId":${nextId()},"x":${'['.repeat(arrays)}${']'.repeat(arrays)}}`;
}

before(async () => {
  stack = await startTestStack({
    // INTERNAL_SECRET_PREVIOUS has no default: set for the rotation test. The TTL: see above.
    fcgiEnv: { INTERNAL_SECRET_PREVIOUS: PREVIOUS_SECRET },
    daemonEnv: { SHOPCAST_IDEMPOTENCY_TTL: String(IDEMPOTENCY_TTL) },
  });
});

// A live client (a new one if a failed test left it closed) and a boundary event it received:
// whatever an earlier test left in flight has arrived before the mark.
beforeEach(async () => {
  if (!client || client.closed) {
    client = await connectClient(stack.wsUrl);
    clients.push(client);
  }
  const boundary = await publishOk(stack, validEvent({ boundary: true }));
  await client.waitForEvent(boundary.id, { timeout: 5000 });
  mark = client.messages.findIndex((m) => m.id === boundary.id) + 1;
  expectedIds = [];
});

after(async () => {
  await closeAll(clients);
  await stopTestStack(stack);
});

describe('seed compatibility', () => {
  test("the seed's curl command is answered as the seed promises and the event reaches the browser", async () => {
    const body = '{"type":"product_added","shopId":123,"productId":456}';
    const { stdout } = await execFileP('curl', [
      '-X', 'POST', `${stack.httpUrl}${PUBLISH_PATH}`,
      '-H', 'Content-Type: application/json',
      '-H', `x-internal-secret: ${stack.secret}`,
      '-d', body,
    ], { timeout: 5000 });
    const reply = JSON.parse(stdout);
    assert.ok(isCursor(reply.id), `id ${JSON.stringify(reply.id)}`);
    assert.deepEqual(reply, {
      success: true,
      message: 'Broadcast sent',
      type: 'product_added',
      id: reply.id,
      recipients: 1,
    });
    await expectDelivered(reply, { type: 'product_added', shopId: 123, productId: 456 });
  });

  test("the seed's broadcastUpdate() (axios, 2 s timeout) works for every seed event type", async () => {
    const BACKEND_URL = stack.httpUrl;
    const INTERNAL_SECRET = stack.secret;
    const logged = [];
    // The seed's function, line for line, except that it records instead of printing and
    // returns the response so the test can see it.
    async function broadcastUpdate(type, data = {}) {
      if (!INTERNAL_SECRET) {
        logged.push('⚠️ INTERNAL_SECRET not set - skipping broadcast');
        return undefined;
      }
      try {
        const response = await axios.post(
          `${BACKEND_URL}/api/internal/broadcast`,
          { type, ...data },
          {
            headers: {
              'x-internal-secret': INTERNAL_SECRET,
            },
            timeout: 2000,
          },
        );
        logged.push(`✅ Broadcast sent: ${type}`);
        return response;
      } catch (error) {
        logged.push(`❌ Broadcast failed: ${type} ${error.message}`);
        return undefined;
      }
    }

    const shopId = 321;
    const calls = [
      ['product_added', { shopId, productId: nextId() }],
      ['product_updated', { shopId, productId: nextId() }],
      ['product_deleted', { shopId, productId: nextId() }],
      ['order_status', { orderId: nextId(), status: 'confirmed' }],
      ['new_subscriber', { shopId }],
      ['shop_updated', { shopId }],
    ];
    for (const [type, data] of calls) {
      const response = await broadcastUpdate(type, data);
      assert.ok(response, `broadcastUpdate(${type}) failed: ${logged.at(-1)}`);
      assert.equal(response.status, 200);
      assert.match(response.headers['content-type'], /^application\/json\b/i);
      assert.deepEqual(response.data, {
        success: true,
        message: 'Broadcast sent',
        type,
        id: response.data.id,
        recipients: 1,
      });
      await expectDelivered(response.data, { type, ...data });
    }
    assert.deepEqual(logged, calls.map(([type]) => `✅ Broadcast sent: ${type}`));
  });

  test('the previous secret is accepted during a rotation', async () => {
    const event = validEvent();
    const reply = await publishOk(stack, event, { secret: PREVIOUS_SECRET });
    await expectDelivered(reply, event);
  });
});

describe('405 method_not_allowed', () => {
  for (const method of ['GET', 'PUT', 'DELETE']) {
    test(`${method} -> 405 with Allow: POST`, async () => {
      const res = await expectRefused(
        method,
        () => post(stack, method === 'GET' || method === 'DELETE' ? undefined : validEvent(), { method }),
        405,
        'method_not_allowed',
      );
      assert.equal(res.headers.allow, 'POST');
    });
  }

  test('the method is checked before the secret', async () => {
    const res = await expectRefused('GET without secret', () => post(stack, undefined, { method: 'GET', secret: null }), 405, 'method_not_allowed');
    assert.equal(res.headers.allow, 'POST');
  });
});

describe('401 unauthorized', () => {
  const cases = [
    ['missing header', () => ({ secret: null })],
    ['wrong secret', () => ({ secret: WRONG_SECRET })],
    ['empty secret', () => ({ secret: '' })],
    ['the secret minus its last character', () => ({ secret: stack.secret.slice(0, -1) })],
    ['the secret plus one character', () => ({ secret: `${stack.secret}x` })],
    ['the secret in upper case', () => ({ secret: stack.secret.toUpperCase() === stack.secret ? `${stack.secret}Z` : stack.secret.toUpperCase() })],
    ['duplicated header whose first value is wrong', () => ({ secret: null, headers: { 'x-internal-secret': [WRONG_SECRET, stack.secret] } })],
  ];
  for (const [label, options] of cases) {
    test(`${label} -> 401`, async () => {
      await expectRefused(label, () => post(stack, validEvent(), options()), 401, 'unauthorized');
    });
  }

  test('the secret is checked before the Content-Type and the body', async () => {
    await expectRefused('wrong secret, text/plain, bad JSON', () => post(stack, 'not json', { secret: WRONG_SECRET, contentType: 'text/plain' }), 401, 'unauthorized');
  });
});

describe('415 unsupported_media_type', () => {
  const cases = [
    ['text/plain', 'text/plain'],
    ['no Content-Type', null],
    ['charset=latin1', 'application/json; charset=latin1'],
    ['curl -d default form type', 'application/x-www-form-urlencoded'],
    ['a different JSON-like type', 'application/jsonx'],
  ];
  for (const [label, contentType] of cases) {
    test(`${label} -> 415`, async () => {
      await expectRefused(label, () => post(stack, validEvent(), { contentType }), 415, 'unsupported_media_type');
    });
  }

  test('the Content-Type is checked before the JSON syntax', async () => {
    await expectRefused('text/plain with bad JSON', () => post(stack, '{', { contentType: 'text/plain' }), 415, 'unsupported_media_type');
  });

  for (const contentType of ['application/json; charset=utf-8', 'Application/JSON', 'application/json;charset=UTF-8']) {
    test(`Content-Type "${contentType}" is accepted`, async () => {
      const event = validEvent();
      const reply = await publishOk(stack, event, { contentType });
      await expectDelivered(reply, event);
    });
  }
});

describe('413 payload_too_large and the size limit', () => {
  test('a body of exactly 65,536 bytes is accepted and delivered intact', async () => {
    const { text, event } = eventOfSize(MAX_BODY);
    const reply = await publishOk(stack, text);
    await expectDelivered(reply, event);
  });

  test('a body of 65,537 bytes -> 413', async () => {
    const { text } = eventOfSize(MAX_BODY + 1);
    await expectRefused('65,537 bytes', () => post(stack, text), 413, 'payload_too_large');
  });
});

describe('400 invalid_json', () => {
  const cases = [
    ['empty body', () => ''],
    ['trailing garbage', () => `{"type":"product_added","shopId":1,"productId":${nextId()}} x`],
    ['two objects', () => `{"type":"product_added","shopId":1,"productId":${nextId()}}{}`],
    ['invalid UTF-8', () => Buffer.concat([Buffer.from(`{"type":"product_added","shopId":1,"productId":${nextId()},"name":"`), Buffer.from([0xc3, 0x28]), Buffer.from('"}')])],
    ['a lone continuation byte', () => Buffer.concat([Buffer.from(`{"type":"product_added","shopId":1,"productId":${nextId()},"name":"`), Buffer.from([0x80]), Buffer.from('"}')])],
    ['truncated', () => '{"type":"product_added","shopId":1,'],
    ['not JSON', () => 'hello'],
    ['nesting 33 deep', () => nestedBody(32)],
  ];
  for (const [label, body] of cases) {
    test(`${label} -> 400 invalid_json`, async () => {
      await expectRefused(label, () => post(stack, body()), 400, 'invalid_json');
    });
  }

  test('nesting exactly 32 deep is accepted', async () => {
    const text = nestedBody(31);
    const reply = await publishOk(stack, text);
    await expectDelivered(reply, JSON.parse(text));
  });
});

describe('400 invalid_event', () => {
  const P = () => nextId();
  const cases = [
    ['an array, not an object', () => '[1,2]'],
    ['a string, not an object', () => '"product_added"'],
    ['unknown type', () => ({ type: 'product_exploded', shopId: 1, productId: P() })],
    ['missing type', () => ({ shopId: 1, productId: P() })],
    ['type not a string', () => ({ type: 7, shopId: 1, productId: P() })],
    ['missing productId', () => ({ type: 'product_added', shopId: 1 })],
    ['missing shopId', () => ({ type: 'product_deleted', productId: P() })],
    ['new_subscriber without shopId', () => ({ type: 'new_subscriber' })],
    ['order_status without status', () => ({ type: 'order_status', orderId: P() })],
    ['order_status without orderId', () => ({ type: 'order_status', status: 'confirmed' })],
    ['shopId 0', () => '{"type":"product_added","shopId":0,"productId":5}'],
    ['shopId -1', () => '{"type":"product_added","shopId":-1,"productId":5}'],
    ['shopId 1.0', () => '{"type":"product_added","shopId":1.0,"productId":5}'],
    ['shopId 1e3', () => '{"type":"product_added","shopId":1e3,"productId":5}'],
    ['productId 2^53', () => '{"type":"product_added","shopId":1,"productId":9007199254740992}'],
    ['orderId 2^64', () => '{"type":"order_status","orderId":18446744073709551616,"status":"paid"}'],
    ['shopId true', () => '{"type":"product_added","shopId":true,"productId":5}'],
    ['shopId null', () => '{"type":"product_added","shopId":null,"productId":5}'],
    ['empty string id', () => ({ type: 'product_added', shopId: '', productId: P() })],
    ['string id of 65 characters', () => ({ type: 'product_added', shopId: 'a'.repeat(65), productId: P() })],
    ['string id with a space', () => ({ type: 'product_added', shopId: 'a b', productId: P() })],
    ['string id with a slash', () => ({ type: 'product_added', shopId: 'a/b', productId: P() })],
    ['userId 0', () => ({ type: 'order_status', orderId: P(), status: 'paid', userId: 0 })],
    ['empty status', () => ({ type: 'order_status', orderId: P(), status: '' })],
    ['status of 33 characters', () => ({ type: 'order_status', orderId: P(), status: 's'.repeat(33) })],
    ['status of 33 code points', () => ({ type: 'order_status', orderId: P(), status: '😀'.repeat(33) })],
    ['status not a string', () => ({ type: 'order_status', orderId: P(), status: 5 })],
    ['reserved id field', () => ({ type: 'product_added', shopId: 1, productId: P(), id: 'k3f9:17' })],
    ['duplicate keys', () => `{"type":"product_added","shopId":1,"shopId":2,"productId":${P()}}`],
    ['duplicate type', () => `{"type":"product_added","type":"product_deleted","shopId":1,"productId":${P()}}`],
    ['reserved id spelled with an escape', () => `{"type":"product_added","shopId":1,"productId":${P()},"\\u0069d":"x"}`],
    ['duplicate keys, one spelled with an escape', () => `{"type":"product_added","shopId":1,"shop\\u0049d":2,"productId":${P()}}`],
    ['duplicate keys in a nested object', () => `{"type":"product_added","shopId":1,"productId":${P()},"meta":{"a":1,"a":2}}`],
  ];
  for (const [label, body] of cases) {
    test(`${label} -> 400 invalid_event`, async () => {
      await expectRefused(label, () => post(stack, body()), 400, 'invalid_event');
    });
  }

  const accepted = [
    ['productId 2^53-1', () => `{"type":"product_added","shopId":1,"productId":9007199254740991}`],
    ['string ids of 1 and 64 characters from [A-Za-z0-9_-]', () => ({ type: 'product_added', shopId: 'x', productId: `A-z_09${'q'.repeat(58)}` })],
    ['status of 32 characters', () => ({ type: 'order_status', orderId: nextId(), status: 's'.repeat(32) })],
    ['status of 32 code points (64 UTF-16 units)', () => ({ type: 'order_status', orderId: nextId(), status: '😀'.repeat(32) })],
    ['an id field in a nested object, and ID in other case', () => ({ type: 'product_added', shopId: 1, productId: nextId(), meta: { id: 5 }, ID: 6 })],
    ['the type key and value spelled with escapes', () => `{"typ\\u0065":"product\\u005fadded","shopId":"a\\u0062c","productId":${nextId()}}`],
  ];
  for (const [label, body] of accepted) {
    test(`${label} is accepted`, async () => {
      const b = body();
      const reply = await publishOk(stack, b);
      await expectDelivered(reply, typeof b === 'string' ? JSON.parse(b) : b);
    });
  }
});

describe('Idempotency-Key', () => {
  test('the same key twice -> the same id, broadcast once; another key -> a new id', async () => {
    const key = `order-${nextId()}-attempt`;
    const event = validEvent({ note: 'idempotent' });
    const first = await publishOk(stack, event, { headers: { 'idempotency-key': key } });
    const second = await publishOk(stack, event, { headers: { 'idempotency-key': key } });
    assert.equal(second.id, first.id);
    assert.equal(second.type, event.type);
    assert.equal(second.message, 'Broadcast sent');
    await expectDelivered(first, event);
    // The retry was not broadcast: the next event follows the first directly.
    await followWithValid('after idempotent retry');

    const other = await publishOk(stack, event, { headers: { 'idempotency-key': `${key}-2` } });
    assert.notEqual(other.id, first.id);
    await expectDelivered(other, event);
  });

  test('concurrent requests with the same key: one broadcast, every reply has its id', async () => {
    const key = `concurrent-${nextId()}`;
    const event = validEvent({ note: 'concurrent' });
    const replies = await Promise.all(Array.from({ length: 8 }, () => post(stack, event, { headers: { 'idempotency-key': key } })));
    for (const r of replies) assert.equal(r.status, 200, r.text);
    const ids = new Set(replies.map((r) => r.json.id));
    assert.equal(ids.size, 1, `ids ${[...ids]}`);
    await expectDelivered(replies[0].json, event);
    await followWithValid('after concurrent retries');
  });

  test('a key is forgotten after SHOPCAST_IDEMPOTENCY_TTL: the same key then publishes anew', async () => {
    const key = `ttl-${nextId()}`;
    const event = validEvent({ note: 'ttl' });
    const first = await publishOk(stack, event, { headers: { 'idempotency-key': key } });
    await expectDelivered(first, event);
    await new Promise((r) => setTimeout(r, IDEMPOTENCY_TTL * 1000 + 1200));
    const later = await publishOk(stack, event, { headers: { 'idempotency-key': key } });
    assert.notEqual(later.id, first.id);
    await expectDelivered(later, event);
  });

  test('the same key with another event -> 422 idempotency_key_reused, nothing published', async () => {
    const key = `reused-${nextId()}`;
    const event = validEvent({ note: 'first use of the key' });
    const first = await publishOk(stack, event, { headers: { 'idempotency-key': key } });
    await expectDelivered(first, event);

    // Another event (one the listening page would receive), and a private one, under the same key.
    for (const other of [validEvent({ note: 'another event' }), { type: 'order_status', orderId: nextId(), status: 'paid', userId: 302 }]) {
      const res = await post(stack, other, { headers: { 'idempotency-key': key } });
      assertJsonError(res, 422, 'idempotency_key_reused', `reused key for ${other.type}`);
      assert.equal(typeof res.json.message, 'string');
      assert.equal(res.json.id, undefined, 'no id: nothing was published');
    }
    // Nothing arrived in between: the next event follows the first directly.
    await followWithValid('after a reused key');

    // "The same body" is the same bytes browsers would get (whitespace around the object aside):
    // a retry that resends them is a duplicate, a reformatted body is another event.
    const retry = await post(stack, `\n  ${JSON.stringify(event)}\n`, { headers: { 'idempotency-key': key } });
    assert.equal(retry.status, 200, retry.text);
    assert.equal(retry.json.id, first.id);
    const reformatted = await post(stack, JSON.stringify(event, null, 2), { headers: { 'idempotency-key': key } });
    assertJsonError(reformatted, 422, 'idempotency_key_reused', 'reformatted body');
    await followWithValid('after the retry');
  });

  test('a key of 128 visible ASCII characters is accepted', async () => {
    const event = validEvent();
    const key = '!~'.repeat(64);
    const reply = await publishOk(stack, event, { headers: { 'idempotency-key': key } });
    await expectDelivered(reply, event);
  });

  const invalid = [
    ['129 characters', 'k'.repeat(129)],
    ['a space inside', 'abc def'],
    ['a non-ASCII character', 'caf\u00e9'],
  ];
  for (const [label, key] of invalid) {
    test(`a key of ${label} -> 400, not broadcast`, async () => {
      await expectRefused(`Idempotency-Key ${label}`, () => post(stack, validEvent(), { headers: { 'idempotency-key': key } }), 400, 'invalid_event');
    });
  }
});

describe('logs', () => {
  test('the daemon logs a Broadcast line with type, id and recipients', async () => {
    const event = { type: 'shop_updated', shopId: nextId() };
    const reply = await publishOk(stack, event);
    await expectDelivered(reply, event);
    const line = new RegExp(`Broadcast sent: shop_updated id=${escapeRegExp(reply.id)} recipients=1\\b`);
    let log = '';
    for (let i = 0; i < 20 && !line.test(log); i++) {
      log = String(await stack.daemonLog());
      if (!line.test(log)) await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(log, line);
  });

  test('no log (daemon, fcgi, nginx) contains a secret or a refused secret value', async () => {
    const logs = {
      daemon: String(await stack.daemonLog()),
      fcgi: String(await stack.fcgiLog()),
      nginx: String(await stack.nginxLog()),
    };
    for (const [name, text] of Object.entries(logs)) {
      assert.ok(!text.includes(stack.secret.slice(0, 24)), `${name} log contains the secret`);
      assert.ok(!text.includes(PREVIOUS_SECRET.slice(0, 24)), `${name} log contains the previous secret`);
      assert.ok(!text.includes(WRONG_SECRET), `${name} log contains a refused secret`);
      assert.ok(!/x-internal-secret:/i.test(text), `${name} log contains the secret header`);
    }
    assert.ok(logs.daemon.length > 0 && logs.fcgi.length > 0, 'daemon and fcgi logs were read');
  });
});
