// Socket hand-over (DESIGN.md "Restarts and operations"): when systemd's socket units own the
// WebSocket and events sockets, a restart of shopcastd refuses no one. socket_holder (a test
// tool built beside the binaries) holds the sockets and passes them as systemd does
// ($LISTEN_FDS, $LISTEN_PID), starting the daemon again on request.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { startTestStack, stopTestStack, connectClient, closeAll, publishOk, nextId } from './helpers.mjs';

let stack;
let holder;
const holderLines = [];
const clients = [];

function waitForLine(lines, pattern, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      const found = lines.find((line) => pattern.test(line));
      if (found) return resolve(found.match(pattern));
      if (Date.now() - started > timeoutMs) return reject(new Error(`no ${what} within ${timeoutMs} ms; got: ${lines.slice(-5).join(' | ')}`));
      setTimeout(poll, 20);
    };
    poll();
  });
}

let daemonLog = [];

before(async () => {
  stack = await startTestStack();
  // The stack's own daemon makes its sockets itself; this one gets them handed over.
  await stack.stopDaemon('SIGTERM');
  const { command, env } = stack.daemonLaunch();
  // Modes as the socket units give them: nginx's group reaches ws.sock, events.sock is the owner's.
  holder = spawn(path.join(stack.binDir, 'socket_holder'), [`unix:${stack.wsSocket}=0660`, `unix:${stack.eventsSocket}=0600`, '--', command], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  readline.createInterface({ input: holder.stdout }).on('line', (line) => holderLines.push(line));
  readline.createInterface({ input: holder.stderr }).on('line', (line) => daemonLog.push(line));
  await waitForLine(daemonLog, /shopcastd ready/, 10_000, 'ready line');
});

after(async () => {
  await closeAll(clients);
  if (holder && holder.exitCode === null) {
    holder.stdin.end(); // the holder stops the daemon and exits
    await new Promise((resolve) => holder.once('exit', resolve));
  }
  await stopTestStack(stack);
});

test('the daemon serves the sockets it is handed, and says so', async () => {
  assert.ok(daemonLog.some((line) => /handed over by systemd/.test(line)), daemonLog.join('\n'));
  const client = await connectClient(stack.wsUrl, { origin: stack.origin });
  clients.push(client);
  const reply = await publishOk(stack, { type: 'product_added', shopId: 5, productId: nextId() });
  await client.waitForEvent(reply.id);
});

test('connections made while the daemon is down are served once it is back, none refused', async () => {
  const [, pid] = await waitForLine(holderLines, /^started (\d+)$/, 1000, 'daemon pid');
  process.kill(Number(pid), 'SIGTERM');
  await waitForLine(holderLines, /^exited 0$/, 10_000, 'a clean exit');

  // The daemon is down: these wait in the socket's backlog (through nginx's proxy).
  const pending = Array.from({ length: 50 }, () =>
    connectClient(stack.wsUrl, { origin: stack.origin, timeout: 15_000 }).then(
      (client) => ({ client }),
      (err) => ({ err }),
    ),
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  holderLines.length = 0;
  daemonLog = [];
  holder.stdin.write('start\n');
  const outcomes = await Promise.all(pending);
  const refused = outcomes.filter((o) => o.err);
  for (const o of outcomes) if (o.client) clients.push(o.client);
  console.log(`# connections made during the restart: ${outcomes.length}, refused: ${refused.length}`);
  assert.deepEqual(refused.map((o) => o.err.statusCode ?? o.err.message), [], 'none refused');

  const reply = await publishOk(stack, { type: 'product_added', shopId: 5, productId: nextId() });
  await Promise.all(outcomes.map((o) => o.client.waitForEvent(reply.id, { timeout: 5000 })));
});
