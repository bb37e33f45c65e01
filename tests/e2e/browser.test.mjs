// The demo page in real Chromium, over https and wss through nginx with the
// stack's self-signed certificate, against real shopcastd and shopcast-fcgi.
//
//   node --test tests/e2e/
//
// Uses the system Chromium (/usr/bin/chromium, or $CHROMIUM); never downloads
// a browser. Writes test-output/e2e/demo-updated.png.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

import { repoRoot, startStack } from '../../scripts/lib/stack.mjs';
import { assertCoalescedBurst, publishBurst } from '../web-client/burst.mjs';

const execFileAsync = promisify(execFile);

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
];
const TIMEOUT = { timeout: 60_000 }; // per test
const WAIT_MS = 15_000;
const SCREENSHOT = path.join(repoRoot, 'test-output', 'e2e', 'demo-updated.png');

const CONNECTED = '🟢 WS Connected';
const DISCONNECTED = '🔴 WS Disconnected';

// Test-side hook: every WebSocket the page opens is kept in
// window.__shopcastSockets, so a test can cut the connection the way a
// network change would, without the client's knowledge.
function trackSockets() {
    const Native = window.WebSocket;
    window.__shopcastSockets = [];
    window.WebSocket = class TrackedWebSocket extends Native {
        constructor(...args) {
            super(...args);
            window.__shopcastSockets.push(this);
        }
    };
}

describe('demo page in Chromium', () => {
    let stack;
    let browser;

    before(async () => {
        stack = await startStack({});
        browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
    });

    after(async () => {
        await browser?.close();
        await stack?.stop();
    });

    // A fresh context and page on the https origin, connected and resumed.
    async function openDemo(query = '') {
        const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 900, height: 820 } });
        context.setDefaultTimeout(WAIT_MS);
        await context.addInitScript(trackSockets);
        const page = await context.newPage();
        const consoleLines = [];
        const pageErrors = [];
        page.on('console', (message) => {
            const entry = { text: message.text(), args: null };
            entry.argsReady = Promise.all(message.args().map((arg) => arg.jsonValue().catch(() => undefined)))
                .then((values) => { entry.args = values; });
            consoleLines.push(entry);
        });
        page.on('pageerror', (err) => pageErrors.push(err));
        await page.goto(`${stack.httpsUrl}/${query}`);
        await indicatorShows(page, CONNECTED);
        // hello answered: the page has a cursor and live delivery has started.
        await page.waitForFunction(() => window.shopcastDemo?.client.lastId != null);
        return { context, page, consoleLines, pageErrors };
    }

    function indicatorShows(page, text, timeout = WAIT_MS) {
        return page.waitForFunction(
            (want) => document.querySelector('[data-testid="ws-indicator"]')?.textContent === want, text, { timeout });
    }

    function logShows(page, id) {
        return page.waitForFunction(
            (want) => [...document.querySelectorAll('[data-testid="event-log-entry"]')]
                .some((li) => li.dataset.id === want),
            id);
    }

    async function logIds(page) {
        return page.$$eval('[data-testid="event-log-entry"]', (items) => items.map((li) => li.dataset.id).reverse());
    }

    async function publish(body) {
        const reply = await stack.publish(body);
        assert.equal(reply.status, 200, `publish ${JSON.stringify(body)} -> ${reply.status} ${reply.text}`);
        return reply.json;
    }

    it('the seed\'s curl command updates the page and the console', TIMEOUT, async () => {
        const { context, page, consoleLines, pageErrors } = await openDemo();
        const socketUrl = await page.evaluate(() => window.__shopcastSockets[0].url);
        assert.equal(socketUrl, `wss://127.0.0.1:${stack.httpsPort}/ws`);

        // The seed guide's command, word for word, with the stack's URL and secret.
        const { stdout } = await execFileAsync('curl', [
            '-X', 'POST', `${stack.httpUrl}/api/internal/broadcast`,
            '-H', 'Content-Type: application/json',
            '-H', `x-internal-secret: ${stack.secret}`,
            '-d', '{"type":"product_added","shopId":123,"productId":456}',
            '-sS', '--max-time', '10',
        ]);
        const reply = JSON.parse(stdout);
        assert.equal(reply.success, true);
        assert.equal(reply.message, 'Broadcast sent');
        assert.equal(reply.type, 'product_added');
        assert.equal(reply.recipients, 1, 'the one page open');

        await page.locator('[data-testid="product-123-456"]').waitFor();
        assert.equal(await page.textContent('[data-testid="shop-123-note"]'), 'product 456 added');
        assert.deepEqual(await logIds(page), [reply.id]);

        const texts = consoleLines.map((line) => line.text);
        assert.ok(texts.includes('✅ WebSocket connected'), 'console: ✅ WebSocket connected');
        const messages = consoleLines.filter((line) => line.text.startsWith('📨 WebSocket message:'));
        await Promise.all(messages.map((line) => line.argsReady));
        const logged = messages.map((line) => line.args[1]);
        assert.deepEqual(logged.find((m) => m?.type === 'product_added'),
            { type: 'product_added', shopId: 123, productId: 456, id: reply.id });

        // A few more of the seed's events, then a picture of the result.
        await publish({ type: 'order_status', orderId: 1001, status: 'confirmed' });
        await publish({ type: 'new_subscriber', shopId: 123 });
        await publish({ type: 'product_deleted', shopId: 7, productId: 12 });
        await publish({ type: 'shop_updated', shopId: 7, name: 'Bread & Co (new hours)' });
        await page.waitForFunction(() => document.querySelectorAll('[data-testid="event-log-entry"]').length === 5);
        assert.equal(await page.textContent('[data-testid="order-1001-status"]'), 'confirmed');
        assert.equal(await page.textContent('[data-testid="shop-123-subscribers"]'), '42');
        assert.equal(await page.locator('[data-testid="product-7-12"]').count(), 0);
        assert.equal(await page.textContent('[data-testid="shop-7-name"]'), 'Bread & Co (new hours)');
        assert.equal(await page.isHidden('[data-testid="resync-banner"]'), true);

        await mkdir(path.dirname(SCREENSHOT), { recursive: true });
        await page.screenshot({ path: SCREENSHOT, fullPage: true });
        assert.deepEqual(pageErrors, []);
        await context.close();
    });

    it('a dropped connection resumes: events from the gap arrive once each, in order', TIMEOUT, async () => {
        const { context, page, pageErrors } = await openDemo();
        const first = await publish({ type: 'new_subscriber', shopId: 7 });
        await page.waitForFunction(() => document.querySelectorAll('[data-testid="event-log-entry"]').length === 1);

        // Offline emulation keeps the open socket alive but fails new ones, so:
        // go offline, cut the socket, and the page stays away until online.
        await context.setOffline(true);
        await page.evaluate(() => window.__shopcastSockets.at(-1).close(4000, 'network change'));
        await indicatorShows(page, DISCONNECTED);

        const gap = [];
        for (const productId of [601, 602, 603]) {
            gap.push((await publish({ type: 'product_added', shopId: 7, productId })).id);
        }
        assert.deepEqual(await logIds(page), [first.id], 'nothing arrives while away');

        await context.setOffline(false); // 'online': the client reconnects at once
        await indicatorShows(page, CONNECTED);
        await page.waitForFunction(() => document.querySelectorAll('[data-testid="event-log-entry"]').length >= 4);
        assert.deepEqual(await logIds(page), [first.id, ...gap]);
        for (const productId of [601, 602, 603]) await page.locator(`[data-testid="product-7-${productId}"]`).waitFor();
        assert.equal(await page.isHidden('[data-testid="resync-banner"]'), true, 'resumed, no resync');
        assert.equal(await page.textContent('[data-testid="ws-cursor"]'), gap.at(-1));

        // Live delivery goes on after the replay; it follows the replay directly, so a
        // duplicate from the replay would show before it.
        const live = await publish({ type: 'product_updated', shopId: 7, productId: 601 });
        await logShows(page, live.id);
        assert.deepEqual(await logIds(page), [first.id, ...gap, live.id]);
        assert.deepEqual(pageErrors, []);
        await context.close();
    });

    it('the indicator follows a killed and restarted daemon; the page refetches', TIMEOUT, async () => {
        const { context, page, pageErrors } = await openDemo();
        await publish({ type: 'new_subscriber', shopId: 123 });
        await page.waitForFunction(() => document.querySelectorAll('[data-testid="event-log-entry"]').length === 1);
        const oldCursor = await page.evaluate(() => window.shopcastDemo.client.lastId);

        await stack.stopDaemon('SIGKILL');
        await indicatorShows(page, DISCONNECTED);
        // Nothing can be published while the daemon is away.
        const refused = await stack.publish({ type: 'new_subscriber', shopId: 123 });
        assert.equal(refused.status, 503, refused.text);
        assert.equal(refused.json?.error, 'unavailable');

        await stack.startDaemon();
        // The page has been backing off meanwhile; its next attempt may be seconds away.
        await indicatorShows(page, CONNECTED, 35_000);
        // A new daemon is a new epoch: the old cursor can't be resumed.
        await page.locator('[data-testid="resync-banner"]').waitFor({ state: 'visible' });
        assert.equal(await page.textContent('#resync-text'), 'Refetched after missed updates');
        const cursor = await page.evaluate(() => window.shopcastDemo.client.lastId);
        assert.notEqual(cursor, oldCursor);

        // Live again.
        const reply = await publish({ type: 'product_deleted', shopId: 123, productId: 455 });
        await logShows(page, reply.id);
        assert.equal(await page.locator('[data-testid="product-123-455"]').count(), 0);
        assert.deepEqual(pageErrors, []);
        await context.close();
    });
    it('a burst of 500 product events reaches a coalescing client as a few batches; order_status is not held back', TIMEOUT, async (t) => {
        const windowMs = 250;
        const { context, page, pageErrors } = await openDemo();
        // A second client in the same page, recording its callbacks the way the Node test does.
        await page.evaluate(async ({ url, windowMs }) => {
            const { connect } = await import('/shopcast-client.js');
            const calls = [];
            window.__burst = {
                calls,
                client: connect({
                    url,
                    coalesce: { windowMs },
                    onEvent: (event) => calls.push({ at: Date.now(), event }),
                    onBatch: (batch) => calls.push({ at: Date.now(), batch }),
                }),
            };
        }, { url: `wss://127.0.0.1:${stack.httpsPort}/ws`, windowMs });
        await page.waitForFunction(() => window.__burst.client.lastId != null);

        const burst = await publishBurst(stack, 500, 250, 902);
        await page.waitForFunction(
            (count) => window.__burst.calls.filter((c) => c.batch).flatMap((c) => c.batch.events).length >= count,
            burst.ids.length);
        await page.waitForTimeout(windowMs + 100); // room for a stray extra batch or duplicate
        const calls = await page.evaluate(() => window.__burst.calls);
        const { batches } = assertCoalescedBurst(calls, burst, windowMs);
        t.diagnostic(`500 events in ${batches} onBatch calls`);
        assert.equal(await page.evaluate(() => window.__burst.client.lastId), burst.ids.at(-1));

        // The demo page coalesces too: the burst cost it a few refetches, not 500.
        await page.locator('[data-testid="product-902-500"]').waitFor();
        const refetches = Number(await page.textContent('[data-testid="refetch-count"]'));
        assert.ok(refetches >= 1 && refetches <= burst.ids.length / 4, `${refetches} refetches`);
        assert.equal(await page.textContent('[data-testid="order-902-status"]'), 'paid');
        assert.deepEqual(pageErrors, []);
        await context.close();
    });
});
