// Shared pieces of the integration tests: starting a stack, WebSocket clients that record every
// message, a raw HTTP client for exact requests, and small waiting utilities.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';

export { sleep, WebSocket };

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PUBLISH_PATH = '/api/internal/broadcast';

// Server-to-browser messages that are not published events.
export const CONTROL_TYPES = new Set(['hello', 'resync', 'auth_ok', 'error', 'subscribed']);

// Cursors are opaque strings (DESIGN.md): a test only checks that there is one, never its
// inside (tests/unit/cursor_test.cpp tests the format).
export function isCursor(id) {
  return typeof id === 'string' && id.length > 0 && id.length <= 64 && /^[\x21-\x7e]+$/.test(id);
}

export async function startTestStack(options = {}) {
  const { startStack } = await import(path.join(repoRoot, 'scripts', 'lib', 'stack.mjs'));
  return startStack(options);
}

// Stops a stack started in `before`, whatever state a failed test left it in, and removes its
// directory (kept when SHOPCAST_KEEP_TEST_DIRS is set, to read the logs after a failure).
// Also fails the file when a service did not stop cleanly on SIGTERM or a sanitizer (ASan,
// UBSan, LSan builds via SHOPCAST_BIN_DIR) reported anything.
export async function stopTestStack(stack) {
  if (!stack) return;
  const daemonWasRunning = stack.daemonPid !== undefined;
  const fcgiWasRunning = stack.fcgiPid !== undefined;
  const status = await stack.stop();
  if (!process.env.SHOPCAST_KEEP_TEST_DIRS) fs.rmSync(stack.dir, { recursive: true, force: true });
  const problems = [];
  if (daemonWasRunning && (status.daemon?.code !== 0 || status.daemon?.signal)) {
    problems.push(`shopcastd did not exit 0 on SIGTERM: ${JSON.stringify(status.daemon)}`);
  }
  if (fcgiWasRunning && status.fcgi?.signal === 'SIGKILL') {
    problems.push('shopcast-fcgi ignored SIGTERM and was killed');
  }
  for (const [name, log] of [['shopcastd', stack.daemonLog()], ['shopcast-fcgi', stack.fcgiLog()]]) {
    const m = /(ERROR: (Address|Leak|Thread)Sanitizer|runtime error:)/.exec(log);
    if (m) problems.push(`${name} sanitizer report:\n${log.slice(Math.max(0, m.index - 200), m.index + 3000)}`);
  }
  if (problems.length) throw new Error(problems.join('\n'));
}

// ---------------------------------------------------------------------------------------------
// HTTP

const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 64, rejectUnauthorized: false });

// One HTTP request with full control over headers (an array value sends the header once per
// element) and body (string or Buffer, sent as is). Resolves with status, lower-case headers,
// raw text and the parsed JSON body (undefined when the body is not JSON). `localAddress` sends
// from another loopback address (127.0.0.2, ...), which nginx then reports as the client's.
export function request(url, { method = 'GET', headers = {}, body, timeout = 5000, agent, localAddress } = {}) {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      u,
      {
        method,
        // A pooled connection may come from another address: a bound request gets its own.
        agent: localAddress ? false : (agent ?? (u.protocol === 'https:' ? httpsAgent : httpAgent)),
        localAddress,
        rejectUnauthorized: false,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    try {
      for (const [name, value] of Object.entries(headers)) {
        if (value !== undefined) req.setHeader(name, value);
      }
      if (body !== undefined) req.setHeader('content-length', Buffer.byteLength(body));
    } catch (err) {
      req.destroy(err);
      return;
    }
    req.setTimeout(timeout, () => req.destroy(new Error(`${method} ${url}: no reply in ${timeout} ms`)));
    req.end(body);
  });
}

// POSTs `body` to the stack's publish endpoint. `body` may be an object (serialized), a string
// or a Buffer. Defaults: the stack's secret and `Content-Type: application/json`; pass
// `secret: null` / `contentType: null` to leave the header out.
export function post(stack, body, { secret = stack.secret, contentType = 'application/json', headers = {}, method = 'POST', base = stack.httpUrl, timeout } = {}) {
  const h = {};
  if (contentType !== null) h['content-type'] = contentType;
  if (secret !== null) h['x-internal-secret'] = secret;
  Object.assign(h, headers);
  const data = typeof body === 'string' || Buffer.isBuffer(body) || body === undefined ? body : JSON.stringify(body);
  return request(base + PUBLISH_PATH, { method, headers: h, body: data, timeout });
}

// Publishes an event that must be accepted; returns the 200 reply's JSON.
export async function publishOk(stack, event, options) {
  const res = await post(stack, event, options);
  assert.equal(res.status, 200, `publish ${JSON.stringify(event).slice(0, 200)} -> ${res.status} ${res.text}`);
  assert.match(String(res.headers['content-type']), /^application\/json\b/i);
  assert.equal(res.json.success, true);
  assert.equal(typeof res.json.id, 'string');
  return res.json;
}

export function assertJsonError(res, status, error, label = '') {
  assert.equal(res.status, status, `${label}: status (body ${res.text})`);
  assert.match(String(res.headers['content-type']), /^application\/json\b/i, `${label}: Content-Type`);
  assert.ok(res.json && typeof res.json === 'object', `${label}: body is JSON: ${res.text}`);
  assert.equal(res.json.success, false, `${label}: success`);
  assert.equal(res.json.error, error, `${label}: error`);
}

// ---------------------------------------------------------------------------------------------
// WebSocket clients

// A WebSocket that records every message it receives, parsed, in arrival order.
export class Client {
  constructor(ws) {
    this.ws = ws;
    this.messages = [];
    this.raw = [];
    this.hello = null;
    this.closed = null; // { code, reason } once closed
    this.pings = 0;
    this.waiters = new Set();
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('ping', () => {
      this.pings += 1;
      this.notify();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString('utf8'), at: Date.now() };
      this.notify();
    });
    ws.on('error', (err) => {
      this.lastError = err;
    });
  }

  onMessage(data, isBinary) {
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data).toString('utf8');
    this.raw.push({ text, isBinary });
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      msg = { unparsed: text };
    }
    if (this.syncPending && (msg.type === 'subscribed' || msg.type === 'error')) {
      // The answer to sync()'s probe: not part of what the test observes.
      const resolve = this.syncPending;
      this.syncPending = null;
      resolve(msg);
      return;
    }
    this.messages.push(msg);
    this.notify();
  }

  notify() {
    for (const w of [...this.waiters]) w();
  }

  // Resolves when `check()` returns a value other than undefined; rejects after `timeout` ms.
  until(check, timeout, label) {
    return new Promise((resolve, reject) => {
      let waiter;
      const done = (fn, value) => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        fn(value);
      };
      waiter = () => {
        let value;
        try {
          value = check();
        } catch (err) {
          done(reject, err);
          return;
        }
        if (value !== undefined) done(resolve, value);
        else if (this.closed) done(reject, new Error(`connection closed (${JSON.stringify(this.closed)}) while waiting for ${label}; last: ${this.messages.slice(-3).map((m) => JSON.stringify(m).slice(0, 200)).join(' | ')}`));
      };
      const timer = setTimeout(() => {
        const tail = this.messages.slice(-5).map((m) => JSON.stringify(m).slice(0, 200));
        done(reject, new Error(`timed out after ${timeout} ms waiting for ${label}; ${this.messages.length} messages, last: ${tail.join(' | ')}; closed: ${JSON.stringify(this.closed)}`));
      }, timeout);
      this.waiters.add(waiter);
      waiter();
    });
  }

  // The first message at index >= from that satisfies pred.
  waitFor(pred, { timeout = 2000, from = 0, label = 'a matching message' } = {}) {
    return this.until(() => this.messages.slice(from).find(pred), timeout, label);
  }

  // Resolves with the matching messages once there are at least n of them.
  waitForCount(pred, n, { timeout = 2000, from = 0, label } = {}) {
    return this.until(
      () => {
        const found = this.messages.slice(from).filter(pred);
        return found.length >= n ? found : undefined;
      },
      timeout,
      label ?? `${n} matching messages`,
    );
  }

  waitForType(type, options = {}) {
    return this.waitFor((m) => m.type === type, { label: `a "${type}" message`, ...options });
  }

  waitForEvent(id, options = {}) {
    return this.waitFor((m) => m.id === id && !CONTROL_TYPES.has(m.type), { label: `event ${id}`, ...options });
  }

  waitClose(timeout = 2000) {
    return this.until(() => this.closed ?? undefined, timeout, 'the connection to close');
  }

  // Published events received so far (control messages left out).
  events() {
    return this.messages.filter((m) => !CONTROL_TYPES.has(m.type));
  }

  eventIds() {
    return this.events().map((m) => m.id);
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  // A round trip through the daemon: every action sent before it has been handled once this
  // resolves. The probe (unsubscribing nothing) changes no state and its answer is not recorded.
  async sync(timeout = 2000) {
    const answered = new Promise((resolve) => {
      this.syncPending = resolve;
    });
    this.send({ action: 'unsubscribe', shops: [] });
    let timer;
    const timedOut = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('no answer to the sync probe')), timeout);
    });
    let answer;
    try {
      answer = await Promise.race([answered, timedOut]);
    } finally {
      clearTimeout(timer);
    }
    // The probe is valid: an error answer means the daemon took it for something else.
    assert.equal(answer.type, 'subscribed', `the sync probe was answered ${JSON.stringify(answer)}`);
    return answer;
  }

  close(code = 1000) {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code);
  }

  terminate() {
    this.ws.terminate();
  }
}

// Opens a WebSocket, waits for `hello`, and (unless resume: false) sends
// {"action":"resume","since":hello.id} so live delivery starts at once, then syncs so that the
// daemon has handled it. Rejects with err.statusCode when the upgrade is refused.
export async function connectClient(url, { origin, headers, resume = true, sync = true, timeout = 3000, wsOptions = {} } = {}) {
  const ws = new WebSocket(url, {
    origin,
    headers,
    rejectUnauthorized: false,
    handshakeTimeout: timeout,
    perMessageDeflate: false,
    ...wsOptions,
  });
  const client = new Client(ws);
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no WebSocket open on ${url} within ${timeout} ms`));
    }, timeout);
    ws.once('open', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.once('unexpected-response', (req, res) => {
      clearTimeout(timer);
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const err = new Error(`upgrade refused with ${res.statusCode}`);
        err.statusCode = res.statusCode;
        err.body = Buffer.concat(chunks).toString('utf8');
        err.headers = res.headers;
        req.destroy();
        reject(err);
      });
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.once('close', (code, reason) => {
      clearTimeout(timer);
      const err = new Error(`closed before open: ${code} ${reason}`);
      err.closeCode = code;
      reject(err);
    });
  });
  const hello = await client.waitFor(() => true, { timeout, label: 'the first message (hello)' });
  assert.equal(hello.type, 'hello', `first message is hello: ${JSON.stringify(hello)}`);
  assert.deepEqual(Object.keys(hello).sort(), ['id', 'type']);
  assert.ok(isCursor(hello.id), `hello.id ${JSON.stringify(hello.id)}`);
  client.hello = hello;
  if (resume) {
    client.send({ action: 'resume', since: hello.id });
    if (sync) await client.sync(timeout);
  }
  return client;
}

// Closes every client given, ignoring those already closed.
export async function closeAll(clients) {
  await Promise.all(
    clients.filter(Boolean).map(async (c) => {
      if (c.closed) return;
      c.close();
      try {
        await c.waitClose(1000);
      } catch {
        c.terminate();
      }
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Raw WebSocket upgrade, for clients that must misbehave (never read, never answer a ping).

// Performs the HTTP upgrade over a plain or TLS socket. Resolves with the socket (paused),
// the status code, the response head and any bytes received after it.
// With `socketPath` the connection goes to that Unix socket (the daemon's own listener).
export function rawUpgrade(url, { origin, headers = {}, timeout = 3000, socketPath } = {}) {
  const u = new URL(url);
  const secure = u.protocol === 'wss:' || u.protocol === 'https:';
  const port = Number(u.port || (secure ? 443 : 80));
  const key = crypto.randomBytes(16).toString('base64');
  const lines = [
    `GET ${u.pathname}${u.search} HTTP/1.1`,
    `Host: ${u.host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${key}`,
    'Sec-WebSocket-Version: 13',
  ];
  if (origin) lines.push(`Origin: ${origin}`);
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  const head = lines.join('\r\n') + '\r\n\r\n';
  return new Promise((resolve, reject) => {
    const socket = socketPath
      ? net.connect({ path: socketPath })
      : secure
      ? tls.connect({ host: u.hostname, port, rejectUnauthorized: false, servername: u.hostname === '127.0.0.1' ? undefined : u.hostname })
      : net.connect({ host: u.hostname, port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no upgrade reply from ${url} within ${timeout} ms`));
    }, timeout);
    socket.once(secure && !socketPath ? 'secureConnect' : 'connect', () => socket.write(head));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    const onData = (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      const headText = buf.subarray(0, end).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(headText)?.[1]);
      resolve({ socket, status, head: headText, rest: buf.subarray(end + 4) });
    };
    socket.on('data', onData);
  });
}

// Builds one masked client-to-server frame.
export function clientFrame(opcode, payload) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const mask = crypto.randomBytes(4);
  let header;
  if (data.length < 126) {
    header = Buffer.from([0x80 | opcode, 0x80 | data.length]);
  } else if (data.length < 65536) {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(data.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(data.length), 2);
  }
  const masked = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) masked[i] = data[i] ^ mask[i & 3];
  return Buffer.concat([header, mask, masked]);
}

// ---------------------------------------------------------------------------------------------
// Processes and logs

// True when the stack runs AddressSanitizer binaries: their quarantine keeps freed memory, so an
// RSS bound measures ASan's churn rather than the daemon's queues.
export function underAddressSanitizer(stack) {
  return fs.readFileSync(path.join(stack.binDir, 'shopcastd')).includes('__asan_init');
}

export function readRssBytes(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  assert.ok(m, `VmRSS of ${pid}`);
  return Number(m[1]) * 1024;
}

export function childPids(pid) {
  const out = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

export function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// A unique, increasing number for product/order ids across one test file.
let counter = Math.floor(Date.now() % 1e6) * 1000;
export function nextId() {
  counter += 1;
  return counter;
}

// Resolves with nginx's access log once it contains `text`; rejects after `timeout` ms.
export async function waitForAccessLog(stack, text, timeout = 5000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const log = await stack.accessLog();
    if (log.includes(text)) return log;
    if (Date.now() > deadline) throw new Error(`access log has no ${JSON.stringify(text)} after ${timeout} ms:\n${log.slice(-2000)}`);
    await sleep(25);
  }
}

// Publishes a public event every connection sees (order_status without userId, no shop) and
// waits until each client has it: whatever was sent to them before has arrived by then, a
// duplicate included. Returns the probe's id; eventsBefore(client, id) is what came before it.
export async function probeAll(stack, clients, timeout = 5000) {
  const reply = await publishOk(stack, { type: 'order_status', orderId: nextId(), status: 'probe' });
  await Promise.all(clients.map((c) => c.waitForEvent(reply.id, { timeout })));
  return reply.id;
}

export function eventsBefore(client, probeId) {
  const events = client.events();
  const at = events.findIndex((m) => m.id === probeId);
  assert.ok(at >= 0, `probe ${probeId} received`);
  assert.equal(at, events.length - 1, 'nothing after the probe');
  return events.slice(0, at);
}
