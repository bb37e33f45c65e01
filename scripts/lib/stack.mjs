// The Shopcast stack on loopback: nginx (rendered from nginx/dev.conf.template), shopcastd and
// shopcast-fcgi, each a child of this process. scripts/run and every Node test start it here, so
// there is one way to bring the stack up.
//
//   const stack = await startStack({ daemonEnv: { SHOPCAST_HISTORY: '100' } });
//   const reply = await stack.publish({ type: 'product_added', shopId: 123, productId: 456 });
//   await stack.stop();
//
// startStack(opts) options (all optional):
//   binDir      where shopcastd and shopcast-fcgi are; default $SHOPCAST_BIN_DIR, else build/bin
//   dir         the stack's directory (config, certificate, sockets in dir/run, access.log);
//               default a fresh one under the system temporary directory
//   httpPort, httpsPort   0 (default) picks a free loopback port
//   secret      the publish secret; default 48 random characters
//   daemonEnv, fcgiEnv    extra environment of each service (null removes a variable)
//   rateLimit, rateBurst  nginx's publish flood guard, default '10000r/s' and 10000
//   workerConnections, workerProcesses   nginx's slots per worker (16384) and workers (2)
//   stdio       'pipe' (default) captures output; 'inherit' also echoes it, line by line
//   webRoot     what the dev site serves at /; default web/ (the production site serves no page)
//   site        'dev' (default): nginx/dev.conf.template, one server for http and https;
//               'production': nginx/shopcast.conf as shipped, on the test's ports, certificate
//               and paths (scripts/lib/production-site.mjs): https serves the API and /ws,
//               http refuses publishing and redirects pages
//   siteRewrite (text) => text, an operator's edit of the production site (e.g. its allow-list)
//   directPort, directTlsPort   direct mode: shopcastd itself also listens on 127.0.0.1 for ws://
//               (directPort) and wss:// with the stack's certificate (directTlsPort); a port,
//               0 to pick a free one, or undefined (default) for none
// Started as root, nginx's workers run as www-data (else nobody): see unprivilegedNginxUser().
// The Stack it resolves to has httpUrl, httpsUrl, wsUrl, wssUrl, origin, httpsOrigin, secret,
// dir, runDir, nginxUser ({name, uid, gid, group} of the workers; null when not root), httpPort, httpsPort, directPort/directTlsPort with directWsUrl/directWssUrl
// (ws://127.0.0.1:P/ws, wss://...; undefined when off), the PIDs daemonPid/fcgiPid/nginxPid, and:
//   publish(body, {headers, method, secret, contentType, raw}) -> {status, headers, json, text}
//   stopDaemon(signal) / startDaemon(extraEnv), stopFcgi(signal) / startFcgi(extraEnv)
//   daemonLog(), fcgiLog(), nginxLog() (captured output), accessLog() (async)
//   stop() -> how each child exited; files in dir stay
//   an 'exit' event {name, code, signal, expected} whenever a child ends
//
// Children are tracked by PID, run with a parent-death signal (setpriv --pdeathsig) and are also
// signalled when this process exits, so a test that dies half-way leaves nothing behind.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, chown, copyFile, cp, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { installNginxIncludes, writeProductionSite } from './production-site.mjs';

const execFileAsync = promisify(execFile);

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const LOG_LIMIT = 8 * 1024 * 1024; // bytes of each child's output kept (the newest)
const SOCKET_PATH_MAX = 107; // sun_path holds 108 bytes with the terminating NUL

// Settings the launcher decides for the children; inherited values are dropped so a developer's
// shell (or the CI environment) cannot change what a test runs against.
const OWNED_ENV = /^(SHOPCAST_|INTERNAL_SECRET|BOT_TOKEN|NOTIFY_SOCKET$|WATCHDOG_|LISTEN_)/;

// Every live child of every stack in this process, by PID.
const liveChildren = new Map();
process.on('exit', () => {
    for (const pid of liveChildren.keys()) {
        try {
            process.kill(pid, 'SIGTERM');
        } catch {
            // already gone
        }
    }
});

let setprivChecked = null;
async function hasSetprivPdeathsig() {
    if (setprivChecked === null) {
        setprivChecked = execFileAsync('setpriv', ['--help'])
            .then(({ stdout }) => stdout.includes('--pdeathsig'))
            .catch(() => false);
    }
    return setprivChecked;
}

// A free TCP port on 127.0.0.1: bind :0, read the port, close.
export async function freePort() {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.on('error', reject);
        server.listen(0, '127.0.0.1', () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
    });
}

function randomSecret() {
    return randomBytes(36).toString('base64url'); // 48 characters
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

// Started as root, nginx's workers run as this unprivileged user, as Debian's nginx does in
// production: they reach ws.sock and fcgi.sock only through the group the stack gives them, so a
// permission mistake fails the tests instead of passing as root. events.sock is not theirs.
const NGINX_USERS = ['www-data', 'nobody'];

let nginxUserLookup = null;
export async function unprivilegedNginxUser() {
    if (nginxUserLookup === null) {
        nginxUserLookup = (async () => {
            for (const name of NGINX_USERS) {
                try {
                    const uid = Number((await execFileAsync('id', ['-u', name])).stdout.trim());
                    const gid = Number((await execFileAsync('id', ['-g', name])).stdout.trim());
                    const group = (await execFileAsync('id', ['-gn', name])).stdout.trim();
                    return { name, uid, gid, group };
                } catch {
                    // no such user here; try the next
                }
            }
            throw new Error(`none of the users ${NGINX_USERS.join(', ')} exists for nginx's workers`);
        })();
    }
    return nginxUserLookup;
}

function isRootProcess() {
    return typeof process.getuid === 'function' && process.getuid() === 0;
}

// As root: the stack's directory lets nginx's group in (search only), run/ hands its group to
// every socket made inside it (setgid), tmp/ is the workers' own. The sockets' modes do the rest:
// ws.sock and fcgi.sock 0660, events.sock 0600.
async function shareWithNginx(dir, runDir, nginxUser) {
    if (!nginxUser) return;
    await chown(dir, 0, nginxUser.gid);
    await chmod(dir, 0o710);
    await chown(runDir, 0, nginxUser.gid);
    await chmod(runDir, 0o2750);
    await chown(path.join(dir, 'tmp'), nginxUser.uid, nginxUser.gid);
}

function canAccessAs(nginxUser, testArgs) {
    const probe = ['--reuid', String(nginxUser.uid), '--regid', String(nginxUser.gid), '--clear-groups', '--', 'test', ...testArgs];
    return execFileAsync('setpriv', probe).then(() => true, () => false);
}

// The workers must reach the sockets in run/: every directory above it must let them pass. A
// checkout in a private home (/root is 0700) keeps them out; there the stack runs them as root
// and says why, since moving someone's checkout is not ours to do. Tests and the bench make
// their stacks under the system's temporary directory, where the workers are never root.
async function workersThatReach(runDir, nginxUser) {
    if (!nginxUser || (await canAccessAs(nginxUser, ['-x', runDir]))) return nginxUser;
    process.stderr.write(`nginx's workers run as root: ${path.dirname(runDir)} is out of ${nginxUser.name}'s reach (a parent directory is not searchable by others)\n`);
    return null;
}

// The workers serve the web root themselves. One they cannot read (a checkout in a private
// home, a test's private temporary directory) is served from a copy inside the stack's directory.
async function servableWebRoot(dir, webRoot, nginxUser) {
    if (!nginxUser || (await canAccessAs(nginxUser, ['-r', webRoot, '-a', '-x', webRoot]))) return webRoot;
    const copy = path.join(dir, 'web');
    await rm(copy, { recursive: true, force: true });
    await cp(webRoot, copy, { recursive: true });
    await execFileAsync('chmod', ['-R', 'u=rwX,g=rX,o=', copy]);
    await execFileAsync('chown', ['-R', `0:${nginxUser.gid}`, copy]);
    return copy;
}

// As root nginx would otherwise run its workers as nobody.
function userDirective(nginxUser) {
    if (nginxUser) return `user                    ${nginxUser.name} ${nginxUser.group};`;
    return isRootProcess() ? 'user                    root;' : '';
}

function nginxBinary() {
    for (const candidate of ['/usr/sbin/nginx', '/usr/local/sbin/nginx']) {
        if (existsSync(candidate)) return candidate;
    }
    return 'nginx';
}

function checkConfigPath(what, p) {
    if (/[\s;{}"'#$\\]/.test(p)) {
        throw new Error(`${what} ${JSON.stringify(p)} contains characters nginx config cannot take unquoted`);
    }
}

// One supervised child process: output captured (and echoed when stdio is 'inherit'), readiness
// read from its output, stop with a deadline.
class Child {
    constructor(name, { echo, emitter }) {
        this.name = name;
        this.echo = echo;
        this.emitter = emitter;
        this.log = '';
        this.logBase = 0; // characters dropped from the front of `log` to bound its size
        this.echoPending = '';
        this.proc = null;
        this.exitStatus = null;
        this.exited = null;
        this.stopping = false;
        this.startOffset = 0;
    }

    get pid() {
        return this.proc && this.exitStatus === null ? this.proc.pid : undefined;
    }

    get running() {
        return this.proc !== null && this.exitStatus === null;
    }

    append(chunk) {
        const text = chunk.toString('utf8');
        this.log += text;
        if (this.log.length > LOG_LIMIT) {
            const drop = this.log.length - LOG_LIMIT / 2;
            this.log = this.log.slice(drop);
            this.logBase += drop;
        }
        if (this.echo) {
            // Whole lines only, each with the child's name in front.
            const lines = (this.echoPending + text).split('\n');
            this.echoPending = lines.pop();
            if (lines.length) process.stderr.write(lines.map((line) => `[${this.name}] ${line}\n`).join(''));
        }
    }

    flushEcho() {
        if (this.echo && this.echoPending) process.stderr.write(`[${this.name}] ${this.echoPending}\n`);
        this.echoPending = '';
    }

    async start(command, args, env) {
        if (this.running) throw new Error(`${this.name} is already running (pid ${this.proc.pid})`);
        let file = command;
        let argv = args;
        if (await hasSetprivPdeathsig()) {
            file = 'setpriv';
            argv = ['--pdeathsig', 'SIGTERM', '--', command, ...args];
        }
        const proc = spawn(file, argv, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: false });
        this.proc = proc;
        this.exitStatus = null;
        this.stopping = false;
        this.startOffset = this.logBase + this.log.length;
        const spawned = new Promise((resolve, reject) => {
            proc.once('spawn', resolve);
            proc.once('error', reject);
        });
        // 'close' also waits for the output pipes, which a surviving grandchild (an nginx worker
        // whose master was killed) can hold open forever: wait for them briefly, not for ever.
        const outputClosed = new Promise((resolve) => proc.once('close', resolve));
        this.exited = new Promise((resolve) => {
            proc.once('exit', async (code, signal) => {
                liveChildren.delete(proc.pid);
                await Promise.race([outputClosed, sleep(500)]);
                this.flushEcho();
                this.exitStatus = { code, signal };
                if (!this.stopping) this.emitter.emit('exit', { name: this.name, code, signal, expected: false });
                resolve(this.exitStatus);
            });
        });
        proc.stdout.on('data', (chunk) => this.append(chunk));
        proc.stderr.on('data', (chunk) => this.append(chunk));
        try {
            await spawned;
        } catch (err) {
            this.proc = null;
            throw new Error(`cannot start ${this.name} (${command}): ${err.message}`);
        }
        liveChildren.set(proc.pid, this);
        // A test that forgets stop() must not hang on its children; waits below hold timers.
        proc.unref();
        proc.stdout.unref?.();
        proc.stderr.unref?.();
    }

    // Output since the latest start.
    recentLog() {
        return this.log.slice(Math.max(0, this.startOffset - this.logBase));
    }

    failure(reason) {
        const log = this.recentLog().trim();
        return new Error(`${this.name} ${reason}${log ? `; its output:\n${log}` : ' (no output)'}`);
    }

    // Resolves once `probe()` is true; rejects when the child exits first or the timeout passes.
    async waitFor(probe, what, timeoutMs = READY_TIMEOUT_MS) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            if (await probe()) return;
            if (!this.running) {
                const { code, signal } = this.exitStatus;
                throw this.failure(`exited (${signal ? `signal ${signal}` : `code ${code}`}) before ${what}`);
            }
            if (Date.now() > deadline) throw this.failure(`not ${what} within ${timeoutMs / 1000} s`);
            await sleep(25);
        }
    }

    async waitForLine(pattern) {
        await this.waitFor(async () => pattern.test(this.recentLog()), 'ready');
    }

    // Signals the child and waits for it to exit, escalating to SIGKILL after the timeout.
    async stop(signal = 'SIGTERM') {
        if (!this.proc) return null;
        if (!this.running) return this.exitStatus;
        this.stopping = true;
        this.proc.kill(signal);
        const timer = setTimeout(() => {
            if (this.running) this.proc.kill('SIGKILL');
        }, STOP_TIMEOUT_MS);
        const status = await this.exited;
        clearTimeout(timer);
        this.emitter.emit('exit', { name: this.name, ...status, expected: true });
        return status;
    }
}

// Resolves to the HTTP status of GET url, or null when nothing answers.
export function probeHttp(url) {
    return new Promise((resolve) => {
        const req = http.get(url, { agent: false, timeout: 1000 }, (res) => {
            res.resume();
            resolve(res.statusCode);
        });
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve(null));
    });
}

export class Stack extends EventEmitter {
    constructor(opts) {
        super();
        Object.assign(this, opts);
        const echo = opts.stdio === 'inherit';
        this.daemon = new Child('shopcastd', { echo, emitter: this });
        this.fcgi = new Child('shopcast-fcgi', { echo, emitter: this });
        this.nginx = new Child('nginx', { echo, emitter: this });
        this.eventsSocket = path.join(this.runDir, 'events.sock');
        this.wsSocket = path.join(this.runDir, 'ws.sock');
        this.fcgiSocket = path.join(this.runDir, 'fcgi.sock');
        // Like systemd's StateDirectory=: history and epoch survive a restart of the daemon.
        this.stateDir = path.join(this.dir, 'state');
    }

    get daemonPid() {
        return this.daemon.pid;
    }
    get fcgiPid() {
        return this.fcgi.pid;
    }
    get nginxPid() {
        return this.nginx.pid;
    }

    daemonLog() {
        return this.daemon.log;
    }
    fcgiLog() {
        return this.fcgi.log;
    }
    nginxLog() {
        return this.nginx.log;
    }
    async accessLog() {
        return readFile(path.join(this.dir, 'access.log'), 'utf8').catch(() => '');
    }

    // The environment every child starts from: this process's, minus the settings we own.
    baseEnv() {
        const env = {};
        for (const [key, value] of Object.entries(process.env)) {
            if (!OWNED_ENV.test(key)) env[key] = value;
        }
        return env;
    }

    // Later layers override earlier ones; a null or undefined value removes the variable (e.g.
    // `{ INTERNAL_SECRET: null, INTERNAL_SECRET_FILE: path }`).
    static mergeEnv(...layers) {
        const env = {};
        for (const layer of layers) {
            for (const [key, value] of Object.entries(layer)) {
                if (value === null || value === undefined) delete env[key];
                else env[key] = String(value);
            }
        }
        return env;
    }

    // unix:<runDir>/ws.sock for nginx, then the direct-mode listeners when they are on.
    wsListen() {
        const listeners = [`unix:${this.wsSocket}`];
        if (this.directPort !== undefined) listeners.push(`127.0.0.1:${this.directPort}`);
        if (this.directTlsPort !== undefined) listeners.push(`tls:127.0.0.1:${this.directTlsPort}`);
        return listeners.join(',');
    }

    // The daemon's program and environment, as startDaemon runs it; a test that starts the
    // daemon another way (e.g. under a socket holder) uses the same.
    daemonLaunch(extraEnv = {}) {
        const tls = this.directTlsPort !== undefined ? { SHOPCAST_TLS_CERT_FILE: this.cert, SHOPCAST_TLS_KEY_FILE: this.key } : {};
        const env = Stack.mergeEnv(
            this.baseEnv(),
            {
                SHOPCAST_EVENTS_SOCKET: this.eventsSocket,
                SHOPCAST_WS_LISTEN: this.wsListen(),
                SHOPCAST_ALLOWED_ORIGINS: this.allowedOrigins.join(','),
                SHOPCAST_STATE_DIRECTORY: this.stateDir,
                ...tls,
            },
            this.daemonEnv,
            extraEnv,
        );
        return { command: path.join(this.binDir, 'shopcastd'), env };
    }

    async startDaemon(extraEnv = {}) {
        const { command, env } = this.daemonLaunch(extraEnv);
        await this.daemon.start(command, [], env);
        await this.daemon.waitForLine(/shopcastd ready/);
    }

    async stopDaemon(signal = 'SIGTERM') {
        return this.daemon.stop(signal);
    }

    async startFcgi(extraEnv = {}) {
        const env = Stack.mergeEnv(
            this.baseEnv(),
            { INTERNAL_SECRET: this.secret, SHOPCAST_EVENTS_SOCKET: this.eventsSocket },
            this.fcgiEnv,
            extraEnv,
        );
        await this.fcgi.start(path.join(this.binDir, 'shopcast-fcgi'), ['--listen', this.fcgiSocket], env);
        await this.fcgi.waitForLine(/shopcast-fcgi ready/);
    }

    async stopFcgi(signal = 'SIGTERM') {
        return this.fcgi.stop(signal);
    }

    async startNginx() {
        const conf = path.join(this.dir, 'nginx.conf');
        await this.nginx.start(nginxBinary(), ['-p', `${this.dir}/`, '-c', conf, '-e', 'stderr'], this.baseEnv());
        // The notice comes once every listener is bound: an HTTP answer alone could come from
        // another server already on the port.
        await this.nginx.waitForLine(/start worker process/);
        await this.nginx.waitFor(async () => (await probeHttp(`${this.httpUrl}/`)) !== null, 'answering');
    }

    async stopNginx(signal = 'SIGTERM') {
        return this.nginx.stop(signal);
    }

    // POSTs (by default) to the publish endpoint over http. `body` is JSON.stringify'd (null or
    // undefined: no body); `raw`, a string or Buffer, is sent as it is instead. `secret: null` omits the secret header;
    // `contentType: null` omits Content-Type. Header values may be arrays (sent repeated).
    async publish(body, { headers = {}, method = 'POST', secret, contentType = 'application/json', raw } = {}) {
        const url = new URL('/api/internal/broadcast', this.httpUrl);
        const payload = raw !== undefined ? raw : body === undefined || body === null ? undefined : JSON.stringify(body);
        const sendHeaders = {};
        if (contentType !== null && contentType !== undefined) sendHeaders['content-type'] = contentType;
        const useSecret = secret === undefined ? this.secret : secret;
        if (useSecret !== null) sendHeaders['x-internal-secret'] = useSecret;
        for (const [key, value] of Object.entries(headers)) {
            const lower = key.toLowerCase();
            if (value === undefined || value === null) delete sendHeaders[lower];
            else sendHeaders[lower] = value;
        }
        const bytes = payload === undefined ? null : Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
        if (bytes !== null && !('content-length' in sendHeaders)) sendHeaders['content-length'] = bytes.length;

        return new Promise((resolve, reject) => {
            const req = http.request(url, { method, headers: sendHeaders, agent: false, timeout: 10_000 }, (res) => {
                const chunks = [];
                res.on('data', (chunk) => chunks.push(chunk));
                res.on('end', () => {
                    const text = Buffer.concat(chunks).toString('utf8');
                    let json = null;
                    try {
                        json = JSON.parse(text);
                    } catch {
                        // not JSON: callers check `json === null` or read `text`
                    }
                    resolve({ status: res.statusCode, headers: res.headers, json, text });
                });
                res.on('error', reject);
            });
            req.on('timeout', () => req.destroy(new Error('publish: no answer within 10 s')));
            req.on('error', reject);
            if (bytes !== null) req.end(bytes);
            else req.end();
        });
    }

    // Stops every child (fcgi, daemon, then nginx so browsers still get the daemon's close
    // frames) and returns how each exited. Files in `dir` stay.
    async stop() {
        const fcgi = await this.fcgi.stop();
        const daemon = await this.daemon.stop();
        const nginx = await this.nginx.stop(); // SIGTERM: fast shutdown, open WebSockets or not
        return { fcgi, daemon, nginx };
    }
}

async function generateCertificate(cert, key) {
    await execFileAsync('openssl', [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '825',
        '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-keyout', key, '-out', cert,
    ]);
}

// RSA key generation takes up to a few seconds, so one self-signed pair per user is kept in
// the temporary directory (renewed yearly) and copied into each stack's directory.
let sharedPair = null;
async function sharedCertificate() {
    if (!sharedPair) {
        sharedPair = (async () => {
            const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
            const cacheDir = path.join(os.tmpdir(), `shopcast-tls-${uid}`);
            const cert = path.join(cacheDir, 'cert.pem');
            const key = path.join(cacheDir, 'key.pem');
            const fresh = await stat(cert)
                .then((st) => Date.now() - st.mtimeMs < 365 * 24 * 3600 * 1000 && existsSync(key))
                .catch(() => false);
            if (!fresh) {
                await mkdir(cacheDir, { recursive: true, mode: 0o700 });
                // Made aside and renamed into place: concurrent test processes never see half a pair.
                const tmp = await mkdtemp(path.join(cacheDir, 'new-'));
                await generateCertificate(path.join(tmp, 'cert.pem'), path.join(tmp, 'key.pem'));
                await rename(path.join(tmp, 'key.pem'), key);
                await rename(path.join(tmp, 'cert.pem'), cert);
                await rm(tmp, { recursive: true, force: true });
            }
            return { cert, key };
        })().catch((err) => {
            sharedPair = null;
            throw err;
        });
    }
    return sharedPair;
}

async function ensureCertificate(dir) {
    const tlsDir = path.join(dir, 'tls');
    const cert = path.join(tlsDir, 'cert.pem');
    const key = path.join(tlsDir, 'key.pem');
    if (existsSync(cert) && existsSync(key)) return { cert, key };
    await mkdir(tlsDir, { recursive: true, mode: 0o700 });
    const shared = await sharedCertificate();
    await copyFile(shared.key, key);
    await copyFile(shared.cert, cert);
    return { cert, key };
}

export async function renderNginxConfig(values, templatePath = path.join(repoRoot, 'nginx', 'dev.conf.template')) {
    const template = await readFile(templatePath, 'utf8');
    const rendered = template.replace(/@([A-Z_]+)@/g, (whole, name) => {
        if (!(name in values)) throw new Error(`${templatePath}: no value for placeholder ${whole}`);
        return String(values[name]);
    });
    return rendered;
}

async function writeNginxConfig(stack, { cert, key, rateLimit, rateBurst, workerConnections, workerProcesses }) {
    const text = await renderNginxConfig({
        PREFIX: stack.dir,
        RUN_DIR: stack.runDir,
        WEB_ROOT: stack.webRoot,
        CERT: cert,
        KEY: key,
        HTTP_PORT: stack.httpPort,
        HTTPS_PORT: stack.httpsPort,
        RATE: rateLimit,
        BURST: rateBurst,
        WORKER_CONNECTIONS: workerConnections,
        WORKER_PROCESSES: workerProcesses,
        // One slot is one descriptor; stay within the 20,000 open-files hard limit.
        WORKER_NOFILE: Math.min(workerConnections + 64, 20000),
        USER_DIRECTIVE: userDirective(stack.nginxUser),
    });
    await writeFile(path.join(stack.dir, 'nginx.conf'), text);
    await installNginxIncludes(stack.dir);
}

function writeSiteConfig(stack, { site, siteRewrite, cert, key, rateLimit, rateBurst, workerConnections, workerProcesses }) {
    if (site === 'dev') return writeNginxConfig(stack, { cert, key, rateLimit, rateBurst, workerConnections, workerProcesses });
    if (site !== 'production') throw new Error(`site must be 'dev' or 'production', got ${JSON.stringify(site)}`);
    return writeProductionSite({
        dir: stack.dir, runDir: stack.runDir, cert, key,
        httpPort: stack.httpPort, httpsPort: stack.httpsPort, siteRewrite,
        // Debian's nginx.conf: the production site runs with what a newcomer's nginx has.
        workerConnections: 768,
        userDirective: userDirective(stack.nginxUser),
    });
}

function isAddressInUse(child) {
    return /Address already in use/.test(child.recentLog());
}

function checkDirectPort(name, value) {
    if (value === undefined) return;
    if (!Number.isInteger(value) || value < 0 || value > 65535) {
        throw new Error(`${name} must be a port number, 0 (pick one) or undefined (off), got ${value}`);
    }
}

// Starts the daemon with its direct-mode ports resolved (a port picked at random can be taken
// between the probe and the daemon's bind: then pick again).
async function startDaemonOnPorts(stack, directPort, directTlsPort) {
    const taken = new Set([stack.httpPort, stack.httpsPort]);
    const pick = async (wanted) => {
        if (wanted) return wanted;
        let port = await freePort();
        while (taken.has(port)) port = await freePort();
        return port;
    };
    const picked = directPort === 0 || directTlsPort === 0;
    for (let attempt = 1; ; attempt++) {
        stack.directPort = directPort === undefined ? undefined : await pick(directPort);
        if (stack.directPort !== undefined) taken.add(stack.directPort);
        stack.directTlsPort = directTlsPort === undefined ? undefined : await pick(directTlsPort);
        stack.directWsUrl = stack.directPort === undefined ? undefined : `ws://127.0.0.1:${stack.directPort}/ws`;
        stack.directWssUrl = stack.directTlsPort === undefined ? undefined : `wss://127.0.0.1:${stack.directTlsPort}/ws`;
        try {
            await stack.startDaemon();
            return;
        } catch (err) {
            if (!(picked && attempt < 5 && /cannot listen for WebSockets on (tls:)?127\.0\.0\.1/.test(stack.daemon.recentLog()))) throw err;
        }
    }
}

// Starts nginx, shopcastd and shopcast-fcgi and resolves once all three answer.
export async function startStack({
    binDir = process.env.SHOPCAST_BIN_DIR ? path.resolve(process.env.SHOPCAST_BIN_DIR) : path.join(repoRoot, 'build', 'bin'),
    dir,
    httpPort = 0,
    httpsPort = 0,
    secret = randomSecret(),
    daemonEnv = {},
    fcgiEnv = {},
    // nginx's publish flood guard, as in nginx/shopcast.conf: far above any bot's pace.
    rateLimit = '10000r/s',
    rateBurst = 10000,
    // Per nginx worker; the template runs two with accept_mutex on. A proxied WebSocket takes two
    // slots and a worker stops taking new connections while fewer than 1/8 of its slots are
    // free, so two workers serve about 14,000 browsers: above the daemon's default
    // SHOPCAST_MAX_CONNECTIONS (10,000), which refuses the excess with 503 while slots remain for
    // the publish API. Each worker stays under the 20,000 open-files cap.
    workerConnections = 16384,
    // 10,000 proxied browsers need two workers under the 20,000 open-files cap per process.
    workerProcesses = 2,
    stdio = 'pipe',
    webRoot = path.join(repoRoot, 'web'),
    site = 'dev',
    siteRewrite,
    directPort,
    directTlsPort,
} = {}) {
    checkDirectPort('directPort', directPort);
    checkDirectPort('directTlsPort', directTlsPort);
    for (const bin of ['shopcastd', 'shopcast-fcgi']) {
        if (!existsSync(path.join(binDir, bin))) {
            throw new Error(`${path.join(binDir, bin)} does not exist: build first (cmake -S . -B build && cmake --build build)`);
        }
    }
    dir = dir ? path.resolve(dir) : await mkdtemp(path.join(os.tmpdir(), 'shopcast-'));
    const runDir = path.join(dir, 'run');
    checkConfigPath('stack directory', dir);
    checkConfigPath('web root', webRoot);
    if (Buffer.byteLength(path.join(runDir, 'events.sock')) > SOCKET_PATH_MAX) {
        throw new Error(`stack directory ${dir} is too long for Unix socket paths (max ${SOCKET_PATH_MAX} bytes)`);
    }
    await mkdir(runDir, { recursive: true, mode: 0o750 });
    await mkdir(path.join(dir, 'tmp'), { recursive: true, mode: 0o700 });
    await mkdir(path.join(dir, 'state'), { recursive: true, mode: 0o700 });
    const unprivileged = isRootProcess() ? await unprivilegedNginxUser() : null;
    await shareWithNginx(dir, runDir, unprivileged);
    const nginxUser = await workersThatReach(runDir, unprivileged);
    webRoot = await servableWebRoot(dir, webRoot, nginxUser);
    const { cert, key } = await ensureCertificate(dir);

    const pickPorts = !httpPort || !httpsPort;
    const stack = new Stack({ binDir: path.resolve(binDir), dir, runDir, secret, daemonEnv, fcgiEnv, stdio, webRoot, cert, key, nginxUser });
    try {
        // nginx first: only once its ports are settled can the daemon's origin list be written.
        for (let attempt = 1; ; attempt++) {
            stack.httpPort = httpPort || (await freePort());
            stack.httpsPort = httpsPort || (await freePort());
            while (stack.httpsPort === stack.httpPort) stack.httpsPort = await freePort();
            stack.httpUrl = `http://127.0.0.1:${stack.httpPort}`;
            stack.httpsUrl = `https://127.0.0.1:${stack.httpsPort}`;
            await writeSiteConfig(stack, { site, siteRewrite, cert, key, rateLimit, rateBurst, workerConnections, workerProcesses });
            try {
                await stack.startNginx();
                break;
            } catch (err) {
                // A port picked at random can be taken between the probe and nginx's bind.
                if (!(pickPorts && attempt < 5 && isAddressInUse(stack.nginx))) throw err;
            }
        }
        stack.wsUrl = `ws://127.0.0.1:${stack.httpPort}/ws`;
        stack.wssUrl = `wss://127.0.0.1:${stack.httpsPort}/ws`;
        stack.origin = stack.httpUrl;
        stack.httpsOrigin = stack.httpsUrl;
        stack.allowedOrigins = [
            `http://127.0.0.1:${stack.httpPort}`,
            `http://localhost:${stack.httpPort}`,
            `https://127.0.0.1:${stack.httpsPort}`,
            `https://localhost:${stack.httpsPort}`,
        ];
        await startDaemonOnPorts(stack, directPort, directTlsPort);
        await stack.startFcgi();
    } catch (err) {
        await stack.stop().catch(() => {});
        throw err;
    }
    return stack;
}
