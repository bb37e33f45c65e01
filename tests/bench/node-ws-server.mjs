// The competitor Shopcast replaces: the hand-rolled Node.js backend the bot integration guide was
// written against. One HTTP server; POST /api/internal/broadcast checks `x-internal-secret` and
// broadcasts the body to every open WebSocket with `client.send(JSON.stringify(data))` per client,
// exactly as such backends do; WebSocket clients connect on /ws. Deployed, as usual, behind nginx
// (tests/bench/nginx-node.conf.template), here on a Unix socket.
//
// The usual Express app adds only routing and express.json() to the publish request, which costs
// nothing measurable at the benchmark's publish rates; node:http keeps the benchmark free of extra
// packages. The per-client JSON.stringify and send, the part that scales with N, is the original.
//
//   INTERNAL_SECRET=... node tests/bench/node-ws-server.mjs --listen /path/to/node.sock
//
// Prints "node-ws ready" once listening. SIGTERM closes everything and exits.

import { unlinkSync } from 'node:fs';
import http from 'node:http';
import WebSocket, { WebSocketServer } from 'ws';

const listenIndex = process.argv.indexOf('--listen');
const listen = listenIndex > 0 ? process.argv[listenIndex + 1] : null;
const SECRET = process.env.INTERNAL_SECRET;
if (!listen || !SECRET) {
    process.stderr.write('usage: INTERNAL_SECRET=... node-ws-server.mjs --listen <unix socket path | port>\n');
    process.exit(2);
}

function reply(res, status, body) {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
}

function broadcast(wss, data) {
    let recipients = 0;
    wss.clients.forEach((client) => {
        if (client.readyState === WebSocket.OPEN) {
            client.send(JSON.stringify(data));
            recipients += 1;
        }
    });
    return recipients;
}

const server = http.createServer((req, res) => {
    if (req.url !== '/api/internal/broadcast') return reply(res, 404, { success: false, error: 'not_found' });
    if (req.method !== 'POST') return reply(res, 405, { success: false, error: 'method_not_allowed' });
    if (req.headers['x-internal-secret'] !== SECRET) return reply(res, 401, { success: false, error: 'unauthorized' });
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
        size += chunk.length;
        if (size > 65536) req.destroy();
        else chunks.push(chunk);
    });
    req.on('end', () => {
        let data;
        try {
            data = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
            return reply(res, 400, { success: false, error: 'invalid_json' });
        }
        if (!data || typeof data.type !== 'string') return reply(res, 400, { success: false, error: 'invalid_event' });
        const recipients = broadcast(wss, data);
        reply(res, 200, { success: true, message: 'Broadcast sent', type: data.type, recipients });
    });
});

const wss = new WebSocketServer({ server, path: '/ws' });
wss.on('connection', (ws) => {
    ws.on('error', () => {});
});

// Keepalive as such backends do it, at Shopcast's interval: a ping every 25 s.
const keepalive = setInterval(() => {
    wss.clients.forEach((client) => client.ping());
}, 25_000);

if (/^\d+$/.test(listen)) {
    server.listen(Number(listen), '127.0.0.1', () => process.stderr.write(`node-ws ready on 127.0.0.1:${listen}\n`));
} else {
    try {
        unlinkSync(listen);
    } catch {
        // not there
    }
    server.listen(listen, () => process.stderr.write(`node-ws ready on ${listen}\n`));
}

function stop() {
    clearInterval(keepalive);
    for (const client of wss.clients) client.terminate();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
