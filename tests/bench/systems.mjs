// The systems under test, each started fresh for every session of the benchmark. A system's
// start(n, dir, options) resolves to
//   { wsUrl, origin, protocol, publishUrl, secret, groups(): {name: [pid]}, memory: [names],
//     senders: [names], logs(), stop() }
// where `memory` names the processes a browser connection costs memory in, and `senders` the
// processes that write to browsers (or, behind nginx, to nginx) for frames per send.
// A system that cannot run here throws a SkipSystem with the reason.
//
//   shopcast          the dev stack (scripts/lib/stack.mjs): nginx -> Unix socket -> shopcastd
//   shopcast-direct   the same stack, browsers on shopcastd's own TCP listener (directPort)
//   nchan             nginx with libnginx-mod-nchan as the whole server
//   node              the Node.js ws backend (node-ws-server.mjs) behind nginx
//   floor-tcp         floor_sender: one send() per delivery over loopback TCP
//   floor-unix        floor_sender, browsers on a Unix socket (what shopcastd does behind nginx)

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort, probeHttp, startStack } from '../../scripts/lib/stack.mjs';
import { childPids } from './procfs.mjs';

const execFileAsync = promisify(execFile);
const benchDir = path.dirname(fileURLToPath(import.meta.url));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class SkipSystem extends Error {}

export const SYSTEMS = ['shopcast', 'shopcast-direct', 'nchan', 'node', 'floor-tcp', 'floor-unix'];

// The most clients a system can hold here. nginx proxying a WebSocket takes two descriptors (one
// per side) and a worker may open 20,000, so the proxied systems stop at 10,000 (two workers);
// the others hold every connection in one process.
export const MAX_CLIENTS = { shopcast: 10000, node: 10000 };

const NOFILE_CAP = 20000;
const isRoot = process.getuid?.() === 0;

// worker_connections for `slots` connections in one worker, plus room for publishers, and more:
// once fewer than 1/16 of the slots are free, nginx starts closing idle keep-alive connections
// and connections still waiting for their request ("worker_connections are not enough, reusing
// connections"), which fails WebSocket handshakes and resets the publisher's connection.
const workerConnections = (slots) => Math.ceil(((slots + 256) * 16) / 14);

// ------------------------------------------------------------------------------------------------
// Processes this module starts itself (the Shopcast stack tracks its own)

const ownChildren = new Set();
process.on('exit', () => {
    for (const child of ownChildren) {
        try {
            child.kill('SIGKILL');
        } catch {
            // gone
        }
    }
});

let setpriv = null;
async function withPdeathsig(command, args) {
    if (setpriv === null) {
        setpriv = await execFileAsync('setpriv', ['--help'])
            .then(({ stdout }) => stdout.includes('--pdeathsig'))
            .catch(() => false);
    }
    return setpriv ? ['setpriv', ['--pdeathsig', 'SIGKILL', '--', command, ...args]] : [command, args];
}

export async function startProcess(name, command, args, { env = process.env, ready }) {
    const [file, argv] = await withPdeathsig(command, args);
    const child = spawn(file, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    ownChildren.add(child);
    let output = '';
    const append = (chunk) => {
        output += chunk.toString('utf8');
        if (output.length > 1 << 20) output = output.slice(-(1 << 19));
    };
    child.stdout.on('data', append);
    child.stderr.on('data', append);
    const exited = new Promise((resolve) => child.once('close', (code, signal) => {
        ownChildren.delete(child);
        resolve({ code, signal });
    }));
    const deadline = Date.now() + 10000;
    for (;;) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited before it was ready:\n${output}`);
        if (await ready(output)) break;
        if (Date.now() > deadline) throw new Error(`${name} not ready within 10 s:\n${output}`);
        await sleep(25);
    }
    return {
        pid: child.pid,
        output: () => output,
        async stop() {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
            await exited;
            clearTimeout(timer);
        },
    };
}

async function renderTemplate(file, values) {
    const text = await readFile(path.join(benchDir, file), 'utf8');
    return text.replace(/@([A-Z_]+)@/g, (whole, name) => {
        if (!(name in values)) throw new Error(`${file}: no value for ${whole}`);
        return String(values[name]);
    });
}

async function startNginx(dir, template, { slots, values = {} }) {
    const runDir = path.join(dir, 'run');
    await mkdir(runDir, { recursive: true });
    await mkdir(path.join(dir, 'tmp'), { recursive: true });
    const port = await freePort();
    const wc = workerConnections(slots);
    const conf = await renderTemplate(template, {
        PREFIX: dir,
        RUN_DIR: runDir,
        HTTP_PORT: port,
        WORKER_CONNECTIONS: wc,
        WORKER_NOFILE: Math.min(NOFILE_CAP, wc + 64), // a slot is one fd
        USER_DIRECTIVE: isRoot ? 'user                    root;' : '',
        ...values,
    });
    await writeFile(path.join(dir, 'nginx.conf'), conf);
    const nginxBin = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
    const url = `http://127.0.0.1:${port}`;
    const proc = await startProcess('nginx', nginxBin, ['-p', `${dir}/`, '-c', path.join(dir, 'nginx.conf'), '-e', 'stderr'], {
        ready: async () => (await probeHttp(`${url}/`)) !== null,
    });
    return { proc, url, port, runDir };
}

async function startShopcast(n, dir, { binDir, direct, tls }) {
    const workers = n > 7000 ? 2 : 1; // one worker's 20,000 descriptors hold ~8,000 proxied browsers
    const slotsPerWorker = direct ? 64 : Math.ceil((2 * n * 1.15) / workers); // 15 % for an uneven spread
    const stack = await startStack({
        binDir,
        dir,
        workerConnections: Math.min(NOFILE_CAP - 100, workerConnections(slotsPerWorker)),
        // One worker as nchan has, unless the descriptors of one cannot hold the run's N.
        workerProcesses: workers,
        // The default 10,000 connections, raised only for the 19,000-client direct run.
        daemonEnv: { SHOPCAST_MAX_CONNECTIONS: String(Math.max(10000, n + 100)) },
        ...(direct ? { directPort: 0, ...(tls ? { directTlsPort: 0 } : {}) } : {}),
    });
    try {
        if (direct) {
            const url = tls ? stack.directWssUrl : stack.directWsUrl;
            if (!url) throw new SkipSystem(`the stack has no ${tls ? 'directWssUrl (directTlsPort)' : 'directWsUrl (directPort)'}: direct mode is not in this build`);
        }
    } catch (err) {
        await stack.stop();
        throw err;
    }
    return stack;
}

function shopcastSystem(stack, { direct, tls }) {
    return {
        wsUrl: direct ? (tls ? stack.directWssUrl : stack.directWsUrl) : stack.wsUrl,
        origin: stack.origin,
        protocol: 'shopcast',
        publishUrl: `${stack.httpUrl}/api/internal/broadcast`,
        secret: stack.secret,
        groups: () => ({
            shopcastd: [stack.daemonPid],
            'nginx worker': childPids(stack.nginxPid),
            'shopcast-fcgi': [stack.fcgiPid],
        }),
        // Direct: nginx carries only the publish API, no browser.
        memory: direct ? ['shopcastd'] : ['shopcastd', 'nginx worker'],
        senders: direct ? ['shopcastd'] : ['shopcastd', 'nginx worker'],
        logs: () => ({ shopcastd: stack.daemonLog().slice(-4000), nginx: stack.nginxLog().slice(-4000) }),
        stop: () => stack.stop(),
    };
}

async function startFloor(dir, { binDir, unix }) {
    const floorBin = path.join(binDir, 'floor_sender');
    if (!existsSync(floorBin)) throw new SkipSystem(`${floorBin} is not built (scripts/bench builds it in build-bench/)`);
    const runDir = path.join(dir, 'run');
    await mkdir(runDir, { recursive: true });
    const port = await freePort();
    const socket = path.join(runDir, 'floor.sock');
    const args = ['--listen', `tcp:127.0.0.1:${port}`, ...(unix ? ['--listen', `unix:${socket}`] : [])];
    const proc = await startProcess('floor_sender', floorBin, args, { ready: (out) => out.includes('floor ready') });
    return {
        wsUrl: unix ? `ws+unix://${socket}:/ws` : `ws://127.0.0.1:${port}/ws`,
        origin: `http://127.0.0.1:${port}`,
        protocol: 'plain',
        publishUrl: `http://127.0.0.1:${port}/broadcast`,
        secret: '',
        groups: () => ({ floor: [proc.pid] }),
        memory: ['floor'],
        senders: ['floor'],
        logs: () => ({ floor: proc.output().slice(-4000) }),
        stop: () => proc.stop(),
    };
}

// name -> async (n, dir, { binDir, floorBinDir, tls }) -> system
export const start = {
    async shopcast(n, dir, opts) {
        return shopcastSystem(await startShopcast(n, dir, { binDir: opts.binDir }), {});
    },

    async 'shopcast-direct'(n, dir, opts) {
        const stack = await startShopcast(n, dir, { binDir: opts.binDir, direct: true, tls: opts.tls });
        return shopcastSystem(stack, { direct: true, tls: opts.tls });
    },

    async nchan(n, dir) {
        if (!existsSync('/usr/lib/nginx/modules/ngx_nchan_module.so')) {
            throw new SkipSystem('nchan is not installed (Debian package libnginx-mod-nchan)');
        }
        const secret = randomBytes(24).toString('base64url');
        const nginx = await startNginx(dir, 'nginx-nchan.conf.template', { slots: n, values: { SECRET: secret } });
        return {
            wsUrl: `ws://127.0.0.1:${nginx.port}/ws`,
            origin: nginx.url,
            protocol: 'plain',
            publishUrl: `${nginx.url}/api/internal/broadcast`,
            secret,
            groups: () => ({ 'nginx worker': childPids(nginx.proc.pid) }),
            memory: ['nginx worker'],
            senders: ['nginx worker'],
            logs: () => ({ nginx: nginx.proc.output().slice(-4000) }),
            stop: () => nginx.proc.stop(),
        };
    },

    async node(n, dir) {
        const secret = randomBytes(24).toString('base64url');
        const runDir = path.join(dir, 'run');
        await mkdir(runDir, { recursive: true });
        const socket = path.join(runDir, 'node.sock');
        const server = await startProcess('node-ws', process.execPath, [path.join(benchDir, 'node-ws-server.mjs'), '--listen', socket], {
            env: { ...process.env, INTERNAL_SECRET: secret },
            ready: (out) => out.includes('node-ws ready'),
        });
        let nginx;
        try {
            nginx = await startNginx(dir, 'nginx-node.conf.template', { slots: 2 * n });
        } catch (err) {
            await server.stop();
            throw err;
        }
        return {
            wsUrl: `ws://127.0.0.1:${nginx.port}/ws`,
            origin: nginx.url,
            protocol: 'plain',
            publishUrl: `${nginx.url}/api/internal/broadcast`,
            secret,
            groups: () => ({ node: [server.pid], 'nginx worker': childPids(nginx.proc.pid) }),
            memory: ['node', 'nginx worker'],
            senders: ['node', 'nginx worker'],
            logs: () => ({ node: server.output().slice(-4000), nginx: nginx.proc.output().slice(-4000) }),
            async stop() {
                await server.stop();
                await nginx.proc.stop();
            },
        };
    },

    'floor-tcp': (n, dir, opts) => startFloor(dir, { binDir: opts.floorBinDir, unix: false }),
    'floor-unix': (n, dir, opts) => startFloor(dir, { binDir: opts.floorBinDir, unix: true }),
};
