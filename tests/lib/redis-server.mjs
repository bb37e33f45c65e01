// A private redis-server for tests and the dev stack: a Unix socket in `dir` (no TCP port), the
// append-only file in `dir` (so restart() keeps the data, as a persistent production Redis
// does), no RDB snapshots. Never a system Redis; stopped only by its PID.
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const PROBE_TIMEOUT_MS = 1_000;
const CLI_TIMEOUT_MS = 5_000;
const SOCKET_PATH_MAX = 107; // sun_path holds 108 bytes with the terminating NUL
const LOG_LIMIT = 1024 * 1024; // bytes of output kept (the newest)

// Every redis-server this process started and has not seen exit, by PID.
const liveServers = new Set();
process.on('exit', () => {
    for (const pid of liveServers) {
        try {
            process.kill(pid, 'SIGTERM');
        } catch {
            // already gone
        }
    }
});

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

let setprivChecked = null;
async function hasSetprivPdeathsig() {
    if (setprivChecked === null) {
        setprivChecked = execFileAsync('setpriv', ['--help'])
            .then(({ stdout }) => stdout.includes('--pdeathsig'))
            .catch(() => false);
    }
    return setprivChecked;
}

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

    let proc = null;
    let exited = null;
    let log = '';

    const server = {
        socketPath,
        url: `unix:${socketPath}`,
        passwordFile,
        pid: undefined,
        get running() {
            return proc !== null && proc.exitCode === null && proc.signalCode === null;
        },
        log: () => log,
        stop: () => halt('SIGTERM'),
        kill: () => halt('SIGKILL'),
        async restart() {
            await halt('SIGTERM');
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

    async function launch() {
        let file = 'redis-server';
        let argv = args;
        if (await hasSetprivPdeathsig()) {
            // Dies with this process even when the exit hook cannot run (SIGKILL of the runner).
            file = 'setpriv';
            argv = ['--pdeathsig', 'SIGTERM', '--', 'redis-server', ...args];
        }
        const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
        const append = (chunk) => {
            log += chunk.toString('utf8');
            if (log.length > LOG_LIMIT) log = log.slice(log.length - LOG_LIMIT);
        };
        child.stdout.on('data', append);
        child.stderr.on('data', append);
        await new Promise((resolve, reject) => {
            child.once('spawn', resolve);
            child.once('error', (err) => reject(new Error(`cannot start redis-server: ${err.message}`)));
        });
        proc = child;
        server.pid = child.pid; // setpriv execs redis-server: the same PID
        liveServers.add(child.pid);
        exited = new Promise((resolve) => {
            child.once('exit', (code, signal) => {
                liveServers.delete(child.pid);
                resolve({ code, signal });
            });
        });
        child.unref();
        child.stdout.unref?.();
        child.stderr.unref?.();

        const deadline = Date.now() + READY_TIMEOUT_MS;
        for (;;) {
            if (await pingOnce(socketPath, requirepass)) return;
            if (!server.running) throw new Error(`redis-server exited before answering PING; its output:\n${log.trim()}`);
            if (Date.now() > deadline) {
                await halt('SIGKILL');
                throw new Error(`redis-server did not answer PING within ${READY_TIMEOUT_MS / 1000} s; its output:\n${log.trim()}`);
            }
            await sleep(25);
        }
    }

    // Signals the server by PID and waits for it to exit (SIGKILL after the timeout).
    async function halt(signal) {
        if (!server.running) return exited ? exited : null;
        process.kill(proc.pid, signal);
        const timer = setTimeout(() => {
            if (server.running) process.kill(proc.pid, 'SIGKILL');
        }, STOP_TIMEOUT_MS);
        const status = await exited;
        clearTimeout(timer);
        return status;
    }

    await launch();
    return server;
}
