// The guide's WebApp as a client of its own: fixtures/guide-webapp.html is a page written as the
// bot integration guide describes it (plain `new WebSocket`, `onmessage`, the "📨 WebSocket
// message:" console line, never a message sent, a reconnect a second after a close). In real
// Chromium through nginx over https it must get every event promptly and in order, through a
// burst and through a daemon restart. There is no resume for such a page: events published
// while it is away are not expected, and every event after it is back must arrive once, in order.
//
//   node --test tests/e2e/guide-page.test.mjs

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { repoRoot, startStack } from '../../scripts/lib/stack.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TIMEOUT = { timeout: 120_000 }; // per test
const ARRIVAL_MS = 15_000; // bound on "promptly": the last event of a burst is in by then
const BURST = 300;
const MESSAGE_PREFIX = '📨 WebSocket message:';
const CONNECTED_LINE = '✅ WebSocket connected';

describe('the guide\'s WebApp page in Chromium', () => {
    let stack;
    let browser;

    before(async () => {
        stack = await startStack({ webRoot: path.join(repoRoot, 'tests', 'e2e', 'fixtures') });
        browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
    });

    after(async () => {
        await browser?.close();
        await stack?.stop();
    });

    // Opens the page; `log` collects, in order, what it wrote to the console: the connection
    // lines and each message it received (parsed, from the console call's second argument).
    async function openGuidePage() {
        const context = await browser.newContext({ ignoreHTTPSErrors: true });
        const page = await context.newPage();
        const log = { connects: 0, messages: [], pageErrors: [], waiters: new Set() };
        let chain = Promise.resolve();
        page.on('console', (message) => {
            const text = message.text();
            // Console arguments resolve asynchronously: chain them to keep their order.
            chain = chain.then(async () => {
                if (text === CONNECTED_LINE) log.connects += 1;
                else if (text.startsWith(MESSAGE_PREFIX)) log.messages.push(await message.args()[1].jsonValue());
                for (const wake of log.waiters) wake();
            });
        });
        page.on('pageerror', (err) => log.pageErrors.push(err));
        await page.goto(`${stack.httpsUrl}/guide-webapp.html`);
        return { context, page, log };
    }

    // Resolves once check(log) is true; fails after `timeout` ms with `label`.
    function until(log, check, label, timeout = ARRIVAL_MS) {
        return new Promise((resolve, reject) => {
            const wake = () => {
                if (!check(log)) return;
                clearTimeout(timer);
                log.waiters.delete(wake);
                resolve();
            };
            const timer = setTimeout(() => {
                log.waiters.delete(wake);
                reject(new Error(`timed out after ${timeout} ms waiting for ${label}; ${log.messages.length} messages, last ${JSON.stringify(log.messages.at(-1))}`));
            }, timeout);
            log.waiters.add(wake);
            wake();
        });
    }

    const events = (log) => log.messages.filter((m) => m.type !== 'hello');
    const hellos = (log) => log.messages.filter((m) => m.type === 'hello');

    async function publish(body) {
        const reply = await stack.publish(body);
        assert.equal(reply.status, 200, `publish ${JSON.stringify(body)} -> ${reply.status} ${reply.text}`);
        return reply.json;
    }

    // One at a time, as fast as the replies come: the order of the replies is the publish order.
    async function burst(count, tag) {
        const ids = [];
        for (let n = 0; n < count; n++) {
            ids.push((await publish({ type: 'product_updated', shopId: 123, productId: n + 1, tag, n })).id);
        }
        return ids;
    }

    it(`gets a burst of ${BURST} events promptly, each once, in order`, TIMEOUT, async () => {
        const { context, log } = await openGuidePage();
        await until(log, (l) => l.connects === 1 && hellos(l).length === 1, 'the connection and its hello');
        const ids = await burst(BURST, 'burst');
        await until(log, (l) => events(l).length >= BURST, `${BURST} events`);
        assert.deepEqual(events(log).map((m) => m.id), ids);
        assert.ok(events(log).every((m, n) => m.type === 'product_updated' && m.shopId === 123 && m.n === n));
        // A probe after the burst: once it arrived, any duplicate of the burst would have too.
        const probe = await publish({ type: 'shop_updated', shopId: 123, tag: 'probe' });
        await until(log, (l) => events(l).some((m) => m.id === probe.id), 'the probe');
        assert.deepEqual(events(log).map((m) => m.id), [...ids, probe.id]);
        assert.deepEqual(log.pageErrors, []);
        await context.close();
    });

    it('reconnects by itself after a daemon restart; every event after that arrives once, in order', TIMEOUT, async () => {
        const { context, log } = await openGuidePage();
        await until(log, (l) => l.connects === 1 && hellos(l).length === 1, 'the connection and its hello');
        const before = await burst(20, 'before');
        await until(log, (l) => events(l).length >= 20, 'the events before the restart');

        await stack.stopDaemon(); // SIGTERM: the page gets 1001 and starts reconnecting
        const refused = await stack.publish({ type: 'shop_updated', shopId: 123, tag: 'downtime' });
        assert.equal(refused.status, 503, refused.text);
        await stack.startDaemon();

        // Reconnected: a second hello, from the new daemon.
        await until(log, (l) => hellos(l).length === 2, 'a hello from the restarted daemon', 30_000);
        const afterIds = await burst(BURST, 'after');
        await until(log, (l) => events(l).length >= 20 + BURST, `${BURST} events after the restart`);
        const probe = await publish({ type: 'shop_updated', shopId: 123, tag: 'probe' });
        await until(log, (l) => events(l).some((m) => m.id === probe.id), 'the probe');
        assert.deepEqual(events(log).map((m) => m.id), [...before, ...afterIds, probe.id]);
        assert.ok(log.connects >= 2, `${log.connects} connections`);
        assert.deepEqual(log.pageErrors, []);
        await context.close();
    });
});
