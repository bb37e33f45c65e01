// Telegram authentication and private events (DESIGN.md "WebSocket protocol", "Precise
// rules"): initData validated with the bot token (HMAC) or with the bot id and Telegram's
// Ed25519 key; every invalid initData answers `error` and leaves the connection open and
// anonymous; an event with userId reaches only that user's connections, live and on resume.
import { describe, test, before, after } from 'node:test';
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
} from './helpers.mjs';
import crypto from 'node:crypto';
import { makeInitData, makeSignedInitData, generateTestKeyPair, dataCheckString } from '../lib/telegram-init-data.mjs';

const BOT_ID = 7000000001;
const BOT_TOKEN = `${BOT_ID}:AAH-shopcast-integration-test-token_0123456789`;
const OTHER_TOKEN = `${BOT_ID}:AAH-some-other-bots-token-not-configured_98765`;
const MAX_AGE = 3600;
const ALICE = { id: 111111, first_name: 'Alice', last_name: 'Tester', username: 'alice', language_code: 'en' };
const BOB = { id: 222222, first_name: 'Bob', username: 'bob_b', language_code: 'ru', is_premium: true };
const CAROL = { id: 333333, first_name: 'Carol' };

const now = () => Math.floor(Date.now() / 1000);
const clients = [];
let keys;
let otherKeys;

async function open(stack, options) {
  const c = await connectClient(stack.wsUrl, options);
  clients.push(c);
  return c;
}

// Sends auth and returns the answer (auth_ok or error).
async function auth(c, initData) {
  const from = c.messages.length;
  c.send({ action: 'auth', initData });
  return c.waitFor((m) => m.type === 'auth_ok' || m.type === 'error', { from, label: 'the answer to auth' });
}

function hmacData(user, authDate = now(), extra = {}, botToken = BOT_TOKEN) {
  return makeInitData({ botToken, user, authDate, extra });
}

function signedData(user, authDate = now(), extra = {}, privateKey = keys.privateKey) {
  return makeSignedInitData({ botId: BOT_ID, privateKey, user, authDate, extra });
}

// Correctly hashed initData without a user field (makeInitData always adds one).
function hmacDataWithoutUser(authDate = now()) {
  const fields = [['query_id', 'AAHdF6IQAAAAAN0XohDhrOrc'], ['auth_date', String(authDate)]];
  const secretKey = crypto.createHmac('sha256', 'WebAppData').update(BOT_TOKEN).digest();
  fields.push(['hash', crypto.createHmac('sha256', secretKey).update(dataCheckString(fields)).digest('hex')]);
  return fields.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
}

// Changes one character of the user's first name inside the URL-encoded initData.
function tamperName(initData, from, to) {
  assert.ok(initData.includes(from), `initData contains ${from}`);
  return initData.replace(from, to);
}

function replaceParam(initData, name, value) {
  const re = new RegExp(`(^|&)${name}=[^&]*`);
  assert.ok(re.test(initData), `initData has ${name}`);
  return initData.replace(re, `$1${name}=${value}`);
}

function paramOf(initData, name) {
  return new URLSearchParams(initData).get(name);
}

after(async () => {
  await closeAll(clients);
});

describe('auth configured (bot token, bot id, test Ed25519 key)', () => {
  let stack;
  before(async () => {
    keys = await generateTestKeyPair();
    otherKeys = await generateTestKeyPair();
    // Overrides: auth has no default token or bot id; the initData signatures are made with a
    // test key pair (Telegram's private key is not ours), so the daemon trusts its public half;
    // the max age is the one the auth_date edge cases are built around; REQUIRE_USER_FOR is the
    // optional rule its own test checks.
    stack = await startTestStack({
      daemonEnv: {
        BOT_TOKEN,
        SHOPCAST_BOT_ID: String(BOT_ID),
        SHOPCAST_TELEGRAM_PUBLIC_KEY: keys.publicKeyHex,
        SHOPCAST_AUTH_MAX_AGE: String(MAX_AGE),
      },
      fcgiEnv: { SHOPCAST_REQUIRE_USER_FOR: 'order_status' },
    });
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  test('valid HMAC initData -> auth_ok with the numeric userId', async () => {
    const c = await open(stack);
    const answer = await auth(c, hmacData(ALICE));
    assert.deepEqual(answer, { type: 'auth_ok', userId: ALICE.id });
    await closeAll([c]);
  });

  test('valid Ed25519-signed initData -> auth_ok', async () => {
    const c = await open(stack);
    const answer = await auth(c, signedData(BOB));
    assert.deepEqual(answer, { type: 'auth_ok', userId: BOB.id });
    await closeAll([c]);
  });

  test('initData with extra platform fields and an auth_date just inside the max age -> auth_ok', async () => {
    const c = await open(stack);
    const extra = { query_id: 'AAHdF6IQAAAAAN0XohDhrOrc', chat_type: 'sender', chat_instance: '-4209531651446545386' };
    const answer = await auth(c, hmacData(CAROL, now() - MAX_AGE + 120, extra));
    assert.deepEqual(answer, { type: 'auth_ok', userId: CAROL.id });
    await closeAll([c]);
  });

  test('initData is checked on its decoded values as sent: unicode, escaped slashes, & = + % in fields', async () => {
    // As Telegram sends it: a ready JSON string with "\/" escapes, which re-serializing would
    // change, and characters that are special in a query string.
    const userJson =
      '{"id":7123456789012,"first_name":"\u0410\u043b\u0438\u0441\u0430 😀","last_name":"A&B=C+D%E",' +
      '"username":"alice_ru","language_code":"ru","allows_write_to_pm":true,' +
      '"photo_url":"https:\/\/t.me\/i\/userpic\/320\/abc.svg"}';
    const extra = { start_param: 'shop_1 & more=yes+no%', chat_type: 'private' };
    for (const initData of [
      hmacData(userJson, now(), extra),
      signedData(userJson, now(), extra),
      makeSignedInitData({ botId: BOT_ID, privateKey: keys.privateKey, user: userJson, authDate: now(), extra, botToken: BOT_TOKEN }),
    ]) {
      const c = await open(stack);
      assert.deepEqual(await auth(c, initData), { type: 'auth_ok', userId: 7123456789012 });
      const priv = { type: 'order_status', orderId: nextId(), status: 'paid', userId: 7123456789012 };
      const reply = await publishOk(stack, priv);
      assert.equal(reply.recipients, 1);
      assert.deepEqual(await c.waitForEvent(reply.id), { ...priv, id: reply.id });
      await closeAll([c]);
    }
  });

  const invalid = [
    ['a tampered user field (HMAC)', () => tamperName(hmacData(ALICE), 'Alice', 'Alicf')],
    ['a tampered user field (Ed25519)', () => tamperName(signedData(ALICE), 'Alice', 'Alicf')],
    ['a wrong hash', () => {
      const data = hmacData(ALICE);
      const hash = paramOf(data, 'hash');
      return replaceParam(data, 'hash', (hash[0] === '0' ? '1' : '0') + hash.slice(1));
    }],
    ['a hash made with another bot token', () => hmacData(ALICE, now(), {}, OTHER_TOKEN)],
    ['a signature by another key', () => signedData(ALICE, now(), {}, otherKeys.privateKey)],
    ['a stale auth_date (older than SHOPCAST_AUTH_MAX_AGE)', () => hmacData(ALICE, now() - MAX_AGE - 120)],
    ['a stale auth_date (Ed25519)', () => signedData(ALICE, now() - MAX_AGE - 120)],
    ['an auth_date an hour in the future', () => hmacData(ALICE, now() + 3600)],
    ['no user field', () => hmacDataWithoutUser()],
    ['an empty string', () => ''],
    ['not a query string', () => '%%%garbage'],
  ];
  for (const [label, makeData] of invalid) {
    test(`${label} -> error; the connection stays open and anonymous`, async () => {
      const c = await open(stack);
      const answer = await auth(c, makeData());
      assert.equal(answer.type, 'error', JSON.stringify(answer));
      assert.equal(typeof answer.message, 'string');
      assert.ok(answer.message.length > 0);

      // Anonymous: a private event for Alice does not arrive, the public one after it does.
      const priv = await publishOk(stack, { type: 'order_status', orderId: nextId(), status: 'paid', userId: ALICE.id });
      const pub = await publishOk(stack, { type: 'shop_updated', shopId: 1 });
      await c.waitForEvent(pub.id);
      assert.deepEqual(c.eventIds(), [pub.id], `private ${priv.id} must not reach an anonymous connection`);
      assert.equal(c.closed, null);

      // The same connection can still authenticate.
      assert.deepEqual(await auth(c, hmacData(CAROL)), { type: 'auth_ok', userId: CAROL.id });
      await closeAll([c]);
    });
  }

  test('a failed re-auth leaves the connection anonymous: no private event of the earlier user follows', async () => {
    const c = await open(stack);
    assert.deepEqual(await auth(c, hmacData(ALICE)), { type: 'auth_ok', userId: ALICE.id });
    const before = await publishOk(stack, { type: 'order_status', orderId: nextId(), status: 'paid', userId: ALICE.id });
    await c.waitForEvent(before.id);

    // Stale initData for Bob: refused, and Alice's identity does not survive it.
    const answer = await auth(c, hmacData(BOB, now() - MAX_AGE - 120));
    assert.equal(answer.type, 'error', JSON.stringify(answer));
    assert.match(answer.message, /auth_date too old/);
    const forAlice = await publishOk(stack, { type: 'order_status', orderId: nextId(), status: 'shipped', userId: ALICE.id });
    assert.equal(forAlice.recipients, 0, 'the connection no longer counts as Alice');
    const pub = await publishOk(stack, { type: 'shop_updated', shopId: 1 });
    await c.waitForEvent(pub.id);
    assert.deepEqual(c.eventIds(), [before.id, pub.id], `private ${forAlice.id} must not reach it`);
    assert.equal(c.closed, null);
    await closeAll([c]);
  });

  test('failed auth is throttled per connection: after 5 failures even valid initData waits', async () => {
    const c = await open(stack);
    const forged = tamperName(hmacData(ALICE), 'Alice', 'Alicf');
    for (let i = 0; i < 5; i++) {
      const answer = await auth(c, forged);
      assert.match(answer.message, /hash mismatch/, `attempt ${i + 1}`);
    }
    const throttled = await auth(c, hmacData(ALICE));
    assert.equal(throttled.type, 'error');
    assert.match(throttled.message, /too many failed attempts/);
    assert.equal(c.closed, null, 'answered, not closed');
    // Another connection is not affected.
    const other = await open(stack);
    assert.deepEqual(await auth(other, hmacData(ALICE)), { type: 'auth_ok', userId: ALICE.id });
    await closeAll([c, other]);
  });

  test('auth with initData that is not a string -> error', async () => {
    const c = await open(stack);
    c.send({ action: 'auth', initData: 42 });
    const answer = await c.waitForType('error');
    assert.equal(typeof answer.message, 'string');
    assert.equal(c.closed, null);
    await closeAll([c]);
  });

  test('a private event reaches only its user, live and on resume', async () => {
    const alice = await open(stack);
    const bob = await open(stack);
    const alice2 = await open(stack); // a second tab of the same user
    const anon = await open(stack);
    assert.deepEqual(await auth(alice, hmacData(ALICE)), { type: 'auth_ok', userId: ALICE.id });
    assert.deepEqual(await auth(bob, signedData(BOB)), { type: 'auth_ok', userId: BOB.id });
    assert.deepEqual(await auth(alice2, signedData(ALICE)), { type: 'auth_ok', userId: ALICE.id });
    const since = anon.hello.id;

    const forAlice = { type: 'order_status', orderId: nextId(), status: 'confirmed', userId: ALICE.id };
    const forBob = { type: 'order_status', orderId: nextId(), status: 'shipped', userId: String(BOB.id) };
    const forCarol = { type: 'order_status', orderId: nextId(), status: 'paid', userId: CAROL.id };
    const pub = { type: 'product_added', shopId: 9, productId: nextId() };
    const rA = await publishOk(stack, forAlice);
    const rB = await publishOk(stack, forBob);
    const rC = await publishOk(stack, forCarol);
    const rP = await publishOk(stack, pub);
    assert.equal(rA.recipients, 2, 'both of Alice\'s connections');
    assert.equal(rB.recipients, 1);
    assert.equal(rC.recipients, 0);
    assert.equal(rP.recipients, 4);

    // rP was published last: a duplicate of anything before it would have come first.
    for (const c of [alice, bob, alice2, anon]) await c.waitForEvent(rP.id);
    const E = (e, r) => ({ ...e, id: r.id });
    assert.deepEqual(alice.events(), [E(forAlice, rA), E(pub, rP)]);
    assert.deepEqual(alice2.events(), [E(forAlice, rA), E(pub, rP)]);
    assert.deepEqual(bob.events(), [E(forBob, rB), E(pub, rP)]);
    assert.deepEqual(anon.events(), [E(pub, rP)]);

    // Replay: each resuming connection gets what it may see, nothing else.
    const replay = async (initData) => {
      const c = await open(stack, { resume: false });
      if (initData) await auth(c, initData);
      c.send({ action: 'resume', since });
      await c.waitForEvent(rP.id); // the last one published: nothing comes after it
      return c.events();
    };
    assert.deepEqual(await replay(signedData(ALICE)), [E(forAlice, rA), E(pub, rP)]);
    assert.deepEqual(await replay(hmacData(BOB)), [E(forBob, rB), E(pub, rP)]);
    assert.deepEqual(await replay(hmacData(CAROL)), [E(forCarol, rC), E(pub, rP)]);
    assert.deepEqual(await replay(null), [E(pub, rP)]);
    assert.deepEqual(await replay(tamperName(hmacData(ALICE), 'Alice', 'Alicf')), [E(pub, rP)]);
    await closeAll([alice, bob, alice2, anon]);
  });

  test('a private event does not reach another user through a shop subscription', async () => {
    const bob = await open(stack);
    assert.deepEqual(await auth(bob, hmacData(BOB)), { type: 'auth_ok', userId: BOB.id });
    bob.send({ action: 'subscribe', shops: [9] });
    await bob.waitForType('subscribed');
    const priv = await publishOk(stack, { type: 'product_updated', shopId: 9, productId: nextId(), userId: ALICE.id });
    const pub = await publishOk(stack, { type: 'product_updated', shopId: 9, productId: nextId() });
    await bob.waitForEvent(pub.id);
    assert.deepEqual(bob.eventIds(), [pub.id], `private ${priv.id} stays with its user`);
    await closeAll([bob]);
  });

  test('SHOPCAST_REQUIRE_USER_FOR=order_status: order_status without userId -> 400 invalid_event', async () => {
    const c = await open(stack);
    const res = await post(stack, { type: 'order_status', orderId: nextId(), status: 'paid' });
    assertJsonError(res, 400, 'invalid_event', 'order_status without userId');
    assert.match(res.json.message, /userId/);
    // Other types are unaffected, and nothing refused was broadcast.
    const reply = await publishOk(stack, { type: 'new_subscriber', shopId: 3 });
    await c.waitForEvent(reply.id);
    assert.deepEqual(c.eventIds(), [reply.id]);
    await closeAll([c]);
  });
});

describe('auth not configured', () => {
  let stack;
  before(async () => {
    keys ??= await generateTestKeyPair();
    stack = await startTestStack();
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  test('without a bot token or bot id, auth answers error "auth not configured"', async () => {
    const c = await open(stack);
    const answer = await auth(c, hmacData(ALICE));
    assert.equal(answer.type, 'error');
    assert.equal(answer.message, 'auth not configured');
    const priv = await publishOk(stack, { type: 'order_status', orderId: nextId(), status: 'paid', userId: ALICE.id });
    assert.equal(priv.recipients, 0);
    const pub = await publishOk(stack, { type: 'order_status', orderId: nextId(), status: 'paid' });
    await c.waitForEvent(pub.id);
    assert.deepEqual(c.eventIds(), [pub.id]);
    await closeAll([c]);
  });

  test('with only the bot id and the public key, Ed25519 initData works and HMAC-only initData does not', async () => {
    await stack.stopDaemon();
    await stack.startDaemon({ SHOPCAST_BOT_ID: String(BOT_ID), SHOPCAST_TELEGRAM_PUBLIC_KEY: keys.publicKeyHex });
    const c = await open(stack);
    const hmacOnly = new URLSearchParams(hmacData(ALICE));
    hmacOnly.delete('signature');
    const refused = await auth(c, hmacOnly.toString());
    assert.equal(refused.type, 'error');
    assert.deepEqual(await auth(c, signedData(ALICE)), { type: 'auth_ok', userId: ALICE.id });
    // Real initData carries both fields: the hash (made with a token this daemon does not
    // have) is left out of the signature check.
    const both = makeSignedInitData({ botId: BOT_ID, privateKey: keys.privateKey, user: BOB, authDate: now(), botToken: BOT_TOKEN });
    assert.deepEqual(await auth(c, both), { type: 'auth_ok', userId: BOB.id });
    await closeAll([c]);
  });
});
