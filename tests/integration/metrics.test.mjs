// What an operator sees (DESIGN.md "Operations"): GET /metrics through the real nginx with every
// shopcast_ family of both services, counters that move by exactly the traffic sent, a scrape
// promtool accepts; /health/live and /health/ready, including a stopped daemon; both refused
// (403 JSON) from an address outside the allow-list; journald priorities on every log line,
// SHOPCAST_LOG_LEVEL, the guide's Broadcast line and systemd's STATUS=.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  startTestStack,
  stopTestStack,
  connectClient,
  closeAll,
  publishOk,
  post,
  request,
  assertJsonError,
  sleep,
  repoRoot,
} from './helpers.mjs';
import { makeInitData } from '../lib/telegram-init-data.mjs';

const BOT_TOKEN = '7000000001:AAH-shopcast-metrics-test-token_0123456789abc';
const OTHER_TOKEN = '7000000001:AAH-a-token-this-daemon-does-not-have_987654';
const OPS_PATHS = ['/metrics', '/health/live', '/health/ready'];

// The samples of one scrape: "name{labels}" (as written) -> value.
function parseExposition(text) {
  const samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(m, `exposition line: ${JSON.stringify(line)}`);
    samples.set(m[1], Number(m[2]));
  }
  return samples;
}

async function scrape(stack, options = {}) {
  const res = await request(`${stack.httpUrl}/metrics`, options);
  assert.equal(res.status, 200, `/metrics: ${res.text.slice(0, 300)}`);
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return { text: res.text, samples: parseExposition(res.text) };
}

function value(samples, key) {
  assert.ok(samples.has(key), `the scrape has ${key}`);
  return samples.get(key);
}

async function promtoolCheck(text) {
  const child = execFile('promtool', ['check', 'metrics']);
  const output = [];
  child.stdout.on('data', (c) => output.push(c));
  child.stderr.on('data', (c) => output.push(c));
  const exited = new Promise((resolve) => child.on('close', resolve));
  child.stdin.end(text);
  const code = await exited;
  return { code, output: Buffer.concat(output.map((c) => Buffer.from(c))).toString('utf8') };
}

// Polls `probe` until it returns something other than undefined (bounded).
async function eventually(probe, label, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await probe();
    if (result !== undefined) return result;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${label}`);
    await sleep(25);
  }
}

describe('GET /metrics after known traffic', () => {
  let stack;
  const clients = [];
  // A failed auth is a bad signature only when auth is configured (else "not_configured").
  before(async () => {
    stack = await startTestStack({ daemonEnv: { BOT_TOKEN } });
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  test('counters move by exactly the traffic; gauges follow; promtool accepts the scrape', async () => {
    const N = 3;
    const events = [
      { type: 'product_added', shopId: 5, productId: 1 },
      { type: 'product_added', shopId: 5, productId: 2 },
      { type: 'order_status', orderId: 9, status: 'paid' },
      { type: 'shop_updated', shopId: 5 },
    ];
    const M = events.length;
    const before = (await scrape(stack)).samples;

    // N browsers; the last one resumes from a cursor that cannot be replayed (one resync).
    for (let i = 0; i < N - 1; i++) clients.push(await connectClient(stack.wsUrl, { origin: stack.origin }));
    const resyncing = await connectClient(stack.wsUrl, { origin: stack.origin, resume: false });
    clients.push(resyncing);
    resyncing.send({ action: 'resume', since: 'not-a-cursor' });
    const resync = await resyncing.waitForType('resync');
    // One refused origin: never opened, so never counted as opened or closed.
    await assert.rejects(connectClient(stack.wsUrl, { origin: 'https://evil.example' }), (err) => err.statusCode === 403);
    // One failed auth (initData signed with another bot's token).
    const from = clients[0].messages.length;
    clients[0].send({ action: 'auth', initData: makeInitData({ botToken: OTHER_TOKEN, user: { id: 42, first_name: 'M' }, authDate: Math.floor(Date.now() / 1000) }) });
    const refusal = await clients[0].waitFor((m) => m.type === 'error', { from, label: 'the auth refusal' });
    assert.match(refusal.message, /auth failed/);

    const ids = [];
    const key = `metrics-${process.pid}-${Date.now()}`;
    for (const event of events) ids.push((await publishOk(stack, event, event === events.at(-1) ? { headers: { 'Idempotency-Key': key } } : {})).id);
    // One Idempotency-Key reused for another event: 422, nothing published.
    assertJsonError(await post(stack, events[0], { headers: { 'Idempotency-Key': key } }), 422, 'idempotency_key_reused', 'reused key');
    // One publish refused for its secret.
    assertJsonError(await post(stack, events[0], { secret: 'x'.repeat(48) }), 401, 'unauthorized', 'wrong secret');
    for (const c of clients) {
      for (const id of ids) await c.waitForEvent(id);
    }
    const receivedBytes = clients.reduce((sum, c) => sum + c.raw.reduce((s, r) => s + Buffer.byteLength(r.text), 0), 0);

    const during = (await scrape(stack)).samples;
    assert.equal(value(during, 'shopcast_connections') - value(before, 'shopcast_connections'), N, 'open connections');

    await closeAll(clients);
    const baseline = value(before, 'shopcast_connections');
    const { text, samples: after } = await eventually(async () => {
      const s = await scrape(stack);
      return value(s.samples, 'shopcast_connections') === baseline ? s : undefined;
    }, 'the daemon has seen every close');

    const delta = (key) => value(after, key) - value(before, key);
    assert.equal(delta('shopcast_connections_opened_total'), N, 'opened');
    assert.equal(delta('shopcast_connections_closed_total{code="1000"}'), N, 'closed with 1000');
    assert.equal(delta('shopcast_connections_closed_total{code="1006"}'), 0, 'closed without a close frame');
    assert.equal(delta('shopcast_connections_refused_total{reason="origin"}'), 1, 'refused origin');
    assert.equal(delta('shopcast_connections_refused_total{reason="server_full"}'), 0);
    assert.equal(delta('shopcast_events_published_total{type="product_added"}'), 2);
    assert.equal(delta('shopcast_events_published_total{type="order_status"}'), 1);
    assert.equal(delta('shopcast_events_published_total{type="shop_updated"}'), 1);
    assert.equal(delta('shopcast_events_published_total{type="product_deleted"}'), 0);
    assert.equal(delta('shopcast_deliveries_total'), N * M, 'deliveries');
    // Frames carry a 2-4 byte header on top of the text the clients read; control messages
    // (hello, subscribed, resync, error) are sent bytes too.
    assert.ok(delta('shopcast_sent_bytes_total') >= receivedBytes, `sent bytes ${delta('shopcast_sent_bytes_total')} >= ${receivedBytes}`);
    assert.equal(delta('shopcast_resumes_total{outcome="replayed"}'), N - 1, 'resumes replayed');
    assert.equal(delta('shopcast_resumes_total{outcome="resynced"}'), 1, 'resumes resynced');
    assert.equal(delta(`shopcast_resyncs_total{reason="${resync.reason}"}`), 1, `resyncs (${resync.reason})`);
    let resyncs = 0;
    for (const [key] of after) if (key.startsWith('shopcast_resyncs_total{')) resyncs += delta(key);
    assert.equal(resyncs, 1, 'one resync in all');
    assert.equal(delta('shopcast_auth_total{result="bad_signature"}'), 1, 'failed auth');
    assert.equal(delta('shopcast_auth_total{result="ok"}'), 0);
    assert.equal(delta('shopcast_publish_requests_total{status="200"}'), M, 'publishes answered 200');
    assert.equal(delta('shopcast_publish_requests_total{status="401"}'), 1, 'publishes answered 401');
    assert.equal(delta('shopcast_publish_requests_total{status="422"}'), 1, 'publishes answered 422');
    assert.equal(delta('shopcast_publish_ack_duration_seconds_count'), M, 'acks timed');
    assert.equal(delta('shopcast_publish_ack_duration_seconds_bucket{le="+Inf"}'), M);
    assert.ok(delta('shopcast_publish_ack_duration_seconds_sum') > 0);
    assert.equal(delta('shopcast_history_events'), M, 'history length');
    assert.ok(delta('shopcast_history_bytes') > 0, 'history bytes');
    assert.ok(value(after, 'shopcast_history_oldest_event_age_seconds') > 0, 'age of the oldest event');
    assert.equal(value(after, 'shopcast_daemon_reachable'), 1);
    assert.equal(delta('shopcast_connections_closed_slow_total{reason="stalled"}'), 0);

    // Prometheus' naming rules: one prefix, counters end in _total.
    for (const line of text.split('\n')) {
      const m = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (!m) continue;
      assert.match(m[1], /^shopcast_/, 'prefix');
      if (m[2] === 'counter') assert.match(m[1], /_total$/, `${m[1]} is a counter`);
    }
    const lint = await promtoolCheck(text);
    assert.equal(lint.code, 0, `promtool check metrics: ${lint.output}`);
    assert.equal(lint.output.trim(), '', 'promtool has nothing to say');
  });

  test('the operators\' endpoints are refused (403 JSON) outside the allow-list', async () => {
    for (const p of OPS_PATHS) {
      assertJsonError(await request(stack.httpUrl + p, { localAddress: '127.0.0.2' }), 403, 'forbidden', `${p} from 127.0.0.2`);
      assertJsonError(await request(stack.httpsUrl + p, { localAddress: '127.0.0.2' }), 403, 'forbidden', `${p} over https from 127.0.0.2`);
      const allowed = await request(stack.httpUrl + p, { localAddress: '127.0.0.1' });
      assert.equal(allowed.status, 200, `${p} from 127.0.0.1: ${allowed.text.slice(0, 200)}`);
    }
  });

  test('only GET (and HEAD) is answered', async () => {
    for (const p of OPS_PATHS) {
      const res = await request(stack.httpUrl + p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      assertJsonError(res, 405, 'method_not_allowed', `POST ${p}`);
    }
  });
});

describe('health', () => {
  let stack;
  before(async () => {
    stack = await startTestStack();
  });
  after(async () => {
    await stopTestStack(stack);
  });

  test('ready and live while both services run', async () => {
    const ready = await request(`${stack.httpUrl}/health/ready`);
    assert.equal(ready.status, 200, ready.text);
    assert.match(String(ready.headers['content-type']), /^application\/json\b/);
    assert.deepEqual(ready.json, { status: 'ready', checks: { 'shopcast-fcgi': 'ok', shopcastd: 'ok' } });
    const live = await request(`${stack.httpUrl}/health/live`);
    assert.equal(live.status, 200, live.text);
    assert.equal(live.json.status, 'live');
  });

  test('daemon stopped: not ready (503, why), still live, metrics say unreachable; ready again after a restart', async () => {
    const pid = stack.daemonPid;
    assert.ok(pid > 0);
    process.kill(pid, 'SIGTERM');
    await eventually(() => (stack.daemonPid === undefined ? true : undefined), 'shopcastd has exited', 10_000);

    const ready = await request(`${stack.httpUrl}/health/ready`);
    assert.equal(ready.status, 503, ready.text);
    assert.match(String(ready.headers['content-type']), /^application\/json\b/);
    assert.equal(ready.json.status, 'not_ready');
    assert.match(ready.json.reason, /shopcastd is unreachable: .*events\.sock/);
    assert.equal(ready.json.checks.shopcastd, 'unreachable');
    const live = await request(`${stack.httpUrl}/health/live`);
    assert.equal(live.status, 200, live.text);
    const { samples } = await scrape(stack);
    assert.equal(value(samples, 'shopcast_daemon_reachable'), 0);
    assert.equal(samples.has('shopcast_connections'), false, 'no daemon families without the daemon');
    assert.ok(samples.has('shopcast_publish_requests_total{status="200"}'), 'shopcast-fcgi\'s own families stay');

    await stack.startDaemon();
    await eventually(async () => ((await request(`${stack.httpUrl}/health/ready`)).status === 200 ? true : undefined), 'ready after the restart');
  });

  test('the production site serves the same endpoints with the same allow-list', async () => {
    const production = await startTestStack({ site: 'production' });
    try {
      for (const p of OPS_PATHS) {
        const res = await request(production.httpsUrl + p);
        assert.equal(res.status, 200, `${p}: ${res.text.slice(0, 200)}`);
        assertJsonError(await request(production.httpsUrl + p, { localAddress: '127.0.0.2' }), 403, 'forbidden', `${p} from 127.0.0.2`);
      }
      const lint = await promtoolCheck((await request(`${production.httpsUrl}/metrics`)).text);
      assert.equal(lint.code, 0, lint.output);
    } finally {
      await stopTestStack(production);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Logs

// Runs `command` with its stderr a pipe that JOURNAL_STREAM names (as systemd does), or with
// JOURNAL_STREAM naming something else when `matching` is false. Resolves once it exits.
function spawnUnderJournal(command, args, env, { matching = true } = {}) {
  // The shell learns the pipe's device:inode the way journald's reader would see them.
  const script = matching
    ? 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"'
    : 'JOURNAL_STREAM=1:1 exec "$@"';
  const child = spawn('sh', ['-c', script, 'sh', command, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => {
    stderr += c.toString('utf8');
  });
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return { child, exited, stderr: () => stderr };
}

const PRIORITY = { error: 3, warning: 4, info: 6, debug: 7 };

// Every line starts with the priority its level name says.
function assertPrefixedLines(output, program) {
  const lines = output.split('\n').filter((l) => l !== '');
  assert.ok(lines.length > 0, 'some output');
  for (const line of lines) {
    const m = /^<(\d)>([a-z-]+): (error|warning|info|debug): /.exec(line);
    assert.ok(m, `priority prefix on ${JSON.stringify(line)}`);
    assert.equal(m[2], program);
    assert.equal(Number(m[1]), PRIORITY[m[3]], `priority of ${JSON.stringify(line)}`);
  }
  return lines;
}

// A UDP-like receiver for sd_notify datagrams: Node has no Unix datagram sockets, Python does.
function notifyReceiver(socketPath) {
  const script = [
    'import socket, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.bind(sys.argv[1])',
    'print("bound", flush=True)',
    'while True:',
    '    print(s.recv(4096).decode(), flush=True)',
  ].join('\n');
  const child = spawn('python3', ['-c', script, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c) => {
    out += c.toString('utf8');
  });
  return { child, output: () => out };
}

describe('logs an operator can filter', () => {
  let stack;
  before(async () => {
    stack = await startTestStack();
    // The stack's own daemon makes way for the ones these tests run on the same sockets.
    await stack.stopDaemon();
  });
  after(async () => {
    await stopTestStack(stack);
  });

  async function runDaemon(extraEnv, options) {
    const { command, env } = stack.daemonLaunch(extraEnv);
    const run = spawnUnderJournal(command, [], env, options);
    await eventually(async () => ((await request(`${stack.httpUrl}/health/ready`)).status === 200 ? true : undefined), 'the daemon answers', 10_000);
    return run;
  }

  async function stopDaemon(run) {
    run.child.kill('SIGTERM'); // by the PID of the process we started
    const status = await run.exited;
    assert.equal(status.code, 0, `shopcastd exit: ${JSON.stringify(status)}\n${run.stderr()}`);
  }

  test('shopcastd at the default level: a priority on every line, the guide\'s Broadcast line, STATUS= for systemctl', async () => {
    const notifySocket = path.join(stack.dir, 'notify.sock');
    const receiver = notifyReceiver(notifySocket);
    try {
      await eventually(() => (receiver.output().includes('bound') ? true : undefined), 'the notify socket is bound');
      const run = await runDaemon({ NOTIFY_SOCKET: notifySocket });
      const reply = await publishOk(stack, { type: 'product_added', shopId: 3, productId: 4 });
      const status = await eventually(() => /STATUS=(\d+) connections, (\d+\.\d) events\/s/.exec(receiver.output()) ?? undefined, 'a STATUS= line', 15_000);
      assert.equal(Number(status[1]), 0, 'no browser connected');
      assert.match(receiver.output(), /READY=1/);
      await stopDaemon(run);
      const lines = assertPrefixedLines(run.stderr(), 'shopcastd');
      assert.ok(lines.includes(`<6>shopcastd: info: Broadcast sent: product_added id=${reply.id} recipients=0`), run.stderr());
      assert.ok(lines.some((l) => l.startsWith('<6>shopcastd: info: shopcastd ready')));
    } finally {
      receiver.child.kill('SIGTERM');
      fs.rmSync(notifySocket, { force: true });
    }
  });

  test('SHOPCAST_LOG_LEVEL=warning keeps warnings and drops info lines, the Broadcast line too', async () => {
    // An empty origin list is worth a warning at start: something to see at this level.
    const run = await runDaemon({ SHOPCAST_LOG_LEVEL: 'warning', SHOPCAST_ALLOWED_ORIGINS: '' });
    await publishOk(stack, { type: 'shop_updated', shopId: 3 });
    await stopDaemon(run);
    const lines = assertPrefixedLines(run.stderr(), 'shopcastd');
    assert.ok(lines.some((l) => l.startsWith('<4>shopcastd: warning: SHOPCAST_ALLOWED_ORIGINS is empty')), run.stderr());
    assert.deepEqual(lines.filter((l) => /: (info|debug): /.test(l)), []);
  });

  test('SIGHUP applies a changed SHOPCAST_LOG_LEVEL from the settings file', async () => {
    const settingsFile = path.join(stack.dir, 'log-level.env');
    fs.writeFileSync(settingsFile, 'SHOPCAST_LOG_LEVEL=warning\n');
    const { command, env } = stack.daemonLaunch({ SHOPCAST_CONFIG_FILE: settingsFile });
    delete env.SHOPCAST_LOG_LEVEL; // the file decides
    const run = spawnUnderJournal(command, [], env);
    try {
      await eventually(async () => ((await request(`${stack.httpUrl}/health/ready`)).status === 200 ? true : undefined), 'the daemon answers', 10_000);
      const quiet = await publishOk(stack, { type: 'shop_updated', shopId: 5 });
      fs.writeFileSync(settingsFile, 'SHOPCAST_LOG_LEVEL=info\n');
      run.child.kill('SIGHUP');
      await eventually(() => (run.stderr().includes('info: reloaded:') ? true : undefined), 'the reload line');
      const loud = await publishOk(stack, { type: 'shop_updated', shopId: 5 });
      await eventually(() => (run.stderr().includes(`Broadcast sent: shop_updated id=${loud.id}`) ? true : undefined), 'the Broadcast line at info');
      assert.ok(!run.stderr().includes(`id=${quiet.id}`), `nothing at info before the reload:\n${run.stderr()}`);
    } finally {
      await stopDaemon(run);
    }
  });

  test('no prefix when JOURNAL_STREAM names another stream than stderr', async () => {
    const run = await runDaemon({}, { matching: false });
    await stopDaemon(run);
    const lines = run.stderr().split('\n').filter((l) => l !== '');
    assert.ok(lines.length > 0);
    for (const line of lines) assert.match(line, /^shopcastd: (error|warning|info|debug): /);
  });

  test('shopcast-fcgi: priorities on its lines too; a bad SHOPCAST_LOG_LEVEL is refused in one line', async () => {
    const fcgi = path.join(stack.binDir, 'shopcast-fcgi');
    const base = { PATH: process.env.PATH, SHOPCAST_EVENTS_SOCKET: stack.eventsSocket, INTERNAL_SECRET: 'y'.repeat(48) };
    const bad = spawnUnderJournal(fcgi, ['--listen', path.join(stack.runDir, 'other-fcgi.sock')], { ...base, SHOPCAST_LOG_LEVEL: 'verbose' });
    assert.equal((await bad.exited).code, 2);
    assert.deepEqual(assertPrefixedLines(bad.stderr(), 'shopcast-fcgi'), ['<3>shopcast-fcgi: error: SHOPCAST_LOG_LEVEL must be error, warning, info or debug']);

    const noSecret = spawnUnderJournal(fcgi, ['--listen', path.join(stack.runDir, 'other-fcgi.sock')], { ...base, INTERNAL_SECRET: undefined });
    assert.equal((await noSecret.exited).code, 2);
    assert.match(assertPrefixedLines(noSecret.stderr(), 'shopcast-fcgi')[0], /^<3>shopcast-fcgi: error: INTERNAL_SECRET is not set/);
  });
});

// Every log call, read for what it may print: none takes a secret, a token or initData.
test('no log call in the sources is given a secret or initData', () => {
  const roots = ['common', 'daemon', 'fcgi'].map((d) => path.join(repoRoot, d));
  const offenders = [];
  for (const root of roots) {
    for (const file of fs.readdirSync(root, { recursive: true })) {
      if (!/\.(cpp|h)$/.test(file)) continue;
      const text = fs.readFileSync(path.join(root, file), 'utf8');
      const calls = text.match(/log_(line|pieces)\([^;]*;/gs) ?? [];
      for (const call of calls) {
        if (/secret_\b|\.secret\b|bot_token|init_data|initData|previous_secret|authorization/i.test(call.replace(/"[^"]*"/g, '""'))) {
          offenders.push(`${file}: ${call}`);
        }
      }
    }
  }
  assert.deepEqual(offenders, []);
});
