// What the benchmark reads about the processes it measures, from /proc: resident memory, CPU
// time and the children of a process (nginx workers).
// Every reading takes a map { name: [pid...] } and sums over the pids of each name.

import { readFileSync } from 'node:fs';

function procStatus(pid) {
    try {
        const text = readFileSync(`/proc/${pid}/status`, 'utf8');
        const kb = (key) => Number((text.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm')) || [])[1] || 0);
        return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), shmem: kb('RssShmem') };
    } catch {
        return null;
    }
}

const CLOCK_TICK_MS = 10; // USER_HZ is 100 on Linux
function procCpuMs(pid) {
    try {
        const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
        return (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS; // utime + stime
    } catch {
        return 0;
    }
}

export function childPids(pid) {
    try {
        return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
        return [];
    }
}

// Whole-machine CPU: busy and total jiffies from /proc/stat.
export function machineCpu() {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = fields[3] + (fields[4] || 0);
    return { busy: total - idle, total };
}

export function memorySnapshot(groups) {
    const out = {};
    for (const [name, pids] of Object.entries(groups)) {
        const sum = { rss: 0, anon: 0, file: 0, shmem: 0 };
        for (const pid of pids) {
            const s = procStatus(pid);
            if (s) for (const k of Object.keys(sum)) sum[k] += s[k];
        }
        out[name] = sum;
    }
    return out;
}

export function cpuSnapshot(groups) {
    const out = {};
    for (const [name, pids] of Object.entries(groups)) out[name] = pids.reduce((a, pid) => a + procCpuMs(pid), 0);
    return out;
}

// Per-connection memory between two snapshots.
export function memoryDelta(before, after, n) {
    const out = {};
    for (const name of Object.keys(after)) {
        const b = before[name] || { rss: 0, anon: 0, file: 0, shmem: 0 };
        const a = after[name];
        out[name] = {
            beforeKb: b.rss,
            afterKb: a.rss,
            perConnKb: n ? (a.rss - b.rss) / n : null,
            anonPerConnKb: n ? (a.anon - b.anon) / n : null,
        };
    }
    return out;
}
