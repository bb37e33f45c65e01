// The browser client in real Chromium reconnects the moment the page comes back instead of
// waiting out its backoff: the daemon goes away while the page is hidden (the client backs
// off for a minute), comes back, and the page becomes visible again (or Telegram reports
// `activated`): the client is connected and has resumed what it missed well within that
// minute. nginx serves the page (fixtures/reconnect-page.html) and the client module from a
// web root of their own, on the stack's https origin; visibility is switched the way the browser does it for a page: document.visibilityState
// and a `visibilitychange` event.
//
//   node --test tests/e2e/reconnect.test.mjs

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { repoRoot, startStack } from '../../scripts/lib/stack.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TIMEOUT = { timeout: 90_000 }; // per test
const PROMPT_MS = 15_000; // the page's backoff is 60 s: connected within this is "at once"
const PAGE = 'reconnect-page.html';

// Before the page's scripts: visibility the test controls, and a Telegram.WebApp stand-in
// whose `activated` listeners the test can call, as the Telegram app does.
function pageHooks() {
    let visibility = 'visible';
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => visibility });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => visibility === 'hidden' });
    const telegramListeners = {};
    window.Telegram = {
        WebApp: {
            initData: '',
            onEvent: (name, fn) => { (telegramListeners[name] ??= []).push(fn); },
            offEvent: (name, fn) => { telegramListeners[name] = (telegramListeners[name] ?? []).filter((f) => f !== fn); },
        },
    };
    window.shopcastHooks = {
        setVisibility(next) {
            visibility = next;
            document.dispatchEvent(new Event('visibilitychange'));
        },
        telegram(name) {
            for (const fn of telegramListeners[name] ?? []) fn();
        },
    };
}

describe('the client in Chromium comes back with the page', () => {
    let stack;
    let browser;
    let webRoot;

    before(async () => {
        webRoot = await mkdtemp(path.join(os.tmpdir(), 'shopcast-reconnect-'));
        await copyFile(path.join(repoRoot, 'tests', 'e2e', 'fixtures', PAGE), path.join(webRoot, PAGE));
        await copyFile(path.join(repoRoot, 'web', 'shopcast-client.js'), path.join(webRoot, 'shopcast-client.js'));
        stack = await startStack({ webRoot });
        browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
    });

    after(async () => {
        await browser?.close();
        await stack?.stop();
        if (webRoot) await rm(webRoot, { recursive: true, force: true });
    });

    async function openPage() {
        const context = await browser.newContext({ ignoreHTTPSErrors: true });
        context.setDefaultTimeout(PROMPT_MS);
        await context.addInitScript(pageHooks);
        const page = await context.newPage();
        const pageErrors = [];
        page.on('pageerror', (err) => pageErrors.push(err));
        await page.goto(`${stack.httpsUrl}/${PAGE}`);
        await page.waitForFunction(() => window.shopcastTest?.client.connected && window.shopcastTest.client.lastId);
        return { context, page, pageErrors };
    }

    async function publish(body) {
        const reply = await stack.publish(body);
        assert.equal(reply.status, 200, `publish ${JSON.stringify(body)} -> ${reply.status} ${reply.text}`);
        return reply.json;
    }

    const connected = (page) => page.evaluate(() => window.shopcastTest.client.connected);

    for (const [trigger, comeBack] of [
        ['the page becomes visible', (page) => page.evaluate(() => window.shopcastHooks.setVisibility('visible'))],
        ['Telegram reports activated', (page) => page.evaluate(() => window.shopcastHooks.telegram('activated'))],
    ]) {
        it(`daemon back while the page was hidden: ${trigger} → connected at once, the gap resumed`, TIMEOUT, async (t) => {
            const { context, page, pageErrors } = await openPage();
            await page.evaluate(() => window.shopcastHooks.setVisibility('hidden'));

            await stack.stopDaemon('SIGTERM');
            await page.waitForFunction(() => !window.shopcastTest.client.connected);
            await stack.startDaemon();
            const missed = await publish({ type: 'shop_updated', shopId: 'came-back' });
            // Back, but the page does not know: it keeps waiting out its minute.
            await new Promise((resolve) => setTimeout(resolve, 1000));
            assert.equal(await connected(page), false, 'reconnected on its own, before the page came back');

            const started = Date.now();
            await comeBack(page);
            await page.waitForFunction(() => window.shopcastTest.client.connected, null, { timeout: PROMPT_MS });
            await page.waitForFunction((id) => window.shopcastTest.events.some((e) => e.id === id), missed.id,
                { timeout: PROMPT_MS });
            t.diagnostic(`connected and resumed ${Date.now() - started} ms after ${trigger} (backoff: 60 s)`);
            assert.deepEqual(pageErrors, []);
            await context.close();
        });
    }

    it('a visible page that is still connected does not reconnect', TIMEOUT, async () => {
        const { context, page } = await openPage();
        const opened = await page.evaluate(() => window.shopcastTest.statuses.filter((s) => s === 'connecting').length);
        await page.evaluate(() => {
            window.shopcastHooks.setVisibility('hidden');
            window.shopcastHooks.setVisibility('visible');
            window.shopcastHooks.telegram('activated');
        });
        const reply = await publish({ type: 'new_subscriber', shopId: 'still-connected' });
        await page.waitForFunction((id) => window.shopcastTest.events.some((e) => e.id === id), reply.id);
        assert.equal(await page.evaluate(() => window.shopcastTest.statuses.filter((s) => s === 'connecting').length),
            opened);
        await context.close();
    });
});
