// Admission through nginx (DESIGN.md "Admission and sizing"): a full daemon refuses the excess
// with a clean HTTP 503 while publishing keeps answering 200; a crowd behind one address (all of
// a carrier-grade NAT, or every local client) is admitted with the defaults; the dev stack's
// nginx has the connection slots for the daemon's default SHOPCAST_MAX_CONNECTIONS.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { startTestStack, stopTestStack, publishOk, rawUpgrade, WebSocket, repoRoot } from './helpers.mjs';

// Opens `count` plain WebSockets (no resume, nothing sent) `batch` at a time; resolves with them
// once each has received its hello. Each keeps what it receives in `ws.received`.
async function openIdle(url, count, { batch = 100, timeout = 20_000 } = {}) {
  const sockets = [];
  const openOne = () =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeout });
      ws.received = [];
      ws.on('message', (data) => ws.received.push(data.toString()));
      ws.once('message', () => resolve(ws));
      ws.once('unexpected-response', (req, res) => reject(new Error(`upgrade refused with ${res.statusCode}`)));
      ws.once('error', reject);
      ws.once('close', (code) => reject(new Error(`closed before hello (${code})`)));
      sockets.push(ws);
    });
  for (let opened = 0; opened < count; opened += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, count - opened) }, openOne));
  }
  return sockets;
}

function closeIdle(sockets) {
  for (const ws of sockets) ws.terminate();
}

// Resolves when every socket has received a message containing `id` (it may have arrived before
// the publish reply did).
function allReceive(sockets, id, timeout = 20_000) {
  return Promise.all(
    sockets.map(
      (ws) =>
        new Promise((resolve, reject) => {
          const has = () => ws.received.some((text) => text.includes(id));
          if (has()) return resolve();
          const timer = setTimeout(() => reject(new Error(`event ${id} not received`)), timeout);
          const onMessage = () => {
            if (!has()) return;
            clearTimeout(timer);
            ws.off('message', onMessage);
            resolve();
          };
          ws.on('message', onMessage);
        }),
    ),
  );
}

describe('a full daemon (SHOPCAST_MAX_CONNECTIONS=300)', () => {
  let stack;
  let held = [];
  before(async () => {
    // 300 instead of the default 10,000: the refusal path is the same and filling it stays quick.
    stack = await startTestStack({ daemonEnv: { SHOPCAST_MAX_CONNECTIONS: '300' } });
  });
  after(async () => {
    closeIdle(held);
    await stopTestStack(stack);
  });

  test('the excess gets HTTP 503 in the upgrade reply, no reset, while publishing answers 200', async () => {
    held = await openIdle(stack.wsUrl, 300);
    const publishing = (async () => {
      const replies = [];
      for (let i = 0; i < 20; i++) replies.push(await publishOk(stack, { type: 'shop_updated', shopId: 1, i }));
      return replies;
    })();
    const excess = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const url = i % 2 ? stack.wsUrl : stack.wssUrl;
        const { socket, status, head } = await rawUpgrade(url, { origin: stack.origin, timeout: 10_000 });
        socket.destroy();
        return { status, head };
      }),
    );
    for (const { status, head } of excess) assert.equal(status, 503, head);
    const replies = await publishing;
    for (const reply of replies) assert.equal(reply.recipients, 300);
    await allReceive(held, replies.at(-1).id);
    assert.equal(held.filter((ws) => ws.readyState !== WebSocket.OPEN).length, 0, 'admitted clients stay open');
  });
});

describe('the dev stack with its defaults', () => {
  let stack;
  let held = [];
  before(async () => {
    stack = await startTestStack();
  });
  after(async () => {
    closeIdle(held);
    await stopTestStack(stack);
  });

  test('2,000 clients from one address (127.0.0.1) are all admitted and all get an event', async () => {
    held = await openIdle(stack.wsUrl, 2000, { batch: 200 });
    const reply = await publishOk(stack, { type: 'product_added', shopId: 5, productId: 6 });
    assert.equal(reply.recipients, 2000);
    await allReceive(held, reply.id);
  });

  test("nginx's connection slots hold the daemon's default connection limit with room for the API", async () => {
    const conf = await readFile(path.join(stack.dir, 'nginx.conf'), 'utf8');
    const directive = (name) => Number(new RegExp(`^\\s*${name}\\s+(\\d+);`, 'm').exec(conf)?.[1]);
    const workers = directive('worker_processes');
    const slots = directive('worker_connections');
    const nofile = directive('worker_rlimit_nofile');
    assert.match(conf, /^\s*accept_mutex\s+on;/m, 'a worker with 7/8 of its slots used leaves new connections to the others');
    const bin = process.env.SHOPCAST_BIN_DIR ? path.resolve(process.env.SHOPCAST_BIN_DIR) : path.join(repoRoot, 'build', 'bin');
    const { stdout } = await promisify(execFile)(path.join(bin, 'shopcastd'), ['--help']);
    const maxConnections = Number(/SHOPCAST_MAX_CONNECTIONS\)\s.*\[default: (\d+)\]/.exec(stdout)?.[1]);
    assert.equal(maxConnections, 10000);
    assert.ok(nofile <= 20000 && slots + 16 <= nofile, `worker_rlimit_nofile ${nofile} covers ${slots} slots within 20,000`);
    // Two slots per proxied browser; 1,000 slots kept for publish requests and the demo page.
    const usable = Math.floor((workers * slots * 7) / 8);
    assert.ok(usable >= 2 * maxConnections + 1000, `${workers} x ${slots} slots (7/8 usable: ${usable}) for ${maxConnections} browsers`);
    assert.ok(2 * maxConnections / workers < 20000, 'each worker stays under the open-files cap');
  });
});
