// A supervised child process of the stack (scripts/lib/stack.mjs) or of a test helper
// (tests/lib/redis-server.mjs): output captured (and echoed, line by line with its name, when
// asked), readiness read from its output, a stop with a deadline. Every live child is signalled
// when this process exits.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const LOG_LIMIT = 8 * 1024 * 1024; // bytes of each child's output kept (the newest)

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

export function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

// One supervised child process: output captured (and echoed when stdio is 'inherit'), readiness
// read from its output, stop with a deadline. `emitter`, when given, is sent an 'exit' event
// {name, code, signal, expected} whenever the child ends.
export class Child {
    constructor(name, { echo = false, emitter = null } = {}) {
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
                if (!this.stopping) this.emitter?.emit('exit', { name: this.name, code, signal, expected: false });
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
        this.emitter?.emit('exit', { name: this.name, ...status, expected: true });
        return status;
    }
}
