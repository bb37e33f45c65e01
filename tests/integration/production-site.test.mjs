// The production nginx site as shipped (nginx/shopcast.conf and nginx/snippets/), rendered only
// with the test's ports, certificate and paths (startStack({ site: 'production' })): publishing
// and /ws over https, the JSON error pages (with HSTS), no demo page, port 80's refusal and
// redirect, and the publisher allow-list: as shipped (this host only), as an operator widens it
// and as an operator narrows it. (Malformed requests: wire.test.mjs, on both sites.)
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startTestStack,
  stopTestStack,
  connectClient,
  closeAll,
  post,
  request,
  assertJsonError,
  nextId,
  PUBLISH_PATH,
} from './helpers.mjs';

const publishOver = (stack, event, options = {}) => post(stack, event, { base: stack.httpsUrl, ...options });

describe('production site, as shipped', () => {
  let stack;
  const clients = [];
  before(async () => {
    stack = await startTestStack({ site: 'production' });
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  async function open() {
    const client = await connectClient(stack.wssUrl, { origin: stack.httpsOrigin });
    clients.push(client);
    return client;
  }

  test('a publish over https from this host is delivered over wss /ws to exactly the one browser', async () => {
    const client = await open();
    const event = { type: 'product_added', shopId: 12, productId: nextId(), name: 'Чай' };
    const res = await publishOver(stack, event);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.success, true);
    assert.equal(res.json.recipients, 1);
    const got = await client.waitForEvent(res.json.id, { timeout: 5000 });
    assert.equal(got.name, 'Чай');
    assert.equal(res.headers['strict-transport-security'], 'max-age=63072000');
  });

  test('port 80 refuses a publish with JSON https_required and never forwards it', async () => {
    const client = await open();
    const res = await post(stack, { type: 'shop_updated', shopId: 12, note: 'over http' }, { base: stack.httpUrl });
    assertJsonError(res, 403, 'https_required', 'publish over http');
    // A probe over https: once it arrived, the refused event would have too.
    const probe = await publishOver(stack, { type: 'shop_updated', shopId: 12, note: 'probe' });
    assert.equal(probe.status, 200, probe.text);
    await client.waitForEvent(probe.json.id, { timeout: 5000 });
    assert.deepEqual(client.events().map((m) => m.note), ['probe']);
  });

  test('port 80 redirects pages (and /ws) to https with 301', async () => {
    for (const pathAndQuery of ['/', '/index.html?x=1', '/ws']) {
      const res = await request(`${stack.httpUrl}${pathAndQuery}`);
      assert.equal(res.status, 301, pathAndQuery);
      assert.equal(res.headers.location, `https://127.0.0.1${pathAndQuery}`);
    }
  });

  test('no demo page or anything else: 404 JSON (with HSTS) for /, the page and the client module', async () => {
    for (const page of ['/', '/index.html', '/shopcast-client.js', '/web/index.html']) {
      const res = await request(`${stack.httpsUrl}${page}`);
      assertJsonError(res, 404, 'not_found', page);
      assert.equal(res.headers['strict-transport-security'], 'max-age=63072000', page);
    }
  });

  test('the shipped allow-list refuses another address (127.0.0.2) with JSON 403 forbidden, HSTS on it', async () => {
    const client = await open();
    const refused = await request(`${stack.httpsUrl}${PUBLISH_PATH}`, {
      method: 'POST',
      localAddress: '127.0.0.2',
      headers: { 'content-type': 'application/json', 'x-internal-secret': stack.secret },
      body: JSON.stringify({ type: 'shop_updated', shopId: 4, note: 'from 127.0.0.2' }),
    });
    assertJsonError(refused, 403, 'forbidden', 'from 127.0.0.2');
    assert.equal(refused.headers['strict-transport-security'], 'max-age=63072000');
    const probe = await publishOver(stack, { type: 'shop_updated', shopId: 4, note: 'probe' });
    assert.equal(probe.status, 200, probe.text);
    await client.waitForEvent(probe.json.id, { timeout: 5000 });
    assert.deepEqual(client.events().map((m) => m.note), ['probe']);
  });

  test("nginx's own errors are the API's JSON: 413, and 503 with Retry-After while the app is down", async () => {
    const big = await publishOver(stack, { type: 'shop_updated', shopId: 1, pad: 'x'.repeat(1 << 20) });
    assertJsonError(big, 413, 'payload_too_large', '1 MiB over https');
    assert.equal(big.headers['strict-transport-security'], 'max-age=63072000');
    await stack.stopFcgi();
    try {
      const down = await publishOver(stack, { type: 'shop_updated', shopId: 1 });
      assertJsonError(down, 503, 'unavailable', 'fcgi down');
      assert.equal(down.headers['retry-after'], '1');
      assert.equal(down.headers['strict-transport-security'], 'max-age=63072000');
    } finally {
      await stack.startFcgi();
    }
    const back = await publishOver(stack, { type: 'shop_updated', shopId: 1 });
    assert.equal(back.status, 200, back.text);
  });

  test('the app\'s own errors pass through unchanged (401 without the secret, 405 for GET)', async () => {
    assertJsonError(await publishOver(stack, { type: 'shop_updated', shopId: 1 }, { secret: null }), 401, 'unauthorized', 'no secret');
    const get = await request(`${stack.httpsUrl}/api/internal/broadcast`);
    assertJsonError(get, 405, 'method_not_allowed', 'GET');
  });
});

describe('production site with the allow-list narrowed to another host (as an operator edits it)', () => {
  let stack;
  before(async () => {
    stack = await startTestStack({
      site: 'production',
      // The bot posts from 192.0.2.10 only: this host is no longer allowed.
      siteRewrite: (text) => {
        const edited = text.replace(/^(\s*)127\.0\.0\.1\s+1;\n\s*::1\s+1;\n/m, '$1192.0.2.10          1;\n');
        assert.notEqual(edited, text, 'the shipped allow-list names 127.0.0.1 and ::1');
        return edited;
      },
    });
  });
  after(async () => {
    await stopTestStack(stack);
  });

  test('a publish with the right secret from an address not listed -> JSON 403 forbidden, nothing delivered', async () => {
    const client = await connectClient(stack.wssUrl, { origin: stack.httpsOrigin });
    try {
      const res = await publishOver(stack, { type: 'shop_updated', shopId: 3 });
      assertJsonError(res, 403, 'forbidden', 'not on the allow-list');
      // /ws is not behind the allow-list: the browser is still connected and got nothing.
      assert.equal((await client.sync()).type, 'subscribed');
      assert.deepEqual(client.events(), []);
    } finally {
      await closeAll([client]);
    }
  });
});

describe("production site with the bot's host added to the allow-list (as an operator edits it)", () => {
  let stack;
  before(async () => {
    stack = await startTestStack({
      site: 'production',
      // The bot posts from 127.0.0.2 as well: one line in the documented geo block.
      siteRewrite: (text) => {
        const edited = text.replace(/^(\s*)#192\.0\.2\.10(\s+)1;/m, '$1127.0.0.2$2   1;');
        assert.notEqual(edited, text, 'the shipped allow-list has the commented example line');
        return edited;
      },
    });
  });
  after(async () => {
    await stopTestStack(stack);
  });

  test('a publish from the added address is accepted, and this host still may', async () => {
    const fromBot = await request(`${stack.httpsUrl}${PUBLISH_PATH}`, {
      method: 'POST',
      localAddress: '127.0.0.2',
      headers: { 'content-type': 'application/json', 'x-internal-secret': stack.secret },
      body: JSON.stringify({ type: 'shop_updated', shopId: 5 }),
    });
    assert.equal(fromBot.status, 200, fromBot.text);
    const fromHere = await publishOver(stack, { type: 'shop_updated', shopId: 5 });
    assert.equal(fromHere.status, 200, fromHere.text);
  });
});
