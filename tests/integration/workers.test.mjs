// Several daemons (DESIGN.md "Beyond one machine"): the stack's `workers` option starts three
// shopcastd on its own redis-server, each with its own sockets and state, and nginx spreads
// browsers over them; a daemon that is killed leaves its browsers to reconnect through nginx to
// the others. In direct mode every daemon listens on the same TCP port (SO_REUSEPORT, Redis mode
// only) and the kernel spreads the connections; without Redis a second daemon on the port still
// fails to start. Which daemon holds a connection is read from /proc: its established sockets.
// Nothing here publishes (redis.test.mjs covers delivery across daemons).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { startTestStack, stopTestStack, connectClient, closeAll, sleep } from './helpers.mjs';

const DAEMONS = 3;
const BROWSERS = 60;
const DIRECT_BROWSERS = 40;
const COUNT_TIMEOUT_MS = 10_000;

// The socket inodes a process holds open.
function socketInodes(pid) {
  const inodes = new Set();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // closed while we looked
    }
  }
  return inodes;
}

// Connections a daemon accepted on its Unix WebSocket socket (state 03: connected).
function unixConnections(pid, socketPath) {
  const mine = socketInodes(pid);
  return fs
    .readFileSync('/proc/net/unix', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[5] === '03' && f[7] === socketPath && mine.has(f[6])).length;
}

// Established TCP connections (state 01) a daemon holds on this local port.
function tcpConnections(pid, port) {
  const mine = socketInodes(pid);
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return fs
    .readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length > 9 && f[1].endsWith(`:${hexPort}`) && f[3] === '01' && mine.has(f[9])).length;
}

// Polls until `counts()` sums to `total` (connections are counted once the daemon has them).
async function settledCounts(counts, total, label) {
  const deadline = Date.now() + COUNT_TIMEOUT_MS;
  let seen = counts();
  while (seen.reduce((a, b) => a + b, 0) !== total) {
    if (Date.now() > deadline) assert.fail(`${label}: connections per daemon ${JSON.stringify(seen)}, expected ${total} in all`);
    await sleep(50);
    seen = counts();
  }
  return seen;
}

describe('three daemons behind nginx', () => {
  let stack;
  const clients = [];
  const wsCounts = () => stack.daemons.map((d) => (d.pid === undefined ? 0 : unixConnections(d.pid, d.wsSocket)));

  before(async () => {
    stack = await startTestStack({ workers: DAEMONS });
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  test('each daemon has its own sockets, state directory and process, all on the same Redis', () => {
    assert.equal(stack.daemons.length, DAEMONS);
    const pids = stack.daemonPids;
    assert.equal(new Set(pids).size, DAEMONS, `pids ${pids}`);
    for (const key of ['wsSocket', 'eventsSocket', 'stateDir']) {
      assert.equal(new Set(stack.daemons.map((d) => d[key])).size, DAEMONS, key);
    }
    assert.match(stack.redisUrl, /^unix:\//);
    assert.ok(fs.existsSync(stack.redis.socketPath), 'the stack runs its own redis-server');
    for (const [i, daemon] of stack.daemons.entries()) {
      assert.equal(daemon.name, `shopcastd@${i + 1}`);
      assert.ok(fs.statSync(daemon.wsSocket).isSocket(), daemon.wsSocket);
      const env = fs.readFileSync(`/proc/${daemon.pid}/environ`, 'utf8').split('\0');
      assert.ok(env.includes(`SHOPCAST_REDIS_URL=${stack.redisUrl}`), `${daemon.name} gets SHOPCAST_REDIS_URL`);
      assert.ok(env.includes(`SHOPCAST_STATE_DIRECTORY=${daemon.stateDir}`), `${daemon.name}'s own state`);
    }
    const conf = fs.readFileSync(path.join(stack.dir, 'nginx.conf'), 'utf8');
    const upstream = /upstream shopcast_ws \{([^}]*)\}/.exec(conf)[1];
    assert.deepEqual([...upstream.matchAll(/server\s+unix:(\S+);/g)].map((m) => m[1]), stack.daemons.map((d) => d.wsSocket));
  });

  test(`nginx spreads ${BROWSERS} browsers over all three daemons`, async () => {
    for (let i = 0; i < BROWSERS; i++) clients.push(await connectClient(stack.wsUrl, { origin: stack.origin }));
    const counts = await settledCounts(wsCounts, BROWSERS, 'after connecting');
    // least_conn over a zone shared by nginx's workers: close to even, never one left out.
    for (const [i, n] of counts.entries()) {
      assert.ok(n >= BROWSERS / DAEMONS / 2, `daemon ${i + 1} holds ${n} of ${BROWSERS}: ${JSON.stringify(counts)}`);
    }
  });

  test("a SIGKILLed daemon's browsers reconnect through nginx to the two others", async () => {
    const before = await settledCounts(wsCounts, BROWSERS, 'before the kill');
    const victim = 1;
    const victimPid = stack.daemons[victim].pid;
    const status = await stack.stopDaemon(victim, 'SIGKILL');
    assert.equal(status.signal, 'SIGKILL');
    assert.equal(stack.daemons[victim].pid, undefined);

    // nginx closes the browsers whose daemon went away, and only those.
    const deadline = Date.now() + COUNT_TIMEOUT_MS;
    while (clients.filter((c) => c.closed).length < before[victim] && Date.now() < deadline) await sleep(50);
    await sleep(200); // a wrongly closed browser of another daemon would show up here too
    const dropped = clients.filter((c) => c.closed);
    assert.equal(dropped.length, before[victim], `daemon ${victim + 1} (pid ${victimPid}) held ${before[victim]} browsers`);

    // Reconnecting through the same URL: nginx finds the dead socket refused and passes each
    // browser on to a live daemon; none is turned away.
    for (const c of dropped) {
      clients.splice(clients.indexOf(c), 1);
      const again = await connectClient(stack.wsUrl, { origin: stack.origin });
      assert.ok(again.hello.id, 'the reconnected browser is greeted');
      clients.push(again);
    }
    const after = await settledCounts(wsCounts, BROWSERS, 'after reconnecting');
    assert.equal(after[victim], 0);
    for (const i of [0, 2]) assert.ok(after[i] >= before[i], `daemon ${i + 1}: ${before[i]} -> ${after[i]}`);

    // Started again, it serves its own socket at once.
    await stack.startDaemon(victim);
    const direct = await connectClient(`ws+unix://${stack.daemons[victim].wsSocket}:/ws`, { origin: stack.origin });
    clients.push(direct);
    await settledCounts(wsCounts, BROWSERS + 1, 'after the restart');
    assert.equal(wsCounts()[victim], 1);
  });
});

describe("the production site's several-daemons upstream (nginx/shopcast.conf)", () => {
  let stack;
  const clients = [];

  before(async () => {
    stack = await startTestStack({ site: 'production', workers: DAEMONS });
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  test('its commented lines, uncommented for three instances, spread browsers over all three', async () => {
    const site = fs.readFileSync(path.join(stack.dir, 'site.conf'), 'utf8');
    assert.match(site, /^\s*least_conn;$/m);
    const browsers = BROWSERS / 2;
    for (let i = 0; i < browsers; i++) clients.push(await connectClient(stack.wssUrl, { origin: stack.httpsOrigin }));
    const counts = await settledCounts(
      () => stack.daemons.map((d) => unixConnections(d.pid, d.wsSocket)),
      browsers,
      'through the production site',
    );
    for (const [i, n] of counts.entries()) assert.ok(n >= browsers / DAEMONS / 2, `daemon ${i + 1}: ${JSON.stringify(counts)}`);
  });
});

describe('direct mode: two daemons on one port', () => {
  let stack;
  const clients = [];

  before(async () => {
    stack = await startTestStack({ workers: 2, directPort: 0, directTlsPort: 0 });
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  for (const [scheme, urlKey, portKey, browsers] of [
    ['ws://', 'directWsUrl', 'directPort', DIRECT_BROWSERS],
    ['wss://', 'directWssUrl', 'directTlsPort', DIRECT_BROWSERS / 2],
  ]) {
    test(`both daemons accept ${scheme} connections on the one port, the kernel spreading them`, async () => {
      const port = stack[portKey];
      const counts = () => stack.daemons.map((d) => tcpConnections(d.pid, port));
      for (const [i, daemon] of stack.daemons.entries()) {
        assert.match(daemon.log(), new RegExp(`127\\.0\\.0\\.1:${port}: listening with SO_REUSEPORT`), `daemon ${i + 1}`);
      }
      const opened = [];
      for (let i = 0; i < browsers; i++) opened.push(await connectClient(stack[urlKey], { origin: stack.origin }));
      clients.push(...opened);
      const spread = await settledCounts(counts, browsers, `${scheme} on port ${port}`);
      // Each connection lands on a daemon by a hash of its addresses: with this many, one
      // daemon left without any would mean the port is not shared (odds below 1 in 500,000).
      assert.ok(spread.every((n) => n > 0), `connections per daemon: ${JSON.stringify(spread)}`);
      await closeAll(opened);
    });
  }

  test('without Redis a daemon cannot take a port the others share', async () => {
    const dir = fs.mkdtempSync(path.join(stack.dir, 'local-'));
    const { command, env } = stack.daemonLaunch({
      SHOPCAST_REDIS_URL: null,
      SHOPCAST_EVENTS_SOCKET: path.join(dir, 'events.sock'),
      SHOPCAST_WS_LISTEN: `unix:${path.join(dir, 'ws.sock')},127.0.0.1:${stack.directPort}`,
      SHOPCAST_STATE_DIRECTORY: null,
      SHOPCAST_TLS_CERT_FILE: null,
      SHOPCAST_TLS_KEY_FILE: null,
    });
    const failure = await promisify(execFile)(command, [], { env, timeout: 10_000 }).then(
      () => assert.fail('a local-mode daemon started on the shared port'),
      (err) => err,
    );
    assert.equal(failure.code, 2, `exit status (a configuration error); stderr: ${failure.stderr}`);
    assert.match(failure.stderr, new RegExp(`cannot listen for WebSockets on 127\\.0\\.0\\.1:${stack.directPort}`));
  });
});
