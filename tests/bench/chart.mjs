// The chart of BENCHMARKS.md: p50 and p99 latency against achieved deliveries/s for every
// system, from the ramp steps, one panel per ramp client count. Plain SVG, no dependencies.

import { LABEL } from './report.mjs';

const COLORS = {
    shopcast: '#1f77b4',
    'shopcast-direct': '#d62728',
    nchan: '#2ca02c',
    node: '#9467bd',
    'floor-tcp': '#7f7f7f',
    'floor-unix': '#bcbd22',
};

const escape = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceStep(max) {
    const raw = max / 5;
    const mag = 10 ** Math.floor(Math.log10(raw));
    return [1, 2, 2.5, 5, 10].map((k) => k * mag).find((s) => s >= raw);
}

function panel(out, { x0, y0, w, h, n, series }) {
    const points = series.flatMap((s) => s.steps);
    const xMax = Math.max(1000, ...points.map((p) => p.x)) * 1.05;
    const yMin = 0.5;
    const yMax = Math.max(10, ...points.map((p) => p.p99)) * 1.3;
    const ly = (v) => Math.log10(Math.max(yMin, v));
    const sx = (x) => x0 + (x / xMax) * w;
    const sy = (y) => y0 + h - ((ly(y) - ly(yMin)) / (ly(yMax) - ly(yMin))) * h;
    out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#999"/>`);
    out.push(`<text x="${x0 + w / 2}" y="${y0 - 8}" text-anchor="middle" font-weight="bold">${n.toLocaleString('en-US')} clients</text>`);
    const step = niceStep(xMax);
    for (let x = 0; x <= xMax; x += step) {
        out.push(`<line x1="${sx(x)}" y1="${y0 + h}" x2="${sx(x)}" y2="${y0 + h + 4}" stroke="#999"/>`);
        out.push(`<text x="${sx(x)}" y="${y0 + h + 16}" text-anchor="middle">${x >= 1000 ? `${x / 1000}k` : x}</text>`);
    }
    for (const y of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000].filter((v) => v >= yMin && v <= yMax)) {
        out.push(`<line x1="${x0}" y1="${sy(y)}" x2="${x0 + w}" y2="${sy(y)}" stroke="#eee"/>`);
        out.push(`<text x="${x0 - 6}" y="${sy(y) + 4}" text-anchor="end">${y}</text>`);
    }
    out.push(`<text x="${x0 + w / 2}" y="${y0 + h + 34}" text-anchor="middle">deliveries/s achieved</text>`);
    out.push(`<text transform="translate(${x0 - 40},${y0 + h / 2}) rotate(-90)" text-anchor="middle">latency ms (log)</text>`);
    for (const s of series) {
        const color = COLORS[s.system] ?? '#000';
        for (const [key, dash] of [['p50', ''], ['p99', ' stroke-dasharray="5,3"']]) {
            const path = s.steps.map((p, i) => `${i ? 'L' : 'M'}${sx(p.x).toFixed(1)},${sy(p[key]).toFixed(1)}`).join(' ');
            out.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="1.8"${dash}/>`);
            for (const p of s.steps) {
                out.push(`<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p[key]).toFixed(1)}" r="3" fill="${p.sustained ? color : '#fff'}" stroke="${color}"/>`);
            }
        }
    }
}

export function renderChart({ results, settings, facts }) {
    const ns = settings.rampN;
    const w = 420;
    const h = 260;
    const width = Math.max(900, 70 + ns.length * (w + 80)); // room for the legend
    const height = h + 130;
    const out = [];
    out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
    out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
    ns.forEach((n, i) => {
        const series = settings.systems
            .map((system) => {
                const r = results.find((x) => x.system === system && x.n === n && x.ramp && !x.error);
                const steps = (r?.ramp ?? [])
                    .filter((st) => st.latencyMs.p50 !== null)
                    .map((st) => ({ x: st.received / (st.events / st.rate), p50: st.latencyMs.p50, p99: st.latencyMs.p99, sustained: st.sustained }));
                return { system, steps };
            })
            .filter((s) => s.steps.length);
        panel(out, { x0: 70 + i * (w + 80), y0: 30, w, h, n, series });
    });
    // Legend
    let lx = 70;
    const ly = h + 95;
    for (const system of settings.systems) {
        out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${COLORS[system] ?? '#000'}" stroke-width="2.5"/>`);
        out.push(`<text x="${lx + 27}" y="${ly + 4}">${escape(LABEL[system] ?? system)}</text>`);
        lx += 40 + 7 * (LABEL[system] ?? system).length;
    }
    out.push(`<text x="70" y="${ly + 22}">solid: p50, dashed: p99; open marker: the step that fell behind. ${escape(`scripts/bench, ${facts.date.slice(0, 16).replace('T', ' ')} UTC`)}</text>`);
    out.push('</svg>');
    return `${out.join('\n')}\n`;
}
