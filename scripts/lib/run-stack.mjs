// The development stack in the foreground (scripts/run builds first, then runs this).
//
// Ports: SHOPCAST_HTTP_PORT (8080) and SHOPCAST_HTTPS_PORT (8443), on 127.0.0.1 only.
// Direct mode (shopcastd serving browsers itself, no nginx hop): SHOPCAST_DIRECT_PORT gives
// ws://127.0.0.1:PORT/ws, SHOPCAST_DIRECT_TLS_PORT wss://127.0.0.1:PORT/ws with the dev certificate.
// Several daemons: SHOPCAST_WORKERS=N (default 1) starts redis-server on a Unix socket in
// .dev/redis/ and N shopcastd on it, nginx balancing browsers over them (and the direct-mode
// ports shared by all); SHOPCAST_REDIS_URL instead uses that Redis, even with one daemon.
// State: .dev/ in the repository (rendered nginx.conf, TLS certificate, sockets, access log).
// Secret: INTERNAL_SECRET if set, else .dev/internal_secret (made once, mode 0600).
// BOT_TOKEN, SHOPCAST_BOT_ID and any other SHOPCAST_* setting pass through to the services.
// A service that exits on its own is started again after a second, as systemd's Restart= does
// (at most 5 times in 30 s, then it stays down and says so). Ctrl-C or SIGTERM stops everything.

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { repoRoot, startStack } from './stack.mjs';

const devDir = path.join(repoRoot, '.dev');
// As systemd/shopcastd.service: Restart=on-failure, RestartSec=1s, and a start limit.
const RESTART_DELAY_MS = 1000;
const RESTART_BURST = 5;
const RESTART_WINDOW_MS = 30_000;
const secretFile = path.join(devDir, 'internal_secret');

// Settings the launcher itself decides; every other SHOPCAST_* variable is passed on.
const LAUNCHER_SETTINGS = new Set([
    'SHOPCAST_HTTP_PORT',
    'SHOPCAST_HTTPS_PORT',
    'SHOPCAST_BIN_DIR',
    'SHOPCAST_EVENTS_SOCKET',
    'SHOPCAST_WS_LISTEN',
    'SHOPCAST_FCGI_LISTEN',
    'SHOPCAST_DIRECT_PORT',
    'SHOPCAST_DIRECT_TLS_PORT',
    'SHOPCAST_TLS_CERT_FILE',
    'SHOPCAST_TLS_KEY_FILE',
    'SHOPCAST_WORKERS',
]);

function port(name, fallback) {
    const text = process.env[name];
    if (text === undefined || text === '') return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1 || value > 65535) {
        console.error(`${name}=${text} is not a port number (1-65535)`);
        process.exit(2);
    }
    return value;
}

async function loadSecret() {
    if (process.env.INTERNAL_SECRET) return { secret: process.env.INTERNAL_SECRET, header: '$INTERNAL_SECRET' };
    await mkdir(devDir, { recursive: true });
    if (!existsSync(secretFile)) {
        await writeFile(secretFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    }
    await chmod(secretFile, 0o600);
    const secret = (await readFile(secretFile, 'utf8')).replace(/\r?\n$/, '');
    let shown = path.relative(process.cwd(), secretFile);
    if (shown.startsWith('..')) shown = secretFile;
    return { secret, header: `$(cat ${shown})` };
}

function passedThrough() {
    const env = {};
    for (const [key, value] of Object.entries(process.env)) {
        if ((key.startsWith('SHOPCAST_') && !LAUNCHER_SETTINGS.has(key)) || key === 'BOT_TOKEN' || key === 'BOT_TOKEN_FILE') {
            env[key] = value;
        }
    }
    return env;
}

function workerCount() {
    const text = process.env.SHOPCAST_WORKERS;
    if (text === undefined || text === '') return 1;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1 || value > 64) {
        console.error(`SHOPCAST_WORKERS=${text} is not a number of daemons (1-64)`);
        process.exit(2);
    }
    return value;
}

function describeExit({ code, signal }) {
    return signal ? `signal ${signal}` : `code ${code}`;
}

async function main() {
    const httpPort = port('SHOPCAST_HTTP_PORT', 8080);
    const httpsPort = port('SHOPCAST_HTTPS_PORT', 8443);
    const directPort = port('SHOPCAST_DIRECT_PORT', undefined);
    const directTlsPort = port('SHOPCAST_DIRECT_TLS_PORT', undefined);
    const workers = workerCount();
    const { secret, header } = await loadSecret();
    const settings = passedThrough();

    let stopping = false;
    let stack;
    try {
        stack = await startStack({
            dir: devDir,
            httpPort,
            httpsPort,
            directPort,
            directTlsPort,
            workers,
            secret,
            daemonEnv: settings,
            fcgiEnv: settings,
            stdio: 'inherit',
        });
    } catch (err) {
        console.error(`\nShopcast did not start: ${err.message}`);
        process.exit(1);
    }

    // By name: shopcastd (or shopcastd@1...) and shopcast-fcgi; nginx and Redis are not restarted.
    const restarts = {};
    const start = {};
    for (const instance of [...stack.daemons, ...stack.fcgiInstances]) {
        restarts[instance.name] = [];
        start[instance.name] = () => instance.start();
    }
    stack.on('exit', (status) => {
        if (status.expected) return;
        // On Ctrl-C every child gets SIGINT too: give our own handler the first word.
        setTimeout(async () => {
            if (stopping) return;
            const recent = restarts[status.name];
            if (!recent) {
                console.error(`${status.name} exited (${describeExit(status)}); not restarting it: stop and run scripts/run again`);
                return;
            }
            const now = Date.now();
            while (recent.length && now - recent[0] > RESTART_WINDOW_MS) recent.shift();
            if (recent.length >= RESTART_BURST) {
                console.error(`${status.name} exited (${describeExit(status)}) ${RESTART_BURST} times within ${RESTART_WINDOW_MS / 1000} s; not restarting it again`);
                return;
            }
            recent.push(now);
            console.error(`${status.name} exited (${describeExit(status)}); starting it again in ${RESTART_DELAY_MS / 1000} s`);
            await new Promise((resolve) => setTimeout(resolve, RESTART_DELAY_MS));
            if (stopping) return;
            try {
                await start[status.name]();
                console.error(`${status.name} is running again`);
            } catch (err) {
                console.error(`${status.name} did not start again: ${err.message}`);
            }
        }, 300);
    });

    const shutdown = async (signal) => {
        if (stopping) return;
        stopping = true;
        console.error(`\n${signal}: stopping Shopcast`);
        await stack.stop();
        process.exit(0);
    };
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => shutdown(signal));

    const seed = '{"type":"product_added","shopId":123,"productId":456}';
    process.stdout.write(
        [
            '',
            'Publish the seed event:',
            '',
            `curl -X POST ${stack.httpUrl}/api/internal/broadcast \\`,
            '  -H "Content-Type: application/json" \\',
            `  -H "x-internal-secret: ${header}" \\`,
            `  -d '${seed}'`,
            '',
            `Demo page: ${stack.httpUrl}/  WebSocket: ${stack.wsUrl}`,
            ...(stack.daemons.length > 1 ? [`${stack.daemons.length} daemons behind /ws (pids ${stack.daemonPids.join(', ')}), Redis on ${stack.redisUrl}`] : []),
            ...(stack.directWsUrl ? [`Direct mode (no nginx hop): ${stack.directWsUrl}`] : []),
            ...(stack.directWssUrl ? [`Direct mode over TLS (self-signed certificate): ${stack.directWssUrl}`] : []),
            `nginx access log: ${path.join(devDir, 'access.log')}; service output follows here.`,
            `Shopcast is ready: ${stack.httpUrl} and ${stack.httpsUrl} (self-signed certificate). Ctrl-C stops it.`,
            '',
        ].join('\n'),
    );

    // Nothing else keeps the event loop alive: the children are unref'd by design.
    setInterval(() => {}, 1 << 30);
}

await main();
