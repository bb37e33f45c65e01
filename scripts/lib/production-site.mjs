// The production nginx site (nginx/shopcast.conf) made runnable on loopback: the same file with
// only what belongs to the host rewritten (ports, certificate, socket and log paths),
// wrapped in a minimal nginx.conf. scripts/lib/stack.mjs runs it (startStack({ site:
// 'production' })) and scripts/test's nginx -t checks this very rendering.
//
//   node scripts/lib/production-site.mjs DIR [N]   writes DIR/nginx.conf (+ snippets, a
//   certificate); N > 1: with the several-daemons upstream of N instances
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// What an nginx.conf beside the site provides on Debian (/etc/nginx): the site's relative
// includes (snippets/..., fastcgi_params) resolve against the directory of nginx.conf.
export async function installNginxIncludes(dir) {
    const snippets = path.join(repoRoot, 'nginx', 'snippets');
    await mkdir(path.join(dir, 'snippets'), { recursive: true });
    for (const name of await readdir(snippets)) {
        await copyFile(path.join(snippets, name), path.join(dir, 'snippets', name));
    }
    await copyFile('/etc/nginx/fastcgi_params', path.join(dir, 'fastcgi_params'));
}

// Each rewrite must match: a production site that changed shape fails loudly instead of being
// run half-rewritten.
function rewrite(text, pattern, replacement, what) {
    const out = text.replace(pattern, replacement);
    if (out === text) throw new Error(`nginx/shopcast.conf: ${what} not found (${pattern})`);
    return out;
}

// The site's several-daemons variant, as its comments tell an operator to make it: the single
// `server` of upstream shopcast_ws gives way to the commented zone, least_conn and the first
// `workers` ws-N.sock lines, uncommented.
export function withDaemonInstances(text, workers) {
    const upstream = /^upstream shopcast_ws \{\n[\s\S]*?^\}$/m;
    const block = upstream.exec(text)?.[0];
    if (!block) throw new Error('nginx/shopcast.conf: upstream shopcast_ws not found');
    const lines = block.split('\n');
    const instances = lines.filter((line) => /^\s*#server\s+unix:\/run\/shopcast\/ws-\d+\.sock;/.test(line));
    if (instances.length < workers) throw new Error(`nginx/shopcast.conf names ${instances.length} ws-N.sock servers, not ${workers}`);
    const out = [];
    for (const line of lines) {
        if (/^\s*server\s+unix:\/run\/shopcast\/ws\.sock;/.test(line)) continue;
        const n = /#server\s+unix:\/run\/shopcast\/ws-(\d+)\.sock;/.exec(line)?.[1];
        if (n !== undefined) {
            if (Number(n) <= workers) out.push(line.replace('#server', 'server'));
        } else {
            out.push(line.replace(/^(\s*)#(zone|least_conn)/, '$1$2'));
        }
    }
    return text.replace(block, out.join('\n'));
}

// The site's text with the host's parts replaced by the test's (`workers` > 1: the
// several-daemons variant of the upstream).
export async function renderProductionSite({ dir, runDir, cert, key, httpPort, httpsPort, siteRewrite, workers = 1 }) {
    let text = await readFile(path.join(repoRoot, 'nginx', 'shopcast.conf'), 'utf8');
    if (workers > 1) text = withDaemonInstances(text, workers);
    text = rewrite(text, /^(\s*)listen\s+80;$/m, `$1listen              127.0.0.1:${httpPort};`, 'listen 80');
    text = rewrite(text, /^(\s*)listen\s+443 ssl http2;$/m, `$1listen              127.0.0.1:${httpsPort} ssl http2;`, 'listen 443');
    text = rewrite(text, /^\s*listen\s+\[::\]:(80|443)[^;]*;\n/gm, '', 'the IPv6 listeners');
    text = rewrite(text, /\/etc\/letsencrypt\/live\/shop\.example\.com\/fullchain\.pem/, cert, 'ssl_certificate');
    text = rewrite(text, /\/etc\/letsencrypt\/live\/shop\.example\.com\/privkey\.pem/, key, 'ssl_certificate_key');
    text = rewrite(text, /\/var\/log\/nginx\/shopcast\.access\.log/g, path.join(dir, 'access.log'), 'access_log');
    text = rewrite(text, /unix:\/run\/shopcast\//g, `unix:${runDir}/`, 'the sockets');
    return siteRewrite ? siteRewrite(text) : text;
}

// A minimal nginx.conf around the site, as Debian's would include it from sites-enabled/.
export function productionNginxConf({ dir, workerConnections = 768, userDirective = '' }) {
    return `# Rendered by scripts/lib/production-site.mjs: nginx/shopcast.conf on loopback.
daemon                  off;
worker_processes        1;
${userDirective}
pid                     ${dir}/nginx.pid;
error_log               stderr notice;
worker_rlimit_nofile    ${Math.min(workerConnections + 64, 20000)};

events {
    worker_connections  ${workerConnections};
}

http {
    include             /etc/nginx/mime.types;
    default_type        application/octet-stream;
    client_body_temp_path  ${dir}/tmp/client_body;
    proxy_temp_path        ${dir}/tmp/proxy;
    fastcgi_temp_path      ${dir}/tmp/fastcgi;
    uwsgi_temp_path        ${dir}/tmp/uwsgi;
    scgi_temp_path         ${dir}/tmp/scgi;
    include             ${dir}/site.conf;
}
`;
}

export async function writeProductionSite(options) {
    const { dir } = options;
    await installNginxIncludes(dir);
    await mkdir(path.join(dir, 'tmp'), { recursive: true, mode: 0o700 });
    await writeFile(path.join(dir, 'site.conf'), await renderProductionSite(options));
    await writeFile(path.join(dir, 'nginx.conf'), productionNginxConf(options));
}

// CLI for scripts/test: renders into DIR with a throwaway certificate, for nginx -t.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    const dir = path.resolve(process.argv[2] ?? '.');
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    await execFileAsync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-days', '1', '-subj', '/CN=localhost', '-keyout', key, '-out', cert]);
    await mkdir(path.join(dir, 'run'), { recursive: true });
    await writeProductionSite({ dir, runDir: path.join(dir, 'run'), cert, key,
        httpPort: 8080, httpsPort: 8443, workers: Number(process.argv[3] ?? 1) });
}
