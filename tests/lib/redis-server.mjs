// A private redis-server for tests and the dev stack: a Unix socket in `dir` (no TCP port), the
// append-only file in `dir` (so restart() keeps the data, as a persistent production Redis
// does), no RDB snapshots. Never a system Redis; stopped only by its PID.
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

import { Child } from '../../scripts/lib/child.mjs';

const execFileAsync = promisify(execFile);

const PROBE_TIMEOUT_MS = 1_000;
const CLI_TIMEOUT_MS = 5_000;
const SOCKET_PATH_MAX = 107; // sun_path holds 108 bytes with the terminating NUL

// One RESP exchange on the socket: optional AUTH, then PING. Resolves true on +PONG, false on
// anything else (refused, still loading the AOF, wrong password, no answer in time).
function pingOnce(socketPath, password) {
    return new Promise((resolve) => {
        const socket = net.createConnection(socketPath);
        let reply = '';
        const finish = (ok) => {
            clearTimeout(timer);
            socket.destroy();
            resolve(ok);
        };
        const timer = setTimeout(() => finish(false), PROBE_TIMEOUT_MS);
        socket.on('error', () => finish(false));
        socket.on('connect', () => {
            const commands = [];
            if (password !== undefined) commands.push(['AUTH', password]);
            commands.push(['PING']);
            socket.write(commands.map(encodeCommand).join(''));
        });
        socket.on('data', (chunk) => {
            reply += chunk.toString('utf8');
            const lines = reply.split('\r\n');
            const expected = password !== undefined ? 2 : 1;
            if (lines.length - 1 < expected) return;
            const answers = lines.slice(0, expected);
            finish(answers.every((line, i) => (i === expected - 1 ? line === '+PONG' : line === '+OK')));
        });
    });
}

function encodeCommand(args) {
    return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

// Starts redis-server in `dir` and resolves once it answers PING. `requirepass` sets a
// password: it goes into a 0600 config file and `<dir>/redis.password` (for
// SHOPCAST_REDIS_PASSWORD_FILE), never onto a command line.
export async function startRedis({ dir, appendonly = true, requirepass } = {}) {
    if (!dir) throw new Error('startRedis: dir is required');
    mkdirSync(dir, { recursive: true });
    const socketPath = path.join(path.resolve(dir), 'redis.sock');
    if (Buffer.byteLength(socketPath) > SOCKET_PATH_MAX) {
        throw new Error(`startRedis: socket path longer than ${SOCKET_PATH_MAX} bytes: ${socketPath}`);
    }
    const args = [];
    let passwordFile;
    if (requirepass !== undefined) {
        if (!/^[\x21-\x7e]+$/.test(requirepass)) throw new Error('startRedis: requirepass must be printable ASCII without spaces');
        const configFile = path.join(dir, 'redis.conf');
        writeFileSync(configFile, `requirepass ${requirepass}\n`, { mode: 0o600 });
        passwordFile = path.join(dir, 'redis.password');
        writeFileSync(passwordFile, requirepass, { mode: 0o600 });
        args.push(configFile); // redis-server takes the config file as its first argument
    }
    args.push(
        '--port', '0',
        '--unixsocket', socketPath,
        '--unixsocketperm', '700',
        '--save', '',
        '--appendonly', appendonly ? 'yes' : 'no',
        '--dir', path.resolve(dir),
        '--daemonize', 'no',
        '--logfile', '',
    );

    // Tracked by PID, dies with this process (see scripts/lib/child.mjs).
    const child = new Child('redis-server');
    async function launch() {
        await child.start('redis-server', args);
        try {
            await child.waitFor(() => pingOnce(socketPath, requirepass), 'answering PING');
        } catch (err) {
            await child.stop('SIGKILL');
            throw err;
        }
    }

    const server = {
        socketPath,
        url: `unix:${socketPath}`,
        passwordFile,
        get pid() {
            return child.pid;
        },
        get running() {
            return child.running;
        },
        log: () => child.log,
        // Resolve with how it exited ({code, signal}); SIGKILL after a timeout.
        stop: () => child.stop('SIGTERM'),
        kill: () => child.stop('SIGKILL'),
        async restart() {
            await child.stop('SIGTERM');
            await launch();
        },
        async flushAll() {
            const reply = (await server.cli('FLUSHALL')).trim();
            if (reply !== 'OK') throw new Error(`FLUSHALL answered ${reply}`);
        },
        // redis-cli on the socket; resolves with its stdout. The password travels in the
        // environment (REDISCLI_AUTH), not in the argument list.
        async cli(...cliArgs) {
            const env = { ...process.env };
            delete env.REDISCLI_AUTH;
            if (requirepass !== undefined) env.REDISCLI_AUTH = requirepass;
            const { stdout } = await execFileAsync('redis-cli', ['-s', socketPath, ...cliArgs.map(String)], {
                env,
                timeout: CLI_TIMEOUT_MS,
                maxBuffer: 64 * 1024 * 1024,
            });
            return stdout;
        },
    };

    await launch();
    return server;
}
