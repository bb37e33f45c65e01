// The production nginx site as shipped (nginx/shopcast.conf and nginx/snippets/), rendered only
// with the test's ports, certificate and paths (startStack({ site: 'production' })): publishing
// and /ws over https, the JSON error pages, port 80's refusal and redirect, and the publisher
// allow-list, as shipped (this host only) and as an operator narrows it.
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

  test('the page is served over https', async () => {
    const res = await request(`${stack.httpsUrl}/`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
  });

  test("nginx's own errors are the API's JSON: 413, and 503 with Retry-After while the app is down", async () => {
    const big = await publishOver(stack, { type: 'shop_updated', shopId: 1, pad: 'x'.repeat(1 << 20) });
    assertJsonError(big, 413, 'payload_too_large', '1 MiB over https');
    await stack.stopFcgi();
    try {
      const down = await publishOver(stack, { type: 'shop_updated', shopId: 1 });
      assertJsonError(down, 503, 'unavailable', 'fcgi down');
      assert.equal(down.headers['retry-after'], '1');
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
        const edited = text.replace(/^(\s*)allow\s+127\.0\.0\.1;\n\s*allow\s+::1;\n/m, '$1allow           192.0.2.10;\n');
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
