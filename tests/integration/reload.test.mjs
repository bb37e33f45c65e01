// Reload without dropping anyone (DESIGN.md "Reload"): SIGHUP makes shopcastd re-read its
// settings file (SHOPCAST_CONFIG_FILE) and BOT_TOKEN_FILE, and shopcast-fcgi its settings file
// and secret files, while every open connection stays; a bad value is refused with one log line
// and the running configuration keeps working. Also: neither process can dump core, and a
// secret given inline is gone from the process's environment block.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  startTestStack,
  stopTestStack,
  connectClient,
  closeAll,
  post,
  publishOk,
  rawUpgrade,
  nextId,
  sleep,
} from './helpers.mjs';
import { makeInitData } from '../lib/telegram-init-data.mjs';

const BOT_ID = 7000000002;
const FIRST_TOKEN = `${BOT_ID}:AAH-shopcast-reload-test-first-token_0123456`;
const SECOND_TOKEN = `${BOT_ID}:AAH-shopcast-reload-test-second-token_654321`;
const ALICE = { id: 414141, first_name: 'Alice' };
const NEW_ORIGIN = 'https://shop.reload.example';

const now = () => Math.floor(Date.now() / 1000);
const randomSecret = () => crypto.randomBytes(24).toString('hex');

let stack;
let files;
const clients = [];

async function open(options = {}) {
  const c = await connectClient(stack.wsUrl, { origin: stack.origin, ...options });
  clients.push(c);
  return c;
}

async function auth(c, initData) {
  const from = c.messages.length;
  c.send({ action: 'auth', initData });
  return c.waitFor((m) => m.type === 'auth_ok' || m.type === 'error', { from, label: 'the answer to auth' });
}

// The upgrade status for a page of `origin` (101 admitted, 403 refused).
async function upgradeStatus(origin) {
  const { socket, status } = await rawUpgrade(stack.wsUrl, { origin });
  socket.destroy();
  return status;
}

// Sends SIGHUP to `child` and resolves with the one line it logged about it.
async function hangUp(child, pid) {
  const from = child.log.length + child.logBase;
  process.kill(pid, 'SIGHUP');
  const since = () => child.log.slice(Math.max(0, from - child.logBase));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const line = since().split('\n').find((l) => /reload(ed| refused| failed)/.test(l));
    if (line) {
      await sleep(100); // a second line, if any, would come right after
      const lines = since().split('\n').filter((l) => /reload/.test(l));
      assert.equal(lines.length, 1, `one line per reload:\n${lines.join('\n')}`);
      return line;
    }
    assert.ok(Date.now() < deadline, `${child.name} logged nothing about the reload:\n${since()}`);
    await sleep(25);
  }
}

const reloadDaemon = () => hangUp(stack.daemon, stack.daemonPid);
const reloadFcgi = () => hangUp(stack.fcgi, stack.fcgiPid);

// Every client given is still open and receives a new public event.
async function allStillConnected(list) {
  const reply = await publishOk(stack, { type: 'shop_updated', shopId: 1, note: nextId() });
  for (const c of list) {
    assert.equal(c.closed, null, 'still open');
    await c.waitForEvent(reply.id);
  }
}

function secretFiles(dir) {
  return {
    daemonSettings: path.join(dir, 'shopcastd.env'),
    fcgiSettings: path.join(dir, 'shopcast-fcgi.env'),
    secret: path.join(dir, 'internal_secret'),
    previous: path.join(dir, 'internal_secret.previous'),
    token: path.join(dir, 'bot_token'),
  };
}

before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shopcast-reload-'));
  files = secretFiles(dir);
  const secret = randomSecret();
  fs.writeFileSync(files.daemonSettings, '# nothing yet: the environment and the defaults apply\n');
  fs.writeFileSync(files.fcgiSettings, '');
  fs.writeFileSync(files.secret, `${secret}\n`, { mode: 0o600 });
  fs.writeFileSync(files.token, `${FIRST_TOKEN}\n`, { mode: 0o600 });
  files.dir = dir;
  // Overrides: the reloadable sources under test (a settings file per binary, the secret and
  // token as files), and a bot token, which auth has no default for.
  stack = await startTestStack({
    secret,
    daemonEnv: { SHOPCAST_CONFIG_FILE: files.daemonSettings, BOT_TOKEN_FILE: files.token },
    fcgiEnv: { SHOPCAST_CONFIG_FILE: files.fcgiSettings, INTERNAL_SECRET: null, INTERNAL_SECRET_FILE: files.secret },
  });
});

after(async () => {
  await closeAll(clients);
  await stopTestStack(stack);
  if (files) fs.rmSync(files.dir, { recursive: true, force: true });
});

describe('shopcastd on SIGHUP', () => {
  test('a changed origin list takes effect and every open connection stays', async () => {
    const pages = [await open(), await open(), await open({ origin: `http://localhost:${stack.httpPort}` })];
    assert.equal(await upgradeStatus(NEW_ORIGIN), 403, 'not allowed before the reload');

    fs.writeFileSync(files.daemonSettings, `SHOPCAST_ALLOWED_ORIGINS=http://localhost:${stack.httpPort},${NEW_ORIGIN}\n`);
    assert.match(await reloadDaemon(), /reloaded: 2 allowed origins/);
    assert.equal(await upgradeStatus(NEW_ORIGIN), 101, 'the new origin is admitted');
    assert.equal(await upgradeStatus(stack.origin), 403, 'the removed origin is refused');
    assert.equal(await upgradeStatus(`http://localhost:${stack.httpPort}`), 101, 'the kept origin still works');
    await allStillConnected(pages); // including the two of the origin just removed
  });

  test('a bad value is refused with one line and the running configuration keeps working', async () => {
    const page = await open({ origin: NEW_ORIGIN });
    for (const bad of [
      `SHOPCAST_ALLOWED_ORIGINS=${NEW_ORIGIN}/with/a/path\n`,
      `SHOPCAST_ALLOWED_ORIGINS=${stack.origin}\nSHOPCAST_MAX_CONNECTIONS=plenty\n`,
      'this line is not NAME=value\n',
    ]) {
      fs.writeFileSync(files.daemonSettings, bad);
      assert.match(await reloadDaemon(), /reload refused, the running configuration stays: /, bad);
      assert.equal(await upgradeStatus(NEW_ORIGIN), 101, `still admitted after: ${bad}`);
      assert.equal(await upgradeStatus(stack.origin), 403, `still refused after: ${bad}`);
    }
    await allStillConnected([page]);
  });

  test('a lowered SHOPCAST_MAX_CONNECTIONS refuses new connections, keeps the open ones', async () => {
    const page = await open({ origin: NEW_ORIGIN });
    fs.writeFileSync(files.daemonSettings, `SHOPCAST_ALLOWED_ORIGINS=${NEW_ORIGIN}\nSHOPCAST_MAX_CONNECTIONS=1\n`);
    assert.match(await reloadDaemon(), /reloaded/);
    assert.equal(await upgradeStatus(NEW_ORIGIN), 503, 'server full');
    await allStillConnected([page]);
    fs.writeFileSync(files.daemonSettings, `SHOPCAST_ALLOWED_ORIGINS=${NEW_ORIGIN}\n`);
    assert.match(await reloadDaemon(), /reloaded/);
    assert.equal(await upgradeStatus(NEW_ORIGIN), 101);
  });

  test('a rotated BOT_TOKEN_FILE checks new auth with the new token; authenticated pages stay', async () => {
    const alice = await open({ origin: NEW_ORIGIN });
    assert.deepEqual(await auth(alice, makeInitData({ botToken: FIRST_TOKEN, user: ALICE, authDate: now() })), {
      type: 'auth_ok',
      userId: ALICE.id,
    });
    fs.writeFileSync(files.token, `${SECOND_TOKEN}\n`);
    assert.match(await reloadDaemon(), /reloaded/);

    const fresh = await open({ origin: NEW_ORIGIN });
    const old = await auth(fresh, makeInitData({ botToken: FIRST_TOKEN, user: ALICE, authDate: now() }));
    assert.equal(old.type, 'error');
    assert.match(old.message, /hash mismatch/);
    assert.deepEqual(await auth(fresh, makeInitData({ botToken: SECOND_TOKEN, user: ALICE, authDate: now() })), {
      type: 'auth_ok',
      userId: ALICE.id,
    });
    const priv = await publishOk(stack, { type: 'order_status', orderId: nextId(), status: 'paid', userId: ALICE.id });
    assert.equal(priv.recipients, 2, 'the page authenticated before the reload is still Alice');
    await alice.waitForEvent(priv.id);
  });
});

describe('shopcast-fcgi on SIGHUP', () => {
  test('a new secret in INTERNAL_SECRET_FILE is accepted, the previous one while it is configured', async () => {
    const page = await open({ origin: NEW_ORIGIN });
    const oldSecret = stack.secret;
    const newSecret = randomSecret();
    fs.writeFileSync(files.secret, `${newSecret}\n`);
    fs.writeFileSync(files.previous, `${oldSecret}\n`);
    fs.writeFileSync(files.fcgiSettings, `INTERNAL_SECRET_PREVIOUS_FILE=${files.previous}\n`);
    assert.match(await reloadFcgi(), /reloaded/);

    const event = () => ({ type: 'shop_updated', shopId: 1, note: nextId() });
    for (const secret of [newSecret, oldSecret]) {
      const res = await post(stack, event(), { secret });
      assert.equal(res.status, 200, res.text);
      await page.waitForEvent(res.json.id);
    }

    // The rotation ends: the previous secret is refused.
    fs.writeFileSync(files.fcgiSettings, '');
    assert.match(await reloadFcgi(), /reloaded/);
    assert.equal((await post(stack, event(), { secret: oldSecret })).status, 401);
    const res = await post(stack, event(), { secret: newSecret });
    assert.equal(res.status, 200, res.text);
    stack.secret = newSecret; // for publishOk from here on
    await allStillConnected([page]);
  });

  test('a bad value is refused with one line and the running secret and rules stay', async () => {
    fs.writeFileSync(files.secret, 'too-short\n');
    assert.match(await reloadFcgi(), /reload refused, the running configuration stays: INTERNAL_SECRET must be at least 32/);
    fs.writeFileSync(files.secret, `${stack.secret}\n`);
    fs.writeFileSync(files.fcgiSettings, 'SHOPCAST_REQUIRE_USER_FOR=order_status,not_a_type\n');
    assert.match(await reloadFcgi(), /reload refused, .*SHOPCAST_REQUIRE_USER_FOR/);
    const res = await post(stack, { type: 'order_status', orderId: nextId(), status: 'paid' });
    assert.equal(res.status, 200, 'the old rules (no REQUIRE_USER_FOR) still apply');

    fs.writeFileSync(files.fcgiSettings, 'SHOPCAST_REQUIRE_USER_FOR=order_status\n');
    assert.match(await reloadFcgi(), /reloaded/);
    const refused = await post(stack, { type: 'order_status', orderId: nextId(), status: 'paid' });
    assert.equal(refused.status, 400, refused.text);
    assert.equal(refused.json.error, 'invalid_event');
  });
});

describe('process hardening', () => {
  test('neither process can dump core', () => {
    for (const [name, pid] of [['shopcastd', stack.daemonPid], ['shopcast-fcgi', stack.fcgiPid]]) {
      const limits = fs.readFileSync(`/proc/${pid}/limits`, 'utf8');
      assert.match(limits, /^Max core file size\s+0\s+0\s+bytes/m, `${name}: ${limits}`);
      // Not dumpable: the kernel then hands /proc/<pid> to root. Only visible when the
      // services run as another user than root.
      const uid = fs.statSync(`/proc/${pid}`).uid;
      if (process.getuid() !== 0) assert.equal(fs.statSync(`/proc/${pid}/environ`).uid, 0, `${name} is not dumpable`);
      else assert.equal(uid, 0);
    }
  });

  test('an inline INTERNAL_SECRET is wiped from the process environment once read', async () => {
    // The default stack hands the secret to shopcast-fcgi inline (INTERNAL_SECRET=...).
    const inline = await startTestStack();
    try {
      const environ = fs.readFileSync(`/proc/${inline.fcgiPid}/environ`);
      assert.equal(environ.includes(Buffer.from(inline.secret)), false, 'the secret is not in /proc/<pid>/environ');
      assert.ok(environ.includes(Buffer.from('SHOPCAST_EVENTS_SOCKET=')), 'the rest of the environment is there');
      const res = await post(inline, { type: 'shop_updated', shopId: 1 });
      assert.equal(res.status, 200, 'and the secret still works');
    } finally {
      await stopTestStack(inline);
    }
  });
});
