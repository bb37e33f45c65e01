// Memory per idle connection: starts the dev stack with direct mode on, opens N idle clients
// (several load processes, each from its own 127.0.0.x), and reports shopcastd's (and nginx's)
// RSS growth per client. Every load stops by itself (DEADLINE_MS).
//
//   node tests/load/idle-memory.mjs --clients 10000 --via ws      # ws://  direct
//   node tests/load/idle-memory.mjs --clients 10000 --via wss     # wss:// direct
//   node tests/load/idle-memory.mjs --clients 10000 --via nginx   # ws:// through nginx
// --hold-seconds S keeps the clients idle S seconds before measuring (keepalive included);
// --max-connections and --ping-interval set the daemon's limits.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startStack } from '../../scripts/lib/stack.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '10000' },
    via: { type: 'string', default: 'ws' },
    'per-process': { type: 'string', default: '6500' },
    'max-connections': { type: 'string' },
    'hold-seconds': { type: 'string', default: '2' },
    'ping-interval': { type: 'string' }, // SHOPCAST_PING_INTERVAL; the hangup is twice it
  },
});
const clients = Number(values.clients);
const perProcess = Math.min(9000, Number(values['per-process']));

function rssKb(pid) {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
}
// CPU seconds (user + system) the process has used.
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}
function nginxWorkers(masterPid) {
  return readFileSync(`/proc/${masterPid}/task/${masterPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}
function nginxRssKb(masterPid) {
  return [masterPid, ...nginxWorkers(masterPid)].reduce((sum, pid) => sum + rssKb(pid), 0);
}
// Open descriptors of each nginx worker: two per proxied browser.
function nginxWorkerFds(masterPid) {
  return nginxWorkers(masterPid).map((pid) => readdirSync(`/proc/${pid}/fd`).length);
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The limit above the count being measured, so that every client is admitted (or as given).
const stack = await startStack({
  directPort: 0,
  directTlsPort: 0,
  daemonEnv: {
    SHOPCAST_MAX_CONNECTIONS: values['max-connections'] ?? String(clients + 100),
    ...(values['ping-interval'] ? { SHOPCAST_PING_INTERVAL: values['ping-interval'], SHOPCAST_HANGUP_TIMEOUT: String(2 * values['ping-interval']) } : {}),
  },
});
const url = { ws: stack.directWsUrl, wss: stack.directWssUrl, nginx: stack.wsUrl }[values.via];
if (!url) throw new Error(`--via must be ws, wss or nginx`);
await sleep(1000);
const before = { daemon: rssKb(stack.daemonPid), nginx: nginxRssKb(stack.nginxPid) };

const loads = [];
for (let i = 0, left = clients; left > 0; i++, left -= perProcess) {
  const child = spawn(process.execPath, [path.join(here, 'idle-clients.mjs')], {
    env: { ...process.env, URL: url, COUNT: String(Math.min(perProcess, left)), LOCAL_ADDRESS: `127.0.0.${i + 2}`, DEADLINE_MS: String(420_000 + Number(values['hold-seconds']) * 1000) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = [];
  child.stdout.on('data', (chunk) => lines.push(...chunk.toString().trim().split('\n')));
  loads.push({ child, lines });
}
const started = Date.now();
while (loads.some((load) => !load.lines.some((line) => line.includes('"ready"')))) {
  if (Date.now() - started > 360_000) throw new Error('load processes did not finish opening in time');
  await sleep(250);
}
const holdStart = { at: Date.now(), cpu: cpuSeconds(stack.daemonPid) };
await sleep(Number(values['hold-seconds']) * 1000);
// Idle connections still cost the keepalive: a ping and its pong every SHOPCAST_PING_INTERVAL.
const idleCpuShare = (cpuSeconds(stack.daemonPid) - holdStart.cpu) / ((Date.now() - holdStart.at) / 1000);
const after = { daemon: rssKb(stack.daemonPid), nginx: nginxRssKb(stack.nginxPid) };
const reports = loads.map((load) => JSON.parse(load.lines.find((line) => line.includes('"ready"'))));
const opened = reports.reduce((sum, r) => sum + r.opened, 0);
const reply = await stack.publish({ type: 'shop_updated', shopId: 1 });
const fds = nginxWorkerFds(stack.nginxPid);

const result = {
  via: values.via,
  clients,
  opened,
  processes: loads.length,
  openSeconds: Math.max(...reports.map((r) => r.ms)) / 1000,
  refusedOrFailed: reports.map((r) => ({ refused: r.refused, failed: r.failed, errors: r.errors, closedEarly: r.closedEarly })),
  nginxWorkerFds: fds,
  publish: { status: reply.status, recipients: reply.json?.recipients },
  daemonRssKb: { before: before.daemon, after: after.daemon },
  daemonIdleCpuShare: +idleCpuShare.toFixed(3),
  daemonKbPerClient: +((after.daemon - before.daemon) / opened).toFixed(2),
  nginxRssKb: { before: before.nginx, after: after.nginx },
  nginxKbPerClient: +((after.nginx - before.nginx) / opened).toFixed(2),
  daemonLog: stack.daemonLog().split('\n').filter((line) => line && !/Broadcast sent/.test(line)).slice(-10),
};
for (const { child } of loads) child.stdin.end();
await Promise.all(loads.map(({ child }) => new Promise((resolve) => child.once('exit', resolve))));
await stack.stop();
console.log(JSON.stringify(result, null, 2));
