// What nginx answers itself (DESIGN.md: "nginx answers this one too: JSON, not HTML", the 429
// row, the demo page): the flood guard, oversized bodies, the FastCGI app being down, GET /.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  startTestStack,
  stopTestStack,
  connectClient,
  closeAll,
  post,
  request,
  publishOk,
  assertJsonError,
  nextId,
  sleep,
  waitForAccessLog,
  PUBLISH_PATH,
} from './helpers.mjs';

describe('flood guard squeezed to 1r/s, burst 5', () => {
  let stack;
  let client;
  before(async () => {
    // The default guard (10,000 r/s) is far above what a test can send; squeezed, its 429 shows.
    stack = await startTestStack({ rateLimit: '1r/s', rateBurst: 5 });
    client = await connectClient(stack.wsUrl);
  });
  after(async () => {
    await closeAll([client]);
    await stopTestStack(stack);
  });

  test('30 concurrent publishes: at most burst+1 pass, the rest get a JSON 429 rate_limited', async () => {
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, n) => post(stack, { type: 'product_added', shopId: 1, productId: n + 1, n })),
    );
    const ok = results.filter((r) => r.status === 200);
    const limited = results.filter((r) => r.status === 429);
    assert.equal(ok.length + limited.length, 30, `statuses ${results.map((r) => r.status)}`);
    assert.ok(ok.length >= 1 && ok.length <= 7, `${ok.length} accepted`);
    assert.ok(limited.length >= 23, `${limited.length} limited`);
    for (const r of limited) {
      assertJsonError(r, 429, 'rate_limited', '429');
      assert.equal(typeof r.json.message, 'string');
    }
    // Exactly the accepted publishes reach the browser.
    const ids = ok.map((r) => r.json.id);
    await client.waitForCount((m) => typeof m.n === 'number', ids.length);
    await sleep(100);
    assert.deepEqual(client.events().map((m) => m.id).sort(), [...ids].sort());
  });

  test('after the bucket refills, publishing works again', async () => {
    await sleep(1100);
    const reply = await publishOk(stack, { type: 'shop_updated', shopId: 2 });
    await client.waitForEvent(reply.id);
  });
});

describe('default stack', () => {
  let stack;
  before(async () => {
    stack = await startTestStack();
  });
  after(async () => {
    await stopTestStack(stack);
  });

  test('a 1 MiB body is refused by nginx with a JSON 413 payload_too_large', async () => {
    const body = JSON.stringify({ type: 'product_added', shopId: 1, productId: 2, pad: 'z'.repeat(1024 * 1024) });
    const res = await post(stack, body);
    assertJsonError(res, 413, 'payload_too_large', '1 MiB');
    assert.ok(!/<html/i.test(res.text));
  });

  test('a 1 MiB chunked body (no Content-Length) is refused with a JSON 413', async () => {
    const body = JSON.stringify({ type: 'product_added', shopId: 1, productId: 2, pad: 'z'.repeat(1024 * 1024) });
    // curl sends a chunked body when Transfer-Encoding is set; it reads the body from stdin.
    const child = execFile('curl', [
      '-sS', '-o', '-', '-w', '\n%{http_code} %{content_type}',
      '-X', 'POST', `${stack.httpUrl}${PUBLISH_PATH}`,
      '-H', 'Content-Type: application/json',
      '-H', `x-internal-secret: ${stack.secret}`,
      '-H', 'Transfer-Encoding: chunked',
      '--data-binary', '@-',
    ], { timeout: 10000 });
    child.stdin.on('error', () => {});
    child.stdin.end(body);
    const stdout = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      child.on('error', reject);
      child.on('close', () => resolve(out));
    });
    const lines = stdout.trim().split('\n');
    const [code, contentType] = lines.at(-1).split(' ');
    assert.equal(code, '413', stdout);
    assert.match(contentType, /^application\/json/);
    assert.equal(JSON.parse(lines.slice(0, -1).join('\n')).error, 'payload_too_large');
  });

  test('with shopcast-fcgi stopped, nginx answers JSON unavailable with Retry-After, and 200 once it is back', async () => {
    await stack.stopFcgi();
    try {
      const res = await post(stack, { type: 'shop_updated', shopId: 3 });
      // DESIGN.md's publish contract has 503 for "unavailable", no 502.
      assertJsonError(res, 503, 'unavailable', 'fcgi down');
      assert.equal(res.headers['retry-after'], '1');
    } finally {
      await stack.startFcgi();
    }
    const c = await connectClient(stack.wsUrl);
    const reply = await publishOk(stack, { type: 'shop_updated', shopId: 3, productId: nextId() });
    await c.waitForEvent(reply.id);
    await closeAll([c]);
  });

  test('GET / serves the demo page over http and https', async () => {
    for (const base of [stack.httpUrl, stack.httpsUrl]) {
      const res = await request(`${base}/`);
      assert.equal(res.status, 200, base);
      assert.match(String(res.headers['content-type']), /^text\/html/);
      assert.match(res.text, /^<!doctype html>/i);
      assert.match(res.text, /<title>Shopcast demo<\/title>/);
      const script = /<script[^>]+src="([^"]+)"/.exec(res.text);
      assert.ok(script, 'the page loads a script');
      const js = await request(new URL(script[1], `${base}/`).href);
      assert.equal(js.status, 200, script[1]);
      assert.match(String(js.headers['content-type']), /javascript/);
    }
  });

  test('the secret header is not written to the access log', async () => {
    // A marker in the path (a 404 of its own) tells when nginx wrote the publish's line: it
    // logs requests in order on its one worker.
    await publishOk(stack, { type: 'shop_updated', shopId: 5 });
    const marker = `/access-log-marker-${nextId()}`;
    assert.equal((await request(`${stack.httpUrl}${marker}`)).status, 404);
    const log = await waitForAccessLog(stack, marker);
    assert.match(log, /POST \/api\/internal\/broadcast/);
    assert.ok(!log.includes(stack.secret.slice(0, 24)));
  });
});
