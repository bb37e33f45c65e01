// The wire as a careless or hostile client writes it, in raw bytes over a socket: malformed HTTP
// on the publish location (every reply JSON with the right status, on the development stack and
// the production site alike), oversized upgrade headers (431 through nginx, and what direct mode
// does), and WebSocket frames a browser never sends (RFC 6455: unmasked frames, text that is not
// UTF-8, close codes no peer may send), through nginx and in direct mode (ws:// and wss://).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import {
  startTestStack,
  stopTestStack,
  rawUpgrade,
  clientFrame,
  request,
  post,
  waitForAccessLog,
  PUBLISH_PATH,
} from './helpers.mjs';

const OPCODE_TEXT = 0x1;
const OPCODE_CLOSE = 0x8;

// Writes `bytes` on a fresh connection and reads until the server closes it (nginx closes after
// an error reply it gives a broken request) or, for a reply that keeps the connection, until the
// body announced by Content-Length is in.
function rawHttp(port, bytes, { secure = false, timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const socket = secure
      ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false })
      : net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let settled = false;
    const timer = setTimeout(() => finish(new Error(`no complete reply within ${timeout} ms: ${buf.toString('latin1').slice(0, 300)}`)), timeout);
    function finish(err) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) return reject(err);
      const text = buf.toString('utf8');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return reject(new Error(`no HTTP reply: ${JSON.stringify(text.slice(0, 300))}`));
      const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
      const headers = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const body = text.slice(end + 4);
      let json;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1]), statusLine, headers, text: body, json });
    }
    socket.once(secure ? 'secureConnect' : 'connect', () => socket.write(bytes));
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const text = buf.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1];
      if (end >= 0 && length !== undefined && buf.length >= end + 4 + Number(length)) finish();
    });
    socket.on('end', () => finish());
    socket.on('error', (err) => (buf.length ? finish() : finish(err)));
  });
}

function assertJsonReply(res, status, error, label) {
  assert.equal(res.status, status, `${label}: ${res.statusLine} ${res.text}`);
  assert.match(String(res.headers['content-type']), /^application\/json\b/i, `${label}: Content-Type`);
  assert.ok(res.json && typeof res.json === 'object', `${label}: body is JSON: ${res.text}`);
  assert.equal(res.json.success, false, `${label}: success`);
  assert.equal(res.json.error, error, `${label}: error`);
  assert.equal(typeof res.json.message, 'string', `${label}: message`);
}

const P = PUBLISH_PATH;
const nineKb = 'x'.repeat(9 * 1024);

// Requests nginx refuses before any application sees them, and the one the app answers (an
// unknown method): [label, raw request, status, error].
const MALFORMED = [
  ['conflicting Content-Length', `POST ${P} HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}`, 400, 'bad_request'],
  ['negative Content-Length', `POST ${P} HTTP/1.1\r\nHost: a\r\nContent-Length: -2\r\n\r\n{}`, 400, 'bad_request'],
  ['a folded header line', `POST ${P} HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\nContent-Length: 2\r\n\r\n{}`, 400, 'bad_request'],
  ['no Host in HTTP/1.1', `POST ${P} HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}`, 400, 'bad_request'],
  ['a request line of garbage', '\x01\x02 hello\r\n\r\n', 400, 'bad_request'],
  ['Transfer-Encoding chunked with Content-Length', `POST ${P} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n0\r\n\r\n`, 400, 'bad_request'],
  ['a broken chunked body', `POST ${P} HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`, 400, 'bad_request'],
  ['chunked in HTTP/1.0', `POST ${P} HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400, 'bad_request'],
  ['Transfer-Encoding: gzip', `POST ${P} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n`, 501, 'not_implemented'],
  ['HTTP/2.5 in the request line', `POST ${P} HTTP/2.5\r\nHost: a\r\n\r\n`, 505, 'http_version_not_supported'],
  ['a 9 KB header line', `POST ${P} HTTP/1.1\r\nHost: a\r\nX-Big: ${nineKb}\r\nContent-Length: 2\r\n\r\n{}`, 431, 'headers_too_large'],
  ['40 KB of headers', `POST ${P} HTTP/1.1\r\nHost: a\r\n${Array.from({ length: 6 }, (_, i) => `X-Part-${i}: ${'y'.repeat(7000)}\r\n`).join('')}Content-Length: 2\r\n\r\n{}`, 431, 'headers_too_large'],
  ['a 9 KB URI', `POST ${P}?pad=${nineKb} HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}`, 414, 'uri_too_long'],
  ['a trailing slash', `POST ${P}/ HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`, 404, 'not_found'],
  ['another path under /api', `POST /api/internal/broadcasts HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}`, 404, 'not_found'],
  ['an internal error page asked for by name', `GET /.shopcast-error/unavailable HTTP/1.1\r\nHost: a\r\n\r\n`, 404, 'not_found'],
  ['the unknown method FOO (the app answers)', `FOO ${P} HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n`, 405, 'method_not_allowed'],
];

for (const site of ['dev', 'production']) {
  describe(`malformed requests on the publish location, ${site} site: JSON with the right status`, () => {
    let stack;
    before(async () => {
      stack = await startTestStack({ site });
    });
    after(async () => {
      await stopTestStack(stack);
    });

    // The production site serves the API over https only; the dev stack on both ports.
    const secure = site === 'production';
    for (const [label, bytes, status, error] of MALFORMED) {
      test(`${label} -> ${status} ${error}`, async () => {
        const res = await rawHttp(secure ? stack.httpsPort : stack.httpPort, bytes, { secure });
        assertJsonReply(res, status, error, label);
        if (secure) assert.equal(res.headers['strict-transport-security'], 'max-age=63072000', `${label}: HSTS`);
        if (status < 500) assert.equal(res.headers['retry-after'], undefined, `${label}: nothing to retry`);
      });
    }

    test('plain HTTP to the https port -> 400 bad_request', async () => {
      const res = await rawHttp(stack.httpsPort, `POST ${P} HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}`);
      assertJsonReply(res, 400, 'bad_request', 'http to https port');
    });

    test('the access log names what the client asked for, not the error page it got', async () => {
      const log = await waitForAccessLog(stack, `"POST ${P}/ HTTP/1.1" 404`);
      assert.match(log, /"POST \/api\/internal\/broadcast [^"]*" 414/);  // the query string is left out
      // Only the one request that asked for an error page by its name shows one.
      assert.equal(log.match(/\.shopcast-error/g)?.length, 1, log);
      assert.doesNotMatch(log, /pad=/);
    });

    test('a well-formed publish still works alongside', async () => {
      const res = await post(stack, { type: 'shop_updated', shopId: 1 }, { base: secure ? stack.httpsUrl : stack.httpUrl });
      assert.equal(res.status, 200, res.text);
    });
  });
}

// Reads the server's frames (never masked) after a raw upgrade, until it sends a close frame or
// drops the connection.
class RawWebSocket {
  constructor({ socket, rest }) {
    this.socket = socket;
    this.buf = rest;
    this.frames = [];
    this.ended = new Promise((resolve) => {
      socket.on('close', resolve);
      socket.on('error', resolve);
    });
    socket.on('data', (chunk) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.parse();
    });
    socket.resume();
    this.parse();
  }

  parse() {
    for (;;) {
      if (this.buf.length < 2) return;
      let length = this.buf[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (this.buf.length < 4) return;
        length = this.buf.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (this.buf.length < 10) return;
        length = Number(this.buf.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.buf.length < offset + length) return;
      this.frames.push({ opcode: this.buf[0] & 0x0f, payload: this.buf.subarray(offset, offset + length) });
      this.buf = this.buf.subarray(offset + length);
    }
  }

  send(bytes) {
    this.socket.write(bytes);
  }

  // The server's close frame ({code, reason}), or null when the connection ended without one.
  async closeFrame(timeout = 5000) {
    let timer;
    const timedOut = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no close within ${timeout} ms; frames: ${this.describe()}`)), timeout);
    });
    try {
      for (;;) {
        const close = this.frames.find((f) => f.opcode === OPCODE_CLOSE);
        if (close) {
          return close.payload.length >= 2
            ? { code: close.payload.readUInt16BE(0), reason: close.payload.subarray(2).toString('utf8') }
            : { code: undefined, reason: '' };
        }
        const which = await Promise.race([this.ended.then(() => 'ended'), this.next(), timedOut]);
        if (which === 'ended' && !this.frames.some((f) => f.opcode === OPCODE_CLOSE)) return null;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  // Resolves with the first text message for which `match(json)` is true.
  async message(match, timeout = 5000) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const found = this.frames.filter((f) => f.opcode === OPCODE_TEXT).map((f) => JSON.parse(f.payload.toString('utf8'))).find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no matching message within ${timeout} ms; frames: ${this.describe()}`);
      await Promise.race([this.next(), this.ended, new Promise((r) => setTimeout(r, 50))]);
    }
  }

  next() {
    return new Promise((resolve) => this.socket.once('data', () => resolve('data')));
  }

  describe() {
    return JSON.stringify(this.frames.map((f) => [f.opcode, f.payload.toString('utf8').slice(0, 80)]));
  }

  destroy() {
    this.socket.destroy();
  }
}

// A frame as a server would send it: no mask, which a client must never do (RFC 6455 5.1).
function unmaskedFrame(opcode, payload) {
  const data = Buffer.from(payload);
  assert.ok(data.length < 126);
  return Buffer.concat([Buffer.from([0x80 | opcode, data.length]), data]);
}

// One frame with the FIN bit as given, masked like a browser's.
function fragment(opcode, payload, fin) {
  const frame = clientFrame(opcode, payload);
  if (!fin) frame[0] &= 0x7f;
  return frame;
}

const closePayload = (code, reason = Buffer.alloc(0)) => {
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(code, 0);
  return Buffer.concat([payload, Buffer.isBuffer(reason) ? reason : Buffer.from(reason)]);
};

describe('upgrade headers and WebSocket frames (dev stack with direct mode)', () => {
  let stack;
  const open = [];
  before(async () => {
    stack = await startTestStack({ directPort: 0, directTlsPort: 0 });
  });
  after(async () => {
    for (const ws of open) ws.destroy();
    await stopTestStack(stack);
  });

  async function upgrade(url, options = {}) {
    const reply = await rawUpgrade(url, { origin: stack.origin, ...options });
    assert.equal(reply.status, 101, reply.head);
    const ws = new RawWebSocket(reply);
    open.push(ws);
    await ws.message((m) => m.type === 'hello');
    return ws;
  }

  test('an upgrade whose Origin alone is 7 KB -> 431 JSON from nginx, not a 503 that says retry', async () => {
    const reply = await rawHttp(stack.httpPort, [
      'GET /ws HTTP/1.1', 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13',
      `Origin: http://${'o'.repeat(7000)}.example`, '', ''].join('\r\n'));
    assertJsonReply(reply, 431, 'headers_too_large', 'big Origin');
    assert.equal(reply.headers['retry-after'], undefined);
    // The daemon never saw it: libwebsockets logs each request it cannot hold.
    assert.doesNotMatch(stack.daemonLog(), /header data space/);
  });

  test('subprotocols (5 KB of names) are not passed on: 101 naming none, not a dropped upgrade', async () => {
    // libwebsockets drops an upgrade naming a protocol it does not know (nginx: 502) without a
    // reply; Shopcast defines none, so a client asking for one gets a 101 that names none.
    const list = Array.from({ length: 1000 }, (_, i) => `p${i}`).join(', ');
    const reply = await rawUpgrade(stack.wssUrl, { origin: stack.httpsOrigin, headers: { 'Sec-WebSocket-Protocol': list } });
    assert.equal(reply.status, 101, reply.head);
    assert.doesNotMatch(reply.head, /sec-websocket-protocol/i);
    const ws = new RawWebSocket(reply);
    open.push(ws);
    await ws.message((m) => m.type === 'hello');
  });

  test('an upgrade with a malformed or no Sec-WebSocket-Key -> 400 JSON from nginx', async () => {
    for (const key of ['not-base64!', 'dGhlIHNhbXBsZQ==', 'x'.repeat(200), undefined]) {
      const lines = ['GET /ws HTTP/1.1', 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13'];
      if (key) lines.push(`Sec-WebSocket-Key: ${key}`);
      const reply = await rawHttp(stack.httpPort, [...lines, `Origin: ${stack.origin}`, '', ''].join('\r\n'));
      assertJsonReply(reply, 400, 'bad_request', `key ${key}`);
    }
  });

  test('16 KB of cookies and other headers stay in nginx: the upgrade through it succeeds', async () => {
    // libwebsockets holds 8 KB of headers: had nginx passed these on, the daemon would drop them.
    const ws = await upgrade(stack.wsUrl, {
      headers: {
        Cookie: `session=${'c'.repeat(6000)}`,
        Authorization: `Bearer ${'t'.repeat(5000)}`,
        'X-Tracking': 'z'.repeat(5000),
      },
    });
    ws.send(clientFrame(OPCODE_TEXT, JSON.stringify({ action: 'subscribe', shops: [7] })));
    assert.deepEqual((await ws.message((m) => m.type === 'subscribed')).shops, [7]);
  });

  test('direct mode: an upgrade over the 8 KB libwebsockets holds is dropped without a reply; the next one upgrades', async () => {
    // lws 4.1.6 answers nothing here (no status it could be made to send): the connection ends.
    const u = new URL(stack.directWsUrl);
    const socket = net.connect({ host: u.hostname, port: Number(u.port) });
    const received = [];
    socket.on('data', (c) => received.push(c));
    const ended = new Promise((resolve) => socket.on('close', resolve));
    socket.on('error', () => {});
    socket.write([
      'GET /ws HTTP/1.1', `Host: ${u.host}`, 'Upgrade: websocket', 'Connection: Upgrade',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13',
      `Cookie: session=${'c'.repeat(9000)}`, '', ''].join('\r\n'));
    await ended;
    assert.equal(Buffer.concat(received).length, 0, Buffer.concat(received).toString('latin1'));
    await upgrade(stack.directWsUrl);
  });

  const routes = [
    ['through nginx', () => stack.wsUrl],
    ['direct mode', () => stack.directWsUrl],
    ['direct mode over TLS', () => stack.directWssUrl],
  ];
  for (const [label, url] of routes) {
    test(`${label}: an unmasked text frame -> close 1002, and the daemon does not act on it`, async () => {
      const ws = await upgrade(url());
      ws.send(clientFrame(OPCODE_TEXT, JSON.stringify({ action: 'subscribe', shops: [8] })));
      await ws.message((m) => m.type === 'subscribed');
      ws.send(unmaskedFrame(OPCODE_TEXT, JSON.stringify({ action: 'subscribe', shops: [9] })));
      assert.equal((await ws.closeFrame())?.code, 1002);
      assert.equal(ws.frames.filter((f) => f.opcode === OPCODE_TEXT && f.payload.includes('[9]')).length, 0, ws.describe());
    });

    test(`${label}: an unmasked ping or close frame -> close 1002`, async () => {
      const ping = await upgrade(url());
      ping.send(unmaskedFrame(0x9, 'hi'));
      assert.equal((await ping.closeFrame())?.code, 1002);
      const close = await upgrade(url());
      close.send(unmaskedFrame(OPCODE_CLOSE, closePayload(1000)));
      assert.equal((await close.closeFrame())?.code, 1002);
    });

    test(`${label}: a text frame that is not UTF-8 -> close 1007`, async () => {
      const ws = await upgrade(url());
      ws.send(clientFrame(OPCODE_TEXT, Buffer.from([0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d])));  // {"<surrogate>"}
      assert.equal((await ws.closeFrame())?.code, 1007);
    });

    test(`${label}: UTF-8 split across fragments is one valid message; cut short at the end -> 1007`, async () => {
      const ws = await upgrade(url());
      const text = Buffer.from(JSON.stringify({ action: 'subscribe', shops: ['чай'] }));
      const cut = text.indexOf(Buffer.from('ч')) + 1;  // inside the two bytes of 'ч'
      ws.send(Buffer.concat([fragment(OPCODE_TEXT, text.subarray(0, cut), false), fragment(0x0, text.subarray(cut), true)]));
      const answer = await ws.message((m) => m.type === 'subscribed' || m.type === 'error');
      assert.ok(answer.type, JSON.stringify(answer));
      ws.send(clientFrame(OPCODE_TEXT, Buffer.concat([Buffer.from('{"action":"subscribe","shops":[1]}'), Buffer.from([0xd1])])));
      assert.equal((await ws.closeFrame())?.code, 1007);
    });

    for (const [code, expected] of [[1000, 1000], [4000, 4000], [3999, 3999], [5000, 1002], [1005, 1002], [1006, 1002], [999, 1002], [1004, 1002], [2999, 1002]]) {
      test(`${label}: a close frame with ${code} -> ${expected === code ? 'echoed' : `close ${expected}`}`, async () => {
        const ws = await upgrade(url());
        ws.send(clientFrame(OPCODE_CLOSE, closePayload(code, 'bye')));
        const close = await ws.closeFrame();
        assert.equal(close?.code, expected, JSON.stringify(close));
      });
    }

    test(`${label}: a close frame of one byte -> 1002; a close reason that is not UTF-8 -> 1007; an empty one is echoed`, async () => {
      const half = await upgrade(url());
      half.send(clientFrame(OPCODE_CLOSE, Buffer.from([0x03])));
      assert.equal((await half.closeFrame())?.code, 1002);
      const badReason = await upgrade(url());
      badReason.send(clientFrame(OPCODE_CLOSE, closePayload(1000, Buffer.from([0xc0, 0xaf]))));
      assert.equal((await badReason.closeFrame())?.code, 1007);
      const empty = await upgrade(url());
      empty.send(clientFrame(OPCODE_CLOSE, Buffer.alloc(0)));
      const close = await empty.closeFrame();
      assert.ok(close, 'a close frame came back');
      assert.equal(close.code, undefined);
    });
  }

  test('nginx passes the daemon the handshake, Origin, Host and its own X-Real-IP, nothing else', async () => {
    // For this one request a recorder stands in for shopcastd on its socket.
    await stack.stopDaemon();
    const heads = [];
    const recorder = net.createServer((socket) => {
      let head = '';
      socket.on('error', () => {});
      socket.on('data', (chunk) => {
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        heads.push(head.slice(0, head.indexOf('\r\n\r\n')));
        socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      });
    });
    try {
      fs.rmSync(stack.wsSocket, { force: true });
      await new Promise((resolve, reject) => recorder.once('error', reject).listen(stack.wsSocket, resolve));
      fs.chmodSync(stack.wsSocket, 0o666);  // whichever user nginx's workers run as
      await rawHttp(stack.httpPort, [
        'GET /ws?since=x HTTP/1.1', 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: keep-alive, Upgrade',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13',
        'Sec-WebSocket-Protocol: chat', 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits',
        `Origin: ${stack.origin}`, 'Cookie: session=secret', 'Authorization: Bearer token', 'User-Agent: probe/1',
        'X-Real-IP: 203.0.113.9', 'X-Forwarded-For: 203.0.113.9', '', ''].join('\r\n'));
      assert.equal(heads.length, 1);
      const [requestLine, ...lines] = heads[0].split('\r\n');
      assert.equal(requestLine, 'GET /ws?since=x HTTP/1.1');
      const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
      assert.deepEqual(Object.keys(headers).sort(), ['connection', 'host', 'origin', 'sec-websocket-key', 'sec-websocket-version', 'upgrade', 'x-real-ip'], heads[0]);
      assert.equal(headers['x-real-ip'], '127.0.0.1');
      assert.equal(headers.connection, 'upgrade');
      assert.equal(headers.origin, stack.origin);
    } finally {
      await new Promise((resolve) => recorder.close(resolve));
      fs.rmSync(stack.wsSocket, { force: true });
      await stack.startDaemon();
    }
  });

  test('the page and the API are untouched by all of the above', async () => {
    const page = await request(`${stack.httpUrl}/`);
    assert.equal(page.status, 200);
    const res = await post(stack, { type: 'shop_updated', shopId: 7 });
    assert.equal(res.status, 200, res.text);
  });
});
