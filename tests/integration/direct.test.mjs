// Direct mode (DESIGN.md "Listeners and direct mode"): shopcastd serves ws:// and wss:// on a
// loopback TCP port itself, beside the Unix socket nginx proxies to. The same protocol, origins
// and audience rules hold on every listener: delivery, resume, 403 for a foreign origin, private
// events; X-Real-IP counts only from a trusted proxy; bad listener settings stop the start-up.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  startTestStack,
  stopTestStack,
  connectClient,
  closeAll,
  publishOk,
  rawUpgrade,
  nextId,
  sleep,
  repoRoot,
} from './helpers.mjs';
import { makeInitData } from '../lib/telegram-init-data.mjs';

const BOT_ID = 7000000002;
const BOT_TOKEN = `${BOT_ID}:AAH-shopcast-direct-mode-test-token_0123456789`;
const ALICE = { id: 444444, first_name: 'Alice' };
const BOB = { id: 555555, first_name: 'Bob' };
const clients = [];

async function open(url, options) {
  const c = await connectClient(url, options);
  clients.push(c);
  return c;
}

// lws answers a refused upgrade in HTTP/1.0, nginx in 1.1: read the status from either.
async function upgradeStatus(url, options) {
  const { socket, head } = await rawUpgrade(url, options);
  socket.destroy();
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]), head };
}

async function auth(c, user) {
  const from = c.messages.length;
  c.send({ action: 'auth', initData: makeInitData({ botToken: BOT_TOKEN, user, authDate: Math.floor(Date.now() / 1000) }) });
  return c.waitFor((m) => m.type === 'auth_ok' || m.type === 'error', { from, label: 'the answer to auth' });
}

describe('direct mode on the dev stack (directPort and directTlsPort)', () => {
  let stack;
  before(async () => {
    // The bot token lets private events be tested; everything else is the default.
    stack = await startTestStack({ directPort: 0, directTlsPort: 0, daemonEnv: { BOT_TOKEN } });
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  test('the stack names its direct URLs on 127.0.0.1 and the daemon listens on all three', () => {
    assert.equal(stack.directWsUrl, `ws://127.0.0.1:${stack.directPort}/ws`);
    assert.equal(stack.directWssUrl, `wss://127.0.0.1:${stack.directTlsPort}/ws`);
    assert.notEqual(stack.directPort, stack.directTlsPort);
    const ready = /shopcastd ready: websockets on ([^\n]*), events on/.exec(stack.daemonLog());
    assert.ok(ready, stack.daemonLog());
    assert.equal(ready[1], `unix:${stack.wsSocket}, 127.0.0.1:${stack.directPort}, tls:127.0.0.1:${stack.directTlsPort}`);
  });

  test('a loopback listener answers on 127.0.0.1 only, not on every interface', async () => {
    const refused = (host, port) =>
      new Promise((resolve) => {
        const socket = net.connect({ host, port });
        socket.once('connect', () => {
          socket.destroy();
          resolve(false);
        });
        socket.once('error', (err) => resolve(err.code === 'ECONNREFUSED'));
      });
    assert.equal(await refused('127.0.0.1', stack.directPort), false);
    assert.equal(await refused('127.0.0.2', stack.directPort), true, '127.0.0.2 must not reach a 127.0.0.1 listener');
    assert.equal(await refused('127.0.0.2', stack.directTlsPort), true);
  });

  for (const scheme of ['ws', 'wss']) {
    const url = () => (scheme === 'ws' ? stack.directWsUrl : stack.directWssUrl);

    test(`${scheme}: an event reaches direct and proxied clients alike, 100 more arrive in order`, async () => {
      const a = await open(url());
      const b = await open(url(), { origin: stack.origin });
      const proxied = await open(stack.wsUrl);
      const event = { type: 'product_added', shopId: 123, productId: nextId() };
      const reply = await publishOk(stack, event);
      assert.equal(reply.recipients, 3);
      for (const c of [a, b, proxied]) assert.deepEqual(await c.waitForEvent(reply.id), { ...event, id: reply.id });
      assert.equal(a.raw.at(-1).isBinary, false);

      const ids = [];
      for (let n = 0; n < 100; n++) ids.push((await publishOk(stack, { type: 'shop_updated', shopId: 9, n })).id);
      for (const c of [a, b, proxied]) {
        const got = await c.waitForCount((m) => m.n !== undefined, 100, { timeout: 5000 });
        assert.deepEqual(got.map((m) => m.id), ids);
      }
      await closeAll([a, b, proxied]);
    });

    test(`${scheme}: resuming from hello.id replays what was missed, then live, once each`, async () => {
      const first = await open(url(), { resume: false });
      const since = first.hello.id;
      await closeAll([first]);
      const sent = [];
      for (let i = 0; i < 5; i++) {
        const event = { type: 'product_updated', shopId: 12, productId: nextId(), i };
        sent.push({ ...event, id: (await publishOk(stack, event)).id });
      }
      const again = await open(url(), { resume: false });
      again.send({ action: 'resume', since });
      await again.waitForEvent(sent.at(-1).id);
      const live = { type: 'product_deleted', shopId: 12, productId: nextId() };
      const liveReply = await publishOk(stack, live);
      await again.waitForEvent(liveReply.id);
      await sleep(100);
      assert.deepEqual(again.events(), [...sent, { ...live, id: liveReply.id }]);
      await closeAll([again]);
    });

    test(`${scheme}: a foreign origin is refused with 403, an allowed one upgrades`, async () => {
      const foreign = await upgradeStatus(url(), { origin: 'https://evil.example' });
      assert.equal(foreign.status, 403, foreign.head);
      // A page served by the dev stack's nginx (http or https) may open a direct connection.
      for (const origin of [stack.origin, stack.httpsOrigin]) {
        const allowed = await upgradeStatus(url(), { origin });
        assert.equal(allowed.status, 101, `${origin}: ${allowed.head}`);
      }
    });

    test(`${scheme}: a private event reaches only its user, live and on resume`, async () => {
      const alice = await open(url());
      const bob = await open(url());
      const anon = await open(url());
      assert.deepEqual(await auth(alice, ALICE), { type: 'auth_ok', userId: ALICE.id });
      assert.deepEqual(await auth(bob, BOB), { type: 'auth_ok', userId: BOB.id });
      const since = anon.hello.id;
      const forAlice = { type: 'order_status', orderId: nextId(), status: 'paid', userId: ALICE.id };
      const pub = { type: 'product_added', shopId: 9, productId: nextId() };
      const rA = await publishOk(stack, forAlice);
      const rP = await publishOk(stack, pub);
      assert.equal(rA.recipients, 1);
      for (const c of [alice, bob, anon]) await c.waitForEvent(rP.id);
      await sleep(100);
      assert.deepEqual(alice.events(), [{ ...forAlice, id: rA.id }, { ...pub, id: rP.id }]);
      assert.deepEqual(bob.events(), [{ ...pub, id: rP.id }]);
      assert.deepEqual(anon.events(), [{ ...pub, id: rP.id }]);

      const replayed = await open(url(), { resume: false });
      await auth(replayed, ALICE);
      replayed.send({ action: 'resume', since });
      await replayed.waitForEvent(rP.id);
      const stranger = await open(url(), { resume: false });
      await auth(stranger, BOB);
      stranger.send({ action: 'resume', since });
      await stranger.waitForEvent(rP.id);
      await sleep(100);
      assert.deepEqual(replayed.events(), [{ ...forAlice, id: rA.id }, { ...pub, id: rP.id }]);
      assert.deepEqual(stranger.events(), [{ ...pub, id: rP.id }]);
      await closeAll([alice, bob, anon, replayed, stranger]);
    });
  }
});

describe('client address on a TCP listener (per-address limit 1, proxy 127.0.0.2 trusted)', () => {
  let stack;
  before(async () => {
    // One connection per address makes the address each connection is counted against visible.
    stack = await startTestStack({
      directPort: 0,
      daemonEnv: { SHOPCAST_MAX_CONNECTIONS_PER_IP: '1', SHOPCAST_TRUSTED_PROXIES: '127.0.0.2/32' },
    });
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  const from = (localAddress, realIp) => ({ headers: realIp ? { 'X-Real-IP': realIp } : {}, wsOptions: { localAddress } });

  test('X-Real-IP from an untrusted peer is ignored: the peer address is counted', async () => {
    const first = await open(stack.directWsUrl, from('127.0.0.1'));
    await assert.rejects(open(stack.directWsUrl, from('127.0.0.1', '192.0.2.55')), (err) => {
      assert.equal(err.statusCode, 503, err.message);
      assert.match(err.body, /too many connections from this address/);
      return true;
    });
    await closeAll([first]);
  });

  test("a trusted proxy's X-Real-IP is the client address", async () => {
    const a = await open(stack.directWsUrl, from('127.0.0.2', '192.0.2.1'));
    const b = await open(stack.directWsUrl, from('127.0.0.2', '192.0.2.2'));
    await assert.rejects(open(stack.directWsUrl, from('127.0.0.2', '192.0.2.1')), (err) => err.statusCode === 503);
    const reply = await publishOk(stack, { type: 'shop_updated', shopId: 3 });
    assert.equal(reply.recipients, 2);
    await closeAll([a, b]);
  });
});

const shopcastd = path.join(process.env.SHOPCAST_BIN_DIR ? path.resolve(process.env.SHOPCAST_BIN_DIR) : path.join(repoRoot, 'build', 'bin'), 'shopcastd');

test('an IPv6 listener ([::1]:port) serves WebSockets on ::1 only', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shopcast-v6-'));
  const { freePort } = await import(path.join(repoRoot, 'scripts', 'lib', 'stack.mjs'));
  const port = await freePort();
  const daemon = spawn(shopcastd, [], {
    env: { PATH: process.env.PATH, SHOPCAST_EVENTS_SOCKET: path.join(dir, 'events.sock'), SHOPCAST_WS_LISTEN: `[::1]:${port}` },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  daemon.stderr.on('data', (chunk) => (log += chunk));
  const exited = new Promise((resolve) => daemon.once('exit', (code, signal) => resolve({ code, signal })));
  t.after(() => {
    daemon.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });
  for (let waited = 0; !/shopcastd ready/.test(log); waited += 50) {
    assert.ok(waited < 10_000 && daemon.exitCode === null, `shopcastd did not start: ${log}`);
    await sleep(50);
  }
  assert.match(log, new RegExp(`websockets on \\[::1\\]:${port}`));
  const c = await connectClient(`ws://[::1]:${port}/ws`);
  await closeAll([c]);
  const v4 = await new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve('connected')));
    socket.once('error', (err) => resolve(err.code));
  });
  assert.equal(v4, 'ECONNREFUSED', 'an IPv6-only listener does not take IPv4');
  daemon.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 0, signal: null });
});

describe('listener settings are checked at start-up', () => {
  const run = (env) =>
    promisify(execFile)(shopcastd, [], { env: { PATH: process.env.PATH, SHOPCAST_EVENTS_SOCKET: '/nonexistent/events.sock', ...env }, timeout: 5000 }).then(
      () => ({ code: 0, stderr: '' }),
      (err) => ({ code: err.code, stderr: err.stderr }),
    );

  for (const [label, env, pattern] of [
    ['a tls: listener without certificate files', { SHOPCAST_WS_LISTEN: 'tls:127.0.0.1:1' }, /SHOPCAST_TLS_CERT_FILE and SHOPCAST_TLS_KEY_FILE/],
    ['certificate files without a tls: listener', { SHOPCAST_WS_LISTEN: '127.0.0.1:1', SHOPCAST_TLS_CERT_FILE: '/c', SHOPCAST_TLS_KEY_FILE: '/k' }, /no tls: listener/],
    ['a host name instead of an address', { SHOPCAST_WS_LISTEN: 'localhost:8090' }, /"localhost:8090" is not unix:\/path, host:port or tls:host:port/],
    ['an untrusted-proxy entry that is no address', { SHOPCAST_TRUSTED_PROXIES: 'nginx' }, /SHOPCAST_TRUSTED_PROXIES: "nginx"/],
  ]) {
    test(`${label}: exit 2 with one line naming the setting`, async () => {
      const { code, stderr } = await run(env);
      assert.equal(code, 2, stderr);
      assert.match(stderr, pattern);
      assert.equal(stderr.trim().split('\n').length, 1, stderr);
    });
  }
});
