// One load process: opens COUNT WebSockets to URL that never send anything, `BATCH` at a time,
// each bound to LOCAL_ADDRESS (127.0.0.x spreads the ephemeral ports), and holds them until its
// standard input closes or DEADLINE_MS passes. Prints one JSON line when all are open (or
// refused), another when it stops. Used by idle-memory.mjs; at most 9,000 per process (the
// 20,000 open-files cap).
import WebSocket from 'ws';

const url = process.env.URL;
const count = Number(process.env.COUNT);
const localAddress = process.env.LOCAL_ADDRESS || undefined;
const batch = Number(process.env.BATCH || 200);
const deadlineMs = Number(process.env.DEADLINE_MS || 300_000);
if (!url || !(count > 0 && count <= 9000)) {
  console.error('URL and COUNT (1-9000) are required');
  process.exit(2);
}

const sockets = [];
const statuses = {};
let opened = 0;
let failed = 0;
let closedEarly = 0;
const errors = {};

function openOne() {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, rejectUnauthorized: false, localAddress, handshakeTimeout: 30_000 });
    sockets.push(ws);
    ws.once('message', () => {
      ws.received = true;
      opened += 1;
      resolve();
    });
    ws.once('unexpected-response', (req, res) => {
      statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
      req.destroy();
      resolve();
    });
    ws.on('error', (err) => {
      errors[err.code || err.message] = (errors[err.code || err.message] || 0) + 1;
      failed += 1;
      resolve();
    });
    ws.once('close', () => {
      if (ws.received === undefined) closedEarly += 1;
      resolve();
    });
  });
}

const timer = setTimeout(() => process.exit(0), deadlineMs);
const started = Date.now();
const progress = setInterval(() => console.error(`${localAddress}: ${opened} open, ${failed} failed after ${Math.round((Date.now() - started) / 1000)} s`), 15_000);
for (let done = 0; done < count; done += batch) {
  await Promise.all(Array.from({ length: Math.min(batch, count - done) }, openOne));
}
clearInterval(progress);
console.log(JSON.stringify({ ready: true, opened, refused: statuses, failed, errors, closedEarly, ms: Date.now() - started }));
process.stdin.resume();
process.stdin.on('end', () => {
  const stillOpen = sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length;
  console.log(JSON.stringify({ stopped: true, stillOpen }));
  clearTimeout(timer);
  for (const ws of sockets) ws.terminate();
  process.exit(0);
});
