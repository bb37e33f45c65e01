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
//   workers     how many shopcastd (default 1: ws.sock, events.sock, state/ as always); more
//               than one run on one Redis stream, each with its own ws-N.sock, events-N.sock and
//               state/N (N from 1, as shopcastd@N), nginx's /ws balancing over them (least_conn)
//               and the direct-mode ports shared by all (SO_REUSEPORT)
//   redis       start the stack's own redis-server (tests/lib/redis-server.mjs, a Unix socket
//               in dir/redis) and give every service SHOPCAST_REDIS_URL; default: when
//               workers > 1. A SHOPCAST_REDIS_URL in daemonEnv is used instead of one of our own
//   fcgiInstances  how many shopcast-fcgi (default 1: fcgi.sock), each on fcgi-N.sock in
//               nginx's FastCGI upstream
// Started as root, nginx's workers run as www-data (else nobody): see unprivilegedNginxUser().
// The Stack it resolves to has httpUrl, httpsUrl, wsUrl, wssUrl, origin, httpsOrigin, secret,
// dir, runDir, nginxUser ({name, uid, gid, group} of the workers; null when not root), httpPort, httpsPort, directPort/directTlsPort with directWsUrl/directWssUrl
// (ws://127.0.0.1:P/ws, wss://...; undefined when off), the PIDs daemonPid/fcgiPid/nginxPid, and:
//   publish(body, {headers, method, secret, contentType, raw}) -> {status, headers, json, text}
//   stopDaemon([index,] signal) / startDaemon([index,] extraEnv), and the same for fcgi
//   (index 0-based, default 0: the first), daemons / fcgiInstances (each with name, pid,
//   wsSocket, eventsSocket, stateDir or socket, log(), start(extraEnv), stop(signal)),
//   daemonPids, redis (the running Redis helper, or null) and redisUrl
//   daemonLog(), fcgiLog(), nginxLog() (captured output; of every instance, each under its name,
//   when there are several), accessLog() (async)
//   stop() -> how each child exited ({fcgi, daemon, nginx, daemons, fcgis, redis}); files in
//   dir stay
//   an 'exit' event {name, code, signal, expected} whenever a child ends
//
// Children are tracked by PID, run with a parent-death signal (setpriv --pdeathsig) and are also
// signalled when this process exits, so a test that dies half-way leaves nothing behind.

import { execFile } from 'node:child_process';
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
import { Child, sleep } from './child.mjs';
import { installNginxIncludes, writeProductionSite } from './production-site.mjs';

const execFileAsync = promisify(execFile);

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const SOCKET_PATH_MAX = 107; // sun_path holds 108 bytes with the terminating NUL

// Settings the launcher decides for the children; inherited values are dropped so a developer's
// shell (or the CI environment) cannot change what a test runs against.
const OWNED_ENV = /^(SHOPCAST_|INTERNAL_SECRET|BOT_TOKEN|NOTIFY_SOCKET$|WATCHDOG_|LISTEN_)/;

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
        // One daemon keeps today's names (ws.sock, events.sock, state/); several are numbered
        // from 1 as systemd's shopcastd@N instances are (ws-1.sock, events-1.sock, state/1).
        this.daemons = Array.from({ length: this.workers }, (_, i) => new DaemonInstance(this, this.workers > 1 ? i + 1 : 0, echo));
        this.fcgiInstances = Array.from({ length: opts.fcgiCount }, (_, i) => new FcgiInstance(this, opts.fcgiCount > 1 ? i + 1 : 0, echo));
        // The first of each is "the" daemon and "the" fcgi of a single-instance stack.
        this.daemon = this.daemons[0].child;
        this.fcgi = this.fcgiInstances[0].child;
        this.nginx = new Child('nginx', { echo, emitter: this });
        this.eventsSocket = this.daemons[0].eventsSocket;
        this.wsSocket = this.daemons[0].wsSocket;
        this.fcgiSocket = this.fcgiInstances[0].socket;
        this.stateDir = this.daemons[0].stateDir;
        this.redis = null; // { socketPath, url, pid, stop(), ... } once started (startRedis)
    }

    get daemonPid() {
        return this.daemon.pid;
    }
    get daemonPids() {
        return this.daemons.map((d) => d.pid);
    }
    get fcgiPid() {
        return this.fcgi.pid;
    }
    get nginxPid() {
        return this.nginx.pid;
    }
    // The Redis URL the services get (the stack's own Redis, or one given in daemonEnv), or null.
    get redisUrl() {
        return this.daemonEnv.SHOPCAST_REDIS_URL ?? this.redis?.url ?? null;
    }

    // With several instances: every instance's output, each under its name.
    daemonLog() {
        return joinedLogs(this.daemons);
    }
    fcgiLog() {
        return joinedLogs(this.fcgiInstances);
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

    // unix:<ws socket> for nginx, then the direct-mode listeners when they are on (every daemon
    // of the stack on the same ports: with Redis each opens them with SO_REUSEPORT).
    wsListen(index = 0) {
        const listeners = [`unix:${this.daemons[index].wsSocket}`];
        if (this.directPort !== undefined) listeners.push(`127.0.0.1:${this.directPort}`);
        if (this.directTlsPort !== undefined) listeners.push(`tls:127.0.0.1:${this.directTlsPort}`);
        return listeners.join(',');
    }

    // What every service gets in Redis mode; nothing without Redis.
    redisEnv() {
        return this.redis ? { SHOPCAST_REDIS_URL: this.redis.url } : {};
    }

    // A daemon's program and environment, as startDaemon runs it; a test that starts the daemon
    // another way (e.g. under a socket holder) uses the same.
    daemonLaunch(extraEnv = {}, index = 0) {
        const daemon = this.daemons[index];
        const tls = this.directTlsPort !== undefined ? { SHOPCAST_TLS_CERT_FILE: this.cert, SHOPCAST_TLS_KEY_FILE: this.key } : {};
        const env = Stack.mergeEnv(
            this.baseEnv(),
            {
                SHOPCAST_EVENTS_SOCKET: daemon.eventsSocket,
                SHOPCAST_WS_LISTEN: this.wsListen(index),
                SHOPCAST_ALLOWED_ORIGINS: this.allowedOrigins.join(','),
                SHOPCAST_STATE_DIRECTORY: daemon.stateDir,
                ...this.redisEnv(),
                ...tls,
            },
            this.daemonEnv,
            extraEnv,
        );
        return { command: path.join(this.binDir, 'shopcastd'), env };
    }

    // The first daemon, or daemon `index` (0-based) of several: startDaemon(extraEnv) or
    // startDaemon(index, extraEnv); stopDaemon(signal) or stopDaemon(index, signal).
    async startDaemon(...args) {
        const [index, extraEnv = {}] = typeof args[0] === 'number' ? args : [0, ...args];
        return this.daemons[index].start(extraEnv);
    }

    async stopDaemon(...args) {
        const [index, signal = 'SIGTERM'] = typeof args[0] === 'number' ? args : [0, ...args];
        return this.daemons[index].stop(signal);
    }

    // The same for the fcgi instances.
    async startFcgi(...args) {
        const [index, extraEnv = {}] = typeof args[0] === 'number' ? args : [0, ...args];
        return this.fcgiInstances[index].start(extraEnv);
    }

    async stopFcgi(...args) {
        const [index, signal = 'SIGTERM'] = typeof args[0] === 'number' ? args : [0, ...args];
        return this.fcgiInstances[index].stop(signal);
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

    // Stops every child (fcgi, daemons, then nginx so browsers still get the daemons' close
    // frames, then Redis) and returns how each exited. Files in `dir` stay. With several
    // daemons, `daemon` is the first that did not exit cleanly among those running until now
    // (else the first daemon's), so a caller checking `daemon` checks them all.
    async stop() {
        const fcgis = [];
        for (const fcgi of this.fcgiInstances) fcgis.push(await fcgi.child.stop());
        const wereRunning = this.daemons.map((d) => d.child.running);
        const daemons = await Promise.all(this.daemons.map((d) => d.child.stop()));
        const nginx = await this.nginx.stop(); // SIGTERM: fast shutdown, open WebSockets or not
        const redis = this.redis ? await this.redis.stop() : null;
        const unclean = daemons.find((status, i) => wereRunning[i] && (status?.code !== 0 || status?.signal));
        return { fcgi: fcgis[0], daemon: unclean ?? daemons[0], nginx, daemons, fcgis, redis };
    }
}

function joinedLogs(instances) {
    if (instances.length === 1) return instances[0].child.log;
    return instances.map((instance) => `--- ${instance.name} ---\n${instance.child.log}`).join('\n');
}

// One shopcastd of the stack: its own ws and events sockets and state directory.
class DaemonInstance {
    constructor(stack, number, echo) {
        this.stack = stack;
        this.index = number === 0 ? 0 : number - 1;
        const suffix = number === 0 ? '' : `-${number}`;
        this.name = number === 0 ? 'shopcastd' : `shopcastd@${number}`;
        this.child = new Child(this.name, { echo, emitter: stack });
        this.wsSocket = path.join(stack.runDir, `ws${suffix}.sock`);
        this.eventsSocket = path.join(stack.runDir, `events${suffix}.sock`);
        // Like systemd's StateDirectory=: history and epoch survive a restart of the daemon.
        this.stateDir = number === 0 ? path.join(stack.dir, 'state') : path.join(stack.dir, 'state', String(number));
    }

    get pid() {
        return this.child.pid;
    }

    log() {
        return this.child.log;
    }

    async start(extraEnv = {}) {
        await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
        const { command, env } = this.stack.daemonLaunch(extraEnv, this.index);
        await this.child.start(command, [], env);
        await this.child.waitForLine(/shopcastd ready/);
    }

    async stop(signal = 'SIGTERM') {
        return this.child.stop(signal);
    }
}

// One shopcast-fcgi of the stack on its own socket; nginx's upstream lists them all. Each asks
// the first daemon for /metrics and /health (its SHOPCAST_EVENTS_SOCKET).
class FcgiInstance {
    constructor(stack, number, echo) {
        this.stack = stack;
        this.name = number === 0 ? 'shopcast-fcgi' : `shopcast-fcgi@${number}`;
        this.child = new Child(this.name, { echo, emitter: stack });
        this.socket = path.join(stack.runDir, number === 0 ? 'fcgi.sock' : `fcgi-${number}.sock`);
    }

    get pid() {
        return this.child.pid;
    }

    log() {
        return this.child.log;
    }

    async start(extraEnv = {}) {
        const stack = this.stack;
        const env = Stack.mergeEnv(
            stack.baseEnv(),
            { INTERNAL_SECRET: stack.secret, SHOPCAST_EVENTS_SOCKET: stack.eventsSocket, ...stack.redisEnv() },
            stack.fcgiEnv,
            extraEnv,
        );
        await this.child.start(path.join(stack.binDir, 'shopcast-fcgi'), ['--listen', this.socket], env);
        await this.child.waitForLine(/shopcast-fcgi ready/);
    }

    async stop(signal = 'SIGTERM') {
        return this.child.stop(signal);
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

// An upstream's lines: one server, as always; several share one zone (the state of every nginx
// worker) and go to the least busy, so long-lived WebSockets spread evenly over the daemons.
function upstreamBody(sockets, zone) {
    const servers = sockets.map((socket) => `        server          unix:${socket};`);
    if (sockets.length === 1) return servers[0];
    return [`        zone            ${zone} 64k;`, '        least_conn;', ...servers].join('\n');
}

async function writeNginxConfig(stack, { cert, key, rateLimit, rateBurst, workerConnections, workerProcesses }) {
    const text = await renderNginxConfig({
        PREFIX: stack.dir,
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
        WS_UPSTREAM: upstreamBody(stack.daemons.map((d) => d.wsSocket), 'shopcast_ws'),
        FCGI_UPSTREAM: upstreamBody(stack.fcgiInstances.map((f) => f.socket), 'shopcast_fcgi'),
    });
    await writeFile(path.join(stack.dir, 'nginx.conf'), text);
    await installNginxIncludes(stack.dir);
}

function writeSiteConfig(stack, { site, siteRewrite, cert, key, rateLimit, rateBurst, workerConnections, workerProcesses }) {
    if (site === 'dev') return writeNginxConfig(stack, { cert, key, rateLimit, rateBurst, workerConnections, workerProcesses });
    if (site !== 'production') throw new Error(`site must be 'dev' or 'production', got ${JSON.stringify(site)}`);
    return writeProductionSite({
        dir: stack.dir, runDir: stack.runDir, cert, key,
        httpPort: stack.httpPort, httpsPort: stack.httpsPort, siteRewrite, workers: stack.daemons.length,
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
            break;
        } catch (err) {
            if (!(picked && attempt < 5 && /cannot listen for WebSockets on (tls:)?127\.0\.0\.1/.test(stack.daemon.recentLog()))) throw err;
        }
    }
    // The others share the first one's ports (SO_REUSEPORT, Redis mode only).
    await Promise.all(stack.daemons.slice(1).map((daemon) => daemon.start()));
}

// The stack's own redis-server on a Unix socket in dir/redis (tests/lib/redis-server.mjs), for
// several daemons or when asked for; never a system Redis.
async function startOwnRedis(stack) {
    const { startRedis } = await import(path.join(repoRoot, 'tests', 'lib', 'redis-server.mjs'));
    stack.redis = await startRedis({ dir: path.join(stack.dir, 'redis') });
}

function checkCount(name, value) {
    if (!Number.isInteger(value) || value < 1 || value > 64) throw new Error(`${name} must be an integer from 1 to 64, got ${value}`);
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
    workers = 1,
    redis,
    fcgiInstances = 1,
} = {}) {
    checkDirectPort('directPort', directPort);
    checkDirectPort('directTlsPort', directTlsPort);
    checkCount('workers', workers);
    checkCount('fcgiInstances', fcgiInstances);
    // Several daemons only make sense on one stream; a Redis given in daemonEnv is used as it is.
    const externalRedis = daemonEnv.SHOPCAST_REDIS_URL !== undefined && daemonEnv.SHOPCAST_REDIS_URL !== null;
    if (redis === false && workers > 1 && !externalRedis) throw new Error('workers > 1 needs Redis: leave redis unset or true');
    const ownRedis = !externalRedis && (redis === true || (redis === undefined && workers > 1));
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
    const stack = new Stack({ binDir: path.resolve(binDir), dir, runDir, secret, daemonEnv, fcgiEnv, stdio, webRoot, cert, key, nginxUser, workers, fcgiCount: fcgiInstances });
    try {
        if (ownRedis) await startOwnRedis(stack);
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
        await Promise.all(stack.fcgiInstances.map((fcgi) => fcgi.start()));
    } catch (err) {
        await stack.stop().catch(() => {});
        throw err;
    }
    return stack;
}
