// Guessing the publish secret (DESIGN.md "Rate limits never drop a legitimate bot's events"):
// shopcast-fcgi counts wrong secrets per client address and, after too many within the window,
// answers 429 with Retry-After for the lockout, whatever secret the address sends. The bot's
// addresses (SHOPCAST_PUBLISHER_ADDRESSES, by default loopback 127.0.0.1 and ::1) are never
// locked out.
//
// The guesser posts from 127.0.0.2: nginx listens on 127.0.0.1, and any 127.x address reaches
// it, so nginx reports remote_addr 127.0.0.2, an address not named as the bot's.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestStack, stopTestStack, connectClient, closeAll, assertJsonError, sleep, request, PUBLISH_PATH } from './helpers.mjs';

const GUESSER = '127.0.0.2';
const BOT = '127.0.0.1';
const WRONG_SECRET = 'x'.repeat(48);

// One publish from `from`; resolves with request()'s reply plus when it was sent and answered (ms).
async function publishFrom(stack, from, event, secret) {
  const sentAt = Date.now();
  const reply = await request(`${stack.httpUrl}${PUBLISH_PATH}`, {
    method: 'POST',
    localAddress: from,
    headers: { 'content-type': 'application/json', 'x-internal-secret': secret },
    body: JSON.stringify(event),
  });
  return { ...reply, sentAt, answeredAt: Date.now() };
}

async function guessTwentyTimes(stack) {
  const replies = [];
  for (let n = 0; n < 20; n += 1) {
    replies.push(await publishFrom(stack, GUESSER, { type: 'shop_updated', shopId: 9100, guess: n }, WRONG_SECRET));
  }
  return replies;
}

function assertLockedOut(reply, maxRetryAfter, label) {
  assertJsonError(reply, 429, 'rate_limited', label);
  const retryAfter = Number(reply.headers['retry-after']);
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= maxRetryAfter, `${label}: Retry-After ${reply.headers['retry-after']}`);
}

describe('defaults: 10 wrong secrets lock an address out for 300 s; the bot is never locked out', () => {
  let stack;
  let page;
  before(async () => {
    stack = await startTestStack();
    page = await connectClient(stack.wsUrl);
  });
  after(async () => {
    await closeAll([page]);
    await stopTestStack(stack);
  });

  test('20 wrong secrets from 127.0.0.2: 10 × 401, then 429 whatever the secret; 127.0.0.1 still publishes', async () => {
    const replies = await guessTwentyTimes(stack);
    assert.deepEqual(replies.map((r) => r.status), [...Array(10).fill(401), ...Array(10).fill(429)]);
    for (const r of replies.slice(10)) assertLockedOut(r, 300, 'guess during the lockout');
    assert.ok(Number(replies.at(-1).headers['retry-after']) >= 290, 'about five minutes left');

    const lucky = await publishFrom(stack, GUESSER, { type: 'shop_updated', shopId: 9101 }, stack.secret);
    assertLockedOut(lucky, 300, 'the right secret during the lockout');

    for (let n = 0; n < 20; n += 1) {
      const wrong = await publishFrom(stack, BOT, { type: 'shop_updated', shopId: 9102 }, WRONG_SECRET);
      assertJsonError(wrong, 401, 'unauthorized', `the bot's own wrong secret ${n}`);
    }
    const bot = await publishFrom(stack, BOT, { type: 'shop_updated', shopId: 9103 }, stack.secret);
    assert.equal(bot.status, 200, bot.text);
    await page.waitForEvent(bot.json.id);
    assert.deepEqual(page.events().map((m) => m.shopId), [9103], 'only the bot\'s event was broadcast');
    assert.match(stack.fcgiLog(), /refusing 127\.0\.0\.2 for 300 s after 10 wrong secrets/);
    assert.ok(!stack.fcgiLog().includes(stack.secret.slice(0, 16)), 'the secret is not logged');
  });
});

describe('a lockout ends after SHOPCAST_SECRET_LOCKOUT', () => {
  const LOCKOUT_S = 2;
  let stack;
  let page;
  before(async () => {
    // 2 s instead of 300 s, so the test can watch the lockout end.
    stack = await startTestStack({ fcgiEnv: { SHOPCAST_SECRET_LOCKOUT: LOCKOUT_S } });
    page = await connectClient(stack.wsUrl);
  });
  after(async () => {
    await closeAll([page]);
    await stopTestStack(stack);
  });

  test('the right secret from 127.0.0.2 is refused for the lockout, then accepted; 127.0.0.1 is never refused', async () => {
    const replies = await guessTwentyTimes(stack);
    assert.deepEqual(replies.map((r) => r.status), [...Array(10).fill(401), ...Array(10).fill(429)]);
    const lockingGuess = replies[9];

    const botIds = [];
    let refusals = 0;
    let accepted = null;
    for (let n = 0; !accepted; n += 1) {
      const bot = await publishFrom(stack, BOT, { type: 'shop_updated', shopId: 9200, n }, stack.secret);
      assert.equal(bot.status, 200, `the bot, attempt ${n}: ${bot.text}`);
      botIds.push(bot.json.id);

      const guesser = await publishFrom(stack, GUESSER, { type: 'shop_updated', shopId: 9201 }, stack.secret);
      if (guesser.status === 200) {
        accepted = guesser;
      } else {
        assertLockedOut(guesser, LOCKOUT_S, `the right secret from ${GUESSER}, attempt ${n}`);
        refusals += 1;
        assert.ok(guesser.sentAt - lockingGuess.sentAt < 30_000, 'the lockout ends');
        await sleep(200);
      }
    }
    assert.ok(refusals >= 1, 'refused right after the guesses');
    // Causality, not speed: the lockout began before the 10th guess was answered and the
    // accepted request was checked before its answer arrived.
    assert.ok(accepted.answeredAt - lockingGuess.sentAt >= LOCKOUT_S * 1000, `accepted ${accepted.answeredAt - lockingGuess.sentAt} ms after the locking guess`);
    await page.waitForEvent(accepted.json.id);
    for (const id of botIds) await page.waitForEvent(id);
    assert.equal(page.events().length, botIds.length + 1, 'nothing refused was broadcast');
  });
});
