// The WebApp developer's side of web/: the npm package `shopcast-client` installs with one
// `npm install <tarball>` into a fresh project, and README.md's WebApp example type-checks
// against its declarations with `tsc --noEmit --strict` (TypeScript from the root
// package.json), as in a Vite app. The example is read from README.md itself: the fenced
// block after the marker comment, so the README and the checked code are one text.
//
//   node --test tests/web-client/types.test.mjs

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const webDir = path.join(repoRoot, 'web');
const tsc = path.join(repoRoot, 'node_modules', '.bin', 'tsc');
const README_MARKER = '<!-- tests/web-client/types.test.mjs type-checks this block with tsc --strict -->';

// What the example leaves to the page: its own functions and the Telegram global (a real
// WebApp gets the latter from Telegram's script and its types package).
const PAGE_DECLARATIONS = `
import type { Id } from 'shopcast-client';
declare global {
  interface Window { Telegram?: { WebApp?: { initData: string } } }
}
declare const shopId: number;
declare function refetchProducts(shopId: Id): void;
declare function refetchShop(shopId: Id): void;
declare function updateOrderStatus(orderId: Id, status: string): void;
declare function incrementSubscribers(shopId: Id): void;
declare function refetchEverything(): void;
declare function showSignInProblem(message: string): void;
`;

// A Vite app's settings, as far as type-checking goes.
const TSCONFIG = {
    compilerOptions: {
        target: 'ES2022',
        module: 'ESNext',
        moduleResolution: 'bundler',
        lib: ['ES2022', 'DOM'],
        types: [],
        strict: true,
        noEmit: true,
        skipLibCheck: false,
    },
    include: ['src'],
};

function readmeExample(readme) {
    const at = readme.indexOf(README_MARKER);
    assert.ok(at >= 0, 'README.md has the marker comment before the WebApp example');
    const block = /```[a-z]*\n([\s\S]*?)\n```/.exec(readme.slice(at + README_MARKER.length));
    assert.ok(block, 'a fenced code block follows the marker');
    return block[1];
}

async function typeCheck(app) {
    try {
        await execFileAsync(tsc, ['-p', app], { cwd: app });
        return { ok: true, output: '' };
    } catch (err) {
        return { ok: false, output: `${err.stdout}${err.stderr}` };
    }
}

describe('shopcast-client as an npm package', () => {
    let work;
    let app;
    let packed;

    before(async () => {
        work = await mkdtemp(path.join(os.tmpdir(), 'shopcast-client-'));
        const { stdout } = await execFileAsync('npm', ['pack', webDir, '--json', '--pack-destination', work],
            { cwd: work });
        packed = JSON.parse(stdout)[0];
        app = path.join(work, 'app');
        await mkdir(path.join(app, 'src'), { recursive: true });
        await writeFile(path.join(app, 'package.json'),
            JSON.stringify({ name: 'webapp', private: true, type: 'module' }, null, 2));
        await writeFile(path.join(app, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2));
        // The one command a WebApp runs; the package has no dependencies, so nothing is fetched.
        await execFileAsync('npm', ['install', '--no-audit', '--no-fund', '--offline', path.join(work, packed.filename)],
            { cwd: app });
    });

    after(async () => {
        if (work) await rm(work, { recursive: true, force: true });
    });

    it('packs the module, its declarations and its README, and nothing of the demo', async () => {
        const files = packed.files.map((f) => f.path).sort();
        assert.deepEqual(files, ['README.md', 'package.json', 'shopcast-client.d.ts', 'shopcast-client.js']);
        const installed = JSON.parse(await readFile(path.join(app, 'package.json'), 'utf8'));
        assert.match(installed.dependencies['shopcast-client'], /shopcast-client-.*\.tgz$/);
    });

    it('has the version of CMakeLists.txt (the project\'s one version)', async () => {
        const cmake = await readFile(path.join(repoRoot, 'CMakeLists.txt'), 'utf8');
        const version = /^project\(shopcast VERSION ([0-9.]+)/m.exec(cmake)?.[1];
        assert.ok(version, 'CMakeLists.txt names a project VERSION');
        assert.equal(packed.version, version);
    });

    it('declares exactly what the module exports', async () => {
        const module = await import(path.join(app, 'node_modules', 'shopcast-client', 'shopcast-client.js'));
        const declarations = await readFile(path.join(webDir, 'shopcast-client.d.ts'), 'utf8');
        const declared = [...declarations.matchAll(/^export function (\w+)/gm)].map((m) => m[1]).sort();
        assert.deepEqual(Object.keys(module).sort(), declared);
    });

    it('README.md\'s WebApp example type-checks with tsc --noEmit --strict', async () => {
        const example = readmeExample(await readFile(path.join(repoRoot, 'README.md'), 'utf8'));
        assert.match(example, /from 'shopcast-client'/, 'the example imports the package by name');
        await writeFile(path.join(app, 'src', 'main.ts'), `${example}\n${PAGE_DECLARATIONS}`);
        const result = await typeCheck(app);
        assert.ok(result.ok, `tsc rejected the README example:\n${result.output}`);
    });

    it('the declarations catch mistakes: a misspelt option, an unnarrowed field, a wrong callback', async () => {
        await writeFile(path.join(app, 'src', 'main.ts'), `import { connect } from 'shopcast-client';
connect({ url: 'wss://shop.example/ws', onEvnt() {} });
connect({ url: 'wss://shop.example/ws', onEvent(event) { const order: string = event.orderId; } });
connect({ url: 'wss://shop.example/ws', onAuthError(message: number) {} });
`);
        const result = await typeCheck(app);
        assert.equal(result.ok, false, 'tsc accepted wrong code');
        assert.match(result.output, /onEvnt/);
        assert.match(result.output, /main\.ts\(3,/, 'orderId without narrowing on type');
        assert.match(result.output, /main\.ts\(4,/, 'onAuthError takes a string');
    });
});
