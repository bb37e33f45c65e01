// The publish side of Redis mode (DESIGN.md "Beyond one machine") through real nginx and a
// real shopcast-fcgi, against a redis-server this file starts on a Unix socket with a password:
// a 200's id is a cursor of the stream's epoch and its event is in the stream; a repeated
// Idempotency-Key gets the same id and appends nothing; Redis stopped gives 503 +
// Retry-After: 1 at once and a not-ready health answer, a hanging one within the bound; Redis back (flushed: a new epoch) takes
// events again. The password never reaches a log.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestStack, stopTestStack, post, publishOk, request, nextId, sleep } from './helpers.mjs';

const execFileP = promisify(execFile);
const REDIS_PASSWORD = 'redis-password-that-must-not-be-logged-7f3a';
const CURSOR = /^([0-9a-z]{1,16}):[0-9a-f]{32}$/;
// The documented fail-fast bound for a publish while Redis is down (DESIGN.md).
const OUTAGE_REPLY_BOUND_MS = 2000;

// One private redis-server on `socket`, stopped by its PID.
class Redis {
  constructor(dir) {
    this.dir = dir;
    this.socket = path.join(dir, 'redis.sock');
  }

  async start() {
    this.proc = spawn('redis-server', ['--port', '0', '--unixsocket', this.socket, '--save', '', '--appendonly', 'no',
      '--dir', this.dir, '--requirepass', REDIS_PASSWORD, '--logfile', path.join(this.dir, 'redis.log')],
    { stdio: 'ignore' });
    this.exited = new Promise((resolve) => this.proc.once('exit', resolve));
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        if ((await this.cli('PING')) === 'PONG') return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error('redis-server did not answer PING');
      await sleep(25);
    }
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    process.kill(this.proc.pid, 'SIGTERM');
    await this.exited;
  }

  // One command through redis-cli; its output without the trailing newline.
  async cli(...args) {
    const { stdout } = await execFileP('redis-cli', ['-s', this.socket, '--no-auth-warning', '-a', REDIS_PASSWORD, ...args]);
    return stdout.replace(/\n$/, '');
  }

  // The stream's entries as { id, fields } (fields as an object).
  async entries() {
    const { stdout } = await execFileP('redis-cli', ['-s', this.socket, '--no-auth-warning', '-a', REDIS_PASSWORD,
      '--json', 'XRANGE', 'shopcast:events', '-', '+']).catch(() => ({ stdout: '' }));
    if (stdout.trim()) {
      return JSON.parse(stdout).map(([id, list]) => ({ id, fields: Object.fromEntries(pairs(list)) }));
    }
    return this.entriesWithoutJson();
  }

  // redis-cli before 7 has no --json: one line per item, entries of 1 + 10 lines.
  async entriesWithoutJson() {
    const lines = (await this.cli('XRANGE', 'shopcast:events', '-', '+')).split('\n').filter((l) => l !== '');
    const out = [];
    for (let i = 0; i + 10 < lines.length + 1; i += 11) {
      out.push({ id: lines[i], fields: Object.fromEntries(pairs(lines.slice(i + 1, i + 11))) });
    }
    return out;
  }
}

function pairs(list) {
  const out = [];
  for (let i = 0; i + 1 < list.length; i += 2) out.push([list[i], list[i + 1]]);
  return out;
}

async function eventually(probe, label, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await probe();
    if (result !== undefined) return result;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${label}`);
    await sleep(25);
  }
}

function orderEvent() {
  return { type: 'order_status', shopId: 1, userId: 7001, orderId: nextId(), status: 'paid' };
}

describe('publishing into Redis', () => {
  let dir;
  let redis;
  let stack;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shopcast-redis-publish-'));
    redis = new Redis(dir);
    await redis.start();
    const passwordFile = path.join(dir, 'redis_password');
    fs.writeFileSync(passwordFile, `${REDIS_PASSWORD}\n`, { mode: 0o600 });
    stack = await startTestStack({
      fcgiEnv: { SHOPCAST_REDIS_URL: `unix:${redis.socket}`, SHOPCAST_REDIS_PASSWORD_FILE: passwordFile },
    });
  });

  after(async () => {
    await stopTestStack(stack);
    await redis?.stop();
    if (dir && !process.env.SHOPCAST_KEEP_TEST_DIRS) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('200: the id is a cursor of the stream\'s epoch and the event is in the stream', async () => {
    const event = orderEvent();
    const reply = await publishOk(stack, event);
    const match = CURSOR.exec(reply.id);
    assert.ok(match, `id ${reply.id} is not a cursor`);
    const record = await redis.cli('GET', 'shopcast:epoch');
    assert.equal(match[1], record.split(':')[0], 'the cursor names the stream\'s epoch');
    const entries = await redis.entries();
    assert.equal(entries.length, 1);
    const { fields } = entries[0];
    assert.deepEqual(Object.keys(fields), ['epoch', 'type', 'shop', 'user', 'event']);
    assert.equal(fields.epoch, match[1]);
    assert.equal(fields.type, event.type);
    assert.equal(fields.shop, '1');
    assert.equal(fields.user, '7001');
    assert.deepEqual(JSON.parse(fields.event), event);
    assert.match(stack.fcgiLog(), /events into the Redis stream at unix:/);
  });

  test('the same Idempotency-Key twice: the same id, one stream entry', async () => {
    const before = (await redis.entries()).length;
    const key = `redis-idem-${nextId()}`;
    const event = orderEvent();
    const first = await publishOk(stack, event, { headers: { 'idempotency-key': key } });
    const again = await publishOk(stack, event, { headers: { 'idempotency-key': key } });
    assert.equal(again.id, first.id);
    assert.equal((await redis.entries()).length, before + 1);
    const stored = await redis.cli('GET', `shopcast:idem:${key}`);
    assert.match(stored, /^[0-9a-z]+ \d+-\d+ [0-9a-f]{64} \d+$/);
    const other = await post(stack, { ...event, status: 'shipped' }, { headers: { 'idempotency-key': key } });
    assert.equal(other.status, 422, other.text);
    assert.equal(other.json.error, 'idempotency_key_reused');
    assert.equal((await redis.entries()).length, before + 1);
  });

  test('ready only once a daemon reports a heartbeat to Redis', async () => {
    await redis.cli('DEL', 'shopcast:nodes');
    const none = await request(`${stack.httpUrl}/health/ready`);
    assert.equal(none.status, 503, none.text);
    assert.equal(none.json.status, 'not_ready');
    assert.match(none.json.reason, /no shopcastd reported a heartbeat/);
    assert.equal(none.json.checks.redis, 'ok');
    const [seconds] = (await redis.cli('TIME')).split('\n');
    await redis.cli('HSET', 'shopcast:nodes', 'test-node:1', `${Number(seconds) * 1000} 0 0-0`);
    const ready = await request(`${stack.httpUrl}/health/ready`);
    assert.equal(ready.status, 200, ready.text);
    assert.equal(ready.json.live_daemons, 1);
  });

  test('Redis hanging (SIGSTOP): 503 + Retry-After: 1 within the bound, not a hang; 200 once it resumes', async (t) => {
    const logMark = stack.fcgiLog().length;
    process.kill(redis.proc.pid, 'SIGSTOP');
    try {
      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        const res = await post(stack, orderEvent(), { timeout: OUTAGE_REPLY_BOUND_MS });
        assert.equal(res.status, 503, res.text);
        assert.equal(res.headers['retry-after'], '1');
        t.diagnostic(`publish to a stopped Redis answered in ${Date.now() - started} ms`);
      }
    } finally {
      process.kill(redis.proc.pid, 'SIGCONT');
    }
    await eventually(async () => ((await post(stack, orderEvent())).status === 200 ? true : undefined), 'a publish accepted once Redis resumes');
    // The log arrives through a pipe, maybe after the reply.
    const since = () => stack.fcgiLog().slice(logMark);
    await eventually(() => (/Redis reachable again/.test(since()) ? true : undefined), 'the return is logged');
    assert.equal(since().match(/Redis unavailable/g)?.length, 1, since());
    assert.match(since(), /Redis unavailable.*(timed out|Resource temporarily unavailable)/, since());
    assert.equal(since().match(/Redis reachable again/g)?.length, 1, since());
  });

  test('Redis stopped: 503 + Retry-After: 1 at once, health says so; Redis back: 200 in a new epoch', async (t) => {
    const epochBefore = (await redis.cli('GET', 'shopcast:epoch')).split(':')[0];
    const logMark = stack.fcgiLog().length;
    await redis.stop();
    for (let i = 0; i < 5; i++) {
      const started = Date.now();
      const res = await post(stack, orderEvent(), { timeout: OUTAGE_REPLY_BOUND_MS });
      assert.equal(res.status, 503, res.text);
      assert.equal(res.headers['retry-after'], '1');
      assert.equal(res.json.error, 'unavailable');
      t.diagnostic(`publish during the outage answered in ${Date.now() - started} ms`);
    }
    const ready = await request(`${stack.httpUrl}/health/ready`, { timeout: OUTAGE_REPLY_BOUND_MS });
    assert.equal(ready.status, 503, ready.text);
    assert.equal(ready.json.status, 'not_ready');
    assert.match(ready.json.reason, /^redis is unreachable: /);
    assert.equal(ready.json.checks.redis, 'unreachable');
    // One line for the outage, whichever worker noticed first.
    assert.equal(stack.fcgiLog().slice(logMark).match(/Redis unavailable/g)?.length, 1, stack.fcgiLog());

    await redis.start();
    const reply = await eventually(async () => {
      const res = await post(stack, orderEvent());
      return res.status === 200 ? res.json : undefined;
    }, 'a publish accepted once Redis is back');
    const epochAfter = CURSOR.exec(reply.id)?.[1];
    assert.ok(epochAfter, reply.id);
    assert.notEqual(epochAfter, epochBefore, 'an empty Redis is a new life of the stream');
    const since = () => stack.fcgiLog().slice(logMark);
    await eventually(() => (/Redis reachable again/.test(since()) ? true : undefined), 'the return is logged');
    assert.equal(since().match(/Redis reachable again/g)?.length, 1, since());
  });

  test('the Redis password reaches no log', async () => {
    for (const [name, log] of [['shopcast-fcgi', stack.fcgiLog()], ['shopcastd', stack.daemonLog()], ['nginx', stack.nginxLog()]]) {
      assert.equal(log.includes(REDIS_PASSWORD), false, `${name}'s log holds the Redis password`);
    }
  });
});
