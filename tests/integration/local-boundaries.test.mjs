// Local boundaries (DESIGN.md "IPC between shopcast-fcgi and shopcastd"): only shopcast-fcgi's
// user can publish. nginx's workers run unprivileged and reach ws.sock and fcgi.sock through
// their group, never events.sock or its lock; the daemon checks each IPC peer's uid and each
// payload against the event rules; FastCGI clients that send nothing, or trickle, stall no one.
//
// Needs root: the stack then runs nginx's workers as an unprivileged user, and the neighbour is
// a process spawned under that user's uid and gid (the group the sockets are shared with).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  startTestStack, stopTestStack, connectClient, closeAll, publishOk, post, nextId, childPids, sleep,
} from './helpers.mjs';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

// common/ipc.h: a frame is a 4-byte big-endian length and the payload; a request payload is
// kind 1 and five length-prefixed fields; an ack is kind 2, status, id, recipients.
function field(text) {
  const bytes = Buffer.from(text, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function requestFrame({ key = '', type, shopId = '', userId = '', json }) {
  const payload = Buffer.concat([Buffer.from([1]), field(key), field(type), field(shopId), field(userId), field(json)]);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(payload.length);
  return Buffer.concat([header, payload]);
}

const ACK_STATUS = ['accepted', 'duplicate', 'rejected'];

// Reads acks off `bytes`: [{status, id, recipients}], and the bytes left over.
function readAcks(bytes) {
  const acks = [];
  let at = 0;
  while (bytes.length - at >= 4) {
    const length = bytes.readUInt32BE(at);
    if (bytes.length - at - 4 < length) break;
    const payload = bytes.subarray(at + 4, at + 4 + length);
    assert.equal(payload[0], 2, 'ack kind');
    const status = payload.readUInt32BE(1);
    const idLength = payload.readUInt32BE(5);
    acks.push({
      status: ACK_STATUS[status] ?? status,
      id: payload.subarray(9, 9 + idLength).toString('utf8'),
      recipients: payload.readUInt32BE(9 + idLength),
    });
    at += 4 + length;
  }
  return acks;
}

// Sends frames on one IPC connection as this (root) process and resolves with the acks once
// `count` have arrived.
function exchangeOnEventsSocket(stack, frames, count, timeout = 5000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(stack.eventsSocket);
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`only ${readAcks(received).length} of ${count} acks within ${timeout} ms`));
    }, timeout);
    socket.on('connect', () => socket.write(Buffer.concat(frames)));
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      const acks = readAcks(received);
      if (acks.length >= count) {
        clearTimeout(timer);
        socket.end();
        resolve(acks);
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

// Runs `script` (CommonJS, no file to read) under another uid and gid; resolves with the JSON
// it prints last.
function runAs(user, script, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], {
      uid: user.uid,
      gid: user.gid,
      cwd: '/',
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (err += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').pop();
      try {
        resolve(JSON.parse(last));
      } catch {
        reject(new Error(`neighbour exited ${code ?? signal} without a result; stdout ${out} stderr ${err}`));
      }
    });
  });
}

// What the neighbour tries: connect to the events socket and send a valid publish frame; open
// (and so lock) the lock file. It reports each outcome instead of throwing.
const NEIGHBOUR = `
const fs = require('node:fs');
const net = require('node:net');
const result = {};
try {
  fs.closeSync(fs.openSync(process.env.LOCK_FILE, 'r'));
  result.lockOpen = 'opened';
} catch (e) { result.lockOpen = e.code; }
const socket = net.connect(process.env.EVENTS_SOCKET);
let received = 0;
socket.on('connect', () => { result.connected = true; socket.write(Buffer.from(process.env.FRAME, 'base64')); });
socket.on('data', (chunk) => { received += chunk.length; });
socket.on('error', (e) => { result.socketError = e.code; });
const timer = setTimeout(() => { result.timedOut = true; socket.destroy(); }, 5000);
socket.on('close', () => { clearTimeout(timer); result.ackBytes = received; console.log(JSON.stringify(result)); });
`;

function procStatusIds(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const ids = (name) => /^(\w+):\s+(.*)$/m.exec(status.split('\n').find((line) => line.startsWith(`${name}:`)))[2].trim().split(/\s+/).map(Number);
  return { uid: ids('Uid'), gid: ids('Gid'), groups: ids('Groups').filter((n) => !Number.isNaN(n)) };
}

function daemonLinesSince(stack, offset, pattern) {
  return stack.daemonLog().slice(offset).split('\n').filter((line) => pattern.test(line));
}

async function waitForDaemonLine(stack, offset, pattern, timeout = 5000) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const lines = daemonLinesSince(stack, offset, pattern);
    if (lines.length) return lines;
    await sleep(25);
  }
  assert.fail(`no daemon log line matching ${pattern} within ${timeout} ms`);
}

describe('local boundaries', { skip: isRoot ? false : 'needs root: nginx workers and a neighbour under another uid' }, () => {
  let stack;
  let neighbour;
  const clients = [];

  before(async () => {
    stack = await startTestStack();
    neighbour = stack.nginxUser;
  });
  after(async () => {
    await closeAll(clients);
    await stopTestStack(stack);
  });

  test("nginx's workers run as the unprivileged user; the master alone stays root", () => {
    assert.ok(neighbour && neighbour.uid !== 0 && neighbour.gid !== 0, `nginx user ${JSON.stringify(neighbour)}`);
    const workers = childPids(stack.nginxPid);
    assert.ok(workers.length >= 1, 'nginx has workers');
    for (const pid of workers) {
      const ids = procStatusIds(pid);
      assert.deepEqual(ids.uid, [neighbour.uid, neighbour.uid, neighbour.uid, neighbour.uid], `worker ${pid} uids`);
      assert.deepEqual(ids.gid, [neighbour.gid, neighbour.gid, neighbour.gid, neighbour.gid], `worker ${pid} gids`);
      assert.ok(!ids.groups.includes(0), `worker ${pid} is not in root's group`);
    }
  });

  test("ws.sock and fcgi.sock are the workers' group's, events.sock and its lock the owner's alone", () => {
    const modes = {};
    for (const name of ['ws.sock', 'fcgi.sock', 'events.sock', 'events.sock.lock']) {
      const st = fs.statSync(path.join(stack.runDir, name));
      modes[name] = { mode: (st.mode & 0o777).toString(8), gid: st.gid };
    }
    assert.deepEqual(modes, {
      'ws.sock': { mode: '660', gid: neighbour.gid },
      'fcgi.sock': { mode: '660', gid: neighbour.gid },
      'events.sock': { mode: '600', gid: neighbour.gid },
      'events.sock.lock': { mode: '600', gid: neighbour.gid },
    });
  });

  test('publish through nginx and delivery over its WebSocket work with the unprivileged workers', async () => {
    const client = await connectClient(stack.wsUrl);
    clients.push(client);
    const event = { type: 'product_added', shopId: 5, productId: nextId() };
    const reply = await publishOk(stack, event);
    assert.deepEqual(await client.waitForEvent(reply.id, { timeout: 5000 }), { ...event, id: reply.id });
  });

  test("a process in the sockets' group can neither publish through events.sock nor take its lock", async () => {
    const client = await connectClient(stack.wsUrl);
    clients.push(client);
    const productId = nextId();
    const frame = requestFrame({ type: 'product_added', shopId: '5', json: JSON.stringify({ type: 'product_added', shopId: 5, productId }) });
    const result = await runAs(neighbour, NEIGHBOUR, {
      EVENTS_SOCKET: stack.eventsSocket,
      LOCK_FILE: `${stack.eventsSocket}.lock`,
      FRAME: frame.toString('base64'),
    });
    assert.deepEqual(result, { lockOpen: 'EACCES', socketError: 'EACCES', ackBytes: 0 });
    // The daemon holds its lock and still serves: a real publish arrives, the neighbour's never.
    const reply = await publishOk(stack, { type: 'product_added', shopId: 5, productId: nextId() });
    await client.waitForEvent(reply.id, { timeout: 5000 });
    assert.ok(!client.events().some((e) => e.productId === productId), 'the neighbour published');
  });

  test('with the socket mode wrong, the daemon still refuses a peer of another uid and logs it', async (t) => {
    const client = await connectClient(stack.wsUrl);
    clients.push(client);
    const productId = nextId();
    const frame = requestFrame({ type: 'product_added', shopId: '5', json: JSON.stringify({ type: 'product_added', shopId: 5, productId }) });
    const offset = stack.daemonLog().length;
    // An operator's mistake, undone below: everyone may connect to the socket file.
    fs.chmodSync(stack.eventsSocket, 0o666);
    t.after(() => fs.chmodSync(stack.eventsSocket, 0o600));
    const result = await runAs(neighbour, NEIGHBOUR, {
      EVENTS_SOCKET: stack.eventsSocket,
      LOCK_FILE: `${stack.eventsSocket}.lock`,
      FRAME: frame.toString('base64'),
    });
    assert.equal(result.connected, true, `the neighbour reached the socket: ${JSON.stringify(result)}`);
    assert.equal(result.ackBytes, 0, 'the daemon answered the neighbour');
    assert.notEqual(result.timedOut, true, 'the daemon did not hang up on the neighbour');
    const lines = await waitForDaemonLine(stack, offset, new RegExp(`refusing a publisher connection from uid ${neighbour.uid}\\b`));
    assert.equal(lines.length, 1, lines.join('\n'));
    const reply = await publishOk(stack, { type: 'product_added', shopId: 5, productId: nextId() });
    await client.waitForEvent(reply.id, { timeout: 5000 });
    assert.ok(!client.events().some((e) => e.productId === productId), 'the neighbour published');
  });

  test('the daemon answers rejected to payloads that are not events, accepted to valid ones, and logs a bounded number of lines', async () => {
    const offset = stack.daemonLog().length;
    const bad = [
      { type: 'product_added', shopId: '1', json: '{}' },
      { type: 'product_added', shopId: '1', json: '[]' },
      { type: 'nope', json: '{"type":"nope"}' },
      { type: 'product_added', shopId: '1', json: '{"type":"product_added","shopId":1,"pro' },
      { type: 'product_deleted', shopId: '1', json: '{"type":"product_added","shopId":1,"productId":2}' },
      { type: 'order_status', json: '{"type":"order_status","orderId":1,"status":"paid","userId":7}' },
    ];
    const flood = Array.from({ length: 50 }, (_, i) => bad[i % bad.length]);
    const valid = { type: 'product_added', shopId: '9', json: JSON.stringify({ type: 'product_added', shopId: 9, productId: nextId() }) };
    const acks = await exchangeOnEventsSocket(stack, [...flood, valid].map(requestFrame), flood.length + 1);
    assert.deepEqual(acks.slice(0, flood.length).map((a) => a.status), flood.map(() => 'rejected'));
    assert.equal(acks[flood.length].status, 'accepted');
    assert.ok(acks[flood.length].id.length > 0, 'accepted ack carries the id');
    // Every line was written before the last ack; the pipe may deliver them a moment later.
    await waitForDaemonLine(stack, offset, /refusing a publish request: invalid event/);
    await sleep(200);
    const lines = daemonLinesSince(stack, offset, /refusing a publish request: invalid event/);
    assert.ok(lines.length >= 1 && lines.length <= 5, `${lines.length} refusal lines for ${flood.length} refusals:\n${lines.join('\n')}`);
  });

  test('FastCGI clients that send nothing or trickle do not hold up a normal POST', async () => {
    // More of each than shopcast-fcgi has workers (SHOPCAST_FCGI_THREADS, 4 by default).
    const stallers = 6;
    const silent = [];
    const tricklers = [];
    const timers = [];
    const closedBy = new Map();
    const open = (kind, list) => {
      const socket = net.connect(stack.fcgiSocket);
      socket.on('error', () => {});
      socket.on('close', () => closedBy.set(socket, Date.now()));
      list.push(socket);
      return socket;
    };
    try {
      for (let i = 0; i < stallers; i++) open('silent', silent);
      // A valid FastCGI BEGIN_REQUEST (responder, request 1), then a PARAMS record a byte at a time.
      const begin = Buffer.from([1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
      const params = Buffer.from([1, 4, 0, 1, 0, 40, 0, 0, ...Buffer.alloc(40, 0x41)]);
      for (let i = 0; i < stallers; i++) {
        const socket = open('trickle', tricklers);
        socket.write(begin);
        let at = 0;
        timers.push(setInterval(() => {
          if (at < params.length && !socket.destroyed) socket.write(params.subarray(at, ++at));
        }, 250));
      }
      await Promise.all([...silent, ...tricklers].map((s) => new Promise((resolve) => (s.connecting ? s.once('connect', resolve) : resolve()))));
      await sleep(300); // the stallers are accepted and waiting before the POST goes out

      const started = Date.now();
      const res = await post(stack, { type: 'product_added', shopId: 5, productId: nextId() }, { timeout: 8000 });
      const elapsed = Date.now() - started;
      assert.equal(res.status, 200, res.text);
      const stillOpen = [...silent, ...tricklers].filter((s) => !closedBy.has(s)).length;
      assert.equal(stillOpen, 2 * stallers, 'the POST was answered only after stallers were dropped');
      console.log(`POST beside ${stallers} silent and ${stallers} trickling FastCGI clients: ${elapsed} ms`);

      // And the stallers do not stay for ever: each is closed once its deadline passes.
      const deadline = Date.now() + 20_000;
      while (closedBy.size < 2 * stallers && Date.now() < deadline) await sleep(100);
      assert.equal(closedBy.size, 2 * stallers, 'stalling FastCGI connections still open after 20 s');
    } finally {
      for (const timer of timers) clearInterval(timer);
      for (const socket of [...silent, ...tricklers]) socket.destroy();
    }
    assert.match(stack.fcgiLog(), /closed \d+ FastCGI connection\(s\) that sent no complete request within 10 s/);
  });
});
